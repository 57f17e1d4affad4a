"""A generated corpus of hostile audio files (nothing is downloaded).

``make_corpus(folder)`` writes every case into ``folder`` and returns one ``Case`` per file:
files that are valid audio (odd formats, rates, channel counts, lengths and names) carry the
mono signal they must decode to; files that are not carry a regex of the problem that
``speechrnn.audio`` must name. ``write_long_clip`` writes an hour-long WAV block by block, so
the generator itself needs little memory.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

TONE_HZ = 300.0  # below the Nyquist frequency of the 1 kHz case


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    rate: Optional[int] = None  # valid audio: the file's rate ...
    signal: Optional[np.ndarray] = None  # ... and the mono float32 samples it must decode to
    atol: float = 0.0
    problem: Optional[str] = None  # invalid: a regex the AudioError message must match

    @property
    def valid(self) -> bool:
        return self.problem is None


def tone(rate: int, seconds: float, freq: float = TONE_HZ, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, subtype: str = "PCM_16", format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=format, subtype=subtype)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    # os.open takes the bytes form of a name that is not valid UTF-8 unchanged.
    fd = os.open(os.fsencode(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _valid(folder: Path, name: str, signal: np.ndarray, rate: int, subtype: str = "PCM_16",
           filename: Optional[str] = None, format: str = "WAV") -> Case:
    """A file of ``signal`` ([frames] or [frames, channels]); expects its channel mean back."""
    path = _write(folder / (filename or f"{name}.wav"), encode(signal, rate, subtype, format))
    mono = signal.mean(axis=1, dtype=np.float32) if signal.ndim == 2 else signal
    # Quantisation error of the encoding (MP3: measured error of a lossy codec on a tone).
    atol = {"PCM_16": 2.0**-15, "PCM_24": 2.0**-23, "FLOAT": 0.0, "MPEG_LAYER_III": 0.1}[subtype]
    return Case(name, path, rate=rate, signal=mono, atol=atol)


def _invalid(folder: Path, name: str, data: bytes, problem: str) -> Case:
    return Case(name, _write(folder / f"{name}.wav", data), problem=problem)


# A non-UTF-8 name with a space: decodes to a str with surrogate escapes (PEP 383).
NON_UTF8_NAME = os.fsdecode(b"caf\xe9 \xff\xfe.wav")


def make_corpus(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    good = tone(16000, 0.5)
    eight_channels = np.stack([tone(16000, 0.25, amplitude=0.1 * (c + 1)) for c in range(8)], axis=1)
    cases = [
        _valid(folder, "pcm16", good, 16000),
        _valid(folder, "pcm24", good, 16000, "PCM_24"),
        _valid(folder, "float32", good, 16000, "FLOAT"),
        _valid(folder, "channels8", eight_channels, 16000),
        _valid(folder, "rate1k", tone(1000, 0.5), 1000),
        _valid(folder, "rate96k", tone(96000, 0.5), 96000),
        _valid(folder, "one_ms", tone(16000, 0.001), 16000),
        _valid(folder, "space_name", good, 16000, filename="a clip with spaces.wav"),
        _valid(folder, "non_utf8_name", good, 16000, filename=NON_UTF8_NAME),
        # libsndfile decodes MP3 by content, whatever the name says.
        _valid(folder, "mp3_named_wav", good, 16000, "MPEG_LAYER_III", format="MP3"),
    ]
    nan = good.copy()
    nan[100] = np.nan
    inf = good.copy()
    inf[200] = -np.inf
    header = encode(good, 16000)
    mp3_start = encode(good, 16000, "MPEG_LAYER_III", "MP3")[:200]
    cases += [
        _invalid(folder, "empty", b"", r"not readable audio"),
        _invalid(folder, "zero_samples", encode(np.zeros(0, np.float32), 16000),
                 r"contains no samples"),
        _invalid(folder, "truncated_header", header[:30], r"not readable audio"),
        _invalid(folder, "text", b"this is a text file, not a recording\n" * 20, r"not readable audio"),
        _invalid(folder, "mp3_truncated", mp3_start, r"not readable audio \(truncated or corrupt data\)"),
        _invalid(folder, "random_bytes", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                 r"not readable audio"),
        _invalid(folder, "nan_float", encode(nan, 16000, "FLOAT"), r"NaN or infinite"),
        _invalid(folder, "inf_float", encode(inf, 16000, "FLOAT"), r"NaN or infinite"),
    ]
    not_a_file = folder / "a_folder.wav"
    not_a_file.mkdir(exist_ok=True)
    cases.append(Case("directory", not_a_file, problem=r"not a regular file"))
    cases.append(symlink_loop(folder))
    return cases


def symlink_loop(folder: Path) -> Case:
    """``loop/self.wav`` points at itself and ``loop/again`` at ``loop``: a scan that follows
    links would never end; opening self.wav fails with ELOOP."""
    loop = folder / "loop"
    loop.mkdir(exist_ok=True)
    link = loop / "self.wav"
    if not link.is_symlink():
        link.symlink_to("self.wav")
    if not (loop / "again").is_symlink():
        (loop / "again").symlink_to(".", target_is_directory=True)
    return Case("symlink_loop", link, problem=r"symbolic link")


def make_unreadable(folder: Path) -> Path:
    """A valid WAV with mode 000 in a folder others may enter (so an unprivileged reader gets
    as far as opening the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    path = _write(folder / "unreadable.wav", encode(tone(16000, 0.25), 16000))
    path.chmod(0)
    return path


def write_long_clip(path: Path, seconds: int = 3600, rate: int = 16000, block_seconds: int = 60) -> Path:
    """An hour of quiet noise as 16-bit PCM, written a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(seconds // block_seconds):
            f.write((0.01 * rng.standard_normal(rate * block_seconds)).astype(np.float32))
    return path
