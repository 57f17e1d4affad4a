"""Training-time waveform augmentation: speed perturbation, time shift, background noise at a
random SNR, random gain.

Every random number comes from the generator the dataset passes in (ClipDataset seeds it with
seed, epoch and clip index), so augmented batches are reproducible whatever the number of
DataLoader workers. Evaluation splits get no transform at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import soxr

from .. import audio
from ..errors import AudioError, SpeechRNNError


class NoiseBank:
    """The noise files of a folder (Speech Commands ``_background_noise_`` format) with their
    lengths, read one random segment at a time: a whole file is never loaded per clip."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not folder.is_dir():
            raise SpeechRNNError(f"{folder}: noise folder not found; point augment.noise_dir "
                                 "at a folder of noise WAVs, or set augment.noise_prob=0")
        paths = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in audio.AUDIO_EXTENSIONS)
        if not paths:
            raise SpeechRNNError(f"{folder}: no noise files ({', '.join(audio.AUDIO_EXTENSIONS)})"
                                 "; add some, or set augment.noise_prob=0")
        self.paths = [str(p) for p in paths]
        infos = [self._info(p) for p in paths]
        self.frames = [info.frames for info in infos]
        self.rates = [info.samplerate for info in infos]

    @staticmethod
    def _info(path: Path):
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(path, f"not readable audio ({exc}); remove it from the noise "
                                   "folder or convert it to 16-bit PCM WAV") from None
        if info.frames == 0:
            raise AudioError(path, "contains no samples; remove it from the noise folder")
        return info

    def __len__(self) -> int:
        return len(self.paths)

    def segment(self, num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """``num_samples`` samples at ``sample_rate`` from a random file and offset (a file
        shorter than that is repeated)."""
        i = int(rng.integers(len(self.paths)))
        rate, available = self.rates[i], self.frames[i]
        needed = min(math.ceil(num_samples * rate / sample_rate), available)
        start = int(rng.integers(available - needed + 1))
        samples, _ = audio.read(self.paths[i], start=start, frames=needed)
        return np.resize(audio.resample(samples, rate, sample_rate), num_samples)


@dataclass
class Speed:
    """Play the clip ``factor`` times faster (shorter and higher) by resampling with soxr."""

    sample_rate: int
    factor_min: float
    factor_max: float

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = rng.uniform(self.factor_min, self.factor_max)
        out = soxr.resample(samples, self.sample_rate * factor, self.sample_rate)
        return out.astype(np.float32, copy=False)


@dataclass
class TimeShift:
    """Move the clip by up to ``max_samples`` either way; the vacated part is zeros."""

    max_samples: int

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = samples.shape[-1]
        shift = int(np.clip(rng.integers(-self.max_samples, self.max_samples + 1), -n, n))
        out = np.zeros_like(samples)
        out[max(shift, 0) : n + min(shift, 0)] = samples[max(-shift, 0) : n - max(shift, 0)]
        return out


@dataclass
class BackgroundNoise:
    """With probability ``prob``, add a noise segment at an SNR drawn from [snr_min, snr_max] dB
    (powers measured over the whole window). A silent clip is left as it is."""

    bank: NoiseBank
    sample_rate: int
    prob: float
    snr_db_min: float
    snr_db_max: float

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return samples
        snr_db = rng.uniform(self.snr_db_min, self.snr_db_max)
        noise = self.bank.segment(samples.shape[-1], self.sample_rate, rng)
        signal_power = float(np.mean(samples.astype(np.float64) ** 2))
        noise_power = float(np.mean(noise.astype(np.float64) ** 2))
        if signal_power == 0.0 or noise_power == 0.0:
            return samples
        scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
        return (samples + np.float32(scale) * noise).astype(np.float32, copy=False)


@dataclass
class Gain:
    """Scale by a gain drawn from [db_min, db_max] dB."""

    db_min: float
    db_max: float

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return samples * np.float32(10.0 ** (rng.uniform(self.db_min, self.db_max) / 20.0))


@dataclass
class Augment:
    """The steps in order; each output is brought back to the input's length, so the steps
    after a speed change (and the noise) cover the whole window."""

    steps: list

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        num_samples = samples.shape[-1]
        for step in self.steps:
            samples = audio.fix_length(step(samples, rng), num_samples)
        return samples


def _check_range(cfg, low: str, high: str) -> tuple[float, float]:
    lo, hi = float(getattr(cfg, low)), float(getattr(cfg, high))
    if lo > hi:
        raise SpeechRNNError(f"augment.{low}={lo} is above augment.{high}={hi}; swap them")
    return lo, hi


def build_transform(cfg, sample_rate: int, noise_dir: Optional[str | Path]) -> Optional[Augment]:
    """The training transform an AugmentConfig asks for, or None when it asks for nothing.
    ``noise_dir`` None means no noise step."""
    if not cfg.enabled:
        return None
    steps: list = []
    speed = _check_range(cfg, "speed_min", "speed_max")
    if speed[0] <= 0:
        raise SpeechRNNError(f"augment.speed_min={speed[0]} must be above 0 (1.0 is no change)")
    if speed != (1.0, 1.0):
        steps.append(Speed(sample_rate, *speed))
    if cfg.time_shift_seconds > 0:
        steps.append(TimeShift(round(cfg.time_shift_seconds * sample_rate)))
    if noise_dir is not None and cfg.noise_prob > 0:
        snr = _check_range(cfg, "snr_db_min", "snr_db_max")
        steps.append(BackgroundNoise(NoiseBank(noise_dir), sample_rate, cfg.noise_prob, *snr))
    gain = _check_range(cfg, "gain_db_min", "gain_db_max")
    if gain != (0.0, 0.0):
        steps.append(Gain(*gain))
    return Augment(steps) if steps else None
