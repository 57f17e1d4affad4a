"""README sections of the training benchmarks: the recipes' results, RNN vs LSTM vs GRU speed."""

from __future__ import annotations

from ..bench_training import RUNS
from .fmt import conditions, count, earlier_rows, pct

HELD_OUT, OFFICIAL = "fsdd/gru held-out george", "fsdd/gru"


def _accuracy(row: dict) -> str:
    """Mean ± std over the row's seeds, in points."""
    accuracy, seeds = row["test_accuracy"], len(row["seeds"])
    return (f"{pct(accuracy['mean'], 2)} ± {100 * accuracy['std']:.2f} "
            f"({seeds} seed{'s' * (seeds != 1)}, {row['test_clips']} clips)")


def _target(row: dict) -> str:
    """Met when the mean over seeds reaches it."""
    target = row.get("target")
    if not target:
        return ""
    met = row["test_accuracy"]["mean"] >= target["accuracy"]
    text = pct(target["accuracy"])
    if "seconds" in target:
        met = met and row["wall_seconds"]["mean"] < target["seconds"]
        text += f" in < {target['seconds'] / 60:.0f} min"
    return f"{text}: {'met' if met else 'missed'}"


def recipes(result: dict) -> str:
    rows = result["rows"]
    lines = ["| run | data | test accuracy, mean ± std | training (wall), mean | clips/s | "
             "epochs | target |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| `{row['run']}` | {row['data']} | {_accuracy(row)} | "
                     f"{row['train_seconds']['mean']:.0f} s ({row['wall_seconds']['mean']:.0f} s) | "
                     f"{count(row['train_clips_per_s']['mean'])} | "
                     f"{row['epochs']['mean']:.0f} | {_target(row)} |")
    lines += ["", "Reproduce a row with " + "; ".join(f"`{row['command']}`" for row in rows) + "."]
    missing = [name for name in RUNS if name not in {row["run"] for row in rows}]
    if missing:
        lines[-1] += (" No row at this commit for " + ", ".join(f"`{name}`" for name in missing)
                      + " (`python -m benchmarks.bench_training --only NAME`).")
    lines += ["", conditions(result["meta"]) + earlier_rows(rows, "run")]
    by = {row["run"]: row for row in rows}
    if HELD_OUT in by and OFFICIAL in by:
        lines += ["", f"With one speaker held out, `fsdd/gru` reaches {_accuracy(by[HELD_OUT])}, "
                  f"against {_accuracy(by[OFFICIAL])} on the official split."]
    return "\n".join(lines)


def cells(result: dict) -> str:
    """Training steps per second at equal hidden size on FSDD, from benchmarks/compare_cells."""
    rows = [r for r in result["results"] if r["dataset"] == "fsdd" and r["sizing"] == "equal hidden"]
    speed = {r["cell"]: r["train_clips_s"]["median"] for r in rows}
    hidden = sorted({r["hidden"] for r in rows})
    threads = ", ".join(f"{n} thread{'s' * (n != '1')} {count(t['median'])}"
                        for n, t in result["threads"].items())
    text = (f"Training throughput at {'/'.join(map(str, hidden))} units, one thread "
            f"([docs/compare_cells](docs/compare_cells/report.md), FSDD, one AdamW step on a "
            f"fixed batch, median clips/s): "
            + ", ".join(f"{cell.upper()} {count(value)}" for cell, value in speed.items()) + ".")
    if "gru" in speed and "lstm" in speed:
        text += (f" In PyTorch on that CPU the GRU is *{'slower' if speed['gru'] < speed['lstm'] else 'faster'}* "
                 "than the LSTM.")
    start, end = result["load_average"]
    return (f"{text}\n\n*Load average {start:.1f} at the start and {end:.1f} at the end; a GRU "
            f"step's clips/s by torch threads: {threads}.*")
