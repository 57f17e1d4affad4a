"""Data pipeline throughput and memory: one full pass through a DataLoader with 2 workers.

Sets: FSDD (all 3,000 clips, 8 kHz resampled to 16 kHz) and a synthetic 10 words x 1,000 clips
set rendered into a temporary folder with speechrnn.data.synthetic.render; each plain and with
the default training augmentation (noise from the set's own noise folder, the Speech Commands
noise for FSDD). Each pass runs in a fresh process, so its peak RSS is its own: the main process
and the largest worker. Memory that does not grow with the number of clips shows as the same
peak for 3,000 and 10,000 clips.

A few minutes on 2 cores (rendering the synthetic set included).

    .venv/bin/python -m benchmarks.bench_data [--quick]

Writes benchmarks/results/data.json and prints the README section made from it
(data_quick.json with --quick: a synthetic set of 10 x 50 clips, numbers not meaningful).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import meta

SHARED_DATA = meta.REPO.parent / "shared" / "data"
BATCH_SIZE = 64
WORKERS = 2
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick


def _mb(kilobytes: int) -> float:
    return round(kilobytes / 1024, 1)  # ru_maxrss is in kB on Linux


def run_pass(source: str, root: str, augment: bool, noise_dir: str | None) -> dict:
    """One pass over every clip of the set (all splits), in this process."""
    from speechrnn.config import Config, DataConfig
    from speechrnn.data import ClipDataset, build_splits, make_loader
    from speechrnn.data.augment import build_transform

    # No words: every word folder of the synthetic set is a class.
    cfg = Config(data=DataConfig(source=source, root=root, silence=False, unknown=False))
    splits = build_splits(cfg.data)
    clips = splits.train + splits.val + splits.test
    rate = cfg.data.sample_rate
    transform = build_transform(cfg.augment, rate, noise_dir or splits.noise_dir) if augment else None
    dataset = ClipDataset(clips, splits.labels, rate, round(rate * cfg.data.clip_seconds), transform)
    loader = make_loader(dataset, BATCH_SIZE, shuffle=True, num_workers=WORKERS, seed=0)
    start, seen = time.perf_counter(), 0
    for waveforms, _ in loader:
        seen += len(waveforms)
    seconds = time.perf_counter() - start
    del loader  # stops the workers, so their peak RSS is counted below
    return {
        "clips": seen,
        "seconds": round(seconds, 2),
        "clips_per_s": round(seen / seconds, 1),
        "peak_rss_mb_main": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "peak_rss_mb_worker": _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
    }


def in_fresh_process(name: str, source: str, root: Path, augment: bool,
                     noise_dir: Path | None) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_data", "--pass", source, str(root),
               str(int(augment)), str(noise_dir or "")]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return {"set": name, "augment": augment, **json.loads(done.stdout.splitlines()[-1])}


def render_synthetic(out: Path, per_word: int) -> tuple[Path, float] | None:
    try:
        from speechrnn.data.synthetic import COMMAND_WORDS, render
    except ImportError:
        return None
    start = time.perf_counter()
    root = render(out / "synthetic", words=list(COMMAND_WORDS), unknown_words=[], per_word=per_word)
    return root, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pass", dest="one_pass", nargs=4, metavar=("SOURCE", "ROOT", "AUG", "NOISE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers not meaningful)")
    args = parser.parse_args(argv)
    if args.one_pass:
        source, root, augment, noise = args.one_pass
        print(json.dumps(run_pass(source, root, augment == "1", noise or None)))
        return 0

    started = meta.start()
    per_word = 50 if args.quick else 1000
    rows, notes = [], {}
    fsdd, noise = SHARED_DATA / "fsdd" / "recordings", SHARED_DATA / "speech_commands_noise"
    if fsdd.is_dir() and noise.is_dir():
        for augment in (False, True):
            rows.append(in_fresh_process("fsdd", "fsdd", fsdd, augment, noise))
    else:
        notes["fsdd"] = f"skipped: {fsdd} or {noise} missing"
    with tempfile.TemporaryDirectory() as tmp:
        rendered = render_synthetic(Path(tmp), per_word)
        if rendered is None:
            notes["synthetic"] = "skipped: speechrnn.data.synthetic is not available"
        else:
            root, render_seconds = rendered
            notes["synthetic_render_seconds"] = round(render_seconds, 1)
            for augment in (False, True):
                rows.append(in_fresh_process(f"synthetic (10 words x {per_word})",
                                             "speech_commands", root, augment, None))

    meta.write("data", {"batch_size": BATCH_SIZE, "workers": WORKERS, "rows": rows, **notes},
               started, threads={"dataloader_workers": WORKERS}, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
