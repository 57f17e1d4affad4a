"""Train the reference recipes and report accuracy, training time and throughput side by side.

    python -m benchmarks.bench_training [--only fsdd/gru ...] [--fsdd PATH] [--noise PATH]

Each recipe runs as `speechrnn train` in its own process (one at a time, so they do not share
the cores) into benchmarks/results/runs/<name>/; the table and benchmarks/results/training.json
collect summary.json of each run (with --only, the other runs' rows stay as they were).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FSDD = SHARED_DATA / "fsdd" / "recordings"
NOISE = SHARED_DATA / "speech_commands_noise"

# name -> overrides; {fsdd} is the FSDD recordings folder, {noise} the noise recordings'.
RUNS = {
    "fsdd/gru": ["recipe=fsdd/gru", "data.root={fsdd}"],
    "fsdd/lstm": ["recipe=fsdd/lstm", "data.root={fsdd}"],
    "fsdd/rnn": ["recipe=fsdd/rnn", "data.root={fsdd}"],
    "fsdd/gru held-out george": ["recipe=fsdd/gru", "data.root={fsdd}", "data.test_speakers=[george]"],
    "fsdd/kws": ["recipe=fsdd/kws", "data.root={fsdd}", "data.noise_dir={noise}"],
    "synthetic/gru": ["recipe=synthetic/gru"],
    "synthetic/digits -> FSDD test": ["recipe=synthetic/digits", "data.test_root={fsdd}"],
}


def train(name: str, overrides: list[str], fsdd: Path, noise: Path) -> dict:
    run_dir = RESULTS / "runs" / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    overrides = [o.format(fsdd=fsdd, noise=noise) for o in overrides]
    command = [sys.executable, "-m", "speechrnn", "train", *overrides, "trainer.progress=false",
               f"hydra.run.dir={run_dir}"]
    print("$ " + " ".join(command[3:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "run": name,
        "test_accuracy": summary["test_accuracy"],
        "val_accuracy": summary["val_accuracy"],
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 1),
        "train_clips_per_s": summary["train_clips_per_s"],
        "num_parameters": summary["num_parameters"],
        "run_dir": str(run_dir),
    }


def table(rows: list[dict]) -> str:
    header = f"{'run':32} {'test acc':>9} {'val acc':>8} {'epochs':>6} {'train s':>8} {'wall s':>7} {'clips/s':>8} {'params':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['run']:32} {r['test_accuracy']:>9.2%} {r['val_accuracy']:>8.2%} {r['epochs']:>6} "
                     f"{r['train_seconds']:>8.0f} {r['wall_seconds']:>7.0f} {r['train_clips_per_s']:>8.0f} "
                     f"{r['num_parameters']:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=NOISE, help="the noise recordings folder")
    args = parser.parse_args(argv)
    rows = [train(name, RUNS[name], args.fsdd, args.noise) for name in (args.only or RUNS)]
    print(table(rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "training.json"
    # --only replaces its runs' rows and keeps the others'.
    done = {row["run"] for row in rows}
    earlier = json.loads(out.read_text()) if out.is_file() else []
    rows += [row for row in earlier if row["run"] not in done and row["run"] in RUNS]
    rows.sort(key=lambda row: list(RUNS).index(row["run"]))
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
