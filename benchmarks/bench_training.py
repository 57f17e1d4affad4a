"""Train the reference recipes and report accuracy, training time and throughput side by side.

    python -m benchmarks.bench_training [--only fsdd/gru ...] [--seeds 0 1 2] [--fsdd PATH]
                                        [--noise PATH] [--quick]

Each recipe runs once per seed (trainer.seed) as `speechrnn train` in its own process (one at a
time, so they do not share the cores; torch's default threads, the recipe's DataLoader workers)
into benchmarks/results/runs/<name>/seed<N>/; benchmarks/results/training.json keeps every
seed's summary and their mean and standard deviation (with --only, the other runs' rows stay as
they were). 3-9 min a recipe and seed on 2 cores. ``--quick``: fsdd/gru, one seed, one epoch,
into runs-quick/, written to training_quick.json (numbers not meaningful).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import meta, runs

SHARED_DATA = meta.REPO.parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd" / "recordings"
NOISE = SHARED_DATA / "speech_commands_noise"
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick

# name -> overrides ({fsdd}: the FSDD recordings folder, {noise}: the noise recordings'), what
# the test split is, and the recipe's target (test accuracy, and wall seconds when timed).
RUNS = {
    "fsdd/gru": dict(overrides=["recipe=fsdd/gru", "data.root={fsdd}"],
                     data="FSDD official split", target=dict(accuracy=0.995, seconds=300)),
    "fsdd/lstm": dict(overrides=["recipe=fsdd/lstm", "data.root={fsdd}"],
                      data="FSDD official split"),
    "fsdd/rnn": dict(overrides=["recipe=fsdd/rnn", "data.root={fsdd}"],
                     data="FSDD official split"),
    "fsdd/gru held-out george": dict(
        overrides=["recipe=fsdd/gru", "data.root={fsdd}", "data.test_speakers=[george]"],
        data="FSDD, one speaker never heard in training"),
    "fsdd/kws": dict(overrides=["recipe=fsdd/kws", "data.root={fsdd}", "data.noise_dir={noise}"],
                     data="FSDD + `_silence_` from noise, for `speechrnn detect`"),
    "synthetic/gru": dict(overrides=["recipe=synthetic/gru"],
                          data="synthetic, held-out voices", target=dict(accuracy=0.97, seconds=300)),
    "synthetic/digits -> FSDD test": dict(
        overrides=["recipe=synthetic/digits", "data.test_root={fsdd}"],
        data="synthetic digits only -> real FSDD test", target=dict(accuracy=0.80)),
}


# Per-seed numbers that the row also gives as mean and standard deviation.
AVERAGED = ("test_accuracy", "val_accuracy", "epochs", "train_seconds", "wall_seconds",
            "train_clips_per_s")


def train(name: str, seed: int, fsdd: Path, noise: Path, quick: bool) -> dict:
    """One seed of one recipe: its summary's numbers."""
    folder = runs.run_dir(name, seed, quick)
    overrides = [o.format(fsdd=fsdd, noise=noise) for o in RUNS[name]["overrides"]]
    run = runs.train([*overrides, *(["trainer.epochs=1"] if quick else [])], seed, folder)
    summary = run["summary"]
    return {
        "seed": seed,
        "test_accuracy": summary["test_accuracy"],
        "test_clips": summary["clips"]["test"],
        "val_accuracy": summary["val_accuracy"],
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": run["wall_seconds"],
        "train_clips_per_s": summary["train_clips_per_s"],
        "num_parameters": summary["num_parameters"],
        "run_dir": meta.relative(folder),
    }


def recipe_row(name: str, seeds: list[int], fsdd: Path, noise: Path, quick: bool) -> dict:
    """A recipe over seeds: each seed's numbers, and the mean and std of each (std 0 for one)."""
    seed_runs = [train(name, seed, fsdd, noise, quick) for seed in seeds]
    row = {"run": name, "data": RUNS[name]["data"], "target": RUNS[name].get("target"),
           "test_clips": seed_runs[0]["test_clips"],
           "num_parameters": seed_runs[0]["num_parameters"],
           "command": "python -m benchmarks.bench_training --only '" + name + "' --seeds "
                      + " ".join(map(str, seeds)),
           "seeds": seed_runs}
    for key in AVERAGED:
        row[key] = runs.spread(run[key] for run in seed_runs)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=NOISE, help="the noise recordings folder")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="trainer.seed values; accuracy is reported as their mean and std")
    parser.add_argument("--quick", action="store_true", help="fsdd/gru, one seed, one epoch")
    args = parser.parse_args(argv)
    names = ["fsdd/gru"] if args.quick else (args.only or list(RUNS))
    seeds = args.seeds[:1] if args.quick else args.seeds

    started = meta.start()
    rows = [recipe_row(name, seeds, args.fsdd, args.noise, args.quick) for name in names]
    out = meta.result_path("training", args.quick)
    # --only replaces its runs' rows and keeps the others' (with the meta of their own run).
    earlier = json.loads(out.read_text()) if out.is_file() and not args.quick else {}
    kept = [row for row in earlier.get("rows", []) if row["run"] in RUNS and row["run"] not in names]
    if kept:
        for row in kept:
            row.setdefault("meta", earlier["meta"])
    rows = sorted(rows + kept, key=lambda row: list(RUNS).index(row["run"]))
    meta.write("training", {"rows": rows}, started,
               threads={"torch": "default (one per core)", "dataloader_workers": "the recipe's"},
               quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
