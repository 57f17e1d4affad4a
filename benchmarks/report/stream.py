"""README section on streaming that runs forever, from benchmarks/results/stream.json."""

from __future__ import annotations

import statistics

from .fmt import conditions, count

NAMES = {"stream": "fsdd/kws_stream --streaming, one state", "windows": "fsdd/kws, 1 s windows"}


def _mean(runs: list[dict], value, digits: int = 3) -> str:
    """The mean over seeds (and the range when there are several); a latency is None for a
    model that hit nothing, and counts for no seed."""
    values = [v for v in map(value, runs) if v is not None]
    if not values:
        return "none (no hit)"
    text = f"{statistics.fmean(values):.{digits}f}"
    return text if len(values) == 1 else f"{text} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _score(runs: list[dict], threshold: float, key: str) -> str:
    return _mean(runs, lambda run: next(s[key] for s in run["scores"] if s["threshold"] == threshold))


def render(result: dict) -> str:
    kinds: dict[str, list[dict]] = {}
    for run in result["runs"]:
        kinds.setdefault(run["kind"], []).append(run)
    default = result["default_threshold"]
    thresholds = sorted({s["threshold"] for run in result["runs"] for s in run["scores"]})
    seeds = sorted({run["seed"] for run in result["runs"]})
    lines = [
        f"The hour of benchmarks/long_recording.py ({result['recording_seconds'] / 60:.0f} minutes, "
        f"{count(result['keywords'])} FSDD test digits, held-out noise in the gaps), seed"
        f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} (the mean, and the range "
        "over seeds where there are several). Precision / recall; latency from a digit's end to "
        f"its event coming out of `speechrnn detect`, fed {result['live_block_s'] * 1000:.0f} ms "
        "at a time like a live source (audio time, the machine's load does not change it); "
        "false keywords per hour of the held-out noise halves at the default threshold:", "",
        "| | " + " | ".join(f"`{' '.join([NAMES.get(kind, kind), *runs[0].get('overrides', [])])}`"
                            for kind, runs in kinds.items()) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for threshold in thresholds:
        name = f"**`--threshold {threshold:g}` (default)**" if threshold == default else f"`--threshold {threshold:g}`"
        cells = [f"{_score(runs, threshold, 'precision')} / {_score(runs, threshold, 'recall')}"
                 for runs in kinds.values()]
        lines.append(f"| {name} | " + " | ".join(f"**{c}**" if threshold == default else c
                                                 for c in cells) + " |")
    lines.append("| median latency, s (90th percentile) | " + " | ".join(
        f"{_mean(runs, lambda r: r['latency_s']['median'])} ({_mean(runs, lambda r: r['latency_s']['p90'])})"
        for runs in kinds.values()) + " |")
    lines.append("| false keywords per hour of noise | " + " | ".join(
        _mean(runs, lambda r: r["noise"]["false_keywords_per_hour"], 1) for runs in kinds.values()) + " |")
    if result["timing"]:
        lines.append("| x real time, one thread | " + " | ".join(
            _mean(runs, lambda r: r["x_real_time_one_thread"], 0) for runs in kinds.values()) + " |")
    else:
        lines.append("| x real time, one thread | " + " | ".join(
            "not measured (`--no-timing`)" for _ in kinds) + " |")
    lines += ["", f"Reproduce with `{result['command']}`; targets: "
              f"x real time >= {result['targets']['x_real_time_one_thread']:,.0f} on one thread, median "
              f"latency <= {result['targets']['median_latency_s']:g} s, precision and recall at "
              "least the windows' at the default threshold."]
    return "\n".join([*lines, "", conditions(result["meta"])])
