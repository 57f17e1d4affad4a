"""One-seed screening of an FSDD recipe variant for speakers it never heard, before a three-seed
leave-one-speaker-out run.

    python -m benchmarks.screen_speakers NAME [KEY=VALUE ...] [--recipe fsdd/gru] [--jobs N]

Trains the recipe with the overrides (seed 0) once per development speaker (``DEV_SPEAKERS``,
the same three that screen the default recipe), that speaker held out and validation taken from
the other five, into benchmarks/results/runs/screen_speakers/<NAME>/<speaker>/, and appends to
benchmarks/results/screen_speakers.jsonl each held-out development speaker's accuracy, on the
clips as recorded and through the telephone band (bench_generalization's channel part,
300-3400 Hz), and the validation accuracy. The other speakers (george, lucas, yweweler) are never
held out here: their folds are for the three-seed figures of ``bench_generalization --only loso``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import meta, runs
from benchmarks.bench_generalization import FSDD, band_limit, fsdd_files, split_accuracies
from benchmarks.screen_default import DEV_SPEAKERS, SEED
from speechrnn.data.fsdd import NAME

RESULTS = meta.RESULTS / "screen_speakers.jsonl"


def band_accuracy(run_dir: Path) -> float:
    """The run's exported model on its test split (the held-out speaker) through the telephone
    band."""
    return split_accuracies({"run_dir": run_dir}, [lambda wave, rate, _: band_limit(wave, rate)])[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the variant's name (its run folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the recipe")
    parser.add_argument("--recipe", default="fsdd/gru", help="the FSDD recipe (default fsdd/gru)")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    args = parser.parse_intermixed_args(argv)  # overrides may come after --recipe
    speakers = {NAME.match(p.name)["speaker"] for p in fsdd_files(args.fsdd)}
    if not set(DEV_SPEAKERS) <= speakers:
        raise SystemExit(f"{args.fsdd}: no clips of {', '.join(DEV_SPEAKERS)}; pass --fsdd")
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give 1 or more")

    started = meta.start()
    base = [f"recipe={args.recipe}", f"data.root={args.fsdd}", *args.overrides]

    def fold(speaker: str) -> dict:
        folder = runs.run_dir(f"{args.name}/{speaker}", SEED, quick=False, group="screen_speakers")
        run = runs.train([*base, f"data.test_speakers=[{speaker}]"], SEED, folder,
                         jobs=args.jobs)
        summary = run["summary"]
        return {"speaker": speaker, "command": run["command"],
                "val_accuracy": summary["val_accuracy"],
                "held_out_accuracy": summary["test_accuracy"],
                "held_out_band_accuracy": band_accuracy(folder),
                "held_out_clips": summary["clips"]["test"]}

    with ThreadPoolExecutor(args.jobs) as pool:
        folds = list(pool.map(fold, DEV_SPEAKERS))
    row = {"name": args.name, "recipe": args.recipe, "overrides": args.overrides, "seed": SEED,
           "folds": folds,
           "held_out_mean": statistics.fmean(f["held_out_accuracy"] for f in folds),
           "held_out_worst": min(f["held_out_accuracy"] for f in folds),
           "held_out_band_mean": statistics.fmean(f["held_out_band_accuracy"] for f in folds),
           "meta": meta.collect(started, {"torch": runs.torch_threads(args.jobs)
                                          or "default (one per core)",
                                          "trainings at once": args.jobs})}
    print(json.dumps(row))
    with open(RESULTS, "a") as out:
        out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
