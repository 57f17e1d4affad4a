"""The synthetic set's background sounds: what a keyword spotter hears when nobody speaks.

Coloured noise alone teaches a model that "nothing said" means hiss; real rooms also hum, play
music, clatter and, on a muted or gated line, give digital silence and clicks. Each kind is written as one
10 s file in ``_background_noise_``: ``_silence_`` clips are cut from them and the noise
augmentation mixes them under speech.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SECONDS = 10.0


def coloured(rng: np.random.Generator, sample_rate: int, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**(2*exponent): 0 white, 0.5 pink, 1 brown. Below 20 Hz
    the shaping stays flat, so brown noise does not drift."""
    white = rng.standard_normal(round(SECONDS * sample_rate))
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(white.size, 1 / sample_rate)
    spectrum /= np.maximum(freqs, 20.0) ** exponent
    return np.fft.irfft(spectrum, white.size)


def hum(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and its harmonics, as a transformer or a ground loop gives) over a
    faint hiss."""
    t = np.arange(round(SECONDS * sample_rate)) / sample_rate
    mains = rng.choice([50.0, 60.0])
    out = np.zeros_like(t)
    for harmonic in range(1, 9):
        weight = rng.uniform(0.2, 1.0) / harmonic
        out += weight * np.sin(2 * np.pi * mains * harmonic * t + rng.uniform(0, 2 * np.pi))
    return _at_rms(out, 1.0) + _at_rms(coloured(rng, sample_rate, 0.5), 0.05)


def tones(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Music-like sound: notes of 0.1-0.6 s, each a chord of one to three harmonic tones with an
    attack and a decay."""
    total = round(SECONDS * sample_rate)
    out = np.zeros(total)
    start = 0
    while start < total:
        length = min(total - start, round(rng.uniform(0.1, 0.6) * sample_rate))
        t = np.arange(length) / sample_rate
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(1.0, 8.0))
        note = np.zeros(length)
        for _ in range(int(rng.integers(1, 4))):
            fundamental = 110.0 * 2 ** (rng.integers(0, 37) / 12)  # A2..A5
            for harmonic in range(1, 6):
                if fundamental * harmonic < sample_rate / 2:
                    note += np.sin(2 * np.pi * fundamental * harmonic * t) / harmonic**1.5
        out[start : start + length] += note * envelope
        start += length
    return out


def clatter(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Dishes, keys, footsteps: knocks at random times (about 4 a second), each a few decaying
    resonances and a short noise burst, over a pink floor."""
    total = round(SECONDS * sample_rate)
    out = _at_rms(coloured(rng, sample_rate, 0.5), 0.02)
    for _ in range(rng.poisson(4 * SECONDS)):
        length = round(rng.uniform(0.02, 0.25) * sample_rate)
        start = int(rng.integers(total - length))
        t = np.arange(length) / sample_rate
        knock = rng.standard_normal(length) * np.exp(-t / 0.003)
        for _ in range(int(rng.integers(2, 5))):
            freq = rng.uniform(500.0, min(8000.0, 0.45 * sample_rate))
            knock += np.sin(2 * np.pi * freq * t) * np.exp(-t / rng.uniform(0.005, 0.08))
        out[start : start + length] += rng.uniform(0.1, 1.0) * knock
    return out


def clicks(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Digital silence broken by clicks (a gated line opening for a moment, a microphone bumped
    or switched): bursts of noise 1-20 ms long, about one a second, each at its own level over
    40 dB. Without them a model has never heard a lone click in silence and calls it a word."""
    total = round(SECONDS * sample_rate)
    out = np.zeros(total)
    for _ in range(rng.poisson(SECONDS)):
        length = max(1, round(rng.uniform(0.001, 0.02) * sample_rate))
        start = int(rng.integers(total - length))
        out[start : start + length] += rng.standard_normal(length) * 10 ** (rng.uniform(-40, 0) / 20)
    return out


def digital_silence(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """All zeros: a muted microphone, a gated line, a file padded with zeros."""
    return np.zeros(round(SECONDS * sample_rate))


def _at_rms(samples: np.ndarray, rms: float) -> np.ndarray:
    power = np.mean(samples**2)
    return samples * (rms / np.sqrt(power)) if power > 0 else samples


KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "white_noise": lambda rng, rate: coloured(rng, rate, 0.0),
    "pink_noise": lambda rng, rate: coloured(rng, rate, 0.5),
    "brown_noise": lambda rng, rate: coloured(rng, rate, 1.0),
    "hum": hum,
    "tones": tones,
    "clatter": clatter,
    "clicks": clicks,
    "digital_silence": digital_silence,
}
# RMS level of each file, dBFS; hum sits lower, as it does in a room; clicks are mostly silence,
# so -40 dBFS over the file puts the clicks themselves around -20 dBFS.
LEVEL_DB = {"hum": -30.0, "clicks": -40.0}
DEFAULT_LEVEL_DB = -20.0


def make(kind: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """``SECONDS`` of one kind of background sound, float32 in [-1, 1]."""
    samples = _at_rms(KINDS[kind](rng, sample_rate), 10 ** (LEVEL_DB.get(kind, DEFAULT_LEVEL_DB) / 20))
    return np.clip(samples, -1, 1).astype(np.float32)
