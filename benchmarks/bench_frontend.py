"""MFCC cost per 1 s clip: torchaudio vs librosa vs the speechrnn frontend (torch, onnxruntime).

All four compute the same features (hann window, htk mel, ortho DCT, no top_db clamp), on the
same batch of real FSDD digits resampled to 16 kHz, on one CPU thread, side by side in one run.

    .venv/bin/python -m benchmarks.bench_frontend [--fsdd-root DIR] [--repeats N]

Prints a table and writes benchmarks/results/frontend.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
import torch
import torchaudio
from threadpoolctl import threadpool_limits

from speechrnn.audio import load
from speechrnn.features import Frontend

REPO = Path(__file__).resolve().parent.parent
RATE = 16000
SETTINGS = dict(n_mfcc=40, n_fft=512, win_length=480, hop_length=160, n_mels=40, f_min=20.0)
BATCH_SIZES = (1, 64)


def load_clips(root: Path, count: int) -> np.ndarray:
    paths = sorted(root.glob("*.wav"))[::7][:count]
    if len(paths) < count:
        raise SystemExit(f"{root}: need {count} FSDD .wav files, found {len(paths)}; "
                         "pass --fsdd-root pointing at fsdd/recordings")
    return np.stack([load(path, RATE, RATE) for path in paths])


def torchaudio_fn(dtype: torch.dtype = torch.float32):
    mfcc = torchaudio.transforms.MFCC(
        RATE, n_mfcc=SETTINGS["n_mfcc"],
        melkwargs={k: v for k, v in SETTINGS.items() if k != "n_mfcc"},
    ).to(dtype)
    mfcc.amplitude_to_DB.top_db = None

    def run(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return mfcc(torch.from_numpy(wave).to(dtype)).transpose(1, 2).numpy()
    return run


def librosa_fn():
    def run(wave: np.ndarray) -> np.ndarray:
        mel = librosa.feature.melspectrogram(
            y=wave, sr=RATE, n_fft=SETTINGS["n_fft"], win_length=SETTINGS["win_length"],
            hop_length=SETTINGS["hop_length"], n_mels=SETTINGS["n_mels"], fmin=SETTINGS["f_min"],
            pad_mode="reflect", htk=True, norm=None,
        )
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None),
                                    n_mfcc=SETTINGS["n_mfcc"], norm="ortho")
        return np.swapaxes(mfcc, 1, 2)
    return run


def torch_fn(frontend: Frontend):
    def run(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return frontend(torch.from_numpy(wave)).numpy()
    return run


def onnx_fn(frontend: Frontend, folder: Path):
    path = folder / "frontend.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            frontend, (torch.zeros(2, RATE),), str(path), dynamo=False, opset_version=17,
            input_names=["waveform"], output_names=["features"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"},
                          "features": {0: "batch", 1: "frames"}},
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(wave: np.ndarray) -> np.ndarray:
        return session.run(None, {"waveform": wave})[0]
    return run


def time_per_clip(run, wave: np.ndarray, repeats: int) -> tuple[float, float]:
    """Fastest and median seconds per clip over ``repeats`` calls, after one warm-up call.

    The fastest call is the headline (as timeit reports it): on a shared machine the median
    also measures the neighbours."""
    run(wave)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(wave)
        times.append(time.perf_counter() - start)
    return min(times) / len(wave), statistics.median(times) / len(wave)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd-root", type=Path,
                        default=REPO.parent / "shared" / "data" / "fsdd" / "recordings")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls at batch 64")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "frontend.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and OpenMP pools, used by librosa
    clips = load_clips(args.fsdd_root, max(BATCH_SIZES))
    frontend = Frontend(**SETTINGS).eval()  # MFCC only: no deltas, no normalisation
    with tempfile.TemporaryDirectory() as folder:
        implementations = {
            "torchaudio MFCC (torch eager)": torchaudio_fn(),
            "librosa MFCC (numpy)": librosa_fn(),
            "speechrnn MFCC (torch eager)": torch_fn(frontend),
            "speechrnn frontend (ONNX, onnxruntime)": onnx_fn(frontend, Path(folder)),
        }
        exact = torchaudio_fn(torch.float64)(clips)
        rows = []
        for name, run in implementations.items():
            error = np.abs(run(clips) - exact).max() / np.abs(exact).max()
            row = {"name": name, "max_error_vs_float64": float(error)}
            for size in BATCH_SIZES:
                # Every batch size sees the same number of clips.
                repeats = args.repeats * max(BATCH_SIZES) // size
                best, median = time_per_clip(run, clips[:size], repeats)
                row[f"ms_per_clip_batch{size}"] = 1e3 * best
                row[f"median_ms_per_clip_batch{size}"] = 1e3 * median
            rows.append(row)

    header = f"{'implementation':42s}"
    header += "".join(f"{f'batch {s} ms/clip':>18s}" for s in BATCH_SIZES)
    print(f"MFCC of 1 s clips at 16 kHz, 1 thread, fastest of repeated calls "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(header + f"{'error vs f64':>14s}")
    for row in rows:
        cells = "".join(f"{row[f'ms_per_clip_batch{s}']:18.3f}" for s in BATCH_SIZES)
        print(f"{row['name']:42s}{cells}{row['max_error_vs_float64']:14.1e}")

    result = {
        "benchmark": "frontend",
        "clip_seconds": 1.0,
        "sample_rate": RATE,
        "settings": SETTINGS,
        "threads": 1,
        "clips": f"{len(clips)} FSDD recordings resampled to 16 kHz, fixed to 1 s",
        "versions": {"torch": torch.__version__, "torchaudio": torchaudio.__version__,
                     "librosa": librosa.__version__, "onnxruntime": ort.__version__,
                     "python": platform.python_version()},
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "timing": "ms_per_clip_*: fastest call / batch size; median_*: median call",
        "error": "max |features - float64 torchaudio| / max |float64 torchaudio|, all clips",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
