"""What every data source produces: labelled clips in train/val/test splits, read lazily."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio

SILENCE = "_silence_"
UNKNOWN = "_unknown_"


@dataclass(frozen=True)
class Clip:
    """One example: a file (or a ``frames``-long cut of it from ``start``) and its label."""

    path: str
    label: str
    start: int = 0
    frames: int = -1
    speaker: str = ""


@dataclass
class Splits:
    labels: list[str]
    train: list[Clip] = field(default_factory=list)
    val: list[Clip] = field(default_factory=list)
    test: list[Clip] = field(default_factory=list)

    def items(self):
        return {"train": self.train, "val": self.val, "test": self.test}.items()


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and Python version (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


# A waveform transform: (samples, rng) -> samples. Used for training-time augmentation.
WaveTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class ClipDataset(Dataset):
    """Reads clips on demand, so memory does not grow with the number of clips.

    Randomness (augmentation) is drawn from a generator seeded by (seed, epoch, index), so a
    run gives the same batches whatever the number of DataLoader workers.
    """

    def __init__(
        self,
        clips: list[Clip],
        labels: list[str],
        sample_rate: int,
        num_samples: int,
        transform: Optional[WaveTransform] = None,
        seed: int = 0,
    ):
        self.clips = clips
        self.labels = labels
        self.index = {label: i for i, label in enumerate(labels)}
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, clip: Clip) -> np.ndarray:
        samples, rate = audio.read(clip.path, start=clip.start, frames=clip.frames)
        return audio.resample(samples, rate, self.sample_rate)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = self.clips[i]
        samples = self.load(clip)
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            samples = self.transform(samples, rng)
        samples = audio.fix_length(samples, self.num_samples)
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self.index[clip.label]
