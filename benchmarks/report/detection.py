"""README section on keyword spotting, from benchmarks/results/inference.json."""

from __future__ import annotations

from .fmt import conditions, count, span


def _by_model(long: dict) -> dict[str, dict[float, dict]]:
    table: dict[str, dict[float, dict]] = {}
    for run in long["detect"]:
        table.setdefault(run["model"], {})[run["threshold"]] = run
    return table


def render(result: dict) -> str:
    long = result["long_recording"]
    table, default = _by_model(long), long["default_threshold"]
    thresholds = sorted({run["threshold"] for run in long["detect"]})
    gap, noise = long["gap_seconds"], long["noise_dbfs"]
    lines = [
        f"The benchmark builds a {long['recording_seconds'] / 60:.0f}-minute recording of the "
        f"{count(long['test_clips'])} FSDD test clips ({count(long['keywords'])} digits, "
        f"{gap[0]:g}-{gap[1]:g} s apart, half the gaps filled with Speech Commands noise at "
        f"{noise[0]:g} to {noise[1]:g} dBFS), trains fsdd/kws on the first half of each noise "
        f"file and fills the gaps from the second half. An event is a hit when its label is "
        f"right and it starts within {long['tolerance_s']:g} s of the digit "
        "(precision / recall):", "",
        "| `--threshold` | " + " | ".join(f"`{name}`" for name in table) + " |",
        "|---|" + "---|" * len(table),
    ]
    for threshold in thresholds:
        cells = []
        for runs in table.values():
            s = runs[threshold]["score"]
            cell = f"{s['precision']:.3f} / {s['recall']:.3f}"
            cells.append(f"**{cell}**" if threshold == default else cell)
        name = f"**{threshold:g} (default)**" if threshold == default else f"{threshold:g}"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| x real time (over the thresholds) | " + " | ".join(
        span([run["x_real_time"] for run in runs.values()], "x") for runs in table.values()) + " |")
    return "\n".join([*lines, "", conditions(result["meta"])])
