"""Training-time waveform augmentation: speed perturbation, vocal tract length perturbation,
time shift, room reverberation, microphone/line colouring (band limits and spectral tilt),
background noise at a random SNR, endpointing (cut to the speech, zero-padded) and random gain.

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
import torch
from scipy.signal import fftconvolve, sosfilt

from .. import audio
from ..config import AugmentConfig
from ..errors import AudioError, SpeechRNNError
from .base import SILENCE, Clip, stable_hash
from .cache import DecodeCache, dequantize


class NoiseBank:
    """The noise files of a folder (Speech Commands ``_background_noise_`` format) with their
    lengths, read one random segment at a time: a whole file is never loaded per clip."""

    def __init__(self, folder: str | Path, setting: str = "augment.noise_dir",
                 off: str = "augment.noise_prob=0", cache: Optional[DecodeCache] = None):
        """``setting`` names the option that chose the folder and ``off`` the one that does
        without it, for the errors. With ``cache``, a file at the cache's rate is decoded once
        and its segments are cut from the cached samples (memory-mapped, so DataLoader workers
        share one copy): the same samples as reading the file, without opening it every time."""
        folder = Path(folder)
        if not folder.is_dir():
            raise SpeechRNNError(f"{folder}: noise folder not found; point {setting} at a folder "
                                 f"of noise WAVs, or set {off}")
        paths = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in audio.AUDIO_EXTENSIONS)
        if not paths:
            raise SpeechRNNError(f"{folder}: no noise files ({', '.join(audio.AUDIO_EXTENSIONS)})"
                                 f"; add some, or set {off}")
        self.paths = [str(p) for p in paths]
        infos = [self._info(p) for p in paths]
        self.frames = [info.frames for info in infos]
        self.rates = [info.samplerate for info in infos]
        self.cache = cache
        self._mapped: dict[int, np.ndarray] = {}  # file index -> cached samples, in this process

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
        if self.cache is not None and rate == self.cache.sample_rate == sample_rate:
            samples = dequantize(self._cached(i)[start : start + needed])
        else:
            samples, _ = audio.read(self.paths[i], start=start, frames=needed)
        return np.resize(audio.resample(samples, rate, sample_rate), num_samples)

    def _cached(self, i: int) -> np.ndarray:
        if i not in self._mapped:  # opened in each process that draws (never pickled)
            self._mapped[i] = self.cache.mapped(self.paths[i], lambda: audio.read(self.paths[i])[0])
        return self._mapped[i]

    def silence_clips(self, count: int, clip_seconds: float, split: str) -> list[Clip]:
        """``count`` clip-long cuts labelled ``_silence_``: the files in turn, at offsets hashed
        from the split and the cut's number (the same cuts on every machine)."""
        clips = []
        for k in range(count):
            i = k % len(self.paths)
            frames = min(math.ceil(clip_seconds * self.rates[i]), self.frames[i])
            start = stable_hash(f"{split}:{k}") % (self.frames[i] - frames + 1)
            clips.append(Clip(self.paths[i], SILENCE, start=start, frames=frames))
        return clips


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
class VocalTract:
    """Vocal tract length perturbation: the spectral envelope (the formants) is stretched along
    the frequency axis by a factor drawn from [factor_min, factor_max] (above 1: a shorter tract)
    while the harmonics, and so the pitch and the duration, stay as they are.

    Each STFT frame's log magnitude is split by cepstral liftering into an envelope (the first
    ``LIFTER`` quefrency bins, below any voice's pitch period) and the fine structure; the
    envelope is warped and the frame rebuilt with its own phases."""

    factor_min: float
    factor_max: float
    N_FFT = 512
    HOP = 128
    LIFTER = 30  # 1.9 ms at 16 kHz; a 400 Hz voice has a 2.5 ms period

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = rng.uniform(self.factor_min, self.factor_max)
        # torch's STFT pair: about 5x faster than librosa's on one second, which made this step
        # the slowest of the data pipeline.
        window = torch.hann_window(self.N_FFT)
        spectrum = torch.stft(torch.from_numpy(samples), self.N_FFT, self.HOP, window=window,
                              return_complex=True).numpy()
        log_magnitude = np.log(np.abs(spectrum) + 1e-8)
        cepstrum = np.fft.irfft(log_magnitude, n=self.N_FFT, axis=0)
        cepstrum[self.LIFTER : self.N_FFT - self.LIFTER + 1] = 0.0
        envelope = np.fft.rfft(cepstrum, axis=0).real
        # The envelope at f/factor moves to f (linear interpolation between bins).
        source = np.minimum(np.arange(envelope.shape[0]) / factor, envelope.shape[0] - 1)
        below = np.minimum(source.astype(int), envelope.shape[0] - 2)
        weight = (source - below)[:, None]
        warped = (1 - weight) * envelope[below] + weight * envelope[below + 1]
        rebuilt = torch.from_numpy(spectrum * np.exp(warped - envelope))
        out = torch.istft(rebuilt, self.N_FFT, self.HOP, window=window, length=samples.shape[-1])
        return out.numpy().astype(np.float32, copy=False)


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
        scale = audio.snr_scale(samples, noise, snr_db)  # 0 for a silent clip: left as it is
        return (samples + np.float32(scale) * noise).astype(np.float32, copy=False)


@dataclass
class Reverb:
    """With probability ``prob``, the clip as heard in a room: convolved with a synthetic room
    impulse response, a direct path then exponentially decaying noise (the reverberant tail)
    that falls by 60 dB in an RT60 drawn from [rt60_min, rt60_max] seconds, at a
    direct-to-reverberant energy ratio drawn from ``DRR_DB``. The peak level is kept; the tail
    past the end of the clip is cut."""

    sample_rate: int
    prob: float
    rt60_min: float
    rt60_max: float
    DRR_DB = (0.0, 15.0)

    def impulse_response(self, rng: np.random.Generator) -> np.ndarray:
        rt60 = rng.uniform(self.rt60_min, self.rt60_max)
        t = np.arange(1, max(2, round(rt60 * self.sample_rate))) / self.sample_rate
        tail = rng.standard_normal(t.size) * 10.0 ** (-3.0 * t / rt60)  # -60 dB at rt60
        drr_db = rng.uniform(*self.DRR_DB)
        tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
        return np.concatenate([[1.0], tail])

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return samples
        peak = np.abs(samples).max()
        if peak == 0.0:
            return samples
        out = fftconvolve(samples, self.impulse_response(rng))[: samples.shape[-1]]
        return (out * (peak / np.abs(out).max())).astype(np.float32)


@dataclass
class Channel:
    """With probability ``prob``, the clip through a random microphone and line: a high-pass
    (a small capsule, a telephone) with its cutoff drawn from ``HIGHPASS_HZ``, a low-pass (the
    band limit of a low sample rate or a telephone) from ``LOWPASS_HZ``, and a spectral tilt:
    a first-order shelf at a corner drawn from ``SHELF_HZ`` with a gain from ``TILT_DB``
    (first-order low- and high-pass sum to one, so ``low + gain * high`` is that shelf).
    A ``narrowband`` share of those clips go through a telephone line instead: the cutoffs
    drawn from ``NARROWBAND_HIGHPASS_HZ`` and ``NARROWBAND_LOWPASS_HZ``, and steeper filters
    (a line's band-pass empties the mel bands outside it, where a microphone's only tilts them)."""

    sample_rate: int
    prob: float
    narrowband: float = 0.0
    HIGHPASS_HZ = (20.0, 400.0)
    LOWPASS_HZ = (3000.0, 7500.0)
    NARROWBAND_HIGHPASS_HZ = (200.0, 400.0)
    NARROWBAND_LOWPASS_HZ = (3000.0, 3700.0)
    SHELF_HZ = (500.0, 3000.0)
    TILT_DB = (-12.0, 12.0)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return samples
        # No draw at all without narrowband lines: recipes without them keep their random stream.
        narrow = self.narrowband > 0 and rng.random() < self.narrowband
        highpass_hz = rng.uniform(*(self.NARROWBAND_HIGHPASS_HZ if narrow else self.HIGHPASS_HZ))
        highpass_order, lowpass_order = (4, 8) if narrow else (2, 4)
        highpass = [_biquad(highpass_hz, self.sample_rate, q, "high")
                    for q in BUTTERWORTH_Q[highpass_order]]
        lowpass_hz = rng.uniform(*(self.NARROWBAND_LOWPASS_HZ if narrow else self.LOWPASS_HZ))
        lowpass = [_biquad(lowpass_hz, self.sample_rate, q, "low")
                   for q in BUTTERWORTH_Q[lowpass_order]]
        corner, gain_db = rng.uniform(*self.SHELF_HZ), rng.uniform(*self.TILT_DB)
        shelf = _first_order_shelf(corner, self.sample_rate, 10 ** (gain_db / 20))
        return sosfilt(np.stack([*highpass, *lowpass, shelf]), samples).astype(np.float32)


# The Q of each second-order section of a Butterworth filter of that order.
BUTTERWORTH_Q = {2: (1 / math.sqrt(2),),
                 4: (1 / (2 * math.cos(math.pi / 8)), 1 / (2 * math.cos(3 * math.pi / 8))),
                 8: tuple(1 / (2 * math.cos(k * math.pi / 16)) for k in (1, 3, 5, 7))}


def _biquad(hz: float, sample_rate: int, q: float, kind: str) -> np.ndarray:
    """A second-order low- or high-pass section (bilinear, pre-warped at ``hz``), as an sos row.
    Written out because scipy's general ``butter`` design took most of the step's time."""
    w0 = 2 * math.pi * hz / sample_rate
    cos_w0, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    if kind == "low":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    else:
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    a = [1 + alpha, -2 * cos_w0, 1 - alpha]
    return np.array([*b, *a]) / a[0]


def _first_order_shelf(hz: float, sample_rate: int, gain: float) -> np.ndarray:
    """First-order low-pass + ``gain`` * first-order high-pass at one corner (bilinear), as an sos
    row: 0 dB far below the corner, ``gain`` far above it."""
    k = math.tan(math.pi * hz / sample_rate)
    return np.array([(k + gain) / (k + 1), (k - gain) / (k + 1), 0.0, 1.0, (k - 1) / (k + 1), 0.0])


def speech_span(samples: np.ndarray, sample_rate: int) -> Optional[tuple[int, int]]:
    """The samples [first, last) of the speech in a clip: the span of 10 ms frames louder than
    both 30 dB below the loudest frame and 6 dB above the median frame (the noise, when speech
    fills less than half the clip); None when the clip is silent or as loud throughout."""
    hop = sample_rate // 100
    frames = samples[: samples.shape[-1] // hop * hop].reshape(-1, hop)
    level = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    threshold = max(level.max(initial=0.0) * 10 ** (-30 / 20), np.median(level) * 10 ** (6 / 20))
    loud = np.flatnonzero(level > threshold)
    if loud.size == 0:
        return None
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


@dataclass
class Endpoint:
    """With probability ``prob``, the clip as an endpointed recording (a corpus of trimmed
    clips, such as FSDD, zero-padded to the clip length): cut to the speech, moved to the start,
    zeros after. The cut starts ``LEAD_SECONDS`` (drawn) before the speech, or after its start
    when negative (a trimmer that clips a weak onset such as the /s/ of "six"), and ends
    ``TRAIL_SECONDS`` after it.

    Speech is where ``speech_span`` finds it."""

    sample_rate: int
    prob: float
    LEAD_SECONDS = (-0.08, 0.15)
    TRAIL_SECONDS = (0.0, 0.15)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.prob:
            return samples
        span = speech_span(samples, self.sample_rate)
        if span is None:  # silent, or as loud throughout: nothing to cut
            return samples
        first, last = span
        lead, trail = rng.uniform(*self.LEAD_SECONDS), rng.uniform(*self.TRAIL_SECONDS)
        # A clipped onset never takes more than half the speech.
        start = int(np.clip(first - round(lead * self.sample_rate), 0, (first + last) // 2))
        end = min(samples.shape[-1], last + round(trail * self.sample_rate))
        out = np.zeros_like(samples)
        out[: end - start] = samples[start:end]
        return out


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


def _pair(augment: AugmentConfig, low: str, high: str) -> tuple[float, float]:
    return float(getattr(augment, low)), float(getattr(augment, high))


def build_transform(augment: AugmentConfig, sample_rate: int, noise_dir: Optional[str | Path],
                    cache: Optional[DecodeCache] = None) -> Optional[Augment]:
    """The training transform ``augment`` asks for, or None when it asks for nothing.
    ``noise_dir`` None means no noise step; ``cache`` holds the noise files' samples."""
    if not augment.enabled:
        return None
    steps: list = []
    speed = _pair(augment, "speed_min", "speed_max")
    vtlp = _pair(augment, "vtlp_min", "vtlp_max")
    if not augment.warp_spectrogram:  # otherwise the model warps the batch (features.SpectralWarp)
        if speed != (1.0, 1.0):
            steps.append(Speed(sample_rate, *speed))
        if vtlp != (1.0, 1.0):
            steps.append(VocalTract(*vtlp))
    if augment.time_shift_seconds > 0:
        steps.append(TimeShift(round(augment.time_shift_seconds * sample_rate)))
    if augment.reverb_prob > 0:
        rt60 = _pair(augment, "rt60_min", "rt60_max")
        steps.append(Reverb(sample_rate, augment.reverb_prob, *rt60))
    if augment.channel_prob > 0:
        steps.append(Channel(sample_rate, augment.channel_prob, augment.channel_narrowband))
    if noise_dir is not None and augment.noise_prob > 0:
        snr = _pair(augment, "snr_db_min", "snr_db_max")
        bank = NoiseBank(noise_dir, cache=cache)
        steps.append(BackgroundNoise(bank, sample_rate, augment.noise_prob, *snr))
    if augment.endpoint_prob > 0:
        steps.append(Endpoint(sample_rate, augment.endpoint_prob))
    gain = _pair(augment, "gain_db_min", "gain_db_max")
    if gain != (0.0, 0.0):
        steps.append(Gain(*gain))
    return Augment(steps) if steps else None
