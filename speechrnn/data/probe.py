"""The long-range memory probe: a spoken word, then ``data.probe_delay_seconds`` of background noise.

Each example is the source clip as usual (``data.clip_seconds`` long, the word in it, augmented
on train), followed by a stretch of background noise; the label is the word's. A model that
classifies from the last time step (``model.pooling=last``) has to carry the word across the
noise in its recurrent state, so accuracy against the delay measures how long a cell remembers.

Keep ``features.normalize=false`` for the probe (``model.input_norm=true`` scales each frame
instead): per-utterance normalisation subtracts the mean over the whole clip, which puts a trace
of the word into the last frame and lets a model answer without remembering anything.

The noise is drawn from ``augment.noise_dir`` (or the source's own noise folder) at
``PROBE_SNR_DB`` below the word's power, a fresh random segment per clip and epoch on train and
a fixed one per clip on val/test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio
from ..config import DataConfig
from ..errors import SpeechRNNError
from .augment import NoiseBank
from .base import ClipDataset

# The noise stretch's power relative to the word window's: 10 dB quieter.
PROBE_SNR_DB = 10.0
# Keeps the probe's random stream apart from the augmentation's (both keyed by seed, epoch, index).
_STREAM = 0x9B0E


class ProbeDataset(Dataset):
    """``base``'s clip, then ``delay_samples`` of noise from ``bank``: (waveform, label)."""

    def __init__(self, base: ClipDataset, bank: NoiseBank, delay_samples: int,
                 snr_db: float = PROBE_SNR_DB):
        self.base = base
        self.bank = bank
        self.delay_samples = delay_samples
        self.snr_db = snr_db
        self.num_samples = base.num_samples + delay_samples

    # What the trainer and evaluation read from a dataset.
    @property
    def clips(self):
        return self.base.clips

    @property
    def labels(self) -> list[str]:
        return self.base.labels

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def noise(self, word: np.ndarray, i: int) -> np.ndarray:
        """The delay stretch for clip ``i``: noise scaled to ``snr_db`` below ``word``'s power."""
        rng = np.random.default_rng((self.base.seed, self.epoch, i, _STREAM))
        noise = self.bank.segment(self.delay_samples, self.sample_rate, rng).astype(np.float64)
        return (audio.snr_scale(word, noise, self.snr_db) * noise).astype(np.float32)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        word, label = self.base[i]
        if not self.delay_samples:
            return word, label
        noise = torch.from_numpy(self.noise(word.numpy(), i))
        return torch.cat([word, noise]), label


def wrap(data: DataConfig, noise_dir: Optional[str | Path],
         datasets: dict[str, ClipDataset]) -> dict[str, ProbeDataset]:
    """Every split of ``datasets`` as a probe with ``data.probe_delay_seconds`` of noise from
    ``noise_dir``."""
    if noise_dir is None:
        raise SpeechRNNError("data.probe_delay_seconds needs background noise and this data "
                             "source has none; set augment.noise_dir to a folder of noise WAVs "
                             "(e.g. Speech Commands' _background_noise_)")
    bank = NoiseBank(noise_dir)
    delay_samples = round(data.probe_delay_seconds * data.sample_rate)
    return {split: ProbeDataset(dataset, bank, delay_samples) for split, dataset in datasets.items()}
