"""`speechrnn train [overrides]`: the Hydra entry point (also `python -m speechrnn.train_cli`, for torchrun).

Examples:
    speechrnn train                                  # default recipe: synthetic/gru
    speechrnn train recipe=fsdd/gru data.root=../shared/data/fsdd/recordings
    speechrnn train -m recipe=smoke model.cell=rnn,lstm,gru
    torchrun --nproc_per_node=2 -m speechrnn.train_cli recipe=smoke hydra.run.dir=runs/ddp
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import CONF_DIR, describe_config_error
from .errors import SpeechRNNError, UsageError
from .leaderboard import LeaderboardCallback

log = logging.getLogger("speechrnn.train")
jobs_started = 0


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    from .training import fit  # torch: not for `-sc query=bash`, which runs on every <TAB>

    global jobs_started
    jobs_started += 1
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        summary = fit(cfg, run_dir)  # checks every setting before it reads data or writes a file
    except SpeechRNNError as exc:
        # A problem the user can fix: say what it is, once, without a traceback.
        report(exc)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return float("nan")  # the other jobs go on; the leaderboard lists this one as failed
        raise SystemExit(2 if isinstance(exc, UsageError) else 1) from None
    except KeyboardInterrupt:
        # The trainer has logged where the state is and the command that resumes it.
        raise SystemExit(130) from None
    return summary.get("val_accuracy", float("nan"))


def report(exc: SpeechRNNError) -> None:
    """The error on stderr, and in the run's log file (not a second time on the console)."""
    print(f"speechrnn train: error: {exc}", file=sys.stderr)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (exc,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: list[str] | None = None, prog: str = "speechrnn train") -> int:
    if argv is not None:
        sys.argv = [prog, *argv]
    # Hydra then lets errors through instead of printing them with a traceback: errors in the
    # command line (before any job starts) are reported here in one line each.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    LeaderboardCallback.failed = []
    try:
        hydra_main()
    except Exception as exc:
        if jobs_started:
            raise
        print(f"speechrnn train: error in the command line: {describe_config_error(exc)}", file=sys.stderr)
        return 2
    if LeaderboardCallback.failed:  # `-m`: the other jobs ran; the command still failed
        print(f"speechrnn train: error: {len(LeaderboardCallback.failed)} job(s) failed: "
              f"{', '.join(LeaderboardCallback.failed)}; their errors are above and in each job's "
              "log; the leaderboard lists them as failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
