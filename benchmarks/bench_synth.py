"""How fast the espeak-ng synthetic set renders.

Rows: the 10 command words x 200 clips with 1 and with 2 worker processes, the default set
(10 x 200 plus 12 unknown words x 40), and with --large the 10 words x 1,000. Each render goes
to a temporary folder. CPU seconds (this process and its workers) are printed beside the wall
time: on a shared machine the wall time also counts waiting for a core.

    .venv/bin/python -m benchmarks.bench_synth [--large]

Prints a table and writes benchmarks/results/synth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from speechrnn.data.synthetic import COMMAND_WORDS, MARKER, UNKNOWN_WORDS, render

RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def _cpu_seconds() -> float:
    own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def run(name: str, workers: int | None, **kwargs) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        cpu, start = _cpu_seconds(), time.perf_counter()
        out = render(Path(tmp) / "set", workers=workers, **kwargs)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        clips = json.loads((out / MARKER).read_text())["clips"]
    return {
        "set": name,
        "workers": workers or "auto",
        "clips": clips,
        "seconds": round(seconds, 2),
        "clips_per_s": round(clips / seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_clip": round(1000 * cpu / clips, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_synth", description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also render 10 words x 1,000 clips")
    args = parser.parse_args(argv)

    commands = dict(words=COMMAND_WORDS, unknown_words=(), per_word=200)
    rows = [
        run("10 words x 200", 1, **commands),
        run("10 words x 200", 2, **commands),
        run("default (10 x 200 + 12 x 40)", None, words=COMMAND_WORDS, unknown_words=UNKNOWN_WORDS),
    ]
    if args.large:
        rows.append(run("10 words x 1000", None, words=COMMAND_WORDS, unknown_words=(), per_word=1000))

    header = f"{'set':<30} {'workers':>7} {'clips':>6} {'seconds':>8} {'clips/s':>8} {'cpu s':>6} {'cpu ms/clip':>11}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['set']:<30} {row['workers']!s:>7} {row['clips']:>6} {row['seconds']:>8} "
              f"{row['clips_per_s']:>8} {row['cpu_seconds']:>6} {row['cpu_ms_per_clip']:>11}")
    machine = {"cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
               "processor": platform.processor() or platform.machine(), "python": platform.python_version()}
    print(f"\n{machine['cores']} cores, load average {machine['load_average'][0]:.1f} at the end")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
