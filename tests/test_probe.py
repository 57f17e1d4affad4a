"""The memory probe puts the spoken word first and the background noise after it, where it says."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from speechrnn import audio
from speechrnn.config import Config
from speechrnn.data import build_datasets, build_splits
from speechrnn.data.probe import PROBE_SNR_DB, ProbeDataset
from speechrnn.errors import SpeechRNNError

RATE = 8000
FRAME = RATE // 50  # 20 ms energy frames


def probe_config(fsdd_root, noise_root, delay):
    cfg = OmegaConf.structured(Config)
    cfg.data.merge_with(dict(source="fsdd", root=str(fsdd_root), silence=False, sample_rate=RATE,
                             clip_seconds=1.0, probe_delay_seconds=delay))
    cfg.augment.merge_with(dict(enabled=False, noise_dir=str(noise_root) if noise_root else None))
    return cfg


def frame_energy(samples: np.ndarray) -> np.ndarray:
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    return (frames ** 2).mean(axis=1)


@pytest.fixture(scope="module")
def probe(fsdd_root, noise_root):
    cfg = probe_config(fsdd_root, noise_root, delay=2.0)
    return build_datasets(cfg.data, cfg.augment, build_splits(cfg.data))


def test_the_word_comes_first_then_noise(probe):
    dataset = probe["test"]
    assert isinstance(dataset, ProbeDataset)
    for i in (0, 7, 123):
        wave, label = dataset[i]
        wave = wave.numpy()
        clip = dataset.clips[i]
        assert len(wave) == 3 * RATE
        assert dataset.labels[label] == clip.label

        # The first second is the recording itself, read independently, padded with zeros.
        word = audio.load(clip.path, sample_rate=RATE)
        np.testing.assert_array_equal(wave[: len(word)], word)
        assert not wave[len(word): RATE].any()

        # Onset and loudest frame lie inside the word; after the first second there is noise
        # in every frame, at the documented level below the word window's power.
        energy = frame_energy(wave)
        word_frames = -(-len(word) // FRAME)
        onset = int(np.argmax(energy > energy.max() * 1e-3))
        assert onset < word_frames and int(energy.argmax()) < word_frames
        noise = wave[RATE:]
        assert (frame_energy(noise) > 0).all()
        ratio_db = 10 * np.log10(np.mean(wave[:RATE].astype(np.float64) ** 2)
                                 / np.mean(noise.astype(np.float64) ** 2))
        assert ratio_db == pytest.approx(PROBE_SNR_DB, abs=0.01)


def test_noise_is_fixed_on_eval_and_fresh_per_epoch_on_train(probe):
    first, second = probe["test"][3][0], probe["test"][3][0]
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    train = probe["train"]
    train.set_epoch(0)
    epoch0 = train[5][0].numpy()
    train.set_epoch(1)
    epoch1 = train[5][0].numpy()
    np.testing.assert_array_equal(epoch0[:RATE], epoch1[:RATE])  # augmentation is off
    assert not np.array_equal(epoch0[RATE:], epoch1[RATE:])


def test_zero_delay_is_the_plain_clip(fsdd_root, noise_root):
    cfg = probe_config(fsdd_root, noise_root, delay=0.0)
    dataset = build_datasets(cfg.data, cfg.augment, build_splits(cfg.data))["val"]
    wave, _ = dataset[0]
    np.testing.assert_array_equal(wave.numpy(), dataset.base[0][0].numpy())
    assert len(wave) == RATE


def test_a_probe_without_noise_says_how_to_fix_it(fsdd_root):
    cfg = probe_config(fsdd_root, None, delay=1.0)
    with pytest.raises(SpeechRNNError, match="augment.noise_dir"):
        build_datasets(cfg.data, cfg.augment, build_splits(cfg.data))
