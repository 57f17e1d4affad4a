"""Measuring `speechrnn detect`: long test recordings of known keywords between silence and
noise (``assemble``), noise split into halves to train and to test on (``split_noise``), and the
precision and recall of detected events against a recording's reference (``score``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

from speechrnn import audio
from speechrnn.detect import Event


def split_noise(noise: str | os.PathLike, folder: str | os.PathLike) -> tuple[Path, Path]:
    """``folder``/train and ``folder``/held_out: the first and the second half of every WAV in
    ``noise``, so that a detector can train on noise that its test recordings do not hold.
    Files already there are kept."""
    halves = Path(folder) / "train", Path(folder) / "held_out"
    for path in sorted(Path(noise).glob("*.wav")):
        if all((half / path.name).is_file() for half in halves):
            continue
        samples, rate = sf.read(str(path), dtype="float32")
        middle = len(samples) // 2
        for half, part in zip(halves, (samples[:middle], samples[middle:])):
            half.mkdir(parents=True, exist_ok=True)
            sf.write(str(half / path.name), part, rate)
    return halves


def assemble(output: str | os.PathLike, clips: Iterable[tuple[str | os.PathLike, str]],
             noise: list[str | os.PathLike], *, sample_rate: int = 16000,
             gap_seconds: tuple[float, float] = (0.5, 2.5),
             noise_dbfs: tuple[float, float] = (-50.0, -35.0), seed: int = 0) -> list[dict]:
    """Write a long recording of known keywords, to measure a detector: each ``(path, label)``
    clip in turn, each after a gap of ``gap_seconds`` (uniform) that is silence or, every other
    time on average, a random cut of a ``noise`` file at an RMS level in ``noise_dbfs``; a
    last gap closes it. Written a clip at a time (16-bit PCM WAV), so it may be hours long.
    Returns the reference ``[{"label", "start", "end"}]`` (seconds; a clip's whole extent)."""
    rng = np.random.default_rng(seed)
    noise_info = [(Path(p), sf.info(str(p))) for p in noise]
    reference, position = [], 0

    def gap(out: sf.SoundFile) -> int:
        length = round(rng.uniform(*gap_seconds) * sample_rate)
        samples = np.zeros(length, np.float32)
        if noise_info and rng.random() < 0.5:
            path, info = noise_info[rng.integers(len(noise_info))]
            frames = min(math.ceil(length * info.samplerate / sample_rate), info.frames)
            cut, rate = audio.read(path, int(rng.integers(info.frames - frames + 1)), frames)
            cut = np.resize(audio.resample(cut, rate, sample_rate), length)
            rms = max(float(np.sqrt(np.mean(cut ** 2))), 1e-9)
            samples = cut * (10 ** (rng.uniform(*noise_dbfs) / 20) / rms)
        out.write(samples)
        return length

    with sf.SoundFile(str(output), "w", sample_rate, 1, "PCM_16") as out:
        for path, label in clips:
            position += gap(out)
            clip = audio.load(path, sample_rate)
            out.write(clip)
            reference.append({"label": label, "start": position / sample_rate,
                              "end": (position + len(clip)) / sample_rate})
            position += len(clip)
        gap(out)
    return reference


def matches(found: list[dict], truth: list[dict], tolerance: float = 0.5) -> list[tuple[int, int]]:
    """(event index, reference index) of the hits: an event is a hit when it has the label of a
    reference event not yet matched whose start is within ``tolerance`` seconds of its own
    (each pairing at most once, closest first)."""
    pairs = sorted((abs(f["start"] - t["start"]), i, j) for i, f in enumerate(found)
                   for j, t in enumerate(truth)
                   if f["label"] == t["label"] and abs(f["start"] - t["start"]) <= tolerance)
    used_f, used_t, hits = set(), set(), []
    for _, i, j in pairs:
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            hits.append((i, j))
    return hits


def score(events: Iterable[Event | dict], reference: Iterable[dict],
          tolerance: float = 0.5) -> dict:
    """Precision and recall of detected events against reference ones (hits as ``matches``)."""
    found = [e.to_dict() if isinstance(e, Event) else e for e in events]
    truth = list(reference)
    hits = len(matches(found, truth, tolerance))
    return {"events": len(found), "reference": len(truth), "hits": hits,
            "precision": hits / len(found) if found else 0.0,
            "recall": hits / len(truth) if truth else 0.0}
