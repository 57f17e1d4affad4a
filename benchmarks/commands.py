"""Run a `speechrnn` command as a user would, in its own process: wall time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs a command and writes its exit code and peak RSS to argv[1]. A child's ru_maxrss counts
# the memory image it was forked from (kept across exec), so the measured command must be
# forked from this small launcher, not from the benchmark with torch loaded.
LAUNCHER = """
import json, os, subprocess, sys
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "peak_rss_kb": usage.ru_maxrss}, out)
"""


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "speechrnn", *map(str, args)]


def run_measured(command: list[str]) -> dict:
    """Run a command; its wall time, exit code, stdout, stderr and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        report, out, err = (Path(tmp) / name for name in ("report", "out", "err"))
        start = time.perf_counter()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command],
                           stdout=stdout, stderr=stderr, check=True)
        wall = time.perf_counter() - start
        measured = json.loads(report.read_text())
        return {"returncode": measured["returncode"], "wall_s": wall,
                "peak_rss_mb": measured["peak_rss_kb"] / 1024,
                "stdout": out.read_text(errors="replace"), "stderr": err.read_text(errors="replace")}


def checked(name: str, result: dict) -> dict:
    if result["returncode"] != 0:
        raise SystemExit(f"{name} failed:\n{result['stderr'][-2000:]}")
    return result
