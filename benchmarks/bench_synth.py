"""How fast the espeak-ng synthetic set renders.

Rows: the 10 command words x 200 clips with 1 and with 2 worker processes, the default set
(10 x 200 plus 12 unknown words x 40), and with --large the 10 words x 1,000. Each render goes
to a temporary folder. CPU seconds (this process and its workers) are printed beside the wall
time: on a shared machine the wall time also counts waiting for a core. About a minute with
--large on 2 cores (``make bench`` passes it).

    .venv/bin/python -m benchmarks.bench_synth [--large] [--quick]

Writes benchmarks/results/synth.json and prints the README section made from it
(synth_quick.json with --quick: 20 clips a word, numbers not meaningful).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks import meta
from speechrnn.data.synthetic import COMMAND_WORDS, MARKER, UNKNOWN_WORDS, render

FULL_ARGV = ["--large"]  # benchmarks.run_all
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick


def run(name: str, workers: int | None, **kwargs) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        cpu, start = meta.own_cpu_seconds(), time.perf_counter()
        out = render(Path(tmp) / "set", workers=workers, **kwargs)
        seconds, cpu = time.perf_counter() - start, meta.own_cpu_seconds() - cpu
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
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 words x 20 clips")
    args = parser.parse_args(argv)

    started = meta.start()
    per_word = 20 if args.quick else 200
    commands = dict(words=COMMAND_WORDS, unknown_words=(), per_word=per_word)
    rows = [
        run(f"10 words x {per_word}", 1, **commands),
        run(f"10 words x {per_word}", 2, **commands),
    ]
    if not args.quick:
        rows.append(run("default (10 x 200 + 12 x 40)", None, words=COMMAND_WORDS,
                        unknown_words=UNKNOWN_WORDS))
    if args.large and not args.quick:
        rows.append(run("10 words x 1000", None, words=COMMAND_WORDS, unknown_words=(), per_word=1000))

    meta.write("synth", {"rows": rows}, started, quick=args.quick,
               threads={"render_workers": "1, 2 or one per core (the workers column)"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
