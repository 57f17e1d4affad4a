"""Decode each clip once: its samples at the data's rate, kept as raw int16 in the cache folder.

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


# The stored dtypes and the suffixes of their files: raw samples without a header, so a read is
# one open and one read (np.load's header parsing took twice as long as that, and the per-clip
# cost of a cache is what decides whether it is faster than decoding a WAV).
SUFFIXES = {np.dtype(np.int16): ".i16", np.dtype(np.float32): ".f32"}


class DecodeCache:
    """Decoded clips in ``folder``: one file of raw samples each, in 256 sub-folders."""

    def __init__(self, folder: str | os.PathLike, sample_rate: int):
        self.folder = Path(folder)
        self.sample_rate = sample_rate
        self._writable = True
        self._resolved: dict[str, Path] = {}  # resolving a path costs more than reading a clip

    def entry(self, path: str, start: int, frames: int) -> Path:
        """Where the clip (``frames`` samples of ``path`` from ``start``) is kept, less the
        suffix of its dtype; the name changes when the file does."""
        if path not in self._resolved:
            self._resolved[path] = Path(path).resolve()
        resolved = self._resolved[path]
        stat = resolved.stat()
        key = json.dumps([FORMAT_VERSION, os.fsencode(resolved).hex(), stat.st_size,
                          stat.st_mtime_ns, start, frames, self.sample_rate])
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.folder / digest[:2] / digest[2:]

    def has(self, path: str, start: int, frames: int) -> bool:
        try:
            entry = self.entry(path, start, frames)
        except OSError:
            return False
        return any(entry.with_suffix(suffix).is_file() for suffix in SUFFIXES.values())

    def load(self, path: str, start: int, frames: int,
             decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The clip's samples from the cache, or from ``decode()`` (then stored)."""
        return dequantize(self._stored(self.entry(path, start, frames), decode, mapped=False))

    def mapped(self, path: str, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """All of ``path``'s samples as stored (``dequantize`` a slice of them), memory-mapped
        from the cache, so every process that maps them shares one copy in memory."""
        return self._stored(self.entry(path, 0, -1), decode, mapped=True)

    def _stored(self, entry: Path, decode: Callable[[], np.ndarray], mapped: bool) -> np.ndarray:
        for dtype, suffix in SUFFIXES.items():
            try:
                if mapped:
                    return np.memmap(entry.with_suffix(suffix), dtype=dtype, mode="r")
                return np.fromfile(entry.with_suffix(suffix), dtype=dtype)
            except (FileNotFoundError, NotADirectoryError):
                continue
        stored = quantize(decode())
        self._store(entry.with_suffix(SUFFIXES[stored.dtype]), stored)
        return stored

    def _store(self, entry: Path, stored: np.ndarray) -> None:
        if not self._writable:
            return
        temporary = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as f:
                stored.tofile(f)
            os.replace(temporary, entry)
        except OSError as exc:
            # Training goes on from the audio files; only the saving of decodes is lost.
            self._writable = False
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            log.warning("%s: cannot write the decode cache (%s); clips are decoded from their "
                        "files every epoch. Free space there, set SPEECHRNN_CACHE to another "
                        "folder, or data.cache=false", self.folder, exc.strerror or exc)
