"""`speechrnn train [overrides]`: the Hydra entry point (also `python -m speechrnn.train`, for torchrun).

Examples:
    speechrnn train                                  # default recipe: synthetic/gru
    speechrnn train recipe=fsdd/gru data.root=../shared/data/fsdd/recordings
    speechrnn train -m recipe=smoke model.cell=rnn,lstm,gru
    torchrun --nproc_per_node=2 -m speechrnn.train recipe=smoke hydra.run.dir=runs/ddp
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import CONF_DIR
from .errors import SpeechRNNError
from .training import fit

log = logging.getLogger("speechrnn.train")


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        require_values(cfg)
        summary = fit(cfg, run_dir)
    except SpeechRNNError as exc:
        # A problem the user can fix: say what it is, without a traceback.
        log.error("%s", exc)
        print(f"speechrnn train: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        # The trainer has logged where the state is and the command that resumes it.
        raise SystemExit(130) from None
    return summary.get("val_accuracy", float("nan"))


def require_values(cfg: DictConfig) -> None:
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        hint = " ".join(f"{key}=..." for key in missing)
        raise SpeechRNNError(f"missing required settings: {', '.join(missing)}; add them on the line: {hint}")


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["speechrnn train", *argv]
    hydra_main()
    return 0


if __name__ == "__main__":
    main()
