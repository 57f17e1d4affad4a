"""Models: the written-out cells, the recurrent encoder and the keyword classifier."""

from __future__ import annotations

from torch import nn

from ..config import plain
from ..errors import SpeechRNNError
from ..features import Frontend
from .cells import GRUCell, LSTMCell, ReferenceRNN, RNNCell
from .classifier import KeywordClassifier
from .encoder import RecurrentEncoder

__all__ = ["GRUCell", "KeywordClassifier", "LSTMCell", "RNNCell", "RecurrentEncoder",
           "ReferenceRNN", "build_model", "count_parameters"]


def build_model(cfg, labels: list[str]) -> KeywordClassifier:
    """The classifier that ``cfg.features`` and ``cfg.model`` describe, for clips of ``cfg.data``."""
    if len(labels) < 2:
        raise SpeechRNNError(f"a classifier needs at least 2 labels, got {list(labels)}; "
                             "check data.words and the dataset root")
    frontend = Frontend.from_config(cfg.features, cfg.data.sample_rate)
    encoder = RecurrentEncoder(frontend.output_dim, cfg.model)
    # The memory probe's noise follows the word in every clip the model sees.
    seconds = cfg.data.clip_seconds + (cfg.data.probe_delay_seconds or 0.0)
    settings = {"features": plain(cfg.features), "model": plain(cfg.model)}
    return KeywordClassifier(frontend, encoder, labels, cfg.data.sample_rate,
                             round(seconds * cfg.data.sample_rate), settings)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (the frontend's fixed DFT/mel/DCT buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
