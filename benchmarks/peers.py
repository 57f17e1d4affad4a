"""The ways other people compute the same features and run the same model, for comparison.

- ``TorchaudioFeatures``: ``torchaudio.transforms.MFCC`` with the model frontend's settings
  (what a PyTorch user would write); ``librosa_features``: the same in numpy with librosa.
  Both equal speechrnn's frontend up to float rounding (hann window, power 2, htk mel scale,
  no filterbank norm, 10 log10 floored at 1e-10 without a top_db clamp, ortho DCT-II), then
  its per-utterance normalisation when the model uses it.
- ``EncoderHead``: the trained model without its frontend (features in, logits out), run in
  PyTorch or exported alone to ONNX, the graph a two-stage pipeline runs.
- ``loaders``: decode a file and resample it to the model's rate the way each toolkit does.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import nn

from speechrnn import audio
from speechrnn.config import ExportConfig, FeaturesConfig
from speechrnn.features import AMIN, NORM_EPS


def _check(features: FeaturesConfig) -> None:
    if features.deltas:
        raise SystemExit("the peer pipelines cover features.deltas=0 only")


class TorchaudioFeatures(nn.Module):
    """[B, S] waveforms -> [B, T, n_mfcc] with torchaudio.transforms.MFCC."""

    def __init__(self, features: FeaturesConfig, sample_rate: int):
        super().__init__()
        _check(features)
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate, n_mfcc=features.n_mfcc, norm="ortho",
            melkwargs=dict(n_fft=features.n_fft, win_length=features.win_length,
                           hop_length=features.hop_length, n_mels=features.n_mels,
                           f_min=features.f_min, f_max=features.f_max, mel_scale="htk",
                           norm=None, power=2.0, center=True, pad_mode="reflect"))
        self.mfcc.amplitude_to_DB.top_db = None  # torchaudio clamps at 80 dB under the peak
        self.normalize = features.normalize

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        feats = self.mfcc(wave).transpose(-1, -2)
        if self.normalize:
            centred = feats - feats.mean(dim=-2, keepdim=True)
            feats = centred * torch.rsqrt(centred.square().mean(dim=-2, keepdim=True) + NORM_EPS)
        return feats


def librosa_features(features: FeaturesConfig, sample_rate: int
                     ) -> Callable[[np.ndarray], np.ndarray]:
    """[B, S] waveforms -> [B, T, n_mfcc] float32 with librosa."""
    _check(features)
    f = features

    def run(wave: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=wave, sr=sample_rate, n_fft=f.n_fft, win_length=f.win_length,
            hop_length=f.hop_length, n_mels=f.n_mels, fmin=f.f_min,
            fmax=f.f_max or sample_rate / 2, pad_mode="reflect", htk=True, norm=None)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, amin=AMIN, top_db=None),
                                    n_mfcc=f.n_mfcc, norm="ortho")
        feats = np.swapaxes(mfcc, -1, -2).astype(np.float32)
        if f.normalize:
            centred = feats - feats.mean(axis=-2, keepdims=True)
            feats = centred / np.sqrt(np.square(centred).mean(axis=-2, keepdims=True) + NORM_EPS)
        return feats
    return run


class EncoderHead(nn.Module):
    """Feature frames [B, T, F] -> logits: the model without its frontend."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder, self.head = model.encoder, model.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(features))


def export_encoder(model: nn.Module, frames: int, path: Path) -> Path:
    example = torch.randn(2, frames, model.frontend.output_dim)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(EncoderHead(model).eval(), (example,), str(path), dynamo=False,
                          opset_version=ExportConfig.opset, input_names=["features"],
                          output_names=["logits"],
                          dynamic_axes={"features": {0: "batch", 1: "frames"},
                                        "logits": {0: "batch"}})
    return path


def loaders(sample_rate: int, clip_samples: int) -> dict[str, Callable[[Path], np.ndarray]]:
    """toolkit -> path -> [1, clip_samples] float32: decode, mix to mono, resample to
    ``sample_rate``, pad or centre-crop. "speechrnn" is what ``speechrnn.runtime`` does
    (soundfile + soxr); "torchaudio" resamples with torchaudio.transforms.Resample (built once
    per input rate); "librosa" is librosa.load (soxr_hq)."""
    resamplers: dict[int, nn.Module] = {}

    def torch_load(path: Path) -> np.ndarray:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wave = torch.from_numpy(samples.mean(axis=1))
        if rate != sample_rate:
            if rate not in resamplers:
                resamplers[rate] = torchaudio.transforms.Resample(rate, sample_rate)
            with torch.inference_mode():
                wave = resamplers[rate](wave)
        return audio.fix_length(wave.numpy(), clip_samples)[None]

    def librosa_load(path: Path) -> np.ndarray:
        return audio.fix_length(librosa.load(path, sr=sample_rate, mono=True)[0], clip_samples)[None]

    return {
        "speechrnn": lambda path: audio.load(path, sample_rate, clip_samples)[None],
        "torchaudio": torch_load,
        "librosa": librosa_load,
    }
