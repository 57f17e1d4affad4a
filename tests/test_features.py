"""The MFCC frontend against torchaudio and librosa, on real audio, and through ONNX."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchaudio

from speechrnn.audio import fix_length, load
from speechrnn.config import AugmentConfig, FeaturesConfig
from speechrnn.data.augment import Speed
from speechrnn.errors import SpeechRNNError
from speechrnn.features import MFCC, Deltas, Frontend, SpectralWarp

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: torch on one thread

RATE = 16000
MEL = dict(n_fft=512, win_length=480, hop_length=160, n_mels=40, f_min=20.0)


@pytest.fixture(scope="module")
def speech(fsdd_root) -> list[np.ndarray]:
    """Spoken digits (8 kHz recordings resampled to 16 kHz), natural lengths."""
    return [load(path, RATE) for path in sorted(fsdd_root.glob("*.wav"))[::500][:4]]


@pytest.fixture(scope="module")
def noise(noise_root) -> list[np.ndarray]:
    """Background noise recorded at 16 kHz: content across the whole band."""
    return [load(path, RATE, RATE + 345) for path in sorted(noise_root.glob("*.wav"))[:3]]


def batch(clips: list[np.ndarray], num_samples: int) -> torch.Tensor:
    """The clips zero-padded or cropped to one length, as the data pipeline does."""
    return torch.from_numpy(np.stack([fix_length(clip, num_samples) for clip in clips]))


def torchaudio_mfcc(center: bool, f_max: float | None = None) -> torchaudio.transforms.MFCC:
    melkwargs = dict(MEL, center=center, f_max=f_max)
    reference = torchaudio.transforms.MFCC(RATE, n_mfcc=40, melkwargs=melkwargs)
    # Our frontend is frame-local: no clamp relative to the loudest bin of the utterance.
    reference.amplitude_to_DB.top_db = None
    return reference


def assert_close_relative(actual, expected, tolerance: float) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    error = np.abs(actual - expected).max()
    assert error <= tolerance * np.abs(expected).max(), (error, np.abs(expected).max())


@pytest.mark.parametrize("center, f_max", [(True, None), (False, None), (True, 4000.0)])
@pytest.mark.parametrize("source", ["speech", "noise"])
def test_matches_torchaudio_mfcc(request, source, center, f_max):
    clips = request.getfixturevalue(source)
    mfcc, reference = MFCC(center=center, f_max=f_max), torchaudio_mfcc(center, f_max)
    with torch.no_grad():
        for clip in clips:
            wave = torch.from_numpy(clip)[None]
            expected = reference(wave).transpose(1, 2)
            # Measured 2.5e-4 on the digits (2.4e-6 with f_max=4000) and 2e-7 on noise: float32
            # rounding in the empty 4-8 kHz band of the 8 kHz recordings, where torchaudio's
            # own float32 result is 2e-4 away from a float64 computation.
            assert_close_relative(mfcc(wave), expected, 1e-3)


@pytest.mark.parametrize("source", ["speech", "noise"])
def test_matches_librosa_mfcc(request, source):
    for clip in request.getfixturevalue(source):
        # librosa.feature.mfcc applies power_to_db with top_db=80, so the dB mel spectrogram is
        # built here with top_db=None. htk=True, norm=None and pad_mode="reflect" (librosa's
        # default is zero padding) give torchaudio's filterbank and framing.
        mel = librosa.feature.melspectrogram(
            y=clip, sr=RATE, n_fft=512, win_length=480, hop_length=160, window="hann",
            center=True, pad_mode="reflect", power=2.0, n_mels=40, fmin=20.0, fmax=None,
            htk=True, norm=None,
        )
        expected = librosa.feature.mfcc(
            S=librosa.power_to_db(mel, top_db=None), n_mfcc=40, dct_type=2, norm="ortho"
        ).T
        with torch.no_grad():
            actual = MFCC()(torch.from_numpy(clip)[None])[0]
        # Measured 6.5e-5 on the digits and 1.3e-6 on noise: librosa's float32 rfft is close
        # to exact, the rest is our float32 DFT-as-convolution rounding in near-empty bins.
        assert_close_relative(actual, expected, 1e-3)


@pytest.mark.parametrize("num_samples", [257, 12345, 16000, 16001])
@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_shapes_and_dtypes(deltas, num_samples):
    frontend = Frontend(deltas=deltas).eval()
    for batch_size in (1, 3):
        features = frontend(torch.randn(batch_size, num_samples))
        frames = torchaudio_mfcc(True)(torch.zeros(num_samples)).shape[-1]
        assert features.shape == (batch_size, frames, 40 * (1 + deltas))
        assert features.dtype == torch.float32
        assert frontend.num_frames(num_samples) == frames
    assert frontend.output_dim == 40 * (1 + deltas)


def test_uncentred_frame_count():
    mfcc = MFCC(center=False)
    for num_samples in (512, 671, 672, 16000):
        frames = torchaudio_mfcc(False)(torch.zeros(num_samples)).shape[-1]
        assert mfcc(torch.zeros(2, num_samples)).shape[1] == frames == mfcc.num_frames(num_samples)


def test_frames_are_local(speech):
    """A frame depends only on its own window: no per-utterance statistics leak in."""
    mfcc = MFCC(center=False)
    wave = torch.from_numpy(speech[0])[None]
    with torch.no_grad():
        whole = mfcc(wave)
        start = 7
        end = (start + 20) * mfcc.hop_length + mfcc.n_fft - mfcc.hop_length
        chunk = mfcc(wave[:, start * mfcc.hop_length : end])
    torch.testing.assert_close(chunk, whole[:, start : start + chunk.shape[1]])


def test_deltas_match_torchaudio(speech):
    with torch.no_grad():
        features = MFCC()(batch(speech, 3400))
        expected = torchaudio.functional.compute_deltas(features.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(Deltas()(features), expected)
        stacked = Frontend(deltas=2)(batch(speech, 3400))
    torch.testing.assert_close(stacked[..., 40:80], expected)
    torch.testing.assert_close(stacked[..., 80:], Deltas()(expected))


def test_normalisation_per_utterance_and_coefficient(speech, noise):
    frontend = Frontend(deltas=1, normalize=True).eval()
    with torch.no_grad():
        for clips in (speech, noise):
            features = frontend(batch(clips, min(len(clip) for clip in clips)))
            mean = features.mean(dim=1)
            var = features.var(dim=1, unbiased=False)
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-4, rtol=0)
            torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)


def test_mean_only_normalisation_keeps_the_spread(speech, noise):
    """normalize_variance=false centres each coefficient but leaves its spread, so a clip's
    dynamics (and a quiet clip's quietness) survive."""
    centred = Frontend(normalize=True, normalize_variance=False).eval()
    raw = Frontend().eval()
    with torch.no_grad():
        for clips in (speech, noise):
            wave = batch(clips, min(len(clip) for clip in clips))
            features, reference = centred(wave), raw(wave)
            mean = features.mean(dim=1)
            torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-3, rtol=0)
            torch.testing.assert_close(features, reference - reference.mean(dim=1, keepdim=True))


def test_spec_augment_only_in_training(speech):
    torch.manual_seed(0)
    wave = batch(speech, 3400)
    masked = Frontend(normalize=True, freq_masks=2, time_masks=2)
    plain = Frontend(normalize=True).eval()
    with torch.no_grad():
        reference = plain(wave)
        torch.testing.assert_close(masked.eval()(wave), reference)
        augmented = masked.train()(wave)
    changed = augmented != reference
    assert changed.any()
    # Masked cells are set to 0 (the utterance mean); the rest is untouched.
    assert (augmented[changed] == 0).all()
    for example in changed:
        assert example.any()
        # Masks are whole frequency rows or whole time columns.
        assert (example.all(dim=0) | example.all(dim=1)[:, None] | ~example).all()


def test_float32_under_autocast(noise):
    frontend = Frontend(deltas=1, normalize=True).eval()
    wave = batch(noise, RATE)
    with torch.no_grad():
        expected = frontend(wave)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            actual = frontend(wave)
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected)


def test_from_config():
    cfg = FeaturesConfig(n_mfcc=13, n_mels=26, deltas=2, normalize=False, f_max=4000.0)
    frontend = Frontend.from_config(cfg, sample_rate=8000)
    assert frontend.output_dim == 39
    assert frontend(torch.randn(2, 8000)).shape == (2, 51, 39)
    assert not frontend.normalize
    with pytest.raises(SpeechRNNError, match="n_mfcc"):
        Frontend.from_config(FeaturesConfig(n_mfcc=50, n_mels=40), sample_rate=RATE)
    with pytest.raises(SpeechRNNError, match="f_max"):
        Frontend.from_config(FeaturesConfig(f_max=9000.0), sample_rate=RATE)


def test_bad_input_is_a_clear_error():
    frontend = Frontend()
    assert frontend(torch.zeros(1, 241)).shape == (1, frontend.num_frames(241), 40)
    with pytest.raises(SpeechRNNError, match="too short"):
        frontend(torch.zeros(1, 240))
    with pytest.raises(SpeechRNNError, match=r"\[batch, samples\]"):
        Frontend()(torch.zeros(16000))


def export(frontend: Frontend, path) -> ort.InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            frontend.eval(), (torch.randn(2, RATE),), str(path), dynamo=False, opset_version=17,
            input_names=["waveform"], output_names=["features"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"},
                          "features": {0: "batch", 1: "frames"}},
        )
    onnx.checker.check_model(str(path), full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("source, f_max", [("noise", None), ("speech", 4000.0)])
def test_onnx_export_matches_torch(request, source, f_max, tmp_path):
    # The digits are 8 kHz recordings: above 4 kHz they hold only resampler and float32
    # rounding noise, which torch and onnxruntime round differently (1e-2 apart after
    # normalisation, as far as float32 torch is from float64), so they get f_max=4000.
    frontend = Frontend(f_max=f_max, deltas=2, normalize=True, freq_masks=2, time_masks=2)
    session = export(frontend, tmp_path / "frontend.onnx")
    # A batch size and a length the export never saw: the axes are dynamic.
    wave = batch(request.getfixturevalue(source), RATE + 345)
    with torch.no_grad():
        expected = frontend(wave).numpy()
    (actual,) = session.run(None, {"waveform": wave.numpy()})
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_even_with_tf32_enabled(noise):
    frontend = Frontend(deltas=2, normalize=True, freq_masks=2, time_masks=2).eval()
    wave = batch(noise, RATE)
    with torch.no_grad():
        expected = frontend(wave)
        frontend.to("cuda")
        conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
        saved = conv.fp32_precision, matmul.fp32_precision
        # What a trainer turns on for speed; the frontend must not inherit it.
        conv.fp32_precision = matmul.fp32_precision = "tf32"
        try:
            actual = frontend(wave.to("cuda")).cpu()
            assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
            assert frontend.train()(wave.to("cuda")).device.type == "cuda"
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    torch.testing.assert_close(actual, expected, atol=1e-3, rtol=0)


def test_power_floor_makes_empty_bands_immune_to_quantisation(speech):
    """8 kHz speech resampled to 16 kHz has an empty upper band; saved as 16-bit PCM, rounding
    noise fills it. With torchaudio's 1e-10 floor that noise moves the MFCCs by over 10 %; above
    the noise (1e-6) it moves them by under 2 %."""
    clean = batch(speech, RATE)
    pcm = torch.round(clean * 32767) / 32767

    def change(mfcc):
        return ((mfcc(clean) - mfcc(pcm)).abs().mean() / mfcc(clean).abs().mean()).item()

    assert change(MFCC(power_floor=1e-6)) < 0.02
    assert change(MFCC()) > 0.1
    frontend = Frontend.from_config(FeaturesConfig(power_floor=1e-6), RATE).eval()
    assert (frontend(clean) - frontend(pcm)).abs().mean() < 0.02 * frontend(clean).abs().mean()


def warped_frontend(speed=(1.0, 1.0), vtlp=(1.0, 1.0), **settings) -> MFCC:
    return MFCC(**settings, warp=SpectralWarp(speed, vtlp)).train()


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_spectral_warp_plays_the_clip_faster_like_resampling_it(speech, factor):
    """The batch warp of a speed ``factor`` gives about the MFCCs of the clip resampled to play
    ``factor`` times faster (augment.Speed): far closer than the clip unchanged."""
    settings = dict(n_mfcc=13, n_mels=24, f_max=4000.0, power_floor=1e-6)
    plain, warped = MFCC(**settings), warped_frontend((factor, factor), **settings)
    clips = batch(speech, RATE)
    sped = batch([Speed(RATE, factor, factor)(clip.numpy(), np.random.default_rng(0))
                  for clip in clips], RATE)
    with torch.no_grad():
        expected, unchanged, actual = plain(sped), plain(clips), warped(clips)
    spoken = expected[..., 0] > expected[..., 0].amax(dim=1, keepdim=True) - 40  # [B, T]
    error = (actual - expected).abs()[spoken].mean()
    assert error < 0.5 * (unchanged - expected).abs()[spoken].mean()


def test_spectral_warp_moves_a_tone_by_speed_times_vtlp():
    """A 1 kHz tone warped by speed 1.1 and VTLP 1.2 peaks in the mel band of a 1.32 kHz tone,
    as loud, and ends at frame 91 of 101; eval mode and factors of 1 leave it alone; the warp
    adds no weights or buffers to the state dict."""
    time = torch.arange(RATE) / RATE

    def tone(hz):
        return torch.sin(2 * torch.pi * hz * time)[None]

    plain = MFCC(**MEL)  # 40 MFCCs of 40 mels: the DCT is square, so the log-mel comes back
    warped = warped_frontend((1.1, 1.1), (1.2, 1.2), **MEL)

    def log_mel(mfcc):  # natural log: the DCT matrix carries the 10 / ln 10 of decibels
        return mfcc @ torch.linalg.inv(plain.dct)

    with torch.no_grad():
        actual, expected = log_mel(warped(tone(1000)))[0], log_mel(plain(tone(1320)))[0]
        assert (actual[5:85].argmax(1) == expected[5:85].argmax(1)).all()
        torch.testing.assert_close(actual[5:85].amax(1), expected[5:85].amax(1), atol=0.25, rtol=0)
        assert (actual[93:].amax(1) < expected[93:].amax(1) - 20).all()
        torch.testing.assert_close(warped.eval()(tone(1000)), plain(tone(1000)))
        torch.testing.assert_close(warped_frontend(**MEL)(tone(1000)), plain(tone(1000)),
                                   atol=1e-3, rtol=0)
    assert warped.state_dict().keys() == plain.state_dict().keys()


def test_spectral_warp_draws_a_factor_per_clip_from_torchs_generator(speech):
    warped = warped_frontend((0.8, 1.2), (0.9, 1.1), **MEL)
    clips = batch(speech[:1] * 4, RATE)
    with torch.no_grad():
        torch.manual_seed(3)
        first = warped(clips)
        torch.manual_seed(3)
        again = warped(clips)
    torch.testing.assert_close(first, again)
    assert all((first[0] - other).abs().mean() > 0.1 for other in first[1:])


def test_frontend_from_config_warps_only_when_augment_asks():
    features = FeaturesConfig(n_mfcc=13, n_mels=24)
    asked = AugmentConfig(warp_spectrogram=True, speed_min=0.8, vtlp_max=1.2)
    warp = Frontend.from_config(features, RATE, asked).mfcc.warp
    assert (warp.speed, warp.vtlp) == ((0.8, 1.1), (1.0, 1.2))
    assert Frontend.from_config(features, RATE, AugmentConfig()).mfcc.warp is None
    assert Frontend.from_config(features, RATE,
                                AugmentConfig(warp_spectrogram=True, enabled=False)).mfcc.warp is None
