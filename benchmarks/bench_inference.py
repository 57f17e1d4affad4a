"""Inference speed and accuracy: PyTorch eager vs ONNX fp32 vs ONNX int8 vs a two-stage peer,
`speechrnn predict` end to end, and the memory of predict/detect on an hour-long recording.

    .venv/bin/python -m benchmarks.bench_inference [--run-dir NAME=DIR ...] [--fsdd-root DIR]
                                                   [--noise-root DIR] [--quick]

- Models: fsdd/gru and fsdd/lstm runs, and an fsdd/kws run (the keyword spotter, trained on
  the first half of each noise file) for the long recording (``--run-dir gru|lstm|kws=DIR``);
  by default trained once into benchmarks/results/runs/inference/ and reused after that.
- Per 1 s clip, one thread (torch.set_num_threads(1), onnxruntime intra_op_num_threads=1):
  batch 1 latency (p50/p95 over calls on distinct clips) and batch 64 throughput, for the
  PyTorch model, its fp32 and int8 exports, and the common two-stage pipeline (librosa MFCC
  in numpy, then an ONNX graph of the encoder and head alone). Every call of every
  implementation is interleaved with the others', so load from other processes hits them
  alike and the ratios are measured side by side in one process.
- Accuracy of each on the run's FSDD test split (300 clips), and int8's change in points.
- `speechrnn predict` over every FSDD file (3,000; decode + resample + infer, default
  threads), in a subprocess: files/s after start-up from its stderr summary line.
- Peak RSS (os.wait4) of `speechrnn predict` and `speechrnn detect` on a one-hour recording
  of FSDD test clips, silence and the second half of each Speech Commands noise file
  (written a clip at a time to a temporary folder), beside the same commands on a 1 s clip /
  a one-minute recording; detect's speed and its precision/recall against the recording's
  known onsets, with fsdd/kws (plain and --streaming) and with fsdd/gru (which has no
  _silence_ class).

Prints tables and writes benchmarks/results/inference.json. ``--quick`` (a smoke run, to
inference_quick.json): few calls, 500 files, a five-minute recording, and the runs in
runs/inference/ if they are finished, else 2-epoch ones in runs/inference-quick/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from speechrnn import audio, checkpoint
from speechrnn.config import ExportConfig
from speechrnn.data import build_splits
from speechrnn.detect import Settings, assemble, score, split_noise
from speechrnn.export import export_run
from speechrnn.runtime import open_model

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SHARED_DATA = REPO.parent / "shared" / "data"
CELLS = ("gru", "lstm")
# Both models pool with the mean over frames, so they differ only in the cell (the fsdd/gru
# recipe itself pools with attention). Everything else is the recipe's.
TRAIN_OVERRIDES = ["model.pooling=mean"]
KWS = "kws"  # the fsdd/kws recipe as it is: the keyword spotter for the long recording
THRESHOLDS = (0.5, 0.7, 0.9)  # detect --threshold values scored on the long recording
TARGETS = {"onnx_fp32_vs_torch_batch1": 4.0, "int8_vs_fp32": 1.5, "predict_files_per_s": 500.0}
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick
SUMMARY = re.compile(r"speechrnn predict: (\d+) files in ([\d.]+) s \((\d+) files/s\)")


# --------------------------------------------------------------------------- models

def ensure_run(recipe: str, run_dir: Path, fsdd: Path, quick: bool, overrides: list[str]
               ) -> Path:
    """A finished fsdd/<recipe> run in ``run_dir``, trained now if it is not there."""
    if (run_dir / "summary.json").is_file():
        return run_dir
    command = [sys.executable, "-m", "speechrnn", "train", f"recipe=fsdd/{recipe}",
               f"data.root={fsdd}", f"hydra.run.dir={run_dir}", "trainer.progress=false",
               *overrides, *(["trainer.epochs=2"] if quick else [])]
    print("$ " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return run_dir


def default_run(recipe: str, fsdd: Path, quick: bool, overrides: list[str]) -> Path:
    """runs/inference/fsdd_<recipe>, trained if missing; a quick run uses it when it is there,
    else a 2-epoch run in runs/inference-quick/."""
    full = RESULTS / "runs" / "inference" / f"fsdd_{recipe}"
    if quick and not (full / "summary.json").is_file():
        return ensure_run(recipe, RESULTS / "runs" / "inference-quick" / f"fsdd_{recipe}", fsdd,
                          True, overrides)
    return ensure_run(recipe, full, fsdd, False, overrides)


class EncoderHead(nn.Module):
    """MFCC frames [B, T, F] (normalised as the frontend does) -> logits: the model without
    its frontend, the graph a two-stage pipeline exports."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder, self.head = model.encoder, model.head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(features))


def export_encoder(model: nn.Module, frames: int, path: Path) -> Path:
    example = torch.randn(2, frames, model.frontend.output_dim)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(EncoderHead(model).eval(), (example,), str(path), dynamo=False,
                          opset_version=ExportConfig.opset, input_names=["features"],
                          output_names=["logits"],
                          dynamic_axes={"features": {0: "batch", 1: "frames"},
                                        "logits": {0: "batch"}})
    return path


def librosa_features(cfg) -> Callable[[np.ndarray], np.ndarray]:
    """The model's frontend in numpy with librosa: MFCC as speechrnn.features.MFCC computes
    it (htk mel, no filterbank norm, 10 log10 floored at 1e-10, ortho DCT), then the
    per-utterance normalisation when the run used it. [B, S] -> [B, T, n_mfcc]."""
    f, rate = cfg.features, cfg.data.sample_rate
    if f.deltas:
        raise SystemExit("the two-stage peer covers features.deltas=0 only")

    def run(wave: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=wave, sr=rate, n_fft=f.n_fft, win_length=f.win_length, hop_length=f.hop_length,
            n_mels=f.n_mels, fmin=f.f_min, fmax=f.f_max or rate / 2, pad_mode="reflect",
            htk=True, norm=None)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, amin=1e-10, top_db=None),
                                    n_mfcc=f.n_mfcc, norm="ortho")
        feats = np.swapaxes(mfcc, -1, -2).astype(np.float32)
        if f.normalize:
            centred = feats - feats.mean(axis=-2, keepdims=True)
            feats = centred / np.sqrt(np.square(centred).mean(axis=-2, keepdims=True) + 1e-5)
        return feats
    return run


def one_thread_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def implementations(run_dir: Path, folder: Path) -> tuple[dict[str, Callable], dict]:
    """name -> clips [B, S] -> logits [B, labels], for the four ways to run one trained model."""
    model, cfg, _ = checkpoint.load_model(run_dir)
    fp32 = export_run(run_dir, ExportConfig(), folder / "fp32.onnx")
    int8 = export_run(run_dir, ExportConfig(quantize="int8"), folder / "int8.onnx")
    clip = round(cfg.data.clip_seconds * cfg.data.sample_rate)
    encoder = one_thread_session(export_encoder(model, model.frontend.num_frames(clip),
                                                folder / "encoder.onnx"))
    features = librosa_features(cfg)
    sessions = {name: open_model(path, threads=1)[0] for name, path in
                (("fp32", fp32), ("int8", int8))}

    def torch_eager(wave):
        with torch.inference_mode():
            return model(torch.from_numpy(wave)).numpy()

    fns = {
        "pytorch eager": torch_eager,
        "onnx fp32": lambda wave: sessions["fp32"].run(["logits"], {"audio": wave})[0],
        "onnx int8": lambda wave: sessions["int8"].run(["logits"], {"audio": wave})[0],
        "librosa mfcc + onnx encoder": lambda wave: encoder.run(
            ["logits"], {"features": features(wave)})[0],
    }
    info = {"run_dir": str(run_dir), "labels": list(model.labels), "cfg": cfg, "fp32": fp32,
            "sizes_mb": {"fp32": fp32.stat().st_size / 1e6, "int8": int8.stat().st_size / 1e6}}
    return fns, info


# --------------------------------------------------------------------------- measurements

def test_split(cfg, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The run's test clips as the runtime prepares them, and their label indices."""
    clips = build_splits(cfg.data).test
    clip_samples = round(cfg.data.clip_seconds * cfg.data.sample_rate)
    waves = np.stack([audio.load(c.path, cfg.data.sample_rate, clip_samples) for c in clips])
    return waves, np.array([labels.index(c.label) for c in clips])


def interleaved(fns: dict[str, Callable], batches: list[np.ndarray], calls: int
                ) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns call by call."""
    for fn in fns.values():
        for batch in batches[:3]:
            fn(batch)
    times = {name: [] for name in fns}
    for i in range(calls):
        batch = batches[i % len(batches)]
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(batch)
            times[name].append(time.perf_counter() - start)
    return times


def percentile_ms(times: list[float], q: float) -> float:
    return float(np.percentile(times, q) * 1e3)


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


def bench_model(cell: str, run_dir: Path, calls: int, batch_calls: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        fns, info = implementations(run_dir, Path(tmp))
        waves, targets = test_split(info["cfg"], info["labels"])
        singles = [waves[i : i + 1] for i in range(len(waves))]
        single = interleaved(fns, singles, calls)
        large = interleaved(fns, [waves[:64]], batch_calls)
        logits = {name: fn(waves) for name, fn in fns.items()}
        kernels = kernel_ms(info["fp32"], singles[:calls])
    rows = []
    for name in fns:
        rows.append({
            "implementation": name,
            "batch1_p50_ms": percentile_ms(single[name], 50),
            "batch1_p95_ms": percentile_ms(single[name], 95),
            "batch64_clips_per_s": 64 / statistics.median(large[name]),
            "accuracy": float((logits[name].argmax(1) == targets).mean()),
            "max_abs_logit_diff_vs_pytorch": float(np.abs(logits[name] - logits["pytorch eager"]).max()),
        })
    by = {row["implementation"]: row for row in rows}
    fp32, int8, eager = by["onnx fp32"], by["onnx int8"], by["pytorch eager"]
    return {
        "cell": cell, "run_dir": info["run_dir"], "test_clips": len(waves),
        "model_mb": info["sizes_mb"], "rows": rows,
        "ratios": {
            "onnx_fp32_vs_torch_batch1_p50": eager["batch1_p50_ms"] / fp32["batch1_p50_ms"],
            "onnx_fp32_vs_torch_batch64": fp32["batch64_clips_per_s"] / eager["batch64_clips_per_s"],
            "int8_vs_fp32_batch1_p50": fp32["batch1_p50_ms"] / int8["batch1_p50_ms"],
            "int8_vs_fp32_batch64": int8["batch64_clips_per_s"] / fp32["batch64_clips_per_s"],
            "two_stage_vs_fp32_batch1_p50": by["librosa mfcc + onnx encoder"]["batch1_p50_ms"]
                                            / fp32["batch1_p50_ms"],
        },
        "int8_accuracy_change_points": 100 * (int8["accuracy"] - fp32["accuracy"]),
        # The arithmetic of the fp32 graph against the 4x target's time budget.
        "onnx_fp32_kernel_ms_batch1": kernels,
        "torch_batch1_p50_ms_over_4": eager["batch1_p50_ms"] / 4,
    }


# Runs a command and writes its exit code and peak RSS to argv[1]. A child's ru_maxrss counts
# the memory image it was forked from (kept across exec), so the measured command must be
# forked from this small launcher, not from the benchmark with torch loaded.
LAUNCHER = """
import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "peak_rss_kb": usage.ru_maxrss}, out)
"""


def run_measured(command: list[str]) -> dict:
    """Run a command; its wall time, exit code, stdout, stderr and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        report, out, err = (Path(tmp) / name for name in ("report", "out", "err"))
        start = time.perf_counter()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command],
                           stdout=stdout, stderr=stderr, check=True)
        wall = time.perf_counter() - start
        measured = json.loads(report.read_text())
        return {"returncode": measured["returncode"], "wall_s": wall,
                "peak_rss_mb": measured["peak_rss_kb"] / 1024,
                "stdout": out.read_text(errors="replace"), "stderr": err.read_text(errors="replace")}


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "speechrnn", *map(str, args)]


def bench_predict(name: str, model: Path, files: list[Path]) -> dict:
    """`speechrnn predict` over ``files`` (default threads): files/s after start-up as the
    command reports it, and the wall time with start-up."""
    whole_folder = files == sorted(files[0].parent.glob("*.wav"))
    # The folder as a user would pass it, or the files (a few hundred: a short command line).
    listed = [files[0].parent] if whole_folder else files
    result = run_measured(cli("predict", model, *listed, "--format", "csv"))
    match = SUMMARY.search(result["stderr"])
    if result["returncode"] != 0 or match is None:
        raise SystemExit(f"speechrnn predict failed:\n{result['stderr'][-2000:]}")
    return {"model": name, "files": int(match[1]), "seconds_after_startup": float(match[2]),
            "files_per_s": int(match[1]) / float(match[2]), "wall_s_with_startup": result["wall_s"],
            "peak_rss_mb": result["peak_rss_mb"]}


def long_recordings(fsdd: Path, noise: Path, folder: Path, hour_seconds: float) -> dict:
    """A one-minute and a ``hour_seconds`` recording of the FSDD test split's clips (random
    order, cycled: no model here trained on them), silence and noise; their paths, lengths
    and reference events."""
    files = sorted(p for p in fsdd.glob("*.wav") if int(p.stem.rsplit("_", 1)[1]) < 5)
    noises = sorted(noise.glob("*.wav"))
    rng = np.random.default_rng(0)
    per_clip = 1.5 + 0.45  # mean gap + mean FSDD clip, seconds
    recordings = {}
    for name, seconds in (("minute", 60.0), ("hour", hour_seconds)):
        picks = rng.permutation(np.resize(np.arange(len(files)), round(seconds / per_clip)))
        clips = [(files[i], files[i].name.split("_")[0]) for i in picks]
        path = folder / f"{name}.wav"
        start = time.perf_counter()
        reference = assemble(path, clips, noises, sample_rate=16000, seed=len(clips))
        recordings[name] = {"path": path, "reference": reference,
                            "seconds": sf.info(str(path)).duration,
                            "write_s": time.perf_counter() - start}
    return recordings


def bench_long(models: dict[str, Path], fsdd: Path, noise: Path, hour_seconds: float) -> dict:
    """Peak memory and time of predict and detect on the recordings with the first of
    ``models`` (name -> .onnx), and every model's detect precision/recall on the long one at
    each of THRESHOLDS."""
    name, model = next(iter(models.items()))
    with tempfile.TemporaryDirectory() as tmp:
        recs = long_recordings(fsdd, noise, Path(tmp), hour_seconds)
        hour = recs["hour"]
        clip = sorted(fsdd.glob("*.wav"))[0]
        runs = {
            "predict, one 1 s clip": run_measured(cli("predict", model, clip)),
            "predict, the long recording": run_measured(cli("predict", model, hour["path"])),
            "detect, one minute": run_measured(cli("detect", model, recs["minute"]["path"],
                                                   "--format", "json")),
        }
        detections = {(other, threshold): run_measured(cli(
                          "detect", path, hour["path"], "--format", "json", "--threshold", threshold))
                      for other, path in models.items() for threshold in THRESHOLDS}
        runs["detect, the long recording"] = detections[name, Settings.threshold]
    for command, result in [*runs.items(), *detections.items()]:
        if result["returncode"] != 0:
            raise SystemExit(f"{command} failed:\n{result['stderr'][-2000:]}")
    return {
        "model": name,
        "recording_seconds": hour["seconds"], "recording_mb": hour["seconds"] * 16000 * 2 / 1e6,
        "keywords": len(hour["reference"]), "write_s": hour["write_s"],
        "peak_rss_mb": {command: r["peak_rss_mb"] for command, r in runs.items()},
        "wall_s": {command: r["wall_s"] for command, r in runs.items()},
        "detect": [{"model": other, "threshold": threshold,
                    "x_real_time": hour["seconds"] / result["wall_s"],
                    "score_0.5s": score(json.loads(result["stdout"]), hour["reference"], 0.5)}
                   for (other, threshold), result in detections.items()],
    }


# --------------------------------------------------------------------------- report

def print_report(result: dict) -> None:
    print(f"\nPer 1 s clip at 16 kHz, 1 thread (load average {result['load_average_1min']:.1f} on "
          f"{result['cpu_count']} CPUs, shared machine)")
    header = (f"{'model':6} {'implementation':30} {'b1 p50 ms':>10} {'b1 p95 ms':>10} "
              f"{'b64 clips/s':>12} {'accuracy':>9}")
    print(header)
    print("-" * len(header))
    for model in result["models"]:
        for row in model["rows"]:
            print(f"{model['cell']:6} {row['implementation']:30} {row['batch1_p50_ms']:10.3f} "
                  f"{row['batch1_p95_ms']:10.3f} {row['batch64_clips_per_s']:12.0f} "
                  f"{row['accuracy']:9.4f}")
    print("\nratios (target)")
    for model in result["models"]:
        r = model["ratios"]
        print(f"  {model['cell']}: onnx fp32 vs pytorch, batch 1 {r['onnx_fp32_vs_torch_batch1_p50']:.2f}x "
              f"(>= 4x), batch 64 {r['onnx_fp32_vs_torch_batch64']:.2f}x; int8 vs fp32, batch 1 "
              f"{r['int8_vs_fp32_batch1_p50']:.2f}x, batch 64 {r['int8_vs_fp32_batch64']:.2f}x "
              f"(>= 1.5x); two-stage / fp32 latency {r['two_stage_vs_fp32_batch1_p50']:.2f}x; "
              f"int8 accuracy change {model['int8_accuracy_change_points']:+.2f} points (>= -0.5)")
        k = model["onnx_fp32_kernel_ms_batch1"]
        print(f"    onnx fp32 kernels per batch-1 call (onnxruntime profile): recurrent "
              f"{k['recurrent']:.3f} ms, DFT conv {k['dft_conv']:.3f} ms, other {k['other']:.3f} "
              f"ms; the 4x target allows {model['torch_batch1_p50_ms_over_4']:.3f} ms in all")
    print("\nspeechrnn predict, end to end (decode + resample + infer, default threads)")
    for row in result["predict"]:
        print(f"  {row['model']}: {row['files']} files, "
              f"{row['files_per_s']:.0f} files/s after start-up (>= 500), "
              f"{row['wall_s_with_startup']:.1f} s with start-up")
    long = result["long_recording"]
    print(f"\nlong recording: {long['recording_seconds'] / 60:.1f} min, {long['keywords']} digits "
          f"({long['recording_mb']:.0f} MB as 16-bit PCM), {long['model']}, default threads")
    for name, rss in long["peak_rss_mb"].items():
        print(f"  {name:30} peak RSS {rss:7.1f} MB   {long['wall_s'][name]:7.1f} s")
    for row in long["detect"]:
        s = row["score_0.5s"]
        print(f"  detect with {row['model']}, --threshold {row['threshold']}: "
              f"{row['x_real_time']:.0f}x real time; precision {s['precision']:.3f}, "
              f"recall {s['recall']:.3f} at +-0.5 s ({s['events']} events)")


def parse_run_dirs(values: list[str]) -> dict[str, Path]:
    dirs = {}
    for value in values:
        cell, _, folder = value.partition("=")
        if cell not in (*CELLS, KWS) or not folder:
            raise SystemExit(f"--run-dir {value!r}: use NAME=DIR with NAME one of "
                             f"{[*CELLS, KWS]}")
        dirs[cell] = Path(folder)
    return dirs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", action="append", default=[], metavar="NAME=DIR",
                        help="a finished fsdd/gru, fsdd/lstm or fsdd/kws run to use (gru=DIR, "
                        "lstm=DIR, kws=DIR)")
    parser.add_argument("--fsdd-root", type=Path, default=SHARED_DATA / "fsdd" / "recordings")
    parser.add_argument("--noise-root", type=Path, default=SHARED_DATA / "speech_commands_noise")
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers not meaningful)")
    parser.add_argument("--out", type=Path, help="the JSON to write (default: "
                        "benchmarks/results/inference.json, inference_quick.json with --quick)")
    args = parser.parse_args(argv)
    for folder in (args.fsdd_root, args.noise_root):
        if not folder.is_dir():
            raise SystemExit(f"{folder} not found; pass --fsdd-root / --noise-root")

    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and OpenMP pools, used by librosa
    calls, batch_calls = (30, 3) if args.quick else (300, 20)
    args.out = args.out or RESULTS / ("inference_quick.json" if args.quick else "inference.json")
    given = parse_run_dirs(args.run_dir)
    run_dirs = {cell: given.get(cell) or default_run(cell, args.fsdd_root, args.quick,
                                                     TRAIN_OVERRIDES) for cell in CELLS}
    train_noise, held_out_noise = split_noise(args.noise_root, RESULTS / "noise_halves")
    kws_run = given.get(KWS) or default_run(KWS, args.fsdd_root, args.quick,
                                            [f"data.noise_dir={train_noise}"])

    models = []
    for cell, run_dir in run_dirs.items():
        print(f"timing fsdd/{cell} ({run_dir}) ...", flush=True)
        models.append(bench_model(cell, run_dir, calls, batch_calls))

    files = sorted(args.fsdd_root.glob("*.wav"))
    if args.quick:
        files = files[:500]
    predict = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell, run_dir in run_dirs.items():
            for quantize in ("none", "int8"):
                name = f"fsdd/{cell} {'int8' if quantize == 'int8' else 'fp32'}"
                model = export_run(run_dir, ExportConfig(quantize=quantize),
                                   Path(tmp) / f"fsdd_{cell}" / f"model.{quantize}.onnx")
                print(f"speechrnn predict, {len(files)} files, {name} ...", flush=True)
                predict.append(bench_predict(name, model, files))
        print("long recordings ...", flush=True)
        spotters = {
            "fsdd/kws fp32": export_run(kws_run, ExportConfig(), Path(tmp) / "kws.onnx"),
            "fsdd/kws fp32 --streaming": export_run(kws_run, ExportConfig(streaming=True),
                                                    Path(tmp) / "kws.streaming.onnx"),
            "fsdd/gru fp32 (no _silence_ class)": Path(tmp) / "fsdd_gru" / "model.none.onnx",
        }
        long = bench_long(spotters, args.fsdd_root, held_out_noise,
                          300.0 if args.quick else 3600.0)

    result = {
        "benchmark": "inference",
        "quick": args.quick,
        "note": "shared machine: other processes ran beside this one; ratios are measured "
                "side by side (interleaved calls), absolute times are not clean",
        "threads": 1, "clip_seconds": 1.0, "sample_rate": 16000,
        "train_overrides": TRAIN_OVERRIDES, "targets": TARGETS,
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__,
                     "librosa": librosa.__version__, "python": platform.python_version()},
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "models": models, "predict": predict, "long_recording": long,
    }
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
