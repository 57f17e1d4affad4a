"""Side-by-side timing: compared functions take turns call by call, so load from other
processes hits them alike, and each is reported by percentiles of its own calls."""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np


def interleaved(fns: dict[str, Callable], inputs: Sequence, calls: int,
                warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each function, on ``inputs`` in turn (cycled), the functions
    taking turns call by call after ``warmup`` untimed rounds."""
    for item in inputs[:warmup]:
        for fn in fns.values():
            fn(item)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(calls):
        item = inputs[i % len(inputs)]
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(item)
            times[name].append(time.perf_counter() - start)
    return times


def percentile_ms(times: Sequence[float], q: float, per: int = 1) -> float:
    """The ``q``th percentile of ``times`` (seconds) in ms, divided by ``per`` (items a call)."""
    return float(np.percentile(times, q) * 1e3 / per)
