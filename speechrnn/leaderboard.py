"""Leaderboards of many runs: `leaderboard.csv` and `leaderboard.md` in a sweep dir.

Shared by Hydra grids (`speechrnn train -m ...`, through `LeaderboardCallback`, registered under
`hydra.callbacks` in speechrnn/conf/config.yaml) and Optuna sweeps (`speechrnn sweep`, see sweep.py).
Rows are ranked by best val/acc, completed runs before pruned or failed ones.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

COLUMNS = ["rank", "overrides", "status", "val/acc", "test/acc", "parameters", "seconds", "run_dir"]


@dataclass
class Entry:
    """One run: its overrides, how it ended and what it reached (None: not known)."""

    run_dir: str
    overrides: list[str] = field(default_factory=list)
    status: str = "complete"  # complete | pruned | failed | running
    val_acc: Optional[float] = None
    test_acc: Optional[float] = None
    parameters: Optional[int] = None
    seconds: Optional[float] = None


def best_epoch_val_acc(run_dir: Path) -> Optional[float]:
    """The best val/acc among the epochs a run's metrics.jsonl recorded (None if none)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    values = [r["val/acc"] for r in map(json.loads, path.read_text().splitlines())
              if r.get("kind") == "epoch" and "val/acc" in r]
    return max(values, default=None)


def from_run_dir(run_dir: Path) -> Entry:
    """An entry from a training run dir: summary.json when the run finished, else its metrics."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    summary_file = run_dir / "summary.json"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else None
    if not summary_file.exists():
        return Entry(str(run_dir), list(overrides or []), "failed", best_epoch_val_acc(run_dir))
    summary = json.loads(summary_file.read_text())
    return Entry(
        run_dir=str(run_dir),
        overrides=list(overrides if overrides is not None else summary.get("overrides", [])),
        val_acc=summary["val_accuracy"],
        test_acc=summary["test_accuracy"],
        parameters=summary["num_parameters"],
        seconds=summary["train_seconds"],
    )


def rank(entries: Iterable[Entry]) -> list[Entry]:
    """Completed runs first, each group by val/acc (best first); unknown val/acc last."""
    return sorted(entries, key=lambda e: (e.status != "complete", e.val_acc is None, -(e.val_acc or 0.0)))


def common_overrides(entries: list[Entry]) -> list[str]:
    """Overrides every entry shares (printed once above the table)."""
    if len(entries) < 2:
        return []
    shared = set(entries[0].overrides).intersection(*(e.overrides for e in entries[1:]))
    return [o for o in entries[0].overrides if o in shared]


def shown(override: str) -> str:
    """``key=value`` for printing: a float value to 4 significant digits (0.001234 for
    0.0012337892...). Display only: leaderboard.csv, best.json and each run's config.yaml keep
    the exact value."""
    key, sep, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return override if value.lstrip("+-").isdigit() else f"{key}{sep}{number:.4g}"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _run_dir(entry: Entry, base: Optional[Path]) -> str:
    run_dir = Path(entry.run_dir)
    if base is not None and run_dir.is_relative_to(base):
        run_dir = run_dir.relative_to(base)
    return str(run_dir)


def _csv_row(index: int, entry: Entry, base: Path) -> list:
    return [index, " ".join(entry.overrides), entry.status, entry.val_acc, entry.test_acc,
            entry.parameters, entry.seconds, _run_dir(entry, base)]


def _markdown_row(index: int, entry: Entry, overrides: list[str], base: Optional[Path]) -> list[str]:
    return [str(index), f"`{' '.join(map(shown, overrides))}`" if overrides else "", entry.status, _fmt(entry.val_acc),
            _fmt(entry.test_acc), _fmt(entry.parameters), _fmt(entry.seconds, 1), _run_dir(entry, base)]


def to_markdown(entries: list[Entry], title: str = "Leaderboard", base: Optional[Path] = None) -> str:
    """A Markdown table; overrides shared by every row are listed once above it; run dirs
    relative to base."""
    entries = rank(entries)
    shared = common_overrides(entries)
    lines = [f"# {title}", ""]
    if shared:
        lines += [f"Common overrides: `{' '.join(map(shown, shared))}`", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for i, entry in enumerate(entries, 1):
        row = _markdown_row(i, entry, [o for o in entry.overrides if o not in shared], base)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write(entries: list[Entry], out_dir: Path, title: str = "Leaderboard") -> str:
    """Write leaderboard.csv (full overrides per row) and leaderboard.md into out_dir; return the
    Markdown. Run dirs inside out_dir are written relative to it."""
    entries = rank(entries)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "leaderboard.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(_csv_row(i, e, out_dir) for i, e in enumerate(entries, 1))
    markdown = to_markdown(entries, title, out_dir)
    (out_dir / "leaderboard.md").write_text(markdown)
    return markdown


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job dirs of a Hydra multirun (each has .hydra/overrides.yaml), in job order."""
    dirs = [p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")]
    return sorted(dirs, key=lambda d: [(not part.isdigit(), int(part) if part.isdigit() else 0, part)
                                       for part in d.relative_to(sweep_dir).parts])


def grid_report(sweep_dir: Path, entries: Optional[list[Entry]] = None) -> Optional[str]:
    """Write the leaderboard of a multirun's job dirs (or of ``entries`` read from them) into
    sweep_dir; its Markdown (None: no jobs)."""
    entries = [from_run_dir(d) for d in job_dirs(sweep_dir)] if entries is None else entries
    return write(entries, sweep_dir, title=f"Leaderboard: {sweep_dir}") if entries else None


class LeaderboardCallback(Callback):
    """At the end of `speechrnn train -m ...`: rank the jobs, write and print the leaderboard."""

    # The run dirs of the jobs of the last multirun in this process that failed (Hydra ignores
    # what a callback raises, so `speechrnn train` reads this to exit non-zero).
    failed: list[str] = []

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        entries = [from_run_dir(d) for d in job_dirs(sweep_dir)]
        LeaderboardCallback.failed = [e.run_dir for e in entries if e.status == "failed"]
        markdown = grid_report(sweep_dir, entries)
        if markdown is None:
            log.warning("no job dirs under %s; no leaderboard written", sweep_dir)
            return
        print(markdown)
        log.info("leaderboard: %s", sweep_dir / "leaderboard.md")
