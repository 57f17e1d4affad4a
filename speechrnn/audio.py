"""Audio in: decode with soundfile, mix to mono, resample, fix the length.

This module imports no torch, so the ONNX runtime can use it on machines without torch.
Resampling uses soxr (the resampler librosa uses), so training and inference see the same samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def read(path: str | os.PathLike, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Decode a file (or ``frames`` samples of it from ``start``) into float32 mono samples and
    its sample rate; raise AudioError if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found; check the path")
    if not path.is_file():
        raise AudioError(path, "not a regular file; pass an audio file (WAV, FLAC or OGG)")
    try:
        samples, rate = sf.read(
            str(path), start=start, frames=frames, dtype="float32", always_2d=True
        )
    except PermissionError:
        raise AudioError(path, "permission denied; make the file readable") from None
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        raise AudioError(path, f"not readable audio ({exc}); convert it to 16-bit PCM WAV") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "contains no samples; remove it or record it again")
    if not np.isfinite(samples).all():
        raise AudioError(path, "contains NaN or infinite samples; re-export it as PCM WAV")
    return mix_down(samples), int(rate)


def mix_down(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a [frames, channels] array (1-D input is returned as is)."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return samples
    return soxr.resample(samples, rate, target_rate).astype(np.float32, copy=False)


def fix_length(samples: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end, or keep the centre, so the clip has exactly ``num_samples``."""
    missing = num_samples - samples.shape[-1]
    if missing > 0:
        return np.pad(samples, (0, missing))
    start = -missing // 2
    return samples[start : start + num_samples]


def load(
    path: str | os.PathLike, sample_rate: int | None = None, num_samples: int | None = None
) -> np.ndarray:
    """Read a file as float32 mono, at ``sample_rate`` if given, padded/cropped to ``num_samples``."""
    samples, rate = read(path)
    if sample_rate is not None:
        samples = resample(samples, rate, sample_rate)
    if num_samples is not None:
        samples = fix_length(samples, num_samples)
    return samples
