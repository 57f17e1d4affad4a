"""Inference speed and accuracy of one trained model run six ways, side by side; `speechrnn
predict` end to end; the memory of predict/detect on an hour-long recording.

    .venv/bin/python -m benchmarks.bench_inference [--run-dir NAME=DIR ...] [--fsdd-root DIR]
                                                   [--noise-root DIR] [--quick]

- Models: fsdd/gru and fsdd/lstm runs (both with mean pooling, so they differ only in the
  cell), and an fsdd/kws run (the keyword spotter, trained on the first half of each noise
  file) for the long recording (``--run-dir gru|lstm|kws=DIR``); by default trained once into
  benchmarks/results/runs/inference/ and reused after that.
- Six pipelines per model (``PIPELINES``), on one thread (torch.set_num_threads(1),
  onnxruntime intra_op_num_threads=1, numpy pools limited to 1): torchaudio's MFCC + the
  PyTorch model (what a PyTorch user runs: the baseline), speechrnn's model in PyTorch (its
  export-minded DFT-convolution frontend), librosa or torchaudio MFCC + the encoder exported
  alone to ONNX (two-stage pipelines), and the speechrnn ONNX export, fp32 and int8. Batch 1
  latency (p50/p95 over calls on distinct clips), batch 64 throughput, and end to end per
  file (decode the 8 kHz WAV, resample to 16 kHz with the pipeline's toolkit, infer). Every
  call of every pipeline is interleaved with the others', so load from other processes hits
  them alike. Accuracy of each on the run's FSDD test split (300 clips).
- `speechrnn predict --threads 1` over every FSDD file (3,000; decode + resample + infer),
  fp32 and int8 of both models, in ``PREDICT_ROUNDS`` rounds that alternate the order: files/s
  after start-up from its stderr summary line; the report gives the median and the spread.
- Peak RSS of `speechrnn predict` and `speechrnn detect` on a one-hour recording (see
  benchmarks/long_recording.py) and detect's precision/recall there.

About 10 minutes on 2 cores with the runs trained (training them: about 12 more). Prints the
README section and writes benchmarks/results/inference.json. ``--quick`` (a smoke run, to
inference_quick.json): few calls, 500 files, a five-minute recording, and the runs in
runs/inference/ if they are finished, else 2-epoch ones in runs/inference-quick/.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
from threadpoolctl import threadpool_limits

from benchmarks import meta
from benchmarks.commands import checked, cli, run_measured
from benchmarks.detection_eval import split_noise
from benchmarks.long_recording import bench_long
from benchmarks.peers import (EncoderHead, TorchaudioFeatures, export_encoder, librosa_features,
                              loaders)
from benchmarks.timing import interleaved, percentile_ms
from speechrnn import audio, checkpoint
from speechrnn.config import ExportConfig
from speechrnn.data import build_splits
from speechrnn.export import export_run
from speechrnn.runtime import open_model

SHARED_DATA = meta.REPO.parent / "shared" / "data"
RUNS = meta.RESULTS / "runs"
CELLS = ("gru", "lstm")
# Both models pool with the mean over frames, so they differ only in the cell (the fsdd/gru
# recipe itself pools with attention). Everything else is the recipe's.
TRAIN_OVERRIDES = ["model.pooling=mean"]
KWS = "kws"  # the fsdd/kws recipe as it is: the keyword spotter for the long recording
TARGETS = {"onnx_fp32_vs_baseline_batch1": 4.0, "int8_vs_fp32": 1.5,
           "int8_accuracy_loss_points": 0.5, "predict_files_per_s": 500.0}
# id -> (what it is, the toolkit that decodes and resamples a file for it end to end).
PIPELINES = {
    "torchaudio_pytorch": ("torchaudio MFCC + PyTorch model", "torchaudio"),
    "ours_pytorch": ("speechrnn model in PyTorch (DFT-conv frontend)", "speechrnn"),
    "librosa_ort": ("librosa MFCC + ONNX encoder", "librosa"),
    "torchaudio_ort": ("torchaudio MFCC + ONNX encoder", "torchaudio"),
    "onnx_fp32": ("speechrnn ONNX fp32", "speechrnn"),
    "onnx_int8": ("speechrnn ONNX int8", "speechrnn"),
}
BASELINE = "torchaudio_pytorch"
PREDICT_ROUNDS = 3
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick
SUMMARY = re.compile(r"speechrnn predict: (\d+) files in ([\d.]+) s \((\d+) files/s\)")
# torchaudio's features against the model's own frontend: float32 rounding, nothing more.
FEATURE_PARITY = 1e-3


# --------------------------------------------------------------------------- models

def ensure_run(recipe: str, run_dir: Path, fsdd: Path, quick: bool, overrides: list[str]
               ) -> Path:
    """A finished fsdd/<recipe> run in ``run_dir``, trained now if it is not there."""
    if (run_dir / "summary.json").is_file():
        return run_dir
    command = [sys.executable, "-m", "speechrnn", "train", f"recipe=fsdd/{recipe}",
               f"data.root={fsdd}", f"hydra.run.dir={run_dir}", "trainer.progress=false",
               "trainer.overwrite=true",  # what an interrupted attempt left there
               *overrides, *(["trainer.epochs=2"] if quick else [])]
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return run_dir


def default_run(recipe: str, fsdd: Path, quick: bool, overrides: list[str]) -> Path:
    """runs/inference/fsdd_<recipe>, trained if missing; a quick run uses it when it is there,
    else a 2-epoch run in runs/inference-quick/."""
    full = RUNS / "inference" / f"fsdd_{recipe}"
    if quick and not (full / "summary.json").is_file():
        return ensure_run(recipe, RUNS / "inference-quick" / f"fsdd_{recipe}", fsdd, True,
                          overrides)
    return ensure_run(recipe, full, fsdd, False, overrides)


def one_thread_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_torch(module: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def run(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(wave)).numpy()
    return run


def pipelines(run_dir: Path, folder: Path) -> tuple[dict[str, Callable], dict]:
    """id -> clips [B, S] -> logits [B, labels], for each of PIPELINES on one trained model."""
    model, cfg, _ = checkpoint.load_model(run_dir)
    model.eval()
    rate = cfg.data.sample_rate
    fp32 = export_run(run_dir, ExportConfig(), folder / "fp32.onnx")
    int8 = export_run(run_dir, ExportConfig(quantize="int8"), folder / "int8.onnx")
    clip = round(cfg.data.clip_seconds * rate)
    encoder = one_thread_session(export_encoder(model, model.frontend.num_frames(clip),
                                                folder / "encoder.onnx"))
    ta_features = TorchaudioFeatures(cfg.features, rate).eval()
    lr_features = librosa_features(cfg.features, rate)
    sessions = {name: open_model(path, threads=1)[0] for name, path in
                (("fp32", fp32), ("int8", int8))}

    def ta_numpy(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return ta_features(torch.from_numpy(wave)).numpy()

    fns = {
        "torchaudio_pytorch": in_torch(torch.nn.Sequential(ta_features, EncoderHead(model))),
        "ours_pytorch": in_torch(model),
        "librosa_ort": lambda wave: encoder.run(["logits"], {"features": lr_features(wave)})[0],
        "torchaudio_ort": lambda wave: encoder.run(["logits"], {"features": ta_numpy(wave)})[0],
        "onnx_fp32": lambda wave: sessions["fp32"].run(["logits"], {"audio": wave})[0],
        "onnx_int8": lambda wave: sessions["int8"].run(["logits"], {"audio": wave})[0],
    }
    info = {"labels": list(model.labels), "cfg": cfg, "fp32": fp32, "clip_samples": clip,
            "sizes_mb": {"fp32": fp32.stat().st_size / 1e6, "int8": int8.stat().st_size / 1e6},
            "features": lambda wave: (ta_numpy(wave), in_torch(model.frontend)(wave))}
    return fns, info


# --------------------------------------------------------------------------- measurements

def test_split(cfg, labels: list[str]) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """The run's test files, their clips as the runtime prepares them, and label indices."""
    clips = build_splits(cfg.data).test
    clip_samples = round(cfg.data.clip_seconds * cfg.data.sample_rate)
    waves = np.stack([audio.load(c.path, cfg.data.sample_rate, clip_samples) for c in clips])
    return [Path(c.path) for c in clips], waves, np.array([labels.index(c.label) for c in clips])


RECURRENT_OPS = ("GRU", "LSTM", "RNN")


def kernel_ms(model: Path, batches: list[np.ndarray]) -> dict[str, float]:
    """Where one batch-1 call of an ONNX model spends its time, from onnxruntime's own profile
    (one thread): ms per call in the recurrent kernels, the frontend's DFT convolution and
    every other kernel."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            session.run(["logits"], {"audio": batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    spent = {"recurrent": 0.0, "dft_conv": 0.0, "other": 0.0}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            key = "recurrent" if op in RECURRENT_OPS else "dft_conv" if op == "Conv" else "other"
            spent[key] += event["dur"] / 1000 / len(batches)
    return spent


def feature_parity(info: dict, waves: np.ndarray) -> float:
    """max |torchaudio features - the model's frontend| / max |frontend| on the test clips;
    stops the benchmark when the baseline would not compute the model's features."""
    theirs, ours = info["features"](waves)
    error = float(np.abs(theirs - ours).max() / np.abs(ours).max())
    if error > FEATURE_PARITY:
        raise SystemExit(f"torchaudio's MFCC differs from the model's frontend by {error:.1e} "
                         f"(> {FEATURE_PARITY}): the baseline would not run the same model")
    return error


def bench_model(cell: str, run_dir: Path, calls: int, batch_calls: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        fns, info = pipelines(run_dir, Path(tmp))
        paths, waves, targets = test_split(info["cfg"], info["labels"])
        parity = feature_parity(info, waves)
        singles = [waves[i : i + 1] for i in range(len(waves))]
        single = interleaved(fns, singles, calls)
        large = interleaved(fns, [waves[:64]], batch_calls)
        load = loaders(info["cfg"].data.sample_rate, info["clip_samples"])
        end_to_end = interleaved({name: (lambda path, fn=fn, name=name:
                                         fn(load[PIPELINES[name][1]](path)))
                                  for name, fn in fns.items()}, paths, calls)
        logits = {name: fn(waves) for name, fn in fns.items()}
        kernels = kernel_ms(info["fp32"], singles[:calls])
    rows = [{
        "pipeline": name,
        "label": PIPELINES[name][0],
        "loader": PIPELINES[name][1],
        "batch1_p50_ms": percentile_ms(single[name], 50),
        "batch1_p95_ms": percentile_ms(single[name], 95),
        "batch64_clips_per_s": 64 / statistics.median(large[name]),
        "end_to_end_p50_ms": percentile_ms(end_to_end[name], 50),
        "end_to_end_p95_ms": percentile_ms(end_to_end[name], 95),
        "accuracy": float((logits[name].argmax(1) == targets).mean()),
        "max_abs_logit_diff_vs_ours_pytorch":
            float(np.abs(logits[name] - logits["ours_pytorch"]).max()),
    } for name in fns]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "cell": cell, "run_dir": meta.relative(run_dir), "test_clips": len(waves),
        "training": {key: summary[key] for key in
                     ("test_accuracy", "epochs", "train_seconds", "train_clips_per_s")},
        "calls": {"batch1": calls, "batch64": batch_calls, "end_to_end": calls},
        "torchaudio_feature_error": parity,
        "model_mb": info["sizes_mb"], "rows": rows,
        # Where a batch-1 fp32 call spends its time, against the 4x target's budget.
        "onnx_fp32_kernel_ms_batch1": kernels,
    }


def bench_predict(name: str, model: Path, files: list[Path]) -> dict:
    """`speechrnn predict --threads 1` over ``files``: files/s after start-up as the command
    reports it, and the wall time with start-up."""
    whole_folder = files == sorted(files[0].parent.glob("*.wav"))
    # The folder as a user would pass it, or the files (a few hundred: a short command line).
    listed = [files[0].parent] if whole_folder else files
    result = checked("speechrnn predict", run_measured(
        cli("predict", model, *listed, "--format", "csv", "--threads", 1)))
    match = SUMMARY.search(result["stderr"])
    if match is None:
        raise SystemExit(f"speechrnn predict printed no summary:\n{result['stderr'][-2000:]}")
    return {"model": name, "files": int(match[1]), "seconds_after_startup": float(match[2]),
            "files_per_s": int(match[1]) / float(match[2]), "wall_s_with_startup": result["wall_s"],
            "peak_rss_mb": result["peak_rss_mb"]}


def predict_rounds(models: dict[str, Path], files: list[Path], rounds: int) -> list[dict]:
    """``rounds`` of `speechrnn predict` over every model, each round in the order of the last
    rotated by one (fp32 and int8 of one cell in turn, then the other cell), so that no model
    always runs first or after the same one."""
    names, runs = list(models), []
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            print(f"speechrnn predict --threads 1, {len(files)} files, {name} (round {r + 1}) ...",
                  flush=True)
            runs.append({"round": r + 1, **bench_predict(name, models[name], files)})
    return runs


def parse_run_dirs(values: list[str]) -> dict[str, Path]:
    dirs = {}
    for value in values:
        cell, _, folder = value.partition("=")
        if cell not in (*CELLS, KWS) or not folder:
            raise SystemExit(f"--run-dir {value!r}: use NAME=DIR with NAME one of "
                             f"{[*CELLS, KWS]}")
        dirs[cell] = Path(folder)
    return dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", action="append", default=[], metavar="NAME=DIR",
                        help="a finished fsdd/gru, fsdd/lstm or fsdd/kws run to use (gru=DIR, "
                        "lstm=DIR, kws=DIR)")
    parser.add_argument("--fsdd-root", type=Path, default=SHARED_DATA / "fsdd" / "recordings")
    parser.add_argument("--noise-root", type=Path, default=SHARED_DATA / "speech_commands_noise")
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers not meaningful)")
    args = parser.parse_args(argv)
    for folder in (args.fsdd_root, args.noise_root):
        if not folder.is_dir():
            raise SystemExit(f"{folder} not found; pass --fsdd-root / --noise-root")

    given = parse_run_dirs(args.run_dir)
    run_dirs = {cell: given.get(cell) or default_run(cell, args.fsdd_root, args.quick,
                                                     TRAIN_OVERRIDES) for cell in CELLS}
    train_noise, held_out_noise = split_noise(args.noise_root, meta.RESULTS / "noise_halves")
    kws_run = given.get(KWS) or default_run(KWS, args.fsdd_root, args.quick,
                                            [f"data.noise_dir={train_noise}"])

    started = meta.start()  # training the runs above is not part of the measurement
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and OpenMP pools, used by librosa
    calls, batch_calls = (30, 3) if args.quick else (300, 20)
    models = []
    for cell, run_dir in run_dirs.items():
        print(f"timing fsdd/{cell} ({run_dir}) ...", flush=True)
        models.append(bench_model(cell, run_dir, calls, batch_calls))

    files = sorted(args.fsdd_root.glob("*.wav"))
    if args.quick:
        files = files[:500]
    with tempfile.TemporaryDirectory() as tmp:
        exports = {f"fsdd/{cell} {q}": export_run(run_dir, ExportConfig(quantize=quantize),
                                                  Path(tmp) / f"fsdd_{cell}.{q}.onnx")
                   for cell, run_dir in run_dirs.items()
                   for q, quantize in (("fp32", "none"), ("int8", "int8"))}
        predict = predict_rounds(exports, files, 2 if args.quick else PREDICT_ROUNDS)
        print("long recordings ...", flush=True)
        streaming = export_run(kws_run, ExportConfig(streaming=True), Path(tmp) / "kws.s.onnx")
        spotters = {
            "fsdd/kws fp32": (export_run(kws_run, ExportConfig(), Path(tmp) / "kws.onnx"), []),
            "fsdd/kws fp32 --streaming": (streaming, []),
            "fsdd/kws fp32 --streaming --restart 1": (streaming, ["--restart", "1"]),
            "fsdd/gru fp32 (no _silence_ class)": (exports["fsdd/gru fp32"], []),
        }
        long = bench_long(spotters, args.fsdd_root, held_out_noise,
                          300.0 if args.quick else 3600.0)

    result = {
        "clip_seconds": 1.0, "sample_rate": 16000, "train_overrides": TRAIN_OVERRIDES,
        "targets": TARGETS, "baseline": BASELINE, "models": models,
        "predict": {"threads": 1, "files": len(files), "runs": predict},
        "long_recording": long,
    }
    meta.write("inference", result, started, quick=args.quick, threads={
        "torch": 1, "onnxruntime": 1, "numpy": 1, "speechrnn predict --threads": 1,
        "predict/detect on the long recording": "one per core (the default)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
