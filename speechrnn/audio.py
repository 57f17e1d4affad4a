"""Audio in: decode with soundfile, mix to mono, resample, fix the length.

This module imports no torch, so the ONNX runtime can use it on machines without torch.
Resampling uses soxr (the resampler librosa uses), so training and inference see the same samples.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
# Rates outside this range are a corrupt header, not audio; resampling from them could ask for
# more memory than the machine has (a 1 Hz header makes every sample 16,000).
MIN_RATE, MAX_RATE = 1_000, 768_000
# Float samples are nominally within +-1; far beyond it a file is corrupt (or holds integer
# values stored as float), and features computed from it overflow.
MAX_PEAK = 100.0
# Decode at most this many frames at once: the frame count in a header can be a lie (a 1 kB
# MP3 may claim terabytes), so it never sizes an allocation.
BLOCK_FRAMES = 1 << 20
# libsndfile words these as "File does not exist ..." / "no data could be read"; the file does
# exist (checked before opening), its data is cut short or garbled.
CORRUPT_DATA_CODES = (7, 8)
# load() decodes this much beyond the part it keeps, so the resampler's filter sees real samples.
RESAMPLE_MARGIN_SECONDS = 0.05
# libsndfile reads a WAV whose data chunk runs past the end of the file up to where it ends, and
# notes it in its log as "data : <bytes in the header> (should be <bytes in the file>)".
CUT_SHORT = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
# The data size that writers who cannot seek back (ffmpeg into a pipe) leave in the header.
UNKNOWN_SIZE = 0xFFFFFFFF


def read(path: str | os.PathLike, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Decode a file (or ``frames`` samples of it from ``start``) into float32 mono samples and
    its sample rate; raise AudioError if it is unusable."""
    return _read(Path(path), lambda total, rate: (start, frames))


# (frames in the file, its rate) -> (start, frames) to decode.
Window = Callable[[int, int], tuple[int, int]]


def _read(path: Path, window: Window) -> tuple[np.ndarray, int]:
    _check_file(path)
    try:
        # Bytes, so names that are not valid UTF-8 open too (soundfile encodes a str strictly).
        with sf.SoundFile(os.fsencode(path)) as f:
            rate = f.samplerate
            if not MIN_RATE <= rate <= MAX_RATE:
                raise AudioError(path, f"sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} "
                                       "Hz: a corrupt header? convert it to 16-bit PCM WAV at 16 kHz")
            samples = _decode(f, *window(f.frames, rate))
    except sf.LibsndfileError as exc:
        problem = "truncated or corrupt data" if exc.code in CORRUPT_DATA_CODES else exc.error_string
        raise AudioError(path, f"not readable audio ({problem.rstrip('.')}); "
                               "convert it to 16-bit PCM WAV") from None
    except (RuntimeError, ValueError, EOFError) as exc:
        raise AudioError(path, f"not readable audio ({exc}); convert it to 16-bit PCM WAV") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "contains no samples; remove it or record it again")
    peak = np.abs(samples).max()
    if not np.isfinite(peak):
        raise AudioError(path, "contains NaN or infinite samples; re-export it as PCM WAV")
    if peak > MAX_PEAK:
        raise AudioError(path, f"sample values reach {peak:.3g}, far outside the +-1 range of audio "
                               "(corrupt, or integers stored as float?); convert it to 16-bit PCM WAV")
    return mix_down(samples), int(rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as 16-bit PCM values (rounded, clipped)."""
    return np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)


def cut_short(path: str | os.PathLike) -> Optional[str]:
    """A warning for a readable file whose header promises more audio than the file holds (an
    interrupted copy or recording: it decodes as a shorter clip); None for a whole file."""
    with sf.SoundFile(os.fsencode(path)) as f:
        match = CUT_SHORT.search(f.extra_info)
    if match is None or int(match[1]) == UNKNOWN_SIZE:
        return None
    return (f"cut short: its header promises {match[1]} bytes of audio, the file holds only "
            f"{match[2]} (an interrupted copy or recording?); used what is there, copy it again "
            "for all of it")


def _check_file(path: Path) -> None:
    """Raise AudioError unless ``path`` is a regular file this process may read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink():
            problem = "a symbolic link that loops or points nowhere; link to an audio file"
        elif exc.errno == errno.ENOENT:
            problem = "file not found; check the path"
        else:
            problem = f"cannot open it ({exc.strerror}); check the path and its folders' permissions"
        raise AudioError(path, problem) from None
    if not stat.S_ISREG(mode):
        raise AudioError(path, "not a regular file; pass an audio file (WAV, FLAC or OGG)")
    # libsndfile reports an unreadable file as a bare "System error".
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied; make the file readable")


def _decode(f: sf.SoundFile, start: int, frames: int) -> np.ndarray:
    """[frames, channels] float32 from ``start`` (to the end when ``frames`` < 0), a block at a
    time."""
    start = min(start, f.frames)
    if start:
        f.seek(start)
    wanted = f.frames - start if frames < 0 else min(frames, f.frames - start)
    blocks = [np.zeros((0, f.channels), np.float32)]
    while wanted > 0:
        size = min(BLOCK_FRAMES, wanted)
        blocks.append(f.read(size, dtype="float32", always_2d=True))
        wanted -= len(blocks[-1])
        if len(blocks[-1]) < size:
            break
    return np.concatenate(blocks)


def mix_down(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a [frames, channels] array (1-D input is returned as is)."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.shape[1] == 1:
        return samples[:, 0].astype(np.float32, copy=False)
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


def snr_scale(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """The factor that puts ``noise`` ``snr_db`` dB below ``signal`` (mean powers over each whole
    array); 0 when either is silent."""
    signal_power = float(np.mean(signal.astype(np.float64) ** 2))
    noise_power = float(np.mean(noise.astype(np.float64) ** 2))
    if signal_power == 0.0 or noise_power == 0.0:
        return 0.0
    return math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))


def load(
    path: str | os.PathLike, sample_rate: int | None = None, num_samples: int | None = None
) -> np.ndarray:
    """Read a file as float32 mono, at ``sample_rate`` if given, padded/cropped to ``num_samples``.

    With ``num_samples``, only the centre that is kept is decoded (with a margin for the
    resampler), so an hour-long file costs no more memory than a clip.
    """

    def centre(total: int, rate: int) -> tuple[int, int]:
        if num_samples is None:
            return 0, -1
        margin = math.ceil(RESAMPLE_MARGIN_SECONDS * rate)
        needed = math.ceil(num_samples * rate / (sample_rate or rate)) + 2 * margin
        return max(0, (total - needed) // 2), needed

    samples, rate = _read(Path(path), centre)
    if sample_rate is not None:
        samples = resample(samples, rate, sample_rate)
        if samples.size == 0:
            raise AudioError(path, f"too short: {rate} Hz audio shorter than one sample at "
                                   f"{sample_rate} Hz; remove it or record it again")
    if num_samples is not None:
        samples = fix_length(samples, num_samples)
    return samples
