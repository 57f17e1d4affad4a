"""Models: the written-out cells, the recurrent encoder and the keyword classifier."""

from __future__ import annotations

from typing import Optional

from torch import nn

from ..config import AugmentConfig, DataConfig, FeaturesConfig, ModelConfig, plain
from ..errors import SpeechRNNError
from ..features import Frontend
from .cells import GRUCell, LSTMCell, ReferenceRNN, RNNCell
from .classifier import KeywordClassifier
from .encoder import RecurrentEncoder

__all__ = ["GRUCell", "KeywordClassifier", "LSTMCell", "RNNCell", "RecurrentEncoder",
           "ReferenceRNN", "build_model", "count_parameters"]


def build_model(data: DataConfig, features: FeaturesConfig, model: ModelConfig,
                labels: list[str], augment: Optional[AugmentConfig] = None) -> KeywordClassifier:
    """The classifier that ``features`` and ``model`` describe, for clips of ``data``; for
    training, ``augment`` adds what it perturbs in the model (augment.warp_spectrogram)."""
    if len(labels) < 2:
        raise SpeechRNNError(f"a classifier needs at least 2 labels, got {list(labels)}; "
                             "check data.words and the dataset root")
    frontend = Frontend.from_config(features, data.sample_rate, augment)
    encoder = RecurrentEncoder(frontend.output_dim, model)
    # The memory probe's noise follows the word in every clip the model sees.
    seconds = data.clip_seconds + (data.probe_delay_seconds or 0.0)
    settings = {"features": plain(features), "model": plain(model)}
    return KeywordClassifier(frontend, encoder, labels, data.sample_rate,
                             round(seconds * data.sample_rate), settings)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters (the frontend's fixed DFT/mel/DCT buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
