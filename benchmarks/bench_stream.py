"""Streaming that runs forever: an fsdd/kws_stream model's never-reset stream against fsdd/kws
on 1 s windows, on the hour of FSDD test digits and on the held-out real noise.

    .venv/bin/python -m benchmarks.bench_stream [--seeds 0 1 2] [--override KEY=VALUE ...]
        [--no-timing] [--validation] [--quick]

- Both recipes train on FSDD with the first half of each Speech Commands noise file
  (``split_noise``), into benchmarks/results/runs/stream/ (reused when finished there).
- The hour (benchmarks/long_recording.py: the FSDD test clips, the second noise halves in the
  gaps): precision and recall of `speechrnn detect` at each of ``THRESHOLDS``, the stream
  through its --streaming export (one state for the whole hour: the default for a model
  trained for streaming), the windows through fsdd/kws's plain export (the default hop).
- Latency, at the default threshold: the recording is fed ``LIVE_BLOCK`` seconds at a time, as
  a live source would; an event's latency is the audio read when detect gives it out less the
  end of the digit it hit (median and 90th percentile over the hits). Audio time, so the
  machine's load does not change it.
- False keywords per hour on the held-out noise halves (detect at its defaults), as
  benchmarks/bench_generalization.py's ``noise`` part counts them for fsdd/kws.
- Unless ``--no-timing``: detect's speed over the hour on one thread (onnxruntime
  intra-op threads 1, in this process), as x real time. Wall time: run it on a quiet machine.

``--override``s change the stream recipe (its runs train into folders named by them, the rows
record them): how a lever of fsdd/kws_stream is tried before it goes into the recipe.

Every choice (recipes, threshold, the stream's smoothing) was made before the test recording
was scored; nothing here is tuned on it. ``--validation`` scores the runs on a recording of the
FSDD validation split with the training noise instead, where detect's STREAM_SMOOTH and the
recipe's levers were chosen (benchmarks/results/stream_validation.json, which keeps the rows of
other overrides, each with the commit it was measured at). Writes benchmarks/results/stream.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks import meta, runs
from benchmarks.detection_eval import assemble, matches, score, split_noise
from benchmarks.long_recording import TOLERANCE_S, long_recordings
from speechrnn import checkpoint
from speechrnn.config import ExportConfig
from speechrnn.data import SILENCE, build_splits
from speechrnn.detect import Settings, detect, detect_stream
from speechrnn.export import export_run
from speechrnn.runtime import read_blocks

SHARED_DATA = meta.REPO.parent / "shared" / "data"
THRESHOLDS = (0.5, 0.7, 0.9)
SMOOTHING = (0.01, 0.02, 0.03, 0.05, 0.1)  # --validation: detect --smooth for the stream
LIVE_BLOCK = 0.02  # seconds a live source delivers at a time (latency resolution)
RECIPES = {"stream": "fsdd/kws_stream", "windows": "fsdd/kws"}
TARGETS = {"x_real_time_one_thread": 1000.0, "median_latency_s": 0.3}
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick


def live_events(model: Path, path: Path, settings: Settings) -> list[tuple[dict, float]]:
    """detect's events on ``path`` fed LIVE_BLOCK at a time, each with the seconds of audio
    read when it came out."""
    read = {"samples": 0, "rate": 1}

    def blocks_at(rate: int):
        read["rate"] = rate
        for block in read_blocks(path, rate, LIVE_BLOCK):
            read["samples"] += len(block)
            yield block

    return [(event.to_dict(), read["samples"] / read["rate"])
            for event in detect_stream(model, blocks_at, settings, threads=1)]


def latencies(timed: list[tuple[dict, float]], reference: list[dict]) -> list[float]:
    """Seconds from each hit digit's end to its event's coming out."""
    found = [event for event, _ in timed]
    return [timed[i][1] - reference[j]["end"] for i, j in matches(found, reference, TOLERANCE_S)]


def latency_summary(lags: list[float]) -> dict:
    """Median and 90th percentile of the lags (None without a hit, as a 2-epoch model may
    have) and how many there were."""
    return {"median": statistics.median(lags) if lags else None,
            "p90": float(np.percentile(lags, 90)) if lags else None, "hits": len(lags)}


def false_keywords(model: Path, noise: Path) -> dict:
    """Events of detect (default settings) over each held-out noise file, per hour."""
    count, seconds = 0, 0.0
    for path in sorted(noise.glob("*.wav")):
        count += len(list(detect(model, path, Settings(), threads=1)))
        seconds += sf.info(str(path)).duration
    return {"noise_seconds": seconds, "false_keywords": count,
            "false_keywords_per_hour": count / seconds * 3600}


def x_real_time(model: Path, path: Path, seconds: float) -> float:
    """Audio seconds per wall second of detect (default settings) on one thread."""
    start = time.perf_counter()
    for _ in detect(model, path, Settings(), threads=1):
        pass
    return seconds / (time.perf_counter() - start)


def measure(name: str, model: Path, hour: dict, held_out: Path, timing: bool) -> dict:
    print(f"{name}: {model}", flush=True)
    default = Settings()
    timed = live_events(model, hour["path"], default)
    scores = {default.threshold: score([e for e, _ in timed], hour["reference"], TOLERANCE_S)}
    for threshold in THRESHOLDS:
        if threshold not in scores:
            events = detect(model, hour["path"], Settings(threshold=threshold), threads=1)
            scores[threshold] = score(events, hour["reference"], TOLERANCE_S)
    lags = latencies(timed, hour["reference"])
    result = {
        "scores": [{"threshold": t, **scores[t]} for t in sorted(scores)],
        "latency_s": latency_summary(lags),
        "noise": false_keywords(model, held_out),
    }
    if timing:
        result["x_real_time_one_thread"] = x_real_time(model, hour["path"], hour["seconds"])
    return result


def validation(trained: dict, fsdd: Path, noise: Path, folder: Path) -> list[dict]:
    """The FSDD validation split's digits (the clips the runs chose their epoch on) with the
    training noise between them: precision, recall and latency of the stream at each of
    ``SMOOTHING`` and of the windows at their defaults, at the default threshold. Where
    detect's STREAM_SMOOTH was chosen: the smoothing of the highest F1."""
    cfg = checkpoint.load_model(next(iter(trained.values()))["run_dir"])[1]
    clips = [(c.path, c.label) for c in build_splits(cfg.data).val if c.label != SILENCE]
    path = folder / "validation.wav"
    reference = assemble(path, clips, sorted(noise.glob("*.wav")), seed=7)
    rows = []
    for (kind, seed), run in trained.items():
        model = export_run(run["run_dir"], ExportConfig(streaming=kind == "stream"),
                           folder / f"val_{kind}{seed}.onnx")
        for smooth in SMOOTHING if kind == "stream" else (None,):
            timed = live_events(model, path, Settings(smooth=smooth))
            lags = latencies(timed, reference)
            rows.append({"kind": kind, "seed": seed, "overrides": run["overrides"],
                         "smooth": smooth, **score([e for e, _ in timed], reference, TOLERANCE_S),
                         "median_latency_s": latency_summary(lags)["median"]})
            print(rows[-1], flush=True)
    return rows


def kept_rows(measured: list[dict], quick: bool) -> list[dict]:
    """The rows of stream_validation.json that this run did not measure again: those of the
    stream with other overrides."""
    path = meta.result_path("stream_validation", quick)
    if not path.is_file():
        return []
    again = {(row["kind"], tuple(row["overrides"])) for row in measured}
    return [row for row in json.loads(path.read_text())["rows"]
            if (row["kind"], tuple(row.get("overrides", []))) not in again]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd-root", type=Path, default=SHARED_DATA / "fsdd" / "recordings")
    parser.add_argument("--noise-root", type=Path, default=SHARED_DATA / "speech_commands_noise")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--no-timing", dest="timing", action="store_false",
                        help="skip the one-thread speed (for a busy machine)")
    parser.add_argument("--validation", action="store_true",
                        help="score on a recording of the validation split instead (the choice "
                        "of STREAM_SMOOTH); writes stream_validation.json")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of the stream recipe (repeatable)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers not meaningful)")
    args = parser.parse_args(argv)
    train_noise, held_out = split_noise(args.noise_root, meta.RESULTS / "noise_halves")
    trained = {}
    for kind, recipe in RECIPES.items():
        for seed in args.seeds:
            levers = args.override if kind == "stream" else []
            folder = runs.run_dir(" ".join([recipe, *levers]), seed, args.quick, group="stream")
            overrides = [f"recipe={recipe}", f"data.root={args.fsdd_root}",
                         f"data.noise_dir={train_noise}", *levers,
                         *(["trainer.epochs=2"] if args.quick else [])]
            if (folder / "summary.json").is_file():
                trained[kind, seed] = {"summary": json.loads((folder / "summary.json").read_text()),
                                       "command": "speechrnn train " + " ".join(
                                           [*overrides, f"trainer.seed={seed}"])}
            else:
                trained[kind, seed] = runs.train(overrides, seed, folder)
            trained[kind, seed].update(run_dir=folder, overrides=levers)

    started = meta.start()  # training is not part of the measurement
    if args.validation:
        with tempfile.TemporaryDirectory() as tmp:
            rows = validation(trained, args.fsdd_root, train_noise, Path(tmp))
        commit = meta.collect(started, {})["commit"]
        rows = [{**row, "commit": commit} for row in rows]
        streams = [row for row in rows if row["kind"] == "stream"]
        best = max(streams, key=lambda r: 2 * r["hits"] / (r["events"] + r["reference"]))
        meta.write("stream_validation", {"smoothing": SMOOTHING, "chosen_smooth": best["smooth"],
                                         "rows": kept_rows(rows, args.quick) + rows}, started,
                   quick=args.quick, threads={"onnxruntime": 1})
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hour = long_recordings(args.fsdd_root, held_out, Path(tmp),
                               300.0 if args.quick else 3600.0)["hour"]
        for (kind, seed), run in trained.items():
            export = ExportConfig(streaming=kind == "stream")
            model = export_run(run["run_dir"], export, Path(tmp) / f"{kind}{seed}.onnx")
            rows.append({"kind": kind, "recipe": RECIPES[kind], "seed": seed,
                         "overrides": run["overrides"],
                         "command": run["command"], "test_accuracy": run["summary"]["test_accuracy"],
                         **measure(f"{kind} seed {seed}", model, hour, held_out, args.timing)})
    result = {
        "recording_seconds": hour["seconds"], "keywords": len(hour["reference"]),
        "tolerance_s": TOLERANCE_S, "default_threshold": Settings.threshold,
        "live_block_s": LIVE_BLOCK, "targets": TARGETS, "timing": args.timing,
        "command": "python -m benchmarks.bench_stream --seeds " + " ".join(map(str, args.seeds))
                   + "".join(f" --override {o}" for o in args.override)
                   + ("" if args.timing else " --no-timing"),
        "runs": rows,
    }
    meta.write("stream", result, started, quick=args.quick, threads={
        "onnxruntime": 1, "detect --threads": 1})
    return 0


if __name__ == "__main__":
    sys.exit(main())
