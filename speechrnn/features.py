"""The MFCC frontend: a model layer that turns raw waveforms into feature sequences.

torchaudio's MFCC cannot be exported to ONNX (its STFT is complex-valued), so ``MFCC`` computes
the STFT as a strided convolution with a windowed real/imaginary DFT basis, then uses
torchaudio's own mel filterbank and DCT matrices. It matches ``torchaudio.transforms.MFCC`` with
``top_db=None``: every output frame depends only on its own STFT window (no per-utterance
maximum), so a streaming export can reproduce the frames chunk by chunk.

``Frontend`` adds what training wants on top: deltas, per-utterance normalisation, SpecAugment
and (``SpectralWarp``) speed and vocal tract length perturbation of a whole batch.
Layout everywhere is ``[batch, frames, features]``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from .errors import SpeechRNNError

# torchaudio's AmplitudeToDB floor: power below 1e-10 (-100 dB) is clamped.
AMIN = 1e-10
DELTA_WIN_LENGTH = 5  # torchaudio.functional.compute_deltas' default window
NORM_EPS = 1e-5


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


class MFCC(nn.Module):
    """Waveforms ``[batch, samples]`` (float32) to MFCCs ``[batch, frames, n_mfcc]``.

    Equal, up to float32 rounding, to ``torchaudio.transforms.MFCC`` with the same mel settings
    (hann window, power 2, htk mel scale, no filterbank norm, ortho DCT-II, 10*log10 of the mel
    power floored at 1e-10) and its ``top_db`` clamp switched off. Exports to ONNX with plain
    Pad/Conv/MatMul/Log ops.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 40,
        n_fft: int = 512,
        win_length: int = 480,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 20.0,
        f_max: Optional[float] = None,
        center: bool = True,
        power_floor: float = AMIN,
        warp: Optional["SpectralWarp"] = None,
    ) -> None:
        super().__init__()
        f_max = sample_rate / 2 if f_max is None else f_max
        _check(power_floor > 0, f"features.power_floor={power_floor} must be positive")
        _check(n_mfcc <= n_mels, f"features.n_mfcc={n_mfcc} exceeds features.n_mels={n_mels}; "
               "lower n_mfcc or raise n_mels")
        _check(0 < win_length <= n_fft, f"features.win_length={win_length} must be in "
               f"1..n_fft={n_fft}; lower win_length or raise n_fft")
        _check(hop_length > 0, f"features.hop_length={hop_length} must be positive")
        _check(0 <= f_min < f_max <= sample_rate / 2, f"features.f_min={f_min} and f_max={f_max} "
               f"must satisfy 0 <= f_min < f_max <= sample_rate/2={sample_rate / 2}")
        self.sample_rate = sample_rate
        self.n_mfcc = n_mfcc
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.center = center
        self.power_floor = power_floor

        # torch.stft zero-pads the window to n_fft, centred. The zero taps contribute nothing,
        # so the kernel keeps only the win_length non-zero ones and the input is trimmed to match.
        self.trim_left = (n_fft - win_length) // 2
        self.trim_right = n_fft - win_length - self.trim_left
        fbank = torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk"
        )
        # FFT bins outside every mel filter (below f_min, above f_max) are never computed.
        used = fbank.any(dim=1)
        fbank = fbank[used]
        bins = torch.nonzero(used)[:, 0]
        self.register_buffer("dft", self._dft_basis(bins))
        # Stacked twice so one matmul sums real^2 and imag^2 while applying the filterbank.
        self.register_buffer("mel_fbank", torch.cat([fbank, fbank]))
        # 10*log10(x) == (10 / ln 10) * ln(x): the scale is folded into the DCT matrix.
        dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho")
        self.register_buffer("dct", dct * (10.0 / math.log(10.0)))
        # Training only, so not in the state dict: every bin the warp may read from.
        self.warp = warp
        if warp is not None:
            width = min(n_fft // 2, math.ceil(int(bins[-1]) / warp.lowest_scale) + 1) + 1
            self.register_buffer("warp_dft", self._dft_basis(torch.arange(width)), persistent=False)
            self.register_buffer("warp_bins", bins.float(), persistent=False)

    def _dft_basis(self, bins: torch.Tensor) -> torch.Tensor:
        """The windowed real and imaginary DFT rows of FFT ``bins``: [2 * bins, 1, win_length]."""
        window = torch.hann_window(self.win_length, periodic=True, dtype=torch.float64)
        phase = (2 * math.pi / self.n_fft) * torch.outer(
            bins.double(),
            torch.arange(self.trim_left, self.trim_left + self.win_length, dtype=torch.float64),
        )
        return (torch.cat([torch.cos(phase), -torch.sin(phase)]) * window).unsqueeze(1).float()

    @property
    def min_samples(self) -> int:
        """The shortest input that yields at least one frame."""
        return self.n_fft // 2 - self.trim_left + 1 if self.center else self.n_fft

    def num_frames(self, num_samples: int) -> int:
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples - self.n_fft) // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if not _tracing():
            _check_input(waveform, self.min_samples)
        with _full_precision(waveform):
            return self._mfcc(waveform.to(self.dft.dtype))

    def _mfcc(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform.unsqueeze(1)
        if self.center:
            half = self.n_fft // 2
            x = F.pad(x, (half - self.trim_left, half - self.trim_right), mode="reflect")
        elif self.trim_left or self.trim_right:
            x = x[..., self.trim_left : x.shape[-1] - self.trim_right]
        if self.warp is not None and self.training:
            wide = F.conv1d(x, self.warp_dft, stride=self.hop_length).transpose(1, 2).square()
            half = wide.shape[-1] // 2
            power = self.warp(wide[..., :half] + wide[..., half:], self.warp_bins)
            mel = power @ self.mel_fbank[: self.warp_bins.numel()]
        else:
            spectrum = F.conv1d(x, self.dft, stride=self.hop_length)  # [B, 2 * bins, T]
            mel = spectrum.transpose(1, 2).square() @ self.mel_fbank  # [B, T, n_mels]
        return torch.log(torch.clamp(mel, min=self.power_floor)) @ self.dct


class SpectralWarp(nn.Module):
    """Speed and vocal tract length perturbation of a training batch, applied to its power
    spectrogram in the model (on the training device) instead of to each waveform in the data
    workers, where resampling and the STFT pair cost more than the model's step.

    Each clip draws a speed ``s`` and a warp ``v`` (uniform in their ranges, from torch's
    generator). Its frame ``t`` takes the spectrum of frame ``t * s`` (frames past the clip's
    end are silent; a slower clip keeps its centre, as augment.Speed does), and its FFT bin
    ``k`` the power of bin ``k / (s * v)``: the clip is played ``s`` times faster, which raises
    every frequency by ``s``, and its spectrum is stretched by ``v`` more. Unlike ``data.augment.VocalTract``, which moves the formants only, ``v`` moves the
    harmonics too; an MFCC of few coefficients hardly sees the difference. Both axes are
    interpolated linearly.
    """

    def __init__(self, speed: tuple[float, float], vtlp: tuple[float, float]) -> None:
        super().__init__()
        self.speed, self.vtlp = speed, vtlp

    @property
    def lowest_scale(self) -> float:
        """The smallest ``s * v``: the one that reads bins furthest above their own."""
        return self.speed[0] * self.vtlp[0]

    def forward(self, power: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """``power`` [B, T, K] of FFT bins 0..K-1 -> [B, T, len(bins)]: each clip's own warp at
        ``bins`` (float FFT bin numbers)."""
        batch, frames, _ = power.shape
        speed = _uniform(batch, self.speed, power.device)
        scale = speed * _uniform(batch, self.vtlp, power.device)
        power = _interpolate(power, (bins[None, :] / scale[:, None])[:, None, :], dim=2)
        # As augment.Speed then fix_length: a faster clip is padded at its end, a slower one
        # keeps its centre.
        start = (frames - 1) * (1 - speed).clamp(min=0) / 2
        source = torch.arange(frames, device=power.device)[None, :] * speed[:, None] + start[:, None]
        power = _interpolate(power, source[:, :, None], dim=1)  # source: [B, T]
        return power.masked_fill((source > frames - 1)[:, :, None], 0.0)


def _uniform(count: int, bounds: tuple[float, float], device: torch.device) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(count, device=device)


def _interpolate(values: torch.Tensor, positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``values`` read at float ``positions`` along ``dim`` (linear between neighbours, clamped to
    the last one); ``positions`` broadcasts against ``values`` in the other dims."""
    last = values.shape[dim] - 1
    positions = positions.clamp(0, last)
    shape = list(values.shape)
    shape[dim] = positions.shape[dim]
    positions = positions.expand(shape)
    below = positions.floor().long()
    weight = positions - below
    above = (below + 1).clamp(max=last)
    return values.gather(dim, below) * (1 - weight) + values.gather(dim, above) * weight


class Deltas(nn.Module):
    """``torchaudio.functional.compute_deltas`` along the frame axis of ``[batch, frames, feats]``.

    Written as a single-channel conv over ``[batch * feats, 1, frames]`` because torchaudio's
    version makes batch * feats the conv's ``groups``, which the ONNX exporter rejects when the
    batch or frame axis is dynamic ("convolution for kernel of unknown shape").
    """

    def __init__(self, win_length: int = DELTA_WIN_LENGTH) -> None:
        super().__init__()
        self.reach = (win_length - 1) // 2
        denom = self.reach * (self.reach + 1) * (2 * self.reach + 1) / 3
        kernel = torch.arange(-self.reach, self.reach + 1, dtype=torch.float32) / denom
        self.register_buffer("kernel", kernel.view(1, 1, -1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, frames, feats = features.shape
        x = features.transpose(1, 2).reshape(-1, 1, frames)
        x = F.pad(x, (self.reach, self.reach), mode="replicate")
        return F.conv1d(x, self.kernel).reshape(batch, feats, frames).transpose(1, 2)


class Frontend(nn.Module):
    """MFCC, then optional deltas, per-utterance normalisation and (training only) SpecAugment.

    ``forward(wave [B, S]) -> [B, T, output_dim]`` with ``output_dim = n_mfcc * (1 + deltas)``.

    ``normalize=True`` subtracts each coefficient's mean over the whole utterance and, with
    ``normalize_variance``, divides by its standard deviation; either way it is not causal.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 40,
        n_fft: int = 512,
        win_length: int = 480,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 20.0,
        f_max: Optional[float] = None,
        power_floor: float = AMIN,
        deltas: int = 0,
        normalize: bool = False,
        normalize_variance: bool = True,
        freq_masks: int = 0,
        freq_mask_width: int = 8,
        time_masks: int = 0,
        time_mask_width: int = 10,
        warp: Optional[SpectralWarp] = None,
    ) -> None:
        super().__init__()
        _check(deltas in (0, 1, 2), f"features.deltas={deltas} must be 0, 1 or 2")
        self.mfcc = MFCC(sample_rate, n_mfcc, n_fft, win_length, hop_length, n_mels, f_min,
                         f_max, power_floor=power_floor, warp=warp)
        self.deltas = Deltas() if deltas else None
        self.order = deltas
        self.normalize = normalize
        self.normalize_variance = normalize_variance
        self.output_dim = n_mfcc * (1 + deltas)
        # Masks are filled with 0, the per-utterance mean when normalize is on.
        self.spec_augment = nn.Sequential(
            *[torchaudio.transforms.FrequencyMasking(freq_mask_width, iid_masks=True)
              for _ in range(freq_masks)],
            *[torchaudio.transforms.TimeMasking(time_mask_width, iid_masks=True)
              for _ in range(time_masks)],
        )

    @classmethod
    def from_config(cls, cfg, sample_rate: int, augment=None) -> "Frontend":
        """The frontend a ``FeaturesConfig`` describes (config.py imports this module, not back),
        with ``augment``'s speed and VTLP as a ``SpectralWarp`` when it sets warp_spectrogram."""
        warp = None
        if augment is not None and augment.enabled and augment.warp_spectrogram:
            warp = SpectralWarp((augment.speed_min, augment.speed_max),
                                (augment.vtlp_min, augment.vtlp_max))
        return cls(
            sample_rate=sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft,
            win_length=cfg.win_length, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            f_min=cfg.f_min, f_max=cfg.f_max, power_floor=cfg.power_floor, deltas=cfg.deltas,
            normalize=cfg.normalize, normalize_variance=cfg.normalize_variance,
            freq_masks=cfg.freq_masks, freq_mask_width=cfg.freq_mask_width,
            time_masks=cfg.time_masks, time_mask_width=cfg.time_mask_width, warp=warp,
        )

    def num_frames(self, num_samples: int) -> int:
        return self.mfcc.num_frames(num_samples)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with _full_precision(waveform):
            return self._features(waveform)

    def _features(self, waveform: torch.Tensor) -> torch.Tensor:
        features = self.mfcc(waveform)
        if self.deltas is not None:
            stack = [features]
            for _ in range(self.order):
                stack.append(self.deltas(stack[-1]))
            features = torch.cat(stack, dim=-1)
        if self.normalize:
            features = features - features.mean(dim=1, keepdim=True)
            if self.normalize_variance:
                features = features * torch.rsqrt(features.square().mean(dim=1, keepdim=True)
                                                  + NORM_EPS)
        if self.training and len(self.spec_augment):
            # The maskers work on (..., freq, time).
            features = self.spec_augment(features.transpose(1, 2)).transpose(1, 2)
        return features


@contextlib.contextmanager
def _full_precision(waveform: torch.Tensor):
    """Compute the features in true float32 whatever the caller enabled for speed.

    Under autocast a float16 power spectrum overflows and a bfloat16 one loses the quiet bins.
    TF32, cuDNN's default for convolutions on recent GPUs, rounds the DFT's operands to 10
    bits: bins 60 dB under the frame's peak become noise and MFCCs move by tens of units, so a
    model trained on GPU would see other features than its CPU/ONNX export.
    """
    with torch.autocast(waveform.device.type, enabled=False):
        if waveform.device.type != "cuda":
            yield
            return
        conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
        saved = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision = matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SpeechRNNError(f"bad features config: {message} (speechrnn/conf/features/)")


def _check_input(waveform: torch.Tensor, min_samples: int) -> None:
    if waveform.dim() != 2:
        raise SpeechRNNError(
            f"the frontend expects waveforms shaped [batch, samples], got {tuple(waveform.shape)}"
        )
    if waveform.shape[-1] < min_samples:
        raise SpeechRNNError(
            f"clips of {waveform.shape[-1]} samples are too short for the MFCC frontend "
            f"(at least {min_samples} needed); pad them, e.g. with data.clip_seconds"
        )
