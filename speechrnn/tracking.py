"""Experiment tracking: wandb when `logger=wandb`, otherwise nothing.

wandb runs offline unless the user asks otherwise, and never prompts: without credentials an
online request falls back to offline, so a run can be uploaded later with `wandb sync` (the
command is logged when the run ends). A finished run also logs its ONNX files as a model
artifact and the test confusion matrix as a table (and the chart wandb draws from it).
"""

from __future__ import annotations

import logging
import netrc
import os
import re
from pathlib import Path

from .errors import SpeechRNNError

log = logging.getLogger(__name__)


class Tracker:
    """The no-op tracker; WandbTracker overrides what it records."""

    def log(self, metrics: dict, step: int | None = None) -> None:
        pass

    def finish(self, summary: dict, images: dict[str, Path], confusion=None) -> None:
        """The run is done: its summary (labels, the exported files), plots, and the test
        confusion matrix (rows: true label, columns: predicted, in summary["labels"] order)."""

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
        try:
            import wandb
        except ModuleNotFoundError:
            raise SpeechRNNError("logger=wandb needs the wandb extra: pip install "
                                 "'speechrnn[wandb]' (or train with logger=none)") from None

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

    def finish(self, summary: dict, images: dict[str, Path], confusion=None) -> None:
        wandb = self.wandb
        self.run.log({name: wandb.Image(str(path)) for name, path in images.items()})
        if confusion is not None:
            table = confusion_table(wandb, confusion, summary["labels"])
            self.run.log({"test/confusion_table": table, "test/confusion_chart": wandb.plot_table(
                "wandb/confusion_matrix/v1", table,
                {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"})})
        models = [Path(path) for key, path in summary.items() if key.startswith("onnx") and path]
        if models:
            self.run.log_artifact(model_artifact(wandb, self.run.id, models, summary))
        flat = {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
        self.run.summary.update(flat)
        self._close()

    def abort(self) -> None:
        self._close(exit_code=1)

    def _close(self, exit_code: int = 0) -> None:
        offline = self.run.settings.mode == "offline"
        sync_dir = self.run.settings.sync_dir
        self.run.finish(exit_code=exit_code)
        if offline:
            log.info("wandb: offline run in %s; upload it with: wandb sync %s", sync_dir, sync_dir)


def confusion_table(wandb, matrix, labels: list[str]):
    """One row per (true, predicted) pair, the layout of wandb's confusion-matrix chart."""
    return wandb.Table(columns=["Actual", "Predicted", "nPredictions"],
                       data=[[true, predicted, int(matrix[i][j])]
                             for i, true in enumerate(labels) for j, predicted in enumerate(labels)])


def model_artifact(wandb, run_id: str, files: list[Path], summary: dict):
    """The exported ONNX files as one "model" artifact, with the numbers that describe them."""
    artifact = wandb.Artifact(
        f"model-{re.sub(r'[^A-Za-z0-9_.-]', '-', run_id)}", type="model",
        description="speechrnn ONNX export (model card in each file: `speechrnn info FILE`)",
        metadata={key: summary.get(key) for key in
                  ("labels", "test_accuracy", "val_accuracy", "num_parameters", "clips")})
    for path in files:
        artifact.add_file(str(path), name=path.name)
    return artifact


def start(logger_cfg, config: dict, run_dir: Path) -> Tracker:
    if logger_cfg.name == "wandb":
        return WandbTracker(logger_cfg, config, run_dir)
    return Tracker()
