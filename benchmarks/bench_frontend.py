"""MFCC cost per 1 s clip: torchaudio vs librosa vs the speechrnn frontend (PyTorch, onnxruntime).

All four compute the same features (the default features config: hann window, htk mel, ortho
DCT, no top_db clamp) on the same real FSDD digits resampled to 16 kHz, on one CPU thread.
At each batch size (1 and 64) the four take turns call by call (interleaved), so load from
other processes hits them alike; each is reported by the median (p50) and p95 of its calls.
About half a minute.

    .venv/bin/python -m benchmarks.bench_frontend [--fsdd-root DIR] [--repeats N] [--quick]

Writes benchmarks/results/frontend.json and prints the README section made from it
(frontend_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from threadpoolctl import threadpool_limits

from benchmarks import meta
from benchmarks.peers import TorchaudioFeatures, librosa_features
from benchmarks.timing import interleaved, percentile_ms
from speechrnn.audio import load
from speechrnn.config import FeaturesConfig
from speechrnn.features import Frontend

RATE = 16000
BATCH_SIZES = (1, 64)
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick


def load_clips(root: Path, count: int) -> np.ndarray:
    paths = sorted(root.glob("*.wav"))[::7][:count]
    if len(paths) < count:
        raise SystemExit(f"{root}: need {count} FSDD .wav files, found {len(paths)}; "
                         "pass --fsdd-root pointing at fsdd/recordings")
    return np.stack([load(path, RATE, RATE) for path in paths])


def in_torch(module: torch.nn.Module, dtype: torch.dtype = torch.float32):
    module = module.to(dtype).eval()

    def run(wave: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(wave).to(dtype)).numpy()
    return run


def in_onnxruntime(frontend: Frontend, folder: Path):
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
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda wave: session.run(None, {"waveform": wave})[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd-root", type=Path,
                        default=meta.REPO.parent / "shared" / "data" / "fsdd" / "recordings")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed calls per implementation: repeats x 64 / batch size")
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers not meaningful)")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats

    started = meta.start()
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS and OpenMP pools, used by librosa
    clips = load_clips(args.fsdd_root, max(BATCH_SIZES))
    features = FeaturesConfig()  # MFCC only: no deltas, no normalisation
    frontend = Frontend.from_config(features, RATE).eval()
    with tempfile.TemporaryDirectory() as folder:
        fns = {
            "torchaudio MFCC (PyTorch)": in_torch(TorchaudioFeatures(features, RATE)),
            "librosa MFCC (numpy)": librosa_features(features, RATE),
            "speechrnn MFCC (PyTorch)": in_torch(frontend),
            "speechrnn MFCC (ONNX, onnxruntime)": in_onnxruntime(frontend, Path(folder)),
        }
        exact = in_torch(TorchaudioFeatures(features, RATE), torch.float64)(clips)
        errors = {name: float(np.abs(fn(clips) - exact).max() / np.abs(exact).max())
                  for name, fn in fns.items()}
        times = {}
        for size in BATCH_SIZES:
            batches = [clips[i : i + size] for i in range(0, len(clips), size)]
            times[size] = interleaved(fns, batches, repeats * max(BATCH_SIZES) // size)
    rows = [{"name": name, "max_error_vs_float64": errors[name],
             **{f"p{q}_ms_per_clip_batch{size}": percentile_ms(times[size][name], q, size)
                for size in BATCH_SIZES for q in (50, 95)}}
            for name in fns]

    meta.write("frontend", {
        "clip_seconds": 1.0, "sample_rate": RATE, "settings": vars(features),
        "clips": f"{len(clips)} FSDD recordings resampled to 16 kHz, fixed to 1 s",
        "calls_per_implementation": {str(s): len(times[s][rows[0]["name"]]) for s in BATCH_SIZES},
        "timing": "p50/p95 of interleaved calls, divided by the batch size",
        "error": "max |features - float64 torchaudio| / max |float64 torchaudio|, all clips",
        "results": rows,
    }, started, threads={"torch": 1, "onnxruntime": 1, "numpy": 1}, quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
