"""The whole model: raw waveform in, one logit per label out."""

from __future__ import annotations

from torch import Tensor, nn

from ..features import Frontend
from .encoder import RecurrentEncoder


class KeywordClassifier(nn.Module):
    """MFCC frontend -> recurrent encoder (+ pooling) -> linear head.

    The frontend is a layer of the model, so training, evaluation and the exported ONNX graph
    share one feature implementation. The model carries its input contract: ``labels``,
    ``sample_rate``, ``clip_samples`` (the clip length it was trained on) and ``settings``, the
    plain ``features`` and ``model`` settings it was built from; export and inspection need the
    model only.
    """

    def __init__(self, frontend: Frontend, encoder: RecurrentEncoder, labels: list[str],
                 sample_rate: int, clip_samples: int, settings: dict):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.head = nn.Linear(encoder.output_dim, len(labels))
        self.labels = list(labels)
        self.sample_rate = int(sample_rate)
        self.clip_samples = int(clip_samples)
        self.settings = settings

    def features(self, wave: Tensor) -> Tensor:
        """[B, S] waveform -> [B, T, F] feature frames."""
        return self.frontend(wave)

    def encode_frames(self, feats: Tensor) -> Tensor:
        """[B, T, F] -> [B, T, D] per-frame encoder outputs, before pooling."""
        return self.encoder.frames(feats)

    def forward(self, wave: Tensor, per_frame: bool = False) -> Tensor:
        """[B, S] waveform -> [B, num_labels] logits; with ``per_frame``, [B, T, num_labels]:
        the head on every frame's encoder output, what a streaming export gives frame by frame."""
        if per_frame:
            return self.head(self.encoder.dropout(self.encode_frames(self.features(wave))))
        return self.head(self.encoder(self.features(wave)))
