"""One-seed screening of a default-recipe variant, for choosing levers before a three-seed run.

    python -m benchmarks.screen_default NAME [KEY=VALUE ...] [--fsdd PATH] [--noise PATH]

Trains ``recipe=synthetic/gru`` with the overrides (seed 0) into
benchmarks/results/runs/screen/<NAME>/ and appends to benchmarks/results/screen_default.jsonl
what a choice may look at: the best synthetic validation accuracy, and the share of the FSDD
development speakers' clips (``DEV_SPEAKERS``, real people saying digits, which the default
model has only as `_unknown_` words) called `_unknown_`; and, on the first halves of the real
noise recordings (``split_noise``'s train halves, which the default recipe never trains on), the
share of nothing-said probes called `_silence_` and the false keywords per hour. It never reads
the synthetic test split, the other speakers or the held-out noise halves: those are for the
three-seed figures of bench_generalization.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks import meta, runs
from benchmarks.bench_generalization import (DEFAULT_MODEL, FSDD, NOISE, fsdd_files, model,
                                              nothing_said, predicted)
from benchmarks.detection_eval import split_noise
from speechrnn.data.fsdd import NAME
from speechrnn.labels import UNKNOWN

DEV_SPEAKERS = ("jackson", "nicolas", "theo")
SEED = 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the variant's name (its run folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the default recipe")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=NOISE, help="the noise recordings folder")
    args = parser.parse_args(argv)
    dev = [p for p in fsdd_files(args.fsdd) if NAME.match(p.name)["speaker"] in DEV_SPEAKERS]
    if not dev:
        raise SystemExit(f"{args.fsdd}: no clips of {', '.join(DEV_SPEAKERS)}; pass --fsdd")
    if not any(args.noise.glob("*.wav")):
        raise SystemExit(f"{args.noise}: no WAV files; pass --noise")
    development_noise, _ = split_noise(args.noise, meta.RESULTS / "noise_halves")

    started = meta.start()
    folder = runs.run_dir(args.name, SEED, quick=False, group="screen")
    run = runs.train([f"recipe={DEFAULT_MODEL}", *args.overrides], SEED, folder)
    run_info = {"run_dir": meta.relative(folder)}
    recognizer = model(run_info)
    said = predicted(recognizer, np.stack([recognizer.load(p) for p in dev]))
    noise = nothing_said(run_info, development_noise)
    del noise["events"]
    row = {"name": args.name, "overrides": args.overrides, "seed": SEED,
           "command": run["command"], "val_accuracy": run["summary"]["val_accuracy"],
           "dev_speakers": list(DEV_SPEAKERS), "dev_clips": len(dev),
           "dev_unknown_share": said.count(UNKNOWN) / len(said),
           "dev_predictions": {label: said.count(label) for label in sorted(set(said))},
           "dev_noise": noise,
           "meta": meta.collect(started, {"torch": os.environ.get("OMP_NUM_THREADS",
                                                                  "default (one per core)")})}
    print(json.dumps(row))
    with open(meta.RESULTS / "screen_default.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
