"""Waveform augmentation on real speech (FSDD) and real noise (Speech Commands)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from speechrnn import audio
from speechrnn.config import AugmentConfig
from speechrnn.data.augment import (Augment, BackgroundNoise, Channel, Endpoint, Gain, NoiseBank,
                                    Reverb, Speed, TimeShift, VocalTract, build_transform)
from speechrnn.data.cache import DecodeCache
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


def test_a_cached_noise_bank_cuts_the_same_segments_from_the_cache(tmp_path, noise_root):
    folder = tmp_path / "noise"
    shutil.copytree(noise_root, folder)
    cached = NoiseBank(folder, cache=DecodeCache(tmp_path / "cache", RATE))
    plain = NoiseBank(folder)
    for seed in range(4):
        np.testing.assert_array_equal(cached.segment(RATE, RATE, np.random.default_rng(seed)),
                                      plain.segment(RATE, RATE, np.random.default_rng(seed)))
    assert len(list((tmp_path / "cache").glob("*/*.i16"))) >= 1
    # Files silenced behind the cache's back (same size and time): the cached bank does not
    # open them again, a fresh one without the cache reads the silence.
    for path in map(Path, cached.paths):
        stamp = path.stat()
        data, rate = sf.read(path, dtype="int16")
        sf.write(path, np.zeros_like(data), rate, subtype="PCM_16")
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert np.abs(cached.segment(RATE, RATE, np.random.default_rng(0))).max() > 0
    assert np.abs(NoiseBank(folder).segment(RATE, RATE, np.random.default_rng(0))).max() == 0


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


def test_build_transform_orders_every_step(noise_root):
    cfg = AugmentConfig(vtlp_min=0.9, vtlp_max=1.1, reverb_prob=0.5, rt60_min=0.2, rt60_max=0.4,
                        channel_prob=0.7, channel_narrowband=0.25, endpoint_prob=0.5)
    steps = build_transform(cfg, RATE, noise_root).steps
    assert [type(s) for s in steps] == [Speed, VocalTract, TimeShift, Reverb, Channel,
                                        BackgroundNoise, Endpoint, Gain]
    assert (steps[1].factor_min, steps[3].rt60_max, steps[4].prob, steps[4].narrowband,
            steps[6].prob) == (0.9, 0.4, 0.7, 0.25, 0.5)

    warped = build_transform(AugmentConfig(**{**dataclasses.asdict(cfg), "warp_spectrogram": True}),
                             RATE, noise_root).steps
    # The model applies speed and VTLP to the batch (features.SpectralWarp).
    assert [type(s) for s in warped] == [TimeShift, Reverb, Channel, BackgroundNoise, Endpoint, Gain]


@pytest.mark.parametrize("override, message", [
    ({"snr_db_min": 20.0, "snr_db_max": 10.0}, "augment.snr_db_min"),
    ({"gain_db_min": 3.0, "gain_db_max": -3.0}, "augment.gain_db_min"),
    ({"speed_min": 0.0, "speed_max": 1.0}, "augment.speed_min"),
    ({"vtlp_min": 1.2, "vtlp_max": 1.1}, "augment.vtlp_min"),
    ({"vtlp_min": 0.0, "vtlp_max": 1.1}, "augment.vtlp_min"),
    ({"reverb_prob": 1.0, "rt60_min": 0.5, "rt60_max": 0.2}, "augment.rt60_min"),
    ({"reverb_prob": 1.0, "rt60_min": 0.0}, "augment.rt60_min"),
])
def test_bad_ranges_are_clear_errors(noise_root, override, message):
    with pytest.raises(SpeechRNNError, match=message):
        build_transform(AugmentConfig(**override), RATE, noise_root)


def test_missing_or_empty_noise_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechRNNError, match="noise folder not found"):
        build_transform(AugmentConfig(), RATE, tmp_path / "nope")
    with pytest.raises(SpeechRNNError, match="no noise files"):
        build_transform(AugmentConfig(), RATE, tmp_path)


# ---------------------------------------------------------------- vocal tract, room, endpointing


def spectral_centroid(x: np.ndarray) -> float:
    power = np.abs(librosa.stft(x, n_fft=512)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / RATE)
    return float((power.sum(axis=1) * freqs).sum() / power.sum())


def median_f0(x: np.ndarray) -> float:
    voiced = x[:8000]  # the digit; zeros follow
    return float(np.median(librosa.yin(voiced, fmin=60, fmax=400, sr=RATE, frame_length=1024)))


def test_vocal_tract_moves_the_formants_and_keeps_pitch_and_length(speech):
    same = VocalTract(1.0, 1.0)(speech, np.random.default_rng(0))
    np.testing.assert_allclose(same, speech, atol=1e-5)
    for factor in (0.85, 1.15):
        out = VocalTract(factor, factor)(speech, np.random.default_rng(0))
        assert out.shape == speech.shape and out.dtype == np.float32
        # The spectral energy moves with the envelope, the harmonics stay.
        assert spectral_centroid(out) / spectral_centroid(speech) == pytest.approx(factor, rel=0.05)
        assert median_f0(out) == pytest.approx(median_f0(speech), rel=0.03)
    ranged = VocalTract(0.9, 1.1)
    first = ranged(speech, np.random.default_rng(1))
    np.testing.assert_array_equal(first, ranged(speech, np.random.default_rng(1)))
    assert not np.array_equal(first, ranged(speech, np.random.default_rng(2)))


def energy_decay_db(rir: np.ndarray) -> np.ndarray:
    """Schroeder's backward-integrated energy decay curve, in dB below the total."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    return 10 * np.log10(energy / energy[0])


@pytest.mark.parametrize("rt60", [0.15, 0.5])
def test_room_impulse_response_decays_at_the_drawn_rt60(rt60):
    reverb = Reverb(RATE, prob=1.0, rt60_min=rt60, rt60_max=rt60)
    for rng in rngs(5):
        rir = reverb.impulse_response(rng)
        assert rir[0] == 1.0 and rir.size == pytest.approx(rt60 * RATE, abs=2)
        tail_db = 10 * np.log10(np.sum(rir[1:] ** 2))  # the direct path has energy 1 (0 dB)
        assert -15.0 - 1e-6 <= tail_db <= 1e-6
        # T20 (the -5 to -25 dB slope of the tail alone), extrapolated to 60 dB.
        decay = energy_decay_db(rir[1:])
        t5, t25 = np.argmax(decay <= -5) / RATE, np.argmax(decay <= -25) / RATE
        assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.15)


def test_reverb_smears_the_speech_and_keeps_peak_and_length(speech):
    end = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())[-1]
    after = slice(end + 200, end + 2000)
    reverb = Reverb(RATE, prob=1.0, rt60_min=0.6, rt60_max=0.6)
    out = reverb(speech, np.random.default_rng(0))
    assert out.shape == speech.shape and out.dtype == np.float32
    assert np.abs(out).max() == pytest.approx(np.abs(speech).max(), rel=1e-5)
    assert power_db(out[after]) > power_db(speech[after] + 1e-12) + 40  # the room rings on
    assert not np.array_equal(out, reverb(speech, np.random.default_rng(1)))
    never = Reverb(RATE, prob=0.0, rt60_min=0.6, rt60_max=0.6)
    np.testing.assert_array_equal(never(speech, np.random.default_rng(0)), speech)
    silent = np.zeros(RATE, np.float32)
    np.testing.assert_array_equal(reverb(silent, np.random.default_rng(0)), silent)


def test_channel_band_limits_and_tilts_within_its_ranges():
    impulse = np.zeros(RATE, np.float32)
    impulse[0] = 1.0
    channel = Channel(RATE, prob=1.0)
    tilts = []
    for rng in rngs(20):
        response = channel(impulse, rng)
        assert response.dtype == np.float32
        gain_db = 20 * np.log10(np.abs(np.fft.rfft(response)) + 1e-12)  # 1 Hz bins
        assert gain_db[5] < -20  # 5 Hz: two octaves below the lowest high-pass cutoff
        assert gain_db[7990] < gain_db[1000] - 20  # near Nyquist: above every low-pass cutoff
        assert np.all(gain_db < max(Channel.TILT_DB) + 0.5)  # never above the shelf
        tilts.append(gain_db[2900] - gain_db[450])
    assert min(tilts) < -5 and max(tilts) > 5  # tilted both ways
    speechless = np.zeros(RATE, np.float32)
    np.testing.assert_array_equal(channel(speechless, np.random.default_rng(0)), speechless)
    never = Channel(RATE, prob=0.0)
    np.testing.assert_array_equal(never(impulse, np.random.default_rng(0)), impulse)


def test_a_narrowband_channel_is_a_telephone_line_every_time(monkeypatch):
    monkeypatch.setattr(Channel, "TILT_DB", (0.0, 0.0))  # the band limits alone
    impulse = np.zeros(RATE, np.float32)
    impulse[0] = 1.0

    def gains(channel: Channel) -> list[np.ndarray]:
        return [20 * np.log10(np.abs(np.fft.rfft(channel(impulse, rng))) + 1e-12)
                for rng in rngs(20)]

    for gain_db in gains(Channel(RATE, prob=1.0, narrowband=1.0)):
        # Steep: 4th order an octave below the lowest high-pass (200 Hz), 8th order above the
        # highest low-pass (3700 Hz); a microphone's 2nd and 4th order give 12 and 14 dB there.
        assert gain_db[100] < gain_db[1000] - 20
        assert gain_db[5500] < gain_db[1000] - 20
    wide = gains(Channel(RATE, prob=1.0))
    assert max(g[5000] - g[1000] for g in wide) > -3  # a microphone may keep 5 kHz
    assert max(g[100] - g[1000] for g in wide) > -3  # and 100 Hz


def test_endpoint_cuts_to_the_speech_and_pads_with_zeros(speech):
    voiced = np.flatnonzero(np.abs(speech) > 0.05 * np.abs(speech).max())
    word = speech[voiced[0] : voiced[-1] + 1]
    placed = np.zeros(RATE, np.float32)
    placed[6000 : 6000 + word.size] = word
    placed += np.random.default_rng(0).normal(0, 1e-3, RATE).astype(np.float32)  # a noise floor
    lead = np.array(Endpoint.LEAD_SECONDS) * RATE
    trail = max(Endpoint.TRAIL_SECONDS) * RATE
    frame = RATE // 100  # speech is found frame by frame
    starts = set()
    for rng in rngs(20):
        out = Endpoint(RATE, prob=1.0)(placed, rng)
        kept = np.flatnonzero(out)[-1] + 1
        assert out.shape == placed.shape and np.all(out[kept:] == 0)
        # out is placed[start:start + kept]: from before (or a little into) the word to after it
        start = int(np.flatnonzero(placed == out[0])[0])
        np.testing.assert_array_equal(out[:kept], placed[start : start + kept])
        assert 6000 - lead[1] - frame <= start <= 6000 - lead[0] + frame
        assert 6000 + word.size - frame <= start + kept <= 6000 + word.size + trail + frame
        starts.add(start)
    assert len(starts) > 10 and min(starts) < 6000 < max(starts)  # onsets kept and clipped
    noise = np.random.default_rng(1).normal(0, 0.1, RATE).astype(np.float32)
    for flat in (np.zeros(RATE, np.float32), noise):  # nothing stands out: nothing to cut
        np.testing.assert_array_equal(Endpoint(RATE, prob=1.0)(flat, np.random.default_rng(0)), flat)
    np.testing.assert_array_equal(Endpoint(RATE, prob=0.0)(placed, np.random.default_rng(0)), placed)
