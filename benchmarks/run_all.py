"""Run every benchmark (benchmarks/bench_*.py) in turn: `make bench`.

    .venv/bin/python -m benchmarks.run_all [--quick] [--only NAME ...]

Each module's ``main(argv)`` runs in this process, one after the other (so they never share
the cores), with its ``FULL_ARGV`` if it has one; one that fails is reported and the rest
still run. ``--quick`` runs the modules that define ``QUICK_ARGV`` (the arguments of their
smoke run) with it and skips the others; smoke runs write *_quick.json, which the README never
reads. Ends with the JSON files the benchmarks wrote and, after a full run, regenerates the
README's measured sections from them (``python -m benchmarks.report``); exits 1 if any failed.
A full run takes about four hours on 2 cores: bench_generalization about 2.5-3 hours (36
trainings), bench_training about 30 min, bench_inference about 15 min (25 with its models still
to train).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from benchmarks import meta

HERE = Path(__file__).resolve().parent


def benchmark_names() -> list[str]:
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def run(name: str, quick: bool) -> str:
    """Run one benchmark; "ok", "skipped (...)" or "failed (...)"."""
    module = importlib.import_module(f"benchmarks.{name}")
    argv = list(getattr(module, "FULL_ARGV", []))
    if quick:
        if not hasattr(module, "QUICK_ARGV"):
            return "skipped (no quick mode)"
        argv = list(module.QUICK_ARGV)
    try:
        returned = module.main(argv)
    except SystemExit as exc:  # argparse errors and the benchmarks' own stops
        if exc.code not in (None, 0):
            return f"failed (exit: {exc.code})"
    except Exception as exc:  # noqa: BLE001 - report it and go on with the next benchmark
        traceback.print_exc()
        return f"failed ({type(exc).__name__}: {exc})"
    if isinstance(returned, int) and returned != 0:
        return f"failed (returned {returned})"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    names = benchmark_names()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke runs of the benchmarks that have one (numbers not meaningful)")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these ({', '.join(names)})")
    args = parser.parse_args(argv)

    started = time.time()
    outcomes = {}
    for name in args.only or names:
        print(f"\n=== {name} {'(quick) ' if args.quick else ''}===", flush=True)
        begin = time.perf_counter()
        outcomes[name] = run(name, args.quick)
        print(f"=== {name}: {outcomes[name]} in {time.perf_counter() - begin:.0f} s", flush=True)

    print("\nbenchmarks:")
    for name, outcome in outcomes.items():
        print(f"  {name:20} {outcome}")
    written = sorted(p for p in meta.RESULTS.glob("*.json") if p.stat().st_mtime >= started)
    print("results written:" if written else f"no results written to {meta.RESULTS}")
    for path in written:
        print(f"  {path}")
    failed = any(o.startswith("failed") for o in outcomes.values())
    if not args.quick:
        from benchmarks import report

        failed = report.main([]) != 0 or failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
