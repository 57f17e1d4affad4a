"""Several trained runs of one recipe as one model: `speechrnn export RUN RUN ... -o FILE.onnx`.

Models trained from different seeds disagree most on what none of them has heard, such as a
new speaker, so the mean of their probabilities is usually right more often than any one of
them. The members share one frontend (their feature settings must be the same), each keeps its
encoder and head, and the ensemble's logits are the log of the mean probability: the exported
file keeps the one-model contract (``probs`` is that mean), at the members' summed compute.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .errors import UsageError
from .models import KeywordClassifier


class Ensemble(nn.Module):
    """``members`` (KeywordClassifiers of one recipe) -> [B, labels] log mean probabilities."""

    def __init__(self, members: list[KeywordClassifier], names: list[str]):
        super().__init__()
        first = members[0]
        for member, name in zip(members[1:], names[1:]):
            for what, mine, theirs in [
                    ("labels", member.labels, first.labels),
                    ("sample rate", member.sample_rate, first.sample_rate),
                    ("clip length", member.clip_samples, first.clip_samples),
                    ("feature settings", member.settings["features"], first.settings["features"]),
                    ("model settings", member.settings["model"], first.settings["model"])]:
                if mine != theirs:
                    raise UsageError(f"{name}: its {what} differ from {names[0]}'s ({mine} vs "
                                     f"{theirs}); an ensemble takes runs of one recipe (other seeds)")
        self.members = nn.ModuleList(members)
        self.frontend = first.frontend
        self.labels, self.sample_rate, self.clip_samples = first.labels, first.sample_rate, first.clip_samples
        self.settings = {"features": first.settings["features"],
                         "model": {**first.settings["model"], "ensemble": len(members)}}

    def forward(self, wave: Tensor) -> Tensor:
        features = self.frontend(wave)
        probs = torch.stack([torch.softmax(m.head(m.encoder(features)), dim=-1)
                             for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
