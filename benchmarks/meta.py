"""Where a benchmark's JSON goes, and the ``meta`` block every one of them carries.

    started = meta.start()                      # before the first measurement
    ...
    meta.write("inference", result, started, threads={"torch": 1, "onnxruntime": 1}, quick=False)

``write`` puts the result in benchmarks/results/<name>.json (the committed file the README is
generated from) or, for a smoke run, <name>_quick.json (git-ignored, never read by the report),
with ``meta``: when (UTC) and at which commit it ran, on which CPU, with how many threads, how
loaded the machine was, and the versions of the libraries that did the work.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PACKAGES = ("torch", "torchaudio", "onnxruntime", "numpy", "librosa")
# /proc/stat's first line: user nice system idle iowait irq softirq steal ... (clock ticks);
# idle, iowait and steal (another virtual machine's time) are not this machine's work.
BUSY_FIELDS = (0, 1, 2, 5, 6)


def result_path(name: str, quick: bool = False) -> Path:
    return RESULTS / f"{name}{'_quick' if quick else ''}.json"


def start() -> dict:
    """What has to be read before the benchmark begins (pass it to ``write``)."""
    return {"date": _now(), "clock": time.monotonic(), "load_average": list(os.getloadavg()),
            "busy_s": _busy_seconds(), "own_cpu_s": own_cpu_seconds()}


def collect(started: dict, threads: dict[str, int | str]) -> dict:
    """The meta block of a benchmark that began with ``started`` and ends now."""
    busy, own = _busy_seconds(), own_cpu_seconds()
    elapsed = time.monotonic() - started["clock"]
    others = None
    if busy is not None and started["busy_s"] is not None and elapsed > 0:
        # CPU time the whole machine spent, less this process's and its children's.
        others = max(0.0, (busy - started["busy_s"]) - (own - started["own_cpu_s"])) / elapsed
    commit, dirty = _git()
    return {
        "date": started["date"],
        "finished": _now(),
        "seconds": round(elapsed, 1),
        "commit": commit,
        "dirty": dirty,
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "load_average_start": [round(x, 2) for x in started["load_average"]],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        # Cores kept busy on average by processes other than this benchmark (None: unknown).
        "other_processes_cores": None if others is None else round(others, 2),
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
    }


def write(name: str, result: dict, started: dict, threads: dict[str, int | str],
          quick: bool = False) -> Path:
    """Write ``result`` with its meta block and print the README sections it feeds; the path."""
    path = result_path(name, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "quick": quick, "meta": collect(started, threads), **result}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    from benchmarks.report import preview

    print(f"{preview(path)}\n\nwrote {path}")
    return path


def relative(path: str | os.PathLike) -> str:
    """A path inside the repository as it reads from its root (others unchanged)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _busy_seconds() -> float | None:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    return sum(int(fields[i]) for i in BUSY_FIELDS) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _git() -> tuple[str | None, bool | None]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        # Dirty: a tracked file differs from the commit (untracked files do not count).
        return git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain",
                                                             "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return None, None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    json.dump(collect(start(), {}), sys.stdout, indent=2)
