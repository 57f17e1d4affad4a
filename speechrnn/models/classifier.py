"""The whole model: raw waveform in, one logit per label out."""

from __future__ import annotations

from torch import Tensor, nn

from ..features import Frontend
from .encoder import RecurrentEncoder


class KeywordClassifier(nn.Module):
    """MFCC frontend -> recurrent encoder (+ pooling) -> linear head.

    The frontend is a layer of the model, so training, evaluation and the exported ONNX graph
    share one feature implementation. ``labels`` and ``sample_rate`` travel with the model.
    """

    def __init__(self, frontend: Frontend, encoder: RecurrentEncoder, labels: list[str],
                 sample_rate: int):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.head = nn.Linear(encoder.output_dim, len(labels))
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)

    def features(self, wave: Tensor) -> Tensor:
        """[B, S] waveform -> [B, T, F] feature frames."""
        return self.frontend(wave)

    def encode_frames(self, feats: Tensor) -> Tensor:
        """[B, T, F] -> [B, T, D] per-frame encoder outputs, before pooling."""
        return self.encoder.frames(feats)

    def forward(self, wave: Tensor) -> Tensor:
        """[B, S] waveform -> [B, num_labels] logits."""
        return self.head(self.encoder(self.features(wave)))
