"""Experiment tracking: wandb when `logger=wandb`, otherwise nothing.

wandb runs offline unless the user asks otherwise, and never prompts: without credentials an
online request falls back to offline, so a run can be uploaded later with `wandb sync`.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

log = logging.getLogger(__name__)


class Tracker:
    """The no-op tracker; WandbTracker overrides what it records."""

    def log(self, metrics: dict, step: int | None = None) -> None:
        pass

    def finish(self, summary: dict, images: dict[str, Path]) -> None:
        pass

    def abort(self) -> None:
        """The run stopped early (interrupted, pruned, failed)."""


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class WandbTracker(Tracker):
    def __init__(self, logger_cfg, config: dict, run_dir: Path):
        import wandb

        self.wandb = wandb
        mode = os.environ.get("WANDB_MODE") or logger_cfg.mode
        if mode == "online" and not has_wandb_credentials():
            log.warning("wandb: no credentials found; logging offline (upload later with `wandb sync`)")
            mode = "offline"
        self.run = wandb.init(
            project=logger_cfg.project,
            group=logger_cfg.group,
            tags=list(logger_cfg.tags),
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
            mode=mode,
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, metrics: dict, step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict, images: dict[str, Path]) -> None:
        self.run.log({name: self.wandb.Image(str(path)) for name, path in images.items()})
        flat = {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
        self.run.summary.update(flat)
        self.run.finish()

    def abort(self) -> None:
        self.run.finish(exit_code=1)


def start(logger_cfg, config: dict, run_dir: Path) -> Tracker:
    if logger_cfg.name == "wandb":
        return WandbTracker(logger_cfg, config, run_dir)
    return Tracker()
