"""README.md's measured sections are what benchmarks/report generates from the committed result
JSON: a number typed into README.md, or a JSON changed without regenerating, fails here.

The fixtures below stand in for benchmark results (no benchmark runs here); they prove that the
generator reads every number it prints from the JSON, so the README check cannot be vacuous.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from benchmarks import meta, report, runs
from benchmarks.report import fmt
from helpers import REPO

README = REPO / "README.md"


def documents() -> str:
    """Every document that holds generated sections, as one text."""
    return "\n".join(path.read_text() for path in report.DOCUMENTS)

PIPELINES = ["torchaudio_pytorch", "ours_pytorch", "librosa_ort", "torchaudio_ort", "onnx_fp32",
             "onnx_int8"]


def meta_block(others: float = 0.02) -> dict:
    return {"date": "2030-01-02T03:04:05+00:00", "commit": "abc1234", "dirty": False,
            "cpu_model": "Test CPU", "cores": 2, "threads": {"torch": 1},
            "load_average_start": [0.1, 0.1, 0.1], "load_average_end": [1.0, 0.5, 0.2],
            "other_processes_cores": others,
            "versions": {"torch": "9.9", "onnxruntime": "8.8"}}


def with_meta(result: dict) -> dict:
    return {"quick": False, "meta": meta_block(), **result}


def inference_result() -> dict:
    def model(cell: str, scale: float) -> dict:
        rows = [{"pipeline": name, "label": f"pipeline {name}", "loader": "speechrnn",
                 "batch1_p50_ms": scale * (6 - i), "batch1_p95_ms": scale * (7 - i),
                 "batch64_clips_per_s": 100.0 * (i + 1), "end_to_end_p50_ms": scale * (8 - i),
                 "end_to_end_p95_ms": scale * (9 - i), "accuracy": 0.99}
                for i, name in enumerate(PIPELINES)]
        return {"cell": cell, "test_clips": 300, "rows": rows,
                "training": {"test_accuracy": 0.98, "train_clips_per_s": 350.0},
                "model_mb": {"fp32": 1.2, "int8": 0.7},
                "onnx_fp32_kernel_ms_batch1": {"recurrent": 0.6, "dft_conv": 0.3, "other": 0.1}}

    predict = [{"round": r, "model": f"fsdd/{cell} {q}", "files_per_s": 900.0 + 10 * r}
               for r in (1, 2, 3) for cell in ("gru", "lstm") for q in ("fp32", "int8")]
    detect = [{"model": name, "threshold": t, "x_real_time": 180.0,
               "score": {"precision": 0.5 + t / 3, "recall": 0.9}}
              for name in ("fsdd/kws fp32", "fsdd/kws fp32 --streaming") for t in (0.5, 0.7, 0.9)]
    return with_meta({
        "train_overrides": ["model.pooling=mean"], "baseline": "torchaudio_pytorch",
        "targets": {"onnx_fp32_vs_baseline_batch1": 4.0, "int8_vs_fp32": 1.5,
                    "int8_accuracy_loss_points": 0.5, "predict_files_per_s": 500.0},
        "models": [model("gru", 1.0), model("lstm", 0.5)],
        "predict": {"threads": 1, "files": 3000, "runs": predict},
        "long_recording": {
            "model": "fsdd/kws fp32", "threads": "default", "recording_seconds": 3600.0,
            "keywords": 1846, "test_clips": 300, "gap_seconds": [0.5, 2.5],
            "noise_dbfs": [-50, -35], "default_threshold": 0.7, "tolerance_s": 0.5,
            "peak_rss_mb": {"predict, one 1 s clip": 69.0, "predict, the long recording": 70.0,
                            "detect, one minute": 116.0, "detect, the long recording": 117.0},
            "detect": detect},
    })


def training_row(run: str, data: str, clips: int, target, **numbers) -> dict:
    """A bench_training row over 3 seeds; each number given as (mean, std)."""
    row = {"run": run, "data": data, "test_clips": clips, "target": target,
           "command": f"python -m benchmarks.bench_training --only '{run}' --seeds 0 1 2",
           "seeds": [{"seed": seed} for seed in range(3)]}
    row.update({key: {"mean": mean, "std": std} for key, (mean, std) in numbers.items()})
    return row


def generalization_result() -> dict:
    """bench_generalization's four parts over 3 seeds, summarised by its own functions."""
    from benchmarks import bench_generalization as g
    from benchmarks.runs import spread

    seeds = [0, 1, 2]
    folds = [{"speaker": speaker, "seed": seed, "test_clips": 500,
              "test_accuracy": 0.99 - 0.01 * i - 0.001 * seed}
             for i, speaker in enumerate(["george", "jackson", "lucas"]) for seed in seeds]
    digits = [{"seed": seed, "fsdd_clips": 3000, "fsdd_accuracy": 0.8 + 0.01 * seed} for seed in seeds]
    default = [{"seed": seed, "test_clips": 286, "noise_seconds": 200.0,
                "fsdd_predictions": {"_unknown_": 2580, "go": 420}} for seed in seeds]
    kws = [{"seed": seed, "noise_seconds": 200.0, "false_keywords_per_hour": 18.0 * seed,
            "digits": {"precision": 0.9, "recall": 0.96}} for seed in seeds]
    grid = g.conditions()
    measured = {"seeds": default, "test_accuracy": spread([0.95, 0.96, 0.97]),
                "fsdd_unknown_share": spread([0.86] * 3),
                "false_keywords_per_hour": spread([40.0, 50.0, 60.0]),
                "silence_share": {"digital silence": spread([0.0] * 3),
                                  "1 s of noise at -60 dBFS": spread([0.5] * 3)}}
    variant = {**copy.deepcopy(measured), "overrides": ["features.normalize=false"],
               "command": g.bench_command("ablation", seeds, ["--variant 'no CMVN'"]),
               "meta": {**meta_block(), "commit": "def5678"}}
    return with_meta({"targets": g.TARGETS, "parts": {
        "loso": {"recipes": {"fsdd/gru": {
            "recipe": "fsdd/gru", "overrides": [], "folds": folds,
            "command": g.bench_command("loso", seeds, ["--recipe", "fsdd/gru"]),
            **g.loso_summary(folds)}}},
        "ensemble": {"recipes": {"fsdd/gru": {
            "recipe": "fsdd/gru", "overrides": [], "loso_measured_at": "this run",
            "command": g.bench_command("ensemble", seeds, ["--recipe", "fsdd/gru"]),
            "folds": [{"speaker": speaker, "runs": ["a", "b", "c"], "seed_accuracy": [0.9] * 3,
                       "accuracy": accuracy}
                      for speaker, accuracy in [("george", 0.99), ("jackson", 0.93), ("lucas", 0.96)]],
            "mean": 0.96, "worst": {"speaker": "jackson", "accuracy": 0.93}}}},
        "synth2real": {"command": g.bench_command("synth2real", seeds),
                       "digits": {"recipe": "synthetic/digits", "seeds": digits,
                                  "fsdd_accuracy": spread(r["fsdd_accuracy"] for r in digits)}},
        "default": {"recipe": "synthetic/gru", "command": g.bench_command("default", seeds),
                    **measured},
        "ablation": {"variants": {"no CMVN": variant}},
        "noise": {"command": g.bench_command("noise", seeds), "threshold": 0.7, "tolerance_s": 0.5,
                  "recipe": "fsdd/kws", "digit_recording_seconds": 3600.0, "seeds": kws,
                  "false_keywords_per_hour": spread([0.0, 18.0, 36.0]),
                  "digit_recall": spread([0.96] * 3), "digit_precision": spread([0.9] * 3)},
        "channel": {"recipes": {"fsdd/gru": {
            "recipe": "fsdd/gru", "overrides": [], "test_clips": 300,
            "command": g.bench_command("channel", seeds, ["--recipe", "fsdd/gru"]),
            "band_hz": g.BAND_HZ, "narrow_rate": 8000, "room": g.ROOM,
            "seeds": [{"seed": seed} for seed in seeds],
            "conditions": [{**c, "name": g.condition_name(c),
                            "accuracy": spread([0.99 - 0.01 * i] * 3),
                            "drop_points": spread([1.0 * i] * 3)}
                           for i, c in enumerate(grid)]}}},
    }})


RESULTS = {
    "benchmarks/results/synth.json": with_meta({"rows": [
        {"set": "10 words x 200", "workers": 1, "clips": 2000, "seconds": 4.1,
         "clips_per_s": 487.8, "cpu_ms_per_clip": 1.6}]}),
    "benchmarks/results/data.json": with_meta({"batch_size": 64, "workers": 2, "rows": [
        {"set": "fsdd", "augment": False, "clips": 3000, "clips_per_s": 958.0,
         "peak_rss_mb_main": 740.0, "peak_rss_mb_worker": 300.0},
        {"set": "synthetic", "augment": False, "clips": 10000, "clips_per_s": 1201.0,
         "peak_rss_mb_main": 742.0, "peak_rss_mb_worker": 301.0}]}),
    "benchmarks/results/frontend.json": with_meta({"results": [
        {"name": name, "max_error_vs_float64": 1e-6, "p50_ms_per_clip_batch1": value,
         "p50_ms_per_clip_batch64": value / 2}
        for name, value in (("torchaudio MFCC (PyTorch)", 0.30), ("speechrnn MFCC (PyTorch)", 0.84))]}),
    "benchmarks/results/training.json": with_meta({"rows": [
        training_row("fsdd/gru", "FSDD official split", 300, {"accuracy": 0.995, "seconds": 300},
                     test_accuracy=(0.9967, 0.0019), train_seconds=(214.0, 3.0),
                     wall_seconds=(229.0, 3.0), train_clips_per_s=(343.0, 5.0), epochs=(30, 0)),
        training_row("fsdd/gru held-out george", "FSDD, one speaker held out", 500, None,
                     test_accuracy=(0.834, 0.02), train_seconds=(202.0, 4.0),
                     wall_seconds=(210.0, 4.0), train_clips_per_s=(336.0, 6.0), epochs=(30, 0))]}),
    "benchmarks/results/screen_default.jsonl": [
        {"name": "before", "overrides": [], "seed": 0, "val_accuracy": 0.871,
         "dev_unknown_share": 0.893, "meta": meta_block()},
        {"name": "mean only", "overrides": ["features.normalize_variance=false"], "seed": 0,
         "val_accuracy": 0.886, "dev_unknown_share": 0.97,
         "dev_noise": {"noise_seconds": 199.7, "false_keywords": 2,
                       "silence_share": {"digital silence": 1.0, "a click": 0.25}},
         "meta": {**meta_block(), "commit": "def5678"}}],
    "benchmarks/results/screen_speakers.jsonl": [
        {"name": name, "recipe": recipe, "overrides": overrides, "seed": 0,
         "folds": [{"speaker": speaker, "val_accuracy": 0.99, "held_out_accuracy": accuracy}
                   for speaker, accuracy in zip(("jackson", "nicolas", "theo"), held_out)],
         "held_out_mean": sum(held_out) / 3, "held_out_worst": min(held_out),
         **({"held_out_band_mean": 0.8} if recipe == "fsdd/mixed" else {}),
         "meta": {**meta_block(), "commit": commit}}
        for name, recipe, overrides, held_out, commit in (
            ("as shipped", "fsdd/gru", [], (0.9, 0.8, 0.85), "abc1234"),
            ("mixed", "fsdd/mixed", ["features.normalize=true"], (0.97, 0.92, 0.99), "def5678"))],
    "docs/compare_cells/results.json": {
        "results": [{"dataset": "fsdd", "sizing": "equal hidden", "cell": cell, "hidden": 64,
                     "train_clips_s": {"median": value}}
                    for cell, value in (("rnn", 1413.0), ("lstm", 1309.0), ("gru", 746.0))],
        "threads": {"1": {"median": 356.0}}, "load_average": [7.9, 7.9]},
    "benchmarks/results/pipeline.json": with_meta({"corpus": "sc35", "clips_per_word": 3000, "rows": [
        {"setup": name, "train_clips": clips, "batch_size": 64, "workers": 2, "torch_threads": 2,
         "rounds": 3, "batches_per_round": 100, "efficiency": efficiency,
         "real_clips_per_s": [real - 10, real, real + 10], "memory_clips_per_s": [700.0, 710.0, 720.0],
         "setup_seconds": {"cold_cache": 41.0, "warm_cache": 3.0},
         "epoch_seconds": {"cold_cache": 180.0, "warm_cache": 120.0},
         "epoch_clips_per_s": {"cold_cache": 470.0, "warm_cache": 700.0},
         "peak_rss_mb": {"main": 1250.0, "largest_worker": 640.0}, "decode_cache_mb": 3300.0,
         "ms_a_clip": {"decode the file": 0.39, "read the cache": 0.04, "augment: Speed": 0.8,
                       "collate": 0.2, "model step": 4.4}}
        for name, clips, efficiency, real in (("synthetic/gru, 35 words", 84000, 0.93, 660.0),
                                              ("fsdd/gru", 2437, 0.71, 505.0))]}),
    "benchmarks/results/ddp.json": with_meta({"recipe": "fsdd/gru", "global_batch": 64, "rows": [
        {"processes": processes, "batch_per_process": 64 // processes,
         "seeds": [{"seed": seed} for seed in range(3)],
         "test_accuracy": {"mean": accuracy, "std": 0.003},
         "train_clips_per_s": {"mean": clips, "std": 4.0}, "wall_seconds": {"mean": 240.0, "std": 5.0}}
        for processes, accuracy, clips in ((1, 0.9956, 350.0), (2, 0.9944, 420.0))]}),
    "benchmarks/results/inference.json": inference_result(),
    "benchmarks/results/generalization.json": generalization_result(),
    "benchmarks/results/stream.json": with_meta({
        "recording_seconds": 3600.0, "keywords": 1846, "tolerance_s": 0.5,
        "default_threshold": 0.7, "live_block_s": 0.02, "timing": True,
        "targets": {"x_real_time_one_thread": 1000.0, "median_latency_s": 0.3},
        "command": "python -m benchmarks.bench_stream --seeds 0",
        "runs": [{"kind": kind, "seed": 0,
                  "scores": [{"threshold": t, "precision": 0.9 + t / 20, "recall": 0.95}
                             for t in (0.5, 0.7, 0.9)],
                  "latency_s": {"median": 0.2 if kind == "stream" else 1.2, "p90": 1.5},
                  "noise": {"false_keywords_per_hour": 3.0}, "x_real_time_one_thread": 1500.0}
                 for kind in ("stream", "windows")]}),
}


def write_results(root: Path, results: dict) -> Path:
    for relative, result in results.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in result))
        else:
            path.write_text(json.dumps(result))
    return root


def sections(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in report.SECTION.finditer(text)}


@pytest.mark.parametrize("path", report.DOCUMENTS, ids=lambda path: path.name)
def test_documents_are_what_the_committed_results_generate(path):
    text = path.read_text()
    assert report.update(text) == text, (
        f"{path.name} differs from benchmarks/results/*.json: run python -m benchmarks.report "
        "(never type a measured number into a generated section)")


def test_the_documents_hold_every_section_once():
    names = [m["name"] for m in report.SECTION.finditer(documents())]
    assert sorted(names) == sorted(report.SECTIONS)


def test_every_section_renders_from_its_results(tmp_path):
    root = write_results(tmp_path, RESULTS)
    rendered = sections(report.update(documents(), root))
    for name, body in rendered.items():
        assert "Not measured" not in body, name
    assert "1.00 ms" in rendered["inference"]  # ONNX fp32, batch 1 p50 of the LSTM fixture
    assert "99.67 % ± 0.19 (3 seeds, 300 clips)" in rendered["training"]
    # The fixture measures two of bench_training's recipes: the README names the others.
    assert "No row at this commit for `fsdd/lstm`, `fsdd/rnn`, `fsdd/kws`" in rendered["training"]
    assert "99.5 % in < 5 min: met" in rendered["training"]
    assert "| synthetic/gru, 35 words | 84,000 | **0.93** (target 0.9: met) | 660 / 710 |" in rendered["pipeline"]
    assert "**0.71** (target 0.9: missed)" in rendered["pipeline"]
    assert ("- fsdd/gru: decode the file 0.39, read the cache 0.04, augment: Speed 0.80, collate "
            "0.20, model step 4.40") in rendered["pipeline"]
    assert "Rows from an earlier run" not in rendered["pipeline"]
    assert "| 2 | 32 | 99.44 % ± 0.30 | 420 ± 4 | 240 s |" in rendered["ddp"]
    assert "Two processes train at 1.20x the clips/s of one" in rendered["ddp"]


# (file, keys into its JSON, new value, text the README must then hold, section)
CHANGES = [
    ("benchmarks/results/inference.json", ["models", 0, "rows", 4, "batch1_p50_ms"], 1.37,
     "1.37 ms", "inference"),
    ("benchmarks/results/inference.json", ["predict", "runs", 0, "files_per_s"], 777.0,
     "(777-930)", "inference"),
    ("benchmarks/results/inference.json", ["long_recording", "peak_rss_mb", "predict, one 1 s clip"],
     78.0, "78 MB", "memory"),
    ("benchmarks/results/inference.json", ["long_recording", "detect", 1, "score", "recall"],
     0.321, "0.321", "detection"),
    ("benchmarks/results/training.json", ["rows", 0, "test_accuracy", "mean"], 0.99, "99.00 % ±",
     "training"),
    ("benchmarks/results/training.json", ["rows", 0, "test_accuracy", "std"], 0.0123, "± 1.23",
     "training"),
    ("benchmarks/results/frontend.json", ["results", 0, "p50_ms_per_clip_batch1"], 0.37,
     "0.37 ms", "frontend"),
    ("benchmarks/results/data.json", ["rows", 0, "clips_per_s"], 555.0, "555", "data"),
    ("benchmarks/results/synth.json", ["rows", 0, "seconds"], 9.9, "9.9 s", "synth"),
    ("docs/compare_cells/results.json", ["results", 2, "train_clips_s", "median"], 2000.0,
     "GRU 2,000", "cells"),
    ("benchmarks/results/generalization.json", ["parts", "loso", "recipes", "fsdd/gru",
                                                "worst", "mean"], 0.812,
     "81.2 %", "generalization"),
    ("benchmarks/results/generalization.json", ["parts", "synth2real", "digits", "fsdd_accuracy",
                                                "mean"], 0.923, "92.3 %", "generalization"),
    ("benchmarks/results/generalization.json", ["parts", "noise", "false_keywords_per_hour",
                                                "mean"], 7.7, "7.7 ±", "generalization"),
    ("benchmarks/results/generalization.json", ["parts", "default", "fsdd_unknown_share", "mean"],
     0.975, "97.5 %", "generalization"),
    ("benchmarks/results/generalization.json", ["parts", "channel", "recipes", "fsdd/gru",
                                                "conditions", 5, "drop_points", "mean"], 4.4,
     "(-4.4)", "generalization"),
    ("benchmarks/results/generalization.json", ["parts", "ablation", "variants", "no CMVN",
                                                "fsdd_unknown_share", "mean"], 0.913, "91.3 %",
     "ablation"),
    ("benchmarks/results/generalization.json", ["parts", "default", "test_accuracy", "mean"],
     0.943, "94.3 %", "ablation"),
    ("benchmarks/results/screen_default.jsonl", [1, "dev_unknown_share"], 0.512, "51.2 %",
     "screening"),
    ("benchmarks/results/screen_speakers.jsonl", [1, "folds", 1, "held_out_accuracy"], 0.444,
     "44.4 %", "speaker_screening"),
    ("benchmarks/results/screen_speakers.jsonl", [1, "held_out_band_mean"], 0.677, "67.7 %",
     "speaker_screening"),
    ("benchmarks/results/stream.json", ["runs", 0, "latency_s", "median"], 0.287, "0.287 (",
     "stream"),
    ("benchmarks/results/stream.json", ["runs", 0, "latency_s"],  # a smoke model hits nothing
     {"median": None, "p90": None, "hits": 0}, "| none (no hit) (none (no hit)) |", "stream"),
    ("benchmarks/results/stream.json", ["runs", 1, "scores", 1, "recall"], 0.912, "0.935 / 0.912",
     "stream"),
    ("benchmarks/results/stream.json", ["runs", 0, "overrides"], ["stream.peak_seconds=0.05"],
     "one state stream.peak_seconds=0.05`", "stream"),
]


@pytest.mark.parametrize("source, keys, value, expected, section", CHANGES,
                         ids=[f"{c[4]}-{c[1][-1]}" for c in CHANGES])
def test_a_changed_result_changes_the_readme(tmp_path, source, keys, value, expected, section):
    before = sections(report.update(documents(), write_results(tmp_path / "a", RESULTS)))
    changed = copy.deepcopy(RESULTS)
    node = changed[source]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    after = sections(report.update(documents(), write_results(tmp_path / "b", changed)))
    assert after[section] != before[section]
    assert expected in after[section] and expected not in before[section]


def test_the_ablation_table_names_each_variant_and_the_commit_it_was_measured_at(tmp_path):
    table = sections(report.update(documents(), write_results(tmp_path, RESULTS)))["ablation"]
    shipped, variant = [line for line in table.splitlines() if line.startswith("| the recipe")
                        or line.startswith("| no CMVN")]
    assert shipped.endswith("`abc1234` |")  # the file's run
    assert "`features.normalize=false`" in variant and variant.endswith("`def5678` |")


def test_the_ablation_table_gives_a_command_shared_by_rows_once(tmp_path):
    results = copy.deepcopy(RESULTS)
    parts = results["benchmarks/results/generalization.json"]["parts"]
    parts["ablation"]["variants"]["before"] = {**copy.deepcopy(parts["default"]),
                                               "meta": {**meta_block(), "commit": "0ld0ld0"}}
    table = sections(report.update(documents(), write_results(tmp_path, results)))["ablation"]
    assert table.count(f"`{parts['default']['command']}`") == 1
    assert "`0ld0ld0` |" in table


def test_the_screening_table_has_a_row_per_screen_in_order_with_its_commit(tmp_path):
    table = sections(report.update(documents(), write_results(tmp_path, RESULTS)))["screening"]
    before, mean_only = [line for line in table.splitlines() if line.startswith("| before")
                         or line.startswith("| mean only")]
    assert table.index("| before") < table.index("| mean only")
    assert "`features.normalize_variance=false` | 88.6 % | 97.0 % | 2 in 3.3 min | 100.0 % | " \
           "25.0 % | `def5678` |" in mean_only
    assert before.endswith("not measured | `abc1234` |")  # screened before dev_noise existed


def test_the_speaker_screening_table_has_each_held_out_speaker_in_its_column(tmp_path):
    table = sections(report.update(documents(), write_results(tmp_path, RESULTS)))[
        "speaker_screening"]
    assert table.splitlines()[0].startswith("| variant | `jackson` held out | `nicolas` held out "
                                            "| `theo` held out | mean |")
    assert table.index("(as shipped)") < table.index("(mixed)")
    assert ("| `fsdd/mixed` `features.normalize=true` (mixed) | 97.0 % | 92.0 % | 99.0 % | "
            "96.0 % | 80.0 % | 99.0 % | `def5678` |") in table
    assert "| 85.0 % | not measured | 99.0 % | `abc1234` |" in table  # a row from before the band


def test_a_missed_target_is_reported_as_missed(tmp_path):
    rendered = sections(report.update(documents(), write_results(tmp_path, RESULTS)))
    # The fixture's ONNX fp32 is 3x the baseline (< 4x), int8 1.2x fp32 at batch 64 (< 1.5x).
    assert "fp32 vs the PyTorch baseline, 4x: missed" in rendered["inference"]
    assert "int8 GRU, 1.5x: missed" in rendered["inference"]
    fast = copy.deepcopy(RESULTS)
    for model in fast["benchmarks/results/inference.json"]["models"]:
        model["rows"][4]["batch1_p50_ms"] = model["rows"][0]["batch1_p50_ms"] / 5
        model["rows"][5]["batch1_p50_ms"] = model["rows"][4]["batch1_p50_ms"] / 2
        model["rows"][5]["batch64_clips_per_s"] = 2 * model["rows"][4]["batch64_clips_per_s"]
    rendered = sections(report.update(documents(), write_results(tmp_path / "fast", fast)))
    assert "Every target above is met." in rendered["inference"]


def test_a_missing_result_says_not_measured(tmp_path):
    rendered = sections(report.update(documents(), tmp_path))
    for name, body in rendered.items():
        assert body.startswith("*Not measured yet"), name
    assert "make bench" in rendered["inference"]
    assert "run `python -m benchmarks.bench_generalization`" in rendered["generalization"]


def test_generalization_section_reads_targets_and_keeps_earlier_parts(tmp_path):
    rendered = sections(report.update(documents(), write_results(tmp_path, RESULTS)))
    body = rendered["generalization"]
    # Fixture: LOSO mean 97.9 % (>= 95 %), worst lucas 96.9 %; synthetic/digits 81 % (< 90 %).
    assert "mean over the 3 folds 97.9 % ± 0.1 (target 95 %: met)" in body
    assert "worst speaker `lucas` 96.9 % ± 0.1 (target 90 %: met)" in body
    assert "81.0 % ± 1.0 (target 90 %: missed)" in body
    assert ("18.0 ± 18.0 false keywords per hour of held-out real noise (3.3 min; target <= 2: missed)"
            in body)
    assert "precision 0.900, recall 0.960 ± 0.000 (target 0.95: met)" in body
    assert "96.0 % ± 1.0 on its synthetic test split (286 clips)" in body
    assert "calls 86.0 % ± 0.0 of the 3,000 real FSDD clips `_unknown_` (target 97 %: missed)" in body
    assert "Largest drop: through 8 kHz, 0 dBFS peak, room, 23.0 points" in body
    assert ("one accuracy a fold): mean over the 3 folds 96.0 % (target 95 %: met), worst "
            "speaker `jackson` 93.0 % (target 90 %: met)") in body
    assert "| `fsdd/gru` | 99.0 % | 93.0 % | 96.0 % |" in body
    assert "Not measured at this commit" not in body
    partial = copy.deepcopy(RESULTS)
    result = partial["benchmarks/results/generalization.json"]
    del result["parts"]["noise"]
    gru = result["parts"]["loso"]["recipes"]["fsdd/gru"]
    gru["meta"] = {**meta_block(), "date": "2029-05-06", "commit": "0ld0ld0"}
    mixed = {**copy.deepcopy(gru), "recipe": "fsdd/mixed", "command": "mixed command"}
    del mixed["meta"]
    mixed["per_speaker"]["george"] = runs.spread([0.5] * 3)
    result["parts"]["loso"]["recipes"]["fsdd/mixed"] = mixed
    body = sections(report.update(documents(), write_results(tmp_path / "p", partial)))[
        "generalization"]
    assert "Not measured at this commit: `noise`" in body
    assert "Parts from an earlier run: `loso fsdd/gru` 2029-05-06 at `0ld0ld0`." in body
    assert "**Leave one speaker out** (`fsdd/mixed`, 3 seeds)" in body
    assert "`mixed command`" in body
    rows = [line for line in body.splitlines() if line.startswith("| `fsdd/") and "±" in line]
    assert [row.split(" | ")[0] for row in rows] == ["| `fsdd/gru`", "| `fsdd/mixed`"]
    assert rows[1].split(" | ")[1] == "50.0 % ± 0.0"  # george's column


def test_each_channel_row_has_its_sentence_and_table(tmp_path):
    results = copy.deepcopy(RESULTS)
    recipes = results["benchmarks/results/generalization.json"]["parts"]["channel"]["recipes"]
    lever = copy.deepcopy(recipes["fsdd/gru"])
    lever["overrides"] = ["augment.reverb_prob=0.3"]
    lever["conditions"][5]["drop_points"] = runs.spread([1.5] * 3)
    recipes["fsdd/gru augment.reverb_prob=0.3"] = lever
    body = sections(report.update(documents(), write_results(tmp_path, results)))["generalization"]
    assert "**Channel** (`fsdd/gru`, official split" in body
    assert "**Channel** (`fsdd/gru augment.reverb_prob=0.3`, official split" in body
    assert body.count("| channel | as recorded |") == 2
    assert "(-5.0)" in body and "(-1.5)" in body
    assert ("`python -m benchmarks.bench_generalization --only channel --seeds 0 1 2 --recipe "
            "fsdd/gru`") in body


def test_a_pipeline_row_from_an_earlier_run_names_its_run(tmp_path):
    results = copy.deepcopy(RESULTS)
    rows = results["benchmarks/results/pipeline.json"]["rows"]
    rows[1]["meta"] = {**meta_block(), "date": "2029-05-06", "commit": "0ld0ld0"}
    body = sections(report.update(documents(), write_results(tmp_path, results)))["pipeline"]
    assert "* Rows from an earlier run: `fsdd/gru` 2029-05-06 at `0ld0ld0`." in body


def test_quick_results_never_feed_the_readme(tmp_path):
    quick = {"benchmarks/results/inference_quick.json": {**inference_result(), "quick": True}}
    rendered = sections(report.update(documents(), write_results(tmp_path, quick)))
    assert rendered["inference"].startswith("*Not measured yet")
    flagged = {"benchmarks/results/inference.json": {**inference_result(), "quick": True}}
    with pytest.raises(SystemExit, match="quick"):
        report.update(documents(), write_results(tmp_path / "flagged", flagged))


def test_check_exits_1_until_the_readme_is_regenerated(tmp_path):
    root = write_results(tmp_path / "root", RESULTS)
    readme = tmp_path / "README.md"
    readme.write_text(report.update(documents(), root).replace("99.67 %", "99.9 %"))
    args = ["--readme", str(readme), "--root", str(root)]
    assert report.main(["--check", *args]) == 1
    assert report.main(args) == 0  # rewrites it
    assert report.main(["--check", *args]) == 0
    assert "99.67 %" in readme.read_text()


# A measured quantity in prose or a table: a number followed by one of these units.
MEASURED = re.compile(r"(?<![\w.])\d[\d,.]*\s*(ms|%|clips/s|files/s|MB|MiB|GB|x real time|"
                      r"x faster|x slower|points|min\b|s wall|GFLOP)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def test_no_measured_number_outside_the_generated_sections():
    outside = CODE_BLOCK.sub("", report.SECTION.sub("", README.read_text()))
    found = [m.group(0) for m in MEASURED.finditer(outside)]
    assert not found, f"measured numbers typed into README.md outside a generated section: {found}"


def test_the_machine_note_follows_the_measured_load():
    assert "nothing else ran" in fmt.conditions(meta_block(others=0.01))
    busy = fmt.conditions(meta_block(others=0.8))
    assert "shared machine" in busy and "0.80 cores" in busy


def test_meta_block_has_what_a_result_needs():
    block = meta.collect(meta.start(), threads={"torch": 1})
    for key in ("date", "commit", "dirty", "cpu_model", "cores", "threads", "load_average_start",
                "load_average_end", "other_processes_cores"):
        assert key in block, key
    assert set(block["versions"]) >= {"python", "torch", "torchaudio", "onnxruntime", "numpy",
                                      "librosa"}
    assert meta.result_path("inference", quick=True).name == "inference_quick.json"


@pytest.mark.parametrize("path", sorted(p for p in meta.RESULTS.glob("*.json")
                                        if not p.stem.endswith("_quick")), ids=lambda p: p.name)
def test_committed_results_are_full_runs_with_meta(path):
    result = json.loads(path.read_text())
    assert result["quick"] is False and "commit" in result["meta"]
