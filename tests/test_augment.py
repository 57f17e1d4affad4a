"""Waveform augmentation on real speech (FSDD) and real noise (Speech Commands)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from speechrnn import audio
from speechrnn.config import AugmentConfig
from speechrnn.data.augment import (Augment, BackgroundNoise, Gain, NoiseBank, Speed, TimeShift,
                                    build_transform)
from speechrnn.errors import SpeechRNNError

RATE = 16000


def rngs(count: int):
    return [np.random.default_rng(seed) for seed in range(count)]


def power_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2))


def find_segment(paths: list[str], segment: np.ndarray) -> tuple[str, int] | None:
    """Where ``segment`` occurs, sample for sample, in one of the files (at their own rate)."""
    for path in paths:
        data, _ = sf.read(path, dtype="float32")
        for start in np.flatnonzero(data[: len(data) - len(segment) + 1] == segment[0]):
            if np.array_equal(data[start : start + len(segment)], segment):
                return path, int(start)
    return None


@pytest.fixture(scope="module")
def speech(fsdd_root) -> np.ndarray:
    """A real spoken digit at 16 kHz, 1 s long (speech first, zeros after)."""
    return audio.load(fsdd_root / "7_jackson_32.wav", RATE, RATE)


@pytest.fixture(scope="module")
def bank(noise_root) -> NoiseBank:
    return NoiseBank(noise_root)


def test_noise_bank_caches_file_lengths_and_reads_segments_from_the_files(bank, noise_root):
    assert bank.paths == sorted(str(p) for p in noise_root.glob("*.wav"))
    assert bank.frames == [sf.info(p).frames for p in bank.paths]
    for rng in rngs(3):
        segment = bank.segment(4000, RATE, rng)
        assert segment.shape == (4000,) and segment.dtype == np.float32
        assert find_segment(bank.paths, segment) is not None  # the files are 16 kHz already


def test_noise_bank_resamples_and_repeats_short_files(tmp_path, noise_root):
    short = tmp_path / "short.wav"
    data, _ = sf.read(noise_root / "white_noise.wav", frames=800, dtype="float32")
    sf.write(short, data, 8000)  # 0.1 s at 8 kHz
    segment = NoiseBank(tmp_path).segment(RATE, RATE, np.random.default_rng(0))
    assert segment.shape == (RATE,)
    np.testing.assert_array_equal(segment[:1600], segment[1600:3200])


def test_time_shift_moves_the_energy_and_fills_with_zeros(speech):
    burst = np.zeros(RATE, np.float32)
    burst[7000:9000] = speech[:2000]
    shifts = []
    for rng in rngs(20):
        out = TimeShift(1600)(burst, rng)
        nonzero = np.flatnonzero(out)
        shift = nonzero[0] - np.flatnonzero(burst)[0]
        shifts.append(shift)
        assert abs(shift) <= 1600
        np.testing.assert_array_equal(out[7000 + shift : 9000 + shift], burst[7000:9000])
        assert np.count_nonzero(out) == np.count_nonzero(burst)
    assert len(set(shifts)) > 10


def test_time_shift_zero_fills_what_it_vacates():
    ones = np.ones(1000, np.float32)
    for rng in rngs(10):
        out = TimeShift(300)(ones, rng)
        zeros = np.flatnonzero(out == 0).tolist()
        assert len(zeros) <= 300
        assert zeros in (list(range(len(zeros))), list(range(1000 - len(zeros), 1000)))


def test_noise_is_mixed_at_the_drawn_snr(speech, bank):
    fixed = BackgroundNoise(bank, RATE, prob=1.0, snr_db_min=10.0, snr_db_max=10.0)
    for rng in rngs(5):
        out = fixed(speech, rng)
        assert power_db(speech) - power_db(out - speech) == pytest.approx(10.0, abs=0.1)
    ranged = BackgroundNoise(bank, RATE, prob=1.0, snr_db_min=5.0, snr_db_max=30.0)
    snrs = [power_db(speech) - power_db(ranged(speech, rng) - speech) for rng in rngs(20)]
    assert min(snrs) >= 5.0 - 0.1 and max(snrs) <= 30.0 + 0.1
    assert max(snrs) - min(snrs) > 10.0


def test_noise_probability_and_silent_clips(speech, bank):
    half = BackgroundNoise(bank, RATE, prob=0.5, snr_db_min=10.0, snr_db_max=10.0)
    noisy = sum(not np.array_equal(half(speech, rng), speech) for rng in rngs(200))
    assert 70 <= noisy <= 130
    silent = np.zeros(RATE, np.float32)
    always = BackgroundNoise(bank, RATE, prob=1.0, snr_db_min=10.0, snr_db_max=10.0)
    np.testing.assert_array_equal(always(silent, np.random.default_rng(0)), silent)


def test_gain_scales_by_the_drawn_decibels(speech):
    out = Gain(6.0, 6.0)(speech, np.random.default_rng(0))
    assert out.dtype == np.float32
    assert power_db(out) - power_db(speech) == pytest.approx(6.0, abs=1e-3)
    gains = [power_db(Gain(-6.0, 6.0)(speech, rng)) - power_db(speech) for rng in rngs(20)]
    assert -6.0 - 1e-3 <= min(gains) < -2.0 and 2.0 < max(gains) <= 6.0 + 1e-3


def test_speed_changes_length_and_pitch():
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    for factor in (0.8, 1.25):
        out = Speed(RATE, factor, factor)(tone, np.random.default_rng(0))
        assert out.dtype == np.float32
        assert abs(len(out) - RATE / factor) <= 2
        spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
        peak_hz = np.argmax(spectrum) * RATE / len(out)
        assert peak_hz == pytest.approx(440.0 * factor, abs=3.0)
    # in the full transform the length is restored for the steps after it
    assert Augment([Speed(RATE, 1.2, 1.2)])(tone, np.random.default_rng(0)).shape == (RATE,)


def test_build_transform_follows_the_config(noise_root, speech):
    assert build_transform(AugmentConfig(enabled=False), RATE, noise_root) is None
    neutral = AugmentConfig(time_shift_seconds=0.0, speed_min=1.0, speed_max=1.0,
                            gain_db_min=0.0, gain_db_max=0.0)
    assert build_transform(neutral, RATE, noise_dir=None) is None
    steps = build_transform(AugmentConfig(), RATE, noise_root).steps
    assert [type(s) for s in steps] == [Speed, TimeShift, BackgroundNoise, Gain]
    assert steps[1].max_samples == 1600
    no_noise = build_transform(AugmentConfig(), RATE, noise_dir=None).steps
    assert BackgroundNoise not in [type(s) for s in no_noise]

    transform = build_transform(AugmentConfig(), RATE, noise_root)
    first = transform(speech, np.random.default_rng(7))
    np.testing.assert_array_equal(first, transform(speech, np.random.default_rng(7)))
    assert not np.array_equal(first, transform(speech, np.random.default_rng(8)))
    assert first.shape == speech.shape and first.dtype == np.float32


@pytest.mark.parametrize("override, message", [
    ({"snr_db_min": 20.0, "snr_db_max": 10.0}, "augment.snr_db_min"),
    ({"gain_db_min": 3.0, "gain_db_max": -3.0}, "augment.gain_db_min"),
    ({"speed_min": 0.0, "speed_max": 1.0}, "augment.speed_min"),
])
def test_bad_ranges_are_clear_errors(noise_root, override, message):
    with pytest.raises(SpeechRNNError, match=message):
        build_transform(AugmentConfig(**override), RATE, noise_root)


def test_missing_or_empty_noise_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechRNNError, match="noise folder not found"):
        build_transform(AugmentConfig(), RATE, tmp_path / "nope")
    with pytest.raises(SpeechRNNError, match="no noise files"):
        build_transform(AugmentConfig(), RATE, tmp_path)
