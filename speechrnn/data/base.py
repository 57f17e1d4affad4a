"""What every data source produces: labelled clips in train/val/test splits, read lazily."""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio
from ..config import DataConfig
from ..errors import SpeechRNNError
from ..labels import SILENCE, UNKNOWN
from .cache import DecodeCache

log = logging.getLogger(__name__)


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
    # The source's noise folder (Speech Commands' _background_noise_, or data.noise_dir), the
    # default for noise augmentation; None when the source has none.
    noise_dir: Optional[str] = None

    def items(self):
        return {"train": self.train, "val": self.val, "test": self.test}.items()


def absolute(path: str | os.PathLike) -> Path:
    """A folder setting as an absolute, normalised path (``~`` expanded)."""
    return Path(os.path.normpath(Path(path).expanduser().absolute()))


def cache_dir() -> Path:
    """Where rendered and decoded data is kept: $SPEECHRNN_CACHE, or ~/.cache/speechrnn."""
    return Path(os.environ.get("SPEECHRNN_CACHE") or Path.home() / ".cache" / "speechrnn")


def noise_folder(data: DataConfig) -> Optional[Path]:
    """``data.noise_dir`` as an absolute path, or None when it is not set."""
    return absolute(data.noise_dir) if data.noise_dir else None


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and Python version (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def hash_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """"train", "val" or "test" for ``key`` by its stable_hash: a key always lands in the same
    split, and about ``val_fraction`` / ``test_fraction`` of many keys land in val / test."""
    share = stable_hash(key) % 10_000 / 10_000
    if share < val_fraction:
        return "val"
    if share < val_fraction + test_fraction:
        return "test"
    return "train"


def report_missing(missing: list[str], where: str, on_bad_file: str) -> None:
    """Listed files that do not exist: skipped with a logged count, or an error when
    ``data.on_bad_file=error``."""
    if not missing:
        return
    if on_bad_file == "error":
        raise SpeechRNNError(
            f"{where}: {len(missing)} listed files are missing (first: {missing[0]}); restore "
            "them, or set data.on_bad_file=skip to train without them"
        )
    log.warning("%s: skipped %d listed files that are missing (first: %s)",
                where, len(missing), missing[0])


def check_test_speakers(root: Path, test_speakers: set[str], speakers: set[str]) -> None:
    """``data.test_speakers`` names only speakers of the data."""
    if test_speakers - speakers:
        raise SpeechRNNError(f"{root}: data.test_speakers names {sorted(test_speakers - speakers)}, "
                             f"who has no files; the speakers found are {sorted(speakers)}")


# A waveform transform: (samples, rng) -> samples. Used for training-time augmentation.
WaveTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class ClipDataset(Dataset):
    """Reads clips on demand, so memory does not grow with the number of clips.

    Randomness (augmentation) is drawn from a generator seeded by (seed, epoch, index), so a
    run gives the same batches whatever the number of DataLoader workers. The transform sees
    the clip at its fixed length (so shifts and noise cover the whole window) and its output
    is fixed again (speed perturbation changes the length).
    """

    def __init__(
        self,
        clips: list[Clip],
        labels: list[str],
        sample_rate: int,
        num_samples: int,
        transform: Optional[WaveTransform] = None,
        seed: int = 0,
        cache: Optional[DecodeCache] = None,
    ):
        self.clips = clips
        self.labels = labels
        self.index = {label: i for i, label in enumerate(labels)}
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self.transform = transform
        self.seed = seed
        self.cache = cache
        # In shared memory, so persistent DataLoader workers (which hold a copy of the dataset
        # made when they started) see the epoch that set_epoch gives in the main process.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, clip: Clip) -> np.ndarray:
        if self.cache is None:
            return self.decode(clip)
        return self.cache.load(clip.path, clip.start, clip.frames, lambda: self.decode(clip))

    def decode(self, clip: Clip) -> np.ndarray:
        samples, rate = audio.read(clip.path, start=clip.start, frames=clip.frames)
        return audio.resample(samples, rate, self.sample_rate)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = self.clips[i]
        samples = audio.fix_length(self.load(clip), self.num_samples)
        if self.transform is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            samples = audio.fix_length(self.transform(samples, rng), self.num_samples)
        return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), self.index[clip.label]
