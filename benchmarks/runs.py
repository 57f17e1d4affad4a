"""Training runs for the benchmarks, and the mean and spread of a number over seeds.

``train`` runs `speechrnn train` as a user would, in its own process (``jobs`` trained side by
side share the cores out, ``torch_threads``), into a run folder under benchmarks/results/runs/
(runs-quick/ for smoke runs; both git-ignored), and returns the run's summary.json with the
command that reproduces it.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

from benchmarks import meta


def run_dir(name: str, seed: int, quick: bool, group: str = "") -> Path:
    """runs[-quick]/[group/]<name as a slug>/seed<N>."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    root = meta.RESULTS / ("runs-quick" if quick else "runs")
    return (root / group if group else root) / slug / f"seed{seed}"


def torch_threads(jobs: int) -> Optional[str]:
    """OMP_NUM_THREADS for each of ``jobs`` trainings at once: the caller's when set, else the
    cores shared out (None: one training, torch's default of a thread per core). Left at that
    default, ``jobs`` trainings spin ``jobs`` x cores threads on the cores, and ran 20-50x slower
    than alone on 2 cores."""
    if "OMP_NUM_THREADS" in os.environ or jobs == 1:
        return os.environ.get("OMP_NUM_THREADS")
    return str(max(1, (os.cpu_count() or 1) // jobs))


def train(overrides: list[str], seed: int, folder: Path, processes: int = 1, jobs: int = 1) -> dict:
    """One seed of one training: ``summary`` (the run's summary.json), ``wall_seconds`` and
    ``command`` (the `speechrnn train` line that reproduces it). ``processes`` > 1: DDP on this
    machine through torchrun. ``jobs``: how many trainings run at once (``torch_threads``)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}", "-m", "speechrnn.train_cli"] if processes > 1
                else [sys.executable, "-m", "speechrnn", "train"])
    command = [*launcher, *overrides, f"trainer.seed={seed}", "trainer.progress=false",
               f"hydra.run.dir={folder}", "trainer.overwrite=true"]  # a rerun replaces the run
    line = (f"torchrun --standalone --nproc_per_node={processes} -m speechrnn.train_cli "
            if processes > 1 else "speechrnn train ") + " ".join(command[len(launcher):])
    print("$ " + line, flush=True)
    start = time.perf_counter()
    threads = torch_threads(jobs)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env=None if threads is None else {**os.environ, "OMP_NUM_THREADS": threads})
    wall = time.perf_counter() - start
    return {"summary": json.loads((folder / "summary.json").read_text()),
            "wall_seconds": round(wall, 1), "command": line}


def spread(values: Iterable[float]) -> dict:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}
