"""Decode each clip once: its samples at the data's rate, kept as int16 in the cache folder.

An entry is keyed by the file (resolved path, size, modification time), the cut of it (start,
frames) and the sample rate, so a changed file is decoded again and an entry is never read for
audio it was not made from. Entries are written to a temporary name and renamed into place, so
DataLoader workers and DDP ranks that decode the same clip at once each publish a whole file.

Samples are stored as round(x * 32768), which is exact for 16-bit PCM at the data's rate (the
float soundfile returns is k / 32768). A clip that is decoded fresh is rounded the same way
before use, so a run reads the same samples from a cold and a warm cache. A clip beyond +-1
(float files may hold such peaks) is stored as float32 instead of being clipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

# Part of every key: bump it when a change to decoding or resampling changes the samples.
FORMAT_VERSION = 1
SCALE = 32768.0


def quantize(samples: np.ndarray) -> np.ndarray:
    """``samples`` as stored: int16 (x * 32768, rounded), or float32 when they exceed +-1."""
    scaled = np.round(samples.astype(np.float64) * SCALE)
    if scaled.size and (scaled.min() < -SCALE or scaled.max() > SCALE - 1):
        return samples.astype(np.float32)
    return scaled.astype(np.int16)


def dequantize(stored: np.ndarray) -> np.ndarray:
    if stored.dtype == np.int16:
        return stored.astype(np.float32) / np.float32(SCALE)
    return stored.astype(np.float32, copy=False)


class DecodeCache:
    """Decoded clips in ``folder`` (one ``.npy`` file each, in 256 sub-folders)."""

    def __init__(self, folder: str | os.PathLike, sample_rate: int):
        self.folder = Path(folder)
        self.sample_rate = sample_rate
        self._writable = True

    def entry(self, path: str, start: int, frames: int) -> Path:
        """Where the clip (``frames`` samples of ``path`` from ``start``) is kept; its name changes
        when the file does."""
        resolved = Path(path).resolve()
        stat = resolved.stat()
        key = json.dumps([FORMAT_VERSION, os.fsencode(resolved).hex(), stat.st_size,
                          stat.st_mtime_ns, start, frames, self.sample_rate])
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest[2:]}.npy"

    def has(self, path: str, start: int, frames: int) -> bool:
        try:
            return self.entry(path, start, frames).is_file()
        except OSError:
            return False

    def load(self, path: str, start: int, frames: int,
             decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The clip's samples from the cache, or from ``decode()`` (then stored)."""
        entry = self.entry(path, start, frames)
        try:
            return dequantize(np.load(entry, allow_pickle=False))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, ValueError) as exc:  # not an entry this class wrote: decode again
            log.warning("%s: unreadable cache entry (%s); decoding %s again", entry, exc, path)
        stored = quantize(decode())
        self._store(entry, stored)
        return dequantize(stored)

    def _store(self, entry: Path, stored: np.ndarray) -> None:
        if not self._writable:
            return
        temporary = entry.with_name(f".{entry.stem}.{os.getpid()}.tmp")
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as f:
                np.save(f, stored, allow_pickle=False)
            os.replace(temporary, entry)
        except OSError as exc:
            # Training goes on from the audio files; only the saving of decodes is lost.
            self._writable = False
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            log.warning("%s: cannot write the decode cache (%s); clips are decoded from their "
                        "files every epoch. Free space there, set SPEECHRNN_CACHE to another "
                        "folder, or data.cache=false", self.folder, exc.strerror or exc)
