"""Checkpoints: tensors and plain data only, written atomically, loaded with weights_only=True.

A checkpoint is a dict with at least ``model`` (state dict), ``config`` (the resolved run config
as plain containers), ``labels`` and ``epoch``; ``last.pt`` adds the optimizer, scheduler and
RNG states needed for an exact resume.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from .config import Config, validate
from .errors import SpeechRNNError
from .models import build_model


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write to a temp file in the same folder, fsync, then rename: a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: checkpoint not found; pass a run dir or a .pt file it wrote")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SpeechRNNError(
            f"{path}: refused to load: the checkpoint holds more than tensors and plain data "
            f"(pickled code?) and is not safe to open ({_unsafe_part(exc)}). "
            "Only load checkpoints written by speechrnn from a source you trust."
        ) from None
    except Exception as exc:
        # A corrupt file fails anywhere in torch: RuntimeError, EOFError, IndexError,
        # UnicodeDecodeError... (found by fuzzing truncated and mutated checkpoints).
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SpeechRNNError(
            f"{path}: not a readable checkpoint ({reason}); "
            "it may be truncated: use checkpoints/last.pt or best.pt of a finished run"
        ) from None
    if not isinstance(state, dict) or not {"model", "config", "labels"} <= state.keys():
        raise SpeechRNNError(f"{path}: not a speechrnn checkpoint (missing model/config/labels)")
    return state


def _unsafe_part(exc: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, without its advice to load the file unsafely."""
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+?)(?:\. |\n|$)", str(exc))
    return found[1] if found else "objects other than tensors and plain data"


def resolve(run_or_checkpoint: str | os.PathLike) -> Path:
    """A run dir means its best checkpoint; a file is taken as is."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        return path / "checkpoints" / "best.pt"
    return path


def load_model(run_or_checkpoint: str | os.PathLike, map_location: str = "cpu"):
    """Rebuild the trained model: returns (model in eval mode, config as DictConfig, checkpoint)."""
    path = resolve(run_or_checkpoint)
    state = load(path, map_location=map_location)
    try:
        # Onto the schema, so that a run saved before a setting existed reads as its default.
        cfg: DictConfig = OmegaConf.merge(OmegaConf.structured(Config), state["config"])
        validate(cfg)
        model = build_model(cfg.data, cfg.features, cfg.model, list(state["labels"]))
    except Exception as exc:  # OmegaConf's key/type errors, UsageError, a model torch cannot build
        raise SpeechRNNError(f"{path}: the checkpoint's config is not a valid speechrnn config "
                             f"({first_line(exc)}); use a checkpoint written by speechrnn train") from None
    try:
        model.load_state_dict(state["model"])
    except Exception as exc:
        raise SpeechRNNError(f"{path}: the checkpoint's weights do not match its config "
                             f"({first_line(exc)}); the file was changed or written by another program") from None
    model.eval()
    return model, cfg, state


def first_line(exc: BaseException) -> str:
    """The first line of an error that says what is wrong (torch puts it on the second)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        return lines[1]
    return lines[0] if lines else type(exc).__name__
