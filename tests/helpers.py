"""What several test modules share: the repo's path, a tiny composed model (and one exported to
ONNX), a torch blocker for subprocesses that must run without torch. Fixtures live in
conftest.py; test modules import from here, never from each other."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speechrnn.config import CONF_DIR
from speechrnn.export import export_model
from speechrnn.models import build_model

REPO = Path(__file__).resolve().parent.parent

SAMPLE_RATE = 16000
LABELS = ["zero", "one", "two", "three"]
# FSDD is 8 kHz audio: a 16 kHz model of it looks no higher than 4 kHz. Above, the upsampled
# signal holds only resampler residue near the float32 floor, whose log-mel is rounding noise
# (torch and onnxruntime each differ from a float64 MFCC there by ~0.02).
TINY = ["model.hidden_size=8", "model.num_layers=2", "model.conv_channels=6", "model.dropout=0",
        f"data.sample_rate={SAMPLE_RATE}", "features.f_max=4000"]

# Prepended to a `python -c` script: any import of torch in it fails.
BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"torch is blocked in this test (import of {name!r})")

sys.meta_path.insert(0, BlockTorch())
"""


@functools.cache
def _composed(overrides: tuple[str, ...]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def tiny_config(*overrides: str):
    """The real composed config (defaults + recipe), shrunk to a tiny model; the overrides are
    checked against the typed schema like command-line ones."""
    cfg = _composed(tuple(TINY)).copy()
    cfg.merge_with(OmegaConf.from_dotlist(list(overrides)))
    return cfg


def tiny_model(*overrides: str, labels=LABELS, seed: int = 0):
    cfg = tiny_config(*overrides)
    torch.manual_seed(seed)
    return build_model(cfg.data, cfg.features, cfg.model, labels).eval(), cfg


def tiny_onnx(path: Path, labels: list[str], *overrides: str) -> Path:
    """An untrained smoke-recipe classifier exported to ONNX (seeded, so always the same)."""
    cfg = _composed(("recipe=smoke", *overrides)).copy()
    torch.manual_seed(0)
    return export_model(build_model(cfg.data, cfg.features, cfg.model, labels), cfg.data, path)
