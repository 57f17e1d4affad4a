"""The decode cache on real recordings: what it stores, when it decodes again, and that a run
reads the same samples with it, without it, cold and warm."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from speechrnn.config import CONF_DIR
from speechrnn.data import Clip, ClipDataset, make_loader
from speechrnn.data.cache import DecodeCache
from speechrnn.data.validate import check_clips
from speechrnn.data.base import Splits
from speechrnn.training import fit

RATE = 16000


def dataset(paths: list[Path], cache: DecodeCache | None) -> ClipDataset:
    return ClipDataset([Clip(str(p), "x") for p in paths], ["x"], RATE, RATE, cache=cache)


def fsdd_files(fsdd_root: Path, count: int) -> list[Path]:
    return sorted(fsdd_root.glob("*.wav"))[:count]


def test_a_16_bit_clip_at_the_data_rate_comes_back_exactly(tmp_path, tiny_synth):
    paths = sorted((tiny_synth / "yes").glob("*.wav"))[:3]
    assert sf.info(str(paths[0])).subtype == "PCM_16" and sf.info(str(paths[0])).samplerate == RATE
    plain, cached = dataset(paths, None), dataset(paths, DecodeCache(tmp_path, RATE))
    for i in range(len(paths)):
        cold = cached.load(cached.clips[i])
        warm = cached.load(cached.clips[i])
        np.testing.assert_array_equal(cold, plain.load(plain.clips[i]))
        np.testing.assert_array_equal(warm, cold)
    assert len(list(tmp_path.glob("*/*.i16"))) == 3


def test_a_resampled_clip_is_kept_to_int16_rounding(tmp_path, fsdd_root):
    paths = fsdd_files(fsdd_root, 3)  # 8 kHz, resampled to 16 kHz
    plain, cached = dataset(paths, None), dataset(paths, DecodeCache(tmp_path, RATE))
    for i in range(len(paths)):
        cold, exact = cached.load(cached.clips[i]), plain.load(plain.clips[i])
        assert cold.dtype == np.float32 and cold.shape == exact.shape
        np.testing.assert_allclose(cold, exact, rtol=0, atol=0.5 / 32768 + 1e-9)
        assert not np.array_equal(cold, exact)  # the rounding is there: nothing was skipped
        # A warm read gives exactly what the cold one used.
        np.testing.assert_array_equal(cached.load(cached.clips[i]), cold)


def test_a_changed_file_is_decoded_again(tmp_path, fsdd_root):
    first, second = fsdd_files(fsdd_root, 2)
    path = tmp_path / "clip.wav"
    shutil.copy(first, path)
    cached = dataset([path], DecodeCache(tmp_path / "cache", RATE))
    before = cached.load(cached.clips[0])
    # The same size, a later time: new contents.
    samples, rate = sf.read(path, dtype="int16")
    sf.write(path, -samples, rate, subtype="PCM_16")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    np.testing.assert_allclose(cached.load(cached.clips[0]), -before, rtol=0, atol=1 / 32768)
    # Another size, the same time: new contents.
    stamp = path.stat()
    shutil.copy(second, path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size != stamp.st_size
    expected = dataset([second], DecodeCache(tmp_path / "other", RATE))
    np.testing.assert_array_equal(cached.load(cached.clips[0]), expected.load(expected.clips[0]))


def test_the_key_is_size_and_time_not_content(tmp_path, fsdd_root):
    """Contents changed behind the cache's back (same size, modification time put back) are not
    seen: what proves that a warm read comes from the cache, not from the file."""
    path = tmp_path / "clip.wav"
    shutil.copy(fsdd_files(fsdd_root, 1)[0], path)
    stamp = path.stat()
    cached = dataset([path], DecodeCache(tmp_path / "cache", RATE))
    before = cached.load(cached.clips[0])
    samples, rate = sf.read(path, dtype="int16")
    sf.write(path, -samples, rate, subtype="PCM_16")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size
    np.testing.assert_array_equal(cached.load(cached.clips[0]), before)


def test_a_clip_beyond_full_scale_is_stored_unclipped(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.linspace(-3, 3, RATE, dtype=np.float32), RATE, subtype="FLOAT")
    cached = dataset([path], DecodeCache(tmp_path / "cache", RATE))
    np.testing.assert_array_equal(cached.load(cached.clips[0]), np.linspace(-3, 3, RATE, dtype=np.float32))


def test_an_unwritable_cache_folder_warns_and_decodes(tmp_path, fsdd_root, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    paths = fsdd_files(fsdd_root, 2)
    cached = dataset(paths, DecodeCache(blocker, RATE))
    with caplog.at_level(logging.WARNING):
        loaded = [cached.load(clip) for clip in cached.clips]
    assert [len(s) for s in loaded] == [len(dataset([p], None).load(Clip(str(p), "x"))) for p in paths]
    assert "cannot write the decode cache" in caplog.text and caplog.text.count("cannot write") == 1


def test_check_clips_decodes_only_what_is_not_cached(tmp_path, fsdd_root):
    good, spoiled = tmp_path / "good.wav", tmp_path / "spoiled.wav"
    shutil.copy(fsdd_files(fsdd_root, 1)[0], good)
    shutil.copy(fsdd_files(fsdd_root, 1)[0], spoiled)
    cache = DecodeCache(tmp_path / "cache", RATE)
    for path in (good, spoiled):
        dataset([path], cache).load(Clip(str(path), "x"))
    stamp = spoiled.stat()
    spoiled.write_bytes(b"\0" * stamp.st_size)  # garbage, same size and time: the cached entry holds
    os.utime(spoiled, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    splits = Splits(["x"], train=[Clip(str(good), "x"), Clip(str(spoiled), "x")])
    assert check_clips(splits, "skip", cache) == splits
    assert check_clips(splits, "skip").train == [Clip(str(good), "x")]  # without it: decoded, dropped


@pytest.mark.slow
def test_dataloader_workers_filling_the_cache_at_once_publish_whole_entries(tmp_path, fsdd_root):
    paths = fsdd_files(fsdd_root, 4) * 8  # every clip 8 times, in both workers
    cache = DecodeCache(tmp_path, RATE)
    loader = make_loader(dataset(paths, cache), batch_size=2, shuffle=False, num_workers=2, seed=0)
    batches = torch.cat([waves for waves, _ in loader])
    expected = torch.stack([torch.from_numpy(np.pad(s, (0, RATE - len(s)))) for s in
                            (dataset([p], cache).load(Clip(str(p), "x")) for p in paths)])
    torch.testing.assert_close(batches, expected, rtol=0, atol=0)
    assert len(list(tmp_path.glob("*/*.i16"))) == 4
    assert not list(tmp_path.glob("*/.*.tmp"))


def smoke(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["recipe=smoke", "export.enabled=false",
                                            "augment=default", "data.num_workers=2", *overrides])


@pytest.mark.slow
def test_a_run_is_the_same_without_the_cache_cold_and_warm(tmp_path, monkeypatch, tiny_synth):
    """The synthetic set is 16-bit at the model's rate: the cache changes no sample, so no
    loss; augmentation and 2 DataLoader workers included."""
    plain = fit(smoke(f"data.root={tiny_synth}", "data.cache=false"), tmp_path / "plain")
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path / "cache"))
    cold = fit(smoke(f"data.root={tiny_synth}"), tmp_path / "cold")
    entries = len(list((tmp_path / "cache" / "decoded").glob("*/*.i16")))
    warm = fit(smoke(f"data.root={tiny_synth}"), tmp_path / "warm")
    # Every clip, and the noise files that augmentation drew segments from (cached whole).
    noise_files = len(list((tiny_synth / "_background_noise_").glob("*.wav")))
    assert sum(cold["clips"].values()) < entries <= sum(cold["clips"].values()) + noise_files
    for key in ("test_loss", "val_accuracy", "best_epoch"):
        assert plain[key] == cold[key] == warm[key], key
    losses = [[line for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
               if '"kind": "step"' in line] for run in ("plain", "cold", "warm")]
    assert len(losses[0]) == 6 and losses[0] == losses[1] == losses[2]
