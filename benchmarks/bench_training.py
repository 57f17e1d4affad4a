"""Train the reference recipes and report accuracy, training time and throughput side by side;
with --pipeline, how well the data pipeline keeps up; with --ddp, 2-process DDP against one process.

    python -m benchmarks.bench_training [--only fsdd/gru ...] [--seeds 0 1 2] [--fsdd PATH]
                                        [--noise PATH] [--quick]
    python -m benchmarks.bench_training --pipeline --corpus DIR [--setup NAME ...] [--threads N]
                                        [--quick]
    python -m benchmarks.bench_training --ddp [--seeds 0 1 2] [--quick]

Each recipe runs once per seed (trainer.seed) as `speechrnn train` in its own process (one at a
time, so they do not share the cores; torch's default threads, the recipe's DataLoader workers)
into benchmarks/results/runs/<name>/seed<N>/; benchmarks/results/training.json keeps every
seed's summary and their mean and standard deviation (with --only, the other runs' rows stay as
they were). 3-9 min a recipe and seed on 2 cores. ``--quick``: fsdd/gru, one seed, one epoch,
into runs-quick/, written to training_quick.json (numbers not meaningful).

``--pipeline`` (benchmarks/pipeline.py says what is measured): the default recipe
(synthetic/gru) on a Speech Commands-scale corpus, 35 words x 3,000 clips that
``speechrnn synth`` renders into --corpus (the command is printed when the folder is empty), as
it is and with speed and VTLP warped in the model (augment.warp_spectrogram), and fsdd/gru on
FSDD, each in a fresh process with a cold decode cache; written to pipeline.json (``--setup``
measures some and keeps the others' rows). ``--quick`` renders 35 words x 8 clips into a
temporary folder instead and measures one short round.

``--ddp``: fsdd/gru as one process with batch 64 and as 2 torchrun processes with batch 32 each
(the same global batch), the decode cache filled first; test accuracy over the seeds and
training clips/s of each; written to ddp.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import meta, runs

SHARED_DATA = meta.REPO.parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd" / "recordings"
NOISE = SHARED_DATA / "speech_commands_noise"
QUICK_ARGV = ["--quick"]  # benchmarks.run_all --quick

# name -> overrides ({fsdd}: the FSDD recordings folder, {noise}: the noise recordings'), what
# the test split is, and the recipe's target (test accuracy, and wall seconds when timed).
RUNS = {
    "fsdd/gru": dict(overrides=["recipe=fsdd/gru", "data.root={fsdd}"],
                     data="FSDD official split", target=dict(accuracy=0.995, seconds=300)),
    "fsdd/lstm": dict(overrides=["recipe=fsdd/lstm", "data.root={fsdd}"],
                      data="FSDD official split"),
    "fsdd/rnn": dict(overrides=["recipe=fsdd/rnn", "data.root={fsdd}"],
                     data="FSDD official split"),
    "fsdd/gru held-out george": dict(
        overrides=["recipe=fsdd/gru", "data.root={fsdd}", "data.test_speakers=[george]"],
        data="FSDD, one speaker never heard in training"),
    "fsdd/kws": dict(overrides=["recipe=fsdd/kws", "data.root={fsdd}", "data.noise_dir={noise}"],
                     data="FSDD + `_silence_` from noise, for `speechrnn detect`"),
    "synthetic/gru": dict(overrides=["recipe=synthetic/gru"],
                          data="synthetic, held-out voices", target=dict(accuracy=0.97, seconds=300)),
    "synthetic/digits -> FSDD test": dict(
        overrides=["recipe=synthetic/digits", "data.test_root={fsdd}"],
        data="synthetic digits only -> real FSDD test", target=dict(accuracy=0.80)),
}


# Per-seed numbers that the row also gives as mean and standard deviation.
AVERAGED = ("test_accuracy", "val_accuracy", "epochs", "train_seconds", "wall_seconds",
            "train_clips_per_s")


def train(name: str, seed: int, fsdd: Path, noise: Path, quick: bool) -> dict:
    """One seed of one recipe: its summary's numbers."""
    folder = runs.run_dir(name, seed, quick)
    overrides = [o.format(fsdd=fsdd, noise=noise) for o in RUNS[name]["overrides"]]
    run = runs.train([*overrides, *(["trainer.epochs=1"] if quick else [])], seed, folder)
    summary = run["summary"]
    return {
        "seed": seed,
        "test_accuracy": summary["test_accuracy"],
        "test_clips": summary["clips"]["test"],
        "val_accuracy": summary["val_accuracy"],
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": run["wall_seconds"],
        "train_clips_per_s": summary["train_clips_per_s"],
        "num_parameters": summary["num_parameters"],
        "run_dir": meta.relative(folder),
    }


def recipe_row(name: str, seeds: list[int], fsdd: Path, noise: Path, quick: bool) -> dict:
    """A recipe over seeds: each seed's numbers, and the mean and std of each (std 0 for one)."""
    seed_runs = [train(name, seed, fsdd, noise, quick) for seed in seeds]
    row = {"run": name, "data": RUNS[name]["data"], "target": RUNS[name].get("target"),
           "test_clips": seed_runs[0]["test_clips"],
           "num_parameters": seed_runs[0]["num_parameters"],
           "command": "python -m benchmarks.bench_training --only '" + name + "' --seeds "
                      + " ".join(map(str, seeds)),
           "seeds": seed_runs}
    for key in AVERAGED:
        row[key] = runs.spread(run[key] for run in seed_runs)
    return row


# The 35 words of Speech Commands v2: the 10 commands, the 10 digits, the 15 auxiliary words.
SPEECH_COMMANDS_WORDS = ("yes,no,up,down,left,right,on,off,stop,go,zero,one,two,three,four,"
                         "five,six,seven,eight,nine,bed,bird,cat,dog,happy,house,marvin,sheila,"
                         "tree,wow,backward,forward,follow,learn,visual")
CORPUS_CLIPS = 3000  # a word, as in --pipeline's corpus
QUICK_CLIPS = 8
# name -> overrides ({corpus}, {fsdd}) of the setups --pipeline measures.
PIPELINES = {
    "synthetic/gru, 35 words": ["recipe=synthetic/gru", "data.root={corpus}", "data.words=[]"],
    "synthetic/gru, 35 words, speed and VTLP warped in the model": [
        "recipe=synthetic/gru", "data.root={corpus}", "data.words=[]", "augment.warp_spectrogram=true"],
    "fsdd/gru": ["recipe=fsdd/gru", "data.root={fsdd}"],
}
DDP_RECIPE = ["recipe=fsdd/gru", "data.root={fsdd}"]
GLOBAL_BATCH = 64


def synth_command(out: Path, per_word: int) -> list[str]:
    """The `speechrnn synth` line that renders the 35-word corpus (espeak-ng voices only)."""
    return ["speechrnn", "synth", "--out", str(out), "--words", SPEECH_COMMANDS_WORDS,
            "--unknown-words", "", "--per-word", str(per_word)]


def measure_in_fresh_process(overrides: list[str], rounds: int, batches: int,
                             threads: int | None) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_training", "--measure",
               json.dumps({"overrides": overrides, "rounds": rounds, "batches": batches,
                           "threads": threads})]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True,
                          cwd=meta.REPO)
    return json.loads(done.stdout.splitlines()[-1])


def keep_rows(rows: list[dict], name: str, earlier: dict, order: list[str]) -> list[dict]:
    """``rows`` (measured now) and the ``earlier`` result's rows of the other names (``name``
    is the key that names a row), each with the meta of its own run, in ``order``."""
    measured = {row[name] for row in rows}
    kept = [{"meta": earlier["meta"], **row} for row in earlier.get("rows", [])
            if row[name] in order and row[name] not in measured]
    return sorted(rows + kept, key=lambda row: order.index(row[name]))


def pipeline(corpus: Path | None, fsdd: Path, threads: int | None, quick: bool,
             setups: list[str]) -> int:
    started = meta.start()
    with tempfile.TemporaryDirectory() as tmp:
        if quick:
            corpus = Path(tmp) / "corpus"
            subprocess.run([sys.executable, "-m", *synth_command(corpus, QUICK_CLIPS)],
                           check=True, stdout=subprocess.DEVNULL)
        elif corpus is None or not corpus.is_dir() or not any(corpus.iterdir()):
            line = " ".join(f"'{a}'" if not a or "," in a else a
                            for a in synth_command(corpus or Path("CORPUS"), CORPUS_CLIPS))
            print(f"--corpus: render the Speech Commands-scale corpus first (105,000 clips, "
                  f"about 3.5 GB):\n  {line}", file=sys.stderr)
            return 2
        rounds, batches = (1, 6) if quick else (5, 100)
        rows = []
        for name in setups:
            filled = [o.format(corpus=corpus, fsdd=fsdd) for o in PIPELINES[name]]
            print(f"$ pipeline: {name}: {' '.join(filled)}", flush=True)
            rows.append({"setup": name, "overrides": filled,
                         **measure_in_fresh_process(filled, rounds, batches, threads)})
    out = meta.result_path("pipeline", quick)
    earlier = json.loads(out.read_text()) if out.is_file() and not quick else {}
    meta.write("pipeline", {"corpus": meta.relative(corpus) if not quick else "temporary",
                            "clips_per_word": QUICK_CLIPS if quick else CORPUS_CLIPS,
                            "rows": keep_rows(rows, "setup", earlier, list(PIPELINES))}, started,
               threads={"torch": threads or "default (one per core)",
                        "dataloader_workers": "the recipe's"}, quick=quick)
    return 0


def ddp(seeds: list[int], fsdd: Path, quick: bool) -> int:
    started = meta.start()
    recipe = [o.format(fsdd=fsdd) for o in DDP_RECIPE]
    # One epoch first, so every run reads the decode cache (the first would decode the files).
    runs.train([*recipe, "trainer.epochs=1"], seeds[0], runs.run_dir("cache fill", 0, quick, "ddp"))
    overrides = [*recipe, *(["trainer.epochs=1"] if quick else [])]
    rows = []
    for processes in (1, 2):
        batch = [f"data.batch_size={GLOBAL_BATCH // processes}"]
        seed_runs = []
        for seed in seeds:
            folder = runs.run_dir(f"{processes} processes", seed, quick, "ddp")
            run = runs.train([*overrides, *batch], seed, folder, processes=processes)
            seed_runs.append({"seed": seed, "test_accuracy": run["summary"]["test_accuracy"],
                              "train_clips_per_s": run["summary"]["train_clips_per_s"],
                              "wall_seconds": run["wall_seconds"], "command": run["command"]})
        rows.append({"processes": processes, "batch_per_process": GLOBAL_BATCH // processes,
                     "seeds": seed_runs,
                     **{key: runs.spread(run[key] for run in seed_runs)
                        for key in ("test_accuracy", "train_clips_per_s", "wall_seconds")}})
    meta.write("ddp", {"recipe": "fsdd/gru", "global_batch": GLOBAL_BATCH, "rows": rows}, started,
               threads={"torch": "default (one per core) for 1 process, 1 a process under "
                                 "torchrun (its default)",
                        "dataloader_workers": "the recipe's, in each process"}, quick=quick)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=NOISE, help="the noise recordings folder")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="trainer.seed values; accuracy is reported as their mean and std")
    parser.add_argument("--quick", action="store_true", help="fsdd/gru, one seed, one epoch")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--pipeline", action="store_true",
                      help="pipeline efficiency, epoch times and memory (not the recipes)")
    part.add_argument("--ddp", action="store_true",
                      help="2-process DDP vs one process on the same global batch")
    part.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help="--pipeline: the 35-word corpus folder")
    parser.add_argument("--threads", type=int, help="--pipeline: torch threads (default: torch's)")
    parser.add_argument("--setup", nargs="+", choices=list(PIPELINES), default=list(PIPELINES),
                        help="--pipeline: measure only these setups (the others' rows stay)")
    args = parser.parse_args(argv)
    if args.measure:
        from benchmarks.pipeline import measure

        print(json.dumps(measure(**json.loads(args.measure))))
        return 0
    if args.pipeline:
        return pipeline(args.corpus, args.fsdd, args.threads, args.quick, args.setup)
    if args.ddp:
        return ddp(args.seeds[:1] if args.quick else args.seeds, args.fsdd, args.quick)
    names = ["fsdd/gru"] if args.quick else (args.only or list(RUNS))
    seeds = args.seeds[:1] if args.quick else args.seeds

    started = meta.start()
    rows = [recipe_row(name, seeds, args.fsdd, args.noise, args.quick) for name in names]
    out = meta.result_path("training", args.quick)
    # --only replaces its runs' rows and keeps the others' (with the meta of their own run).
    earlier = json.loads(out.read_text()) if out.is_file() and not args.quick else {}
    meta.write("training", {"rows": keep_rows(rows, "run", earlier, list(RUNS))}, started,
               threads={"torch": "default (one per core)", "dataloader_workers": "the recipe's"},
               quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
