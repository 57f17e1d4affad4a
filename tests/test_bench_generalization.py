"""benchmarks/bench_generalization.py: its leave-one-speaker-out summary (pure arithmetic, on
made-up accuracies), the channel conditions it applies to real FSDD clips and its ensembles of
saved runs."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from benchmarks import bench_generalization as g
from helpers import TINY
from speechrnn import audio, checkpoint
from speechrnn.config import compose_config, plain
from speechrnn.models import build_model

RATE = 16000


def band_energy(samples: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    hz = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(spectrum[(hz >= low) & (hz < high)].sum())


@pytest.fixture
def clip(fsdd_root) -> np.ndarray:
    """A real FSDD clip as the models read it (16 kHz, 1 s), at 0 dBFS peak for a clear margin."""
    return g.at_peak(audio.load(fsdd_root / "0_george_0.wav", RATE, RATE), 0.0)


def test_loso_summary_means_worst_and_spread_over_seeds():
    table = {"ann": [0.90, 0.92, 0.94], "bob": [0.80, 0.70, 0.90], "cy": [1.0, 1.0, 1.0]}
    rows = [{"speaker": s, "seed": seed, "test_accuracy": a}
            for s, accuracies in table.items() for seed, a in enumerate(accuracies)]
    summary = g.loso_summary(rows)
    assert summary["per_speaker"]["ann"]["mean"] == pytest.approx(0.92)
    assert summary["per_speaker"]["ann"]["std"] == pytest.approx(0.02)
    # Each seed's mean over folds: 0.9, 0.8733, 0.9467; their mean and sample std.
    fold_means = [np.mean([table[s][seed] for s in table]) for seed in range(3)]
    assert summary["mean"]["mean"] == pytest.approx(np.mean(fold_means))
    assert summary["mean"]["std"] == pytest.approx(np.std(fold_means, ddof=1))
    assert summary["worst"]["speaker"] == "bob"
    assert summary["worst"]["mean"] == pytest.approx(0.80)
    one_seed = g.loso_summary([row for row in rows if row["seed"] == 0])
    assert one_seed["mean"] == {"mean": pytest.approx(0.9), "std": 0.0}


def test_band_limit_removes_the_energy_outside_the_telephone_band(clip):
    limited = g.band_limit(clip, RATE)
    for low, high in ((0, 150), (4500, 8000)):
        assert band_energy(clip, low, high) > 0
        assert band_energy(limited, low, high) < 1e-3 * band_energy(clip, low, high), (low, high)
    inside = band_energy(limited, 500, 3000) / band_energy(clip, 500, 3000)
    assert 0.5 < inside < 1.5


def test_through_8k_drops_the_band_above_4k(clip):
    noisy = clip + np.random.default_rng(0).standard_normal(clip.size).astype(np.float32) * 0.01
    narrowed = g.through_rate(noisy, RATE)
    assert narrowed.shape == clip.shape
    assert band_energy(narrowed, 4500, 8000) < 1e-2 * band_energy(noisy, 4500, 8000)  # > 20 dB down


@pytest.mark.parametrize("dbfs", g.LEVELS_DBFS[1:])
def test_levels_hit_the_target_peak_after_16_bit_rounding(clip, dbfs):
    condition = {"channel": "clean", "room": False, "level_dbfs": dbfs}
    out = g.degrade(clip, RATE, condition, 0)
    assert 20 * np.log10(np.abs(out).max()) == pytest.approx(dbfs, abs=0.01)
    assert np.array_equal(out * 32768, np.round(out * 32768))  # what a 16-bit WAV holds


def test_the_room_is_the_same_for_every_model_and_run(clip):
    room = {"channel": "300-3400 Hz", "room": True, "level_dbfs": -20.0}
    first, again = g.degrade(clip, RATE, room, 3), g.degrade(clip, RATE, room, 3)
    assert np.array_equal(first, again)
    dry = g.degrade(clip, RATE, {**room, "room": False}, 3)
    assert not np.allclose(first, dry)
    assert g.degrade(np.zeros(RATE, np.float32), RATE, room, 0).max() == 0.0  # silence stays


def test_conditions_start_with_the_clean_clips():
    grid = g.conditions()
    assert grid[0] == {"channel": "clean", "room": False, "level_dbfs": None}
    assert len(grid) == len({g.condition_name(c) for c in grid}) == 2 * 3 * 4


def test_a_partial_run_keeps_the_earlier_parts_and_variants_with_their_own_meta():
    then, now = {"commit": "aaa"}, {"commit": "bbb"}
    earlier = {"meta": then, "parts": {
        "default": {"command": "d"},
        "ablation": {"variants": {"a": {"overrides": ["x=1"]}, "b": {"overrides": ["y=1"]}}}}}
    merged = g.keep_earlier({"ablation": {"variants": {"b": {"overrides": ["y=2"]}}}}, earlier)
    assert merged["default"] == {"meta": then, "command": "d"}
    assert merged["ablation"]["variants"] == {"a": {"meta": then, "overrides": ["x=1"]},
                                              "b": {"overrides": ["y=2"]}}  # this run's meta
    # Kept again by a later run that measures another part, "a" still names its own run.
    later = g.keep_earlier({"noise": {}}, {"meta": now, "parts": merged})
    assert later["ablation"]["variants"]["a"]["meta"] == then
    assert later["ablation"]["variants"]["b"]["meta"] == now
    assert later["default"]["meta"] == then


def test_loso_of_another_recipe_keeps_the_earlier_recipe_with_its_meta():
    then = {"commit": "aaa"}
    earlier = {"meta": then, "parts": {"loso": {"recipes": {"fsdd/gru": {"command": "g"}}}}}
    merged = g.keep_earlier({"loso": {"recipes": {"fsdd/mixed": {"command": "m"}}}}, earlier)
    assert merged["loso"]["recipes"] == {"fsdd/gru": {"meta": then, "command": "g"},
                                         "fsdd/mixed": {"command": "m"}}


def test_the_ensemble_part_scores_each_folds_seeds_as_one_model(fsdd_root, tmp_path, monkeypatch):
    """Two folds of two random-weight runs each, saved as the loso part saves them: each fold's
    accuracy is the mean probability of its own runs on its own held-out speaker's clips."""
    monkeypatch.setattr(g.meta, "REPO", tmp_path)  # where the runs' run_dir are relative to
    labels = [str(digit) for digit in range(10)]
    models, folds = {}, []
    for speaker in ("jackson", "theo"):
        cfg = compose_config(["recipe=fsdd/gru", f"data.root={fsdd_root}", *TINY,
                              f"data.test_speakers=[{speaker}]"])
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = build_model(cfg.data, cfg.features, cfg.model, labels).eval()
            checkpoint.save({"model": model.state_dict(), "labels": labels, "epoch": 0,
                             "config": plain(cfg)}, tmp_path / f"{speaker}{seed}" / "checkpoints" / "best.pt")
            models.setdefault(speaker, []).append(model)
            folds.append({"speaker": speaker, "seed": seed, "run_dir": f"{speaker}{seed}",
                          "test_accuracy": 0.5})
    args = argparse.Namespace(recipe="fsdd/gru", override=[])
    result = g.ensemble(args, {"fsdd/gru": {"folds": folds, **g.loso_summary(folds)}})
    row = result["recipes"]["fsdd/gru"]
    for fold in row["folds"]:
        speaker = fold["speaker"]
        files = sorted(fsdd_root.glob(f"*_{speaker}_*.wav"))  # all held out: the test split
        waves = torch.from_numpy(np.stack([audio.load(p, RATE, RATE) for p in files]))
        with torch.no_grad():
            probs = torch.stack([torch.softmax(m(waves), -1) for m in models[speaker]]).mean(0)
        truth = [p.name.split("_")[0] for p in files]
        expected = np.mean([labels[i] == t for i, t in zip(probs.argmax(1).tolist(), truth)])
        assert fold["accuracy"] == pytest.approx(expected)
        assert fold["runs"] == [f"{speaker}0", f"{speaker}1"] and fold["clips"] == len(files) == 500
    assert row["mean"] == pytest.approx(np.mean([f["accuracy"] for f in row["folds"]]))
    assert row["worst"]["accuracy"] == min(f["accuracy"] for f in row["folds"])
    with pytest.raises(SystemExit, match="no loso row for 'fsdd/mixed'"):
        g.ensemble(argparse.Namespace(recipe="fsdd/mixed", override=[]), {})


def test_runs_of_one_recipe_with_other_overrides_train_into_other_folders(fsdd_root):
    """A kept loso row's ensemble reads its runs back from disk: measuring the recipe again with
    another override must not train over them."""
    class Recorder(g.Trainer):
        """The folders the part would train into, without training."""

        def __init__(self):
            super().__init__(quick=False)
            self.folders = set()

        def each(self, name, overrides, seeds):
            self.folders |= {self.folder(name, seed) for seed in seeds}
            return [{"seed": seed, "test_accuracy": 0.5} for seed in seeds]

    folders = []
    for override in ([], ["augment.reverb_prob=0.3"]):
        recorder = Recorder()
        args = argparse.Namespace(recipe="fsdd/gru", override=override, fsdd=fsdd_root,
                                  seeds=[0], quick=False)
        g.loso(args, recorder)
        folders.append(recorder.folders)
    assert len(folders[0]) == len(folders[1]) == 6 and not folders[0] & folders[1]


def test_trainings_side_by_side_share_the_cores_unless_the_caller_set_threads(monkeypatch):
    from benchmarks import runs
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 2)
    assert runs.torch_threads(1) is None  # one training: torch's own default
    assert runs.torch_threads(2) == "1" and runs.torch_threads(3) == "1"
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 16)
    assert runs.torch_threads(3) == "5"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runs.torch_threads(3) == "2" and runs.torch_threads(1) == "2"
