"""How the models do on speakers, voices, noise and channels they were not tuned on (issue 11).

    python -m benchmarks.bench_generalization [--only PART ...] [--seeds 0 1 2] [--jobs N]
        [--recipe fsdd/gru] [--override KEY=VALUE ...] [--fsdd PATH] [--noise PATH] [--quick]

Every training runs once per seed (`speechrnn train ... trainer.seed=N`, see benchmarks/runs.py)
into benchmarks/results/runs/generalization/; every number is given per seed and as the mean and
standard deviation over seeds. ``--jobs N`` trains up to N seeds of a training at once, each in
its own process (with ``OMP_NUM_THREADS`` = cores / N unless set, ``runs.torch_threads``; seeds
finish sooner than one after the other on 2 cores; the numbers do not depend on it). Parts
(``--only`` runs some and keeps the others' earlier results):

- ``loso``: FSDD leave-one-speaker-out with ``--recipe`` (+ ``--override``s): one fold per
  speaker (``data.test_speakers=[SPEAKER]``; validation comes from the other speakers only),
  the run's test accuracy per fold and seed; the mean over folds, the worst speaker (mean over
  seeds per speaker, then the lowest) and the std over seeds of the mean over folds. One row per
  recipe (with its overrides): measuring another recipe keeps the earlier ones.
- ``ensemble``: each LOSO fold's seed runs of ``--recipe`` (+ ``--override``s) exported as one
  ensemble (``speechrnn export RUN RUN ... -o FILE``, the mean of their probabilities) and scored
  on the fold's held-out speaker: one accuracy a fold, the mean over folds and the worst. It reads
  the runs of the loso row of this run or of an earlier one (they must still be on disk).
- ``synth2real``: ``synthetic/digits`` (digit words "zero".."nine") run as its exported ONNX
  model over all 3,000 real FSDD clips (digits "0".."9"): accuracy.
- ``default``: the default model (``synthetic/gru``, command words): its test accuracy on the
  synthetic test split; the share of the 3,000 FSDD clips (people saying words it has no class
  for) it calls `_unknown_`; the share of ``PROBES`` (digital silence; 100-sample and -60 dBFS
  cuts of the held-out real noise) it calls `_silence_`; false keywords per hour from
  `speechrnn detect` (default settings) on the held-out halves of the real noise recordings
  (``split_noise``, as bench_inference does).
- ``noise``: ``fsdd/kws`` (trained on the other noise halves): false keywords per hour on the
  held-out halves, and precision and recall on the spoken-digit recording of
  benchmarks/long_recording.py (an hour of FSDD test clips, held-out noise in the gaps).
- ``channel``: ``--recipe`` on the official FSDD split; its ONNX model on its test clips as
  recorded, band-limited to 300-3400 Hz and resampled through 8 kHz, each at its own level and
  at -35, -20 and 0 dBFS peak, without and with a synthetic room (``CONDITIONS``); accuracy and
  the drop against the clean clips in points, a row per recipe and overrides. FSDD is recorded at
  8 kHz, so "through 8 kHz" mostly measures the 16-bit rounding every condition ends with.

Writes benchmarks/results/generalization.json, each part with the command that reproduces it
and each run with its `speechrnn train` line. At full budget on 2 cores, about: loso 90 min
(18 trainings), synth2real 30-40 min (6), noise 25 min (3 + synthetic/gru's, shared with
synth2real in one invocation), channel 20 min (3). ``--quick``: one epoch per training, two
LOSO folds, a 2-minute digit recording, into runs-quick/ and generalization_quick.json.
"""

from __future__ import annotations

import argparse
import functools
from concurrent.futures import ThreadPoolExecutor
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

from benchmarks import meta, runs
from benchmarks.detection_eval import score, split_noise
from benchmarks.long_recording import TOLERANCE_S, long_recordings
from speechrnn import audio, checkpoint
from speechrnn.data import Clip, build_splits
from speechrnn.data.augment import Reverb
from speechrnn.data.fsdd import NAME
from speechrnn.data.synthetic import DIGIT_WORDS
from speechrnn.detect import Settings, detect
from speechrnn.export import export_ensemble
from speechrnn.labels import SILENCE, UNKNOWN
from speechrnn.runtime import Recognizer

SHARED_DATA = meta.REPO.parent / "shared" / "data"
FSDD = SHARED_DATA / "fsdd" / "recordings"
NOISE = SHARED_DATA / "speech_commands_noise"
PARTS = ("loso", "ensemble", "synth2real", "default", "ablation", "noise", "channel")  # in order
ON_REQUEST = ("ablation",)  # run only when named in --only
GROUP = "generalization"  # runs/generalization/
DEFAULT_MODEL = "synthetic/gru"  # what `speechrnn train` trains with no recipe
QUICK_ARGV = ["--quick", "--only", "channel", "--seeds", "0"]  # benchmarks.run_all --quick
# Issue 11's "done when" figures (means over seeds).
TARGETS = {"loso_mean": 0.95, "loso_worst": 0.90, "synth2real_accuracy": 0.90,
           "fsdd_unknown_share": 0.97, "false_keywords_per_hour": 2.0, "digit_recall": 0.95,
           "channel_drop_points": 3.0}

# ---------------------------------------------------------------------------- channel
BAND_HZ = (300.0, 3400.0)  # telephone band
NARROW_RATE = 8000
LEVELS_DBFS = (None, -35.0, -20.0, 0.0)  # peak level; None: as recorded
ROOM = dict(prob=1.0, rt60_min=0.3, rt60_max=0.8)  # augment.Reverb, every clip


@functools.lru_cache
def _band_pass(rate: int, band: tuple[float, float]) -> np.ndarray:
    return butter(8, band, "bandpass", fs=rate, output="sos")


def band_limit(samples: np.ndarray, rate: int, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """``samples`` through an 8th-order Butterworth band-pass (a telephone line)."""
    return sosfilt(_band_pass(rate, band), samples).astype(np.float32)


def through_rate(samples: np.ndarray, rate: int, narrow: int = NARROW_RATE) -> np.ndarray:
    """``samples`` resampled down to ``narrow`` Hz and back (the band above narrow/2 is lost)."""
    return audio.resample(audio.resample(samples, rate, narrow), narrow, rate)


def at_peak(samples: np.ndarray, dbfs: float) -> np.ndarray:
    """``samples`` scaled so that the largest magnitude is ``dbfs`` (silence stays silent)."""
    peak = float(np.abs(samples).max())
    return samples if peak == 0.0 else (samples * (10 ** (dbfs / 20) / peak)).astype(np.float32)


def pcm16(samples: np.ndarray) -> np.ndarray:
    """``samples`` as a 16-bit WAV file would hold them (clipped, rounded)."""
    return (np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768) / 32768).astype(np.float32)


CHANNELS = {"clean": lambda x, rate: x, "300-3400 Hz": band_limit, "through 8 kHz": through_rate}


def conditions() -> list[dict]:
    """Every channel x room x level, the clean clips (first) included."""
    return [{"channel": channel, "room": room, "level_dbfs": level}
            for room in (False, True) for channel in CHANNELS for level in LEVELS_DBFS]


def degrade(clip: np.ndarray, rate: int, condition: dict, index: int) -> np.ndarray:
    """One clip heard through ``condition``: room (a fixed synthetic impulse response per clip
    ``index``), channel, level, 16-bit rounding."""
    if condition["room"]:
        clip = Reverb(rate, **ROOM)(clip, np.random.default_rng(index))
    clip = CHANNELS[condition["channel"]](clip, rate)
    if condition["level_dbfs"] is not None:
        clip = at_peak(clip, condition["level_dbfs"])
    return pcm16(clip)


def condition_name(condition: dict) -> str:
    level = condition["level_dbfs"]
    return (f"{condition['channel']}, {'as recorded' if level is None else f'{level:g} dBFS peak'}"
            f"{', room' if condition['room'] else ''}")


# ---------------------------------------------------------------------------- helpers

def spread_of(rows: list[dict], key: str) -> dict:
    return runs.spread(row[key] for row in rows)


def loso_summary(rows: list[dict]) -> dict:
    """Per fold and seed test accuracies ``[{"speaker", "seed", "test_accuracy"}]`` -> each
    speaker's mean and std over seeds, the mean over folds (with its std over seeds: the
    spread of each seed's mean over folds) and the worst speaker (lowest mean over seeds)."""
    accuracy = {(row["speaker"], row["seed"]): row["test_accuracy"] for row in rows}
    speakers = sorted({speaker for speaker, _ in accuracy})
    seeds = sorted({seed for _, seed in accuracy})
    per_speaker = {s: runs.spread(accuracy[s, seed] for seed in seeds) for s in speakers}
    fold_means = [statistics.fmean(accuracy[s, seed] for s in speakers) for seed in seeds]
    worst = min(speakers, key=lambda s: per_speaker[s]["mean"])
    return {"per_speaker": per_speaker, "mean": runs.spread(fold_means),
            "worst": {"speaker": worst, **per_speaker[worst]}}


class Trainer:
    """Trains runs/generalization/<name>/seed<N> once per invocation (parts share them)."""

    def __init__(self, quick: bool, jobs: int = 1):
        self.quick, self.jobs, self.done = quick, jobs, {}

    def folder(self, name: str, seed: int) -> Path:
        return runs.run_dir(name, seed, self.quick, GROUP)

    def __call__(self, name: str, overrides: list[str], seed: int) -> dict:
        folder = self.folder(name, seed)
        if folder not in self.done:
            quick = ["trainer.epochs=1"] if self.quick else []
            run = runs.train([*overrides, *quick], seed, folder, jobs=self.jobs)
            summary = run["summary"]
            self.done[folder] = {
                "seed": seed, "run_dir": meta.relative(folder), "command": run["command"],
                "test_accuracy": summary["test_accuracy"], "test_clips": summary["clips"]["test"],
                "val_accuracy": summary["val_accuracy"], "wall_seconds": run["wall_seconds"]}
        return dict(self.done[folder])

    def each(self, name: str, overrides: list[str], seeds: list[int]) -> list[dict]:
        """One run per seed, up to ``jobs`` training at once."""
        with ThreadPoolExecutor(self.jobs) as pool:
            return list(pool.map(lambda seed: self(name, overrides, seed), seeds))


def model(run: dict) -> Recognizer:
    return Recognizer(meta.REPO / run["run_dir"] / "model.onnx")


def run_test_clips(run: dict) -> list[Clip]:
    """The test split of one of this benchmark's runs (its config read back onto the schema)."""
    _, cfg, _ = checkpoint.load_model(meta.REPO / run["run_dir"])
    return build_splits(cfg.data).test


def predicted(recognizer: Recognizer, clips: np.ndarray) -> list[str]:
    return [recognizer.labels[i] for i in recognizer.probabilities(clips).argmax(1)]


def split_accuracies(run: dict, heard: list[Callable[[np.ndarray, int, int], np.ndarray]]
                    ) -> list[float]:
    """The run's model on its test split with each clip heard through each of ``heard``
    (``way(samples, rate, clip_index)``): one accuracy each."""
    recognizer = model(run)
    test = run_test_clips(run)
    waves = [recognizer.load(clip.path) for clip in test]
    accuracies = []
    for way in heard:
        clips = np.stack([way(wave, recognizer.sample_rate, i) for i, wave in enumerate(waves)])
        said = predicted(recognizer, clips)
        accuracies.append(float(np.mean([a == clip.label for a, clip in zip(said, test)])))
    return accuracies


def fsdd_files(fsdd: Path) -> list[Path]:
    return sorted(p for p in fsdd.glob("*.wav") if NAME.match(p.name))


def bench_command(part: str, seeds: list[int], extra: list[str] = ()) -> str:
    return " ".join(["python -m benchmarks.bench_generalization --only", part, "--seeds",
                     *map(str, seeds), *extra])


# ---------------------------------------------------------------------------- parts

def loso(args, train: Trainer) -> dict:
    speakers = sorted({NAME.match(p.name)["speaker"] for p in fsdd_files(args.fsdd)})
    if args.quick:
        speakers = speakers[:2]
    base = [f"recipe={args.recipe}", f"data.root={args.fsdd}", *args.override]
    rows = [{"speaker": speaker, **run} for speaker in speakers
            for run in train.each(run_name("loso", args, speaker),
                                  [*base, f"data.test_speakers=[{speaker}]"], args.seeds)]
    entry = {"recipe": args.recipe, "overrides": args.override,
             "command": bench_command("loso", args.seeds, recipe_arguments(args)),
             "folds": rows, **loso_summary(rows)}
    return {"recipes": {recipe_key(args): entry}}


def ensemble(args, loso_rows: dict) -> dict:
    """Each fold's seed runs of ``--recipe``'s loso row (in ``loso_rows``) as one exported
    ensemble, scored on the fold's held-out speaker."""
    key = recipe_key(args)
    if key not in loso_rows:
        raise SystemExit(f"--only ensemble: no loso row for '{key}'; run --only loso "
                         f"{' '.join(recipe_arguments(args))} first")
    row = loso_rows[key]
    folds = []
    for speaker in row["per_speaker"]:
        runs = [run for run in row["folds"] if run["speaker"] == speaker]
        folders = [meta.REPO / run["run_dir"] for run in runs]
        for folder in folders:
            if not (folder / "checkpoints" / "best.pt").is_file():
                raise SystemExit(f"{folder}: the run is gone; run --only loso "
                                 f"{' '.join(recipe_arguments(args))} again")
        with tempfile.TemporaryDirectory() as tmp:
            recognizer = Recognizer(export_ensemble(folders, Path(tmp) / "ensemble.onnx"))
        clips = run_test_clips(runs[0])
        said = predicted(recognizer, np.stack([recognizer.load(clip.path) for clip in clips]))
        folds.append({"speaker": speaker, "runs": [run["run_dir"] for run in runs],
                      "clips": len(clips), "seed_accuracy": [run["test_accuracy"] for run in runs],
                      "accuracy": float(np.mean([a == c.label for a, c in zip(said, clips)]))})
    worst = min(folds, key=lambda fold: fold["accuracy"])
    seeds = sorted({run["seed"] for run in row["folds"]})
    return {"recipes": {key: {
        "recipe": args.recipe, "overrides": args.override,
        "command": bench_command("ensemble", seeds, recipe_arguments(args)),
        "loso_measured_at": row.get("meta", {}).get("commit", "this run"), "folds": folds,
        "mean": float(np.mean([fold["accuracy"] for fold in folds])),
        "worst": {"speaker": worst["speaker"], "accuracy": worst["accuracy"]}}}}


def probes(held_out: Path, rate: int, count: int = 20) -> dict[str, list[np.ndarray]]:
    """Clips that hold nothing said: digital silence of several lengths (100 samples to 3 s),
    and ``count`` random cuts of the held-out noise, 100 samples long at -40 dBFS RMS or 1 s
    long at -60 dBFS RMS."""
    noise = [audio.load(path, rate) for path in sorted(held_out.glob("*.wav"))]
    rng = np.random.default_rng(0)

    def cuts(length: int, dbfs: float) -> list[np.ndarray]:
        out = []
        for _ in range(count):
            source = noise[rng.integers(len(noise))]
            start = int(rng.integers(len(source) - length))
            cut = source[start : start + length]
            out.append(cut * np.float32(10 ** (dbfs / 20) / max(np.sqrt(np.mean(cut**2)), 1e-9)))
        return out

    return {"digital silence": [np.zeros(n, np.float32) for n in (100, rate // 2, rate, 3 * rate)],
            "100 samples of noise at -40 dBFS": cuts(100, -40.0),
            "1 s of noise at -60 dBFS": cuts(rate, -60.0)}


def fsdd_truth(fsdd: Path) -> tuple[list[Path], list[str]]:
    files = fsdd_files(fsdd)
    return files, [DIGIT_WORDS[int(NAME.match(p.name)["digit"])] for p in files]


def synth2real(args, train: Trainer) -> dict:
    files, truth = fsdd_truth(args.fsdd)
    digits = []
    for run in train.each("synthetic/digits", ["recipe=synthetic/digits",
                                               f"data.test_root={args.fsdd}"], args.seeds):
        recognizer = model(run)
        said = predicted(recognizer, np.stack([recognizer.load(p) for p in files]))
        digits.append({**run, "fsdd_clips": len(files),
                       "fsdd_accuracy": float(np.mean([a == b for a, b in zip(said, truth)]))})
    return {"command": bench_command("synth2real", args.seeds),
            "digits": {"recipe": "synthetic/digits", "seeds": digits,
                       "fsdd_accuracy": spread_of(digits, "fsdd_accuracy")}}


def default_model(args, train: Trainer, name: str, overrides: list[str]) -> dict:
    """The default model's figures (see ``default``) for the training ``name`` with ``overrides``,
    per seed and as mean and std over seeds."""
    files, _ = fsdd_truth(args.fsdd)
    _, held_out = split_noise(args.noise, meta.RESULTS / "noise_halves")
    rows = []
    for run in train.each(name, overrides, args.seeds):
        recognizer = model(run)
        said = predicted(recognizer, np.stack([recognizer.load(p) for p in files]))
        rows.append({**run, "fsdd_unknown_share": said.count(UNKNOWN) / len(said),
                     "fsdd_predictions": {label: said.count(label) for label in sorted(set(said))},
                     **nothing_said(run, held_out)})
    return {"seeds": rows, "test_accuracy": spread_of(rows, "test_accuracy"),
            "fsdd_unknown_share": spread_of(rows, "fsdd_unknown_share"),
            "silence_share": {kind: runs.spread(row["silence_share"][kind] for row in rows)
                              for kind in rows[0]["silence_share"]},
            "false_keywords_per_hour": spread_of(rows, "false_keywords_per_hour")}


def nothing_said(run: dict, noise: Path) -> dict:
    """What the run's model makes of clips with nothing said (``probes`` cut from ``noise``: the
    share called `_silence_` per kind) and its false keywords on the ``noise`` recordings."""
    recognizer = model(run)
    shares = {}
    for kind, clips in probes(noise, recognizer.sample_rate).items():
        got = predicted(recognizer, np.stack([recognizer.prepare(c) for c in clips]))
        shares[kind] = got.count(SILENCE) / len(got)
    return {"silence_share": shares,
            **false_keywords(meta.REPO / run["run_dir"] / "model.onnx", noise)}


def default(args, train: Trainer) -> dict:
    return {"recipe": DEFAULT_MODEL, "command": bench_command("default", args.seeds),
            **default_model(args, train, DEFAULT_MODEL, [f"recipe={DEFAULT_MODEL}"])}


def ablation(args, train: Trainer) -> dict:
    """The default recipe with one lever changed (``--override``s), named ``--variant``: the same
    figures as ``default``, kept beside the earlier variants for docs/generalization.md's table."""
    if not args.variant or not args.override:
        raise SystemExit("--only ablation needs --variant NAME and at least one --override")
    command = bench_command("ablation", args.seeds, [f"--variant '{args.variant}'",
                                                     *(f"--override '{o}'" for o in args.override)])
    measured = default_model(args, train, f"{DEFAULT_MODEL} {args.variant}",
                             [f"recipe={DEFAULT_MODEL}", *args.override])
    return {"variants": {args.variant: {"overrides": args.override, "command": command,
                                        **measured}}}


def false_keywords(model_path: Path, held_out: Path) -> dict:
    """`speechrnn detect` (default settings) over each held-out noise file: events per hour."""
    per_file, seconds = {}, 0.0
    for path in sorted(held_out.glob("*.wav")):
        events = [event.to_dict() for event in detect(model_path, path)]
        per_file[path.name] = [{k: e[k] for k in ("label", "start", "score")} for e in events]
        seconds += sf.info(str(path)).duration
    count = sum(map(len, per_file.values()))
    return {"noise_seconds": seconds, "false_keywords": count,
            "false_keywords_per_hour": count / seconds * 3600, "events": per_file}


def noise(args, train: Trainer) -> dict:
    train_half, held_out = split_noise(args.noise, meta.RESULTS / "noise_halves")
    overrides = ["recipe=fsdd/kws", f"data.root={args.fsdd}", f"data.noise_dir={train_half}"]
    result = {"command": bench_command("noise", args.seeds), "threshold": Settings.threshold,
              "tolerance_s": TOLERANCE_S, "recipe": "fsdd/kws"}
    with tempfile.TemporaryDirectory() as tmp:
        recording = long_recordings(args.fsdd, held_out, Path(tmp),
                                    120.0 if args.quick else 3600.0)["hour"]
        result["digit_recording_seconds"] = recording["seconds"]
        rows = []
        for run in train.each("fsdd/kws", overrides, args.seeds):
            path = meta.REPO / run["run_dir"] / "model.onnx"
            rows.append({**run, **false_keywords(path, held_out),
                         "digits": score(detect(path, recording["path"]), recording["reference"],
                                         TOLERANCE_S)})
    return {**result, "seeds": rows,
            "false_keywords_per_hour": spread_of(rows, "false_keywords_per_hour"),
            "digit_recall": runs.spread(r["digits"]["recall"] for r in rows),
            "digit_precision": runs.spread(r["digits"]["precision"] for r in rows)}


def channel(args, train: Trainer) -> dict:
    grid = conditions()
    seeds = []
    for run in train.each(run_name("channel", args),
                          [f"recipe={args.recipe}", f"data.root={args.fsdd}", *args.override],
                          args.seeds):
        heard = [lambda wave, rate, i, c=condition: degrade(wave, rate, c, i) for condition in grid]
        seeds.append({**run, "accuracy": split_accuracies(run, heard)})
    rows = []
    for i, condition in enumerate(grid):
        rows.append({**condition, "name": condition_name(condition),
                     "accuracy": runs.spread(s["accuracy"][i] for s in seeds),
                     "drop_points": runs.spread(100 * (s["accuracy"][0] - s["accuracy"][i])
                                                for s in seeds)})
    return {"recipes": {recipe_key(args): {
        "recipe": args.recipe, "overrides": args.override,
        "command": bench_command("channel", args.seeds, recipe_arguments(args)),
        "test_clips": seeds[0]["test_clips"], "band_hz": BAND_HZ,
        "narrow_rate": NARROW_RATE, "room": ROOM, "seeds": seeds, "conditions": rows}}}


def recipe_key(args) -> str:
    """The name of --recipe's row, with its overrides, in the parts kept row by row."""
    return " ".join([args.recipe, *args.override])


def run_name(part: str, args, *more: str) -> str:
    """The runs' folder name (Trainer) of a part trained on --recipe with its overrides, so that
    another override measured later never trains over the runs a kept row still names."""
    return " ".join([part, recipe_key(args), *more])


def recipe_arguments(args) -> list[str]:
    return ["--recipe", args.recipe, *(f"--override '{o}'" for o in args.override)]


RUNNERS = {"loso": loso, "synth2real": synth2real, "default": default, "ablation": ablation,
           "noise": noise, "channel": channel}  # and ensemble, which reads loso's rows
# Parts kept row by row, and their rows' key.
ROWS = {"loso": "recipes", "ensemble": "recipes", "channel": "recipes", "ablation": "variants"}


# ---------------------------------------------------------------------------- main

def keep_earlier(measured: dict, earlier: dict) -> dict:
    """``measured`` parts, plus the parts, loso recipes and ablation variants of the ``earlier``
    result that were not measured again, each with the meta of the run that measured it (--only
    replaces its parts, and a recipe or variant measured again its row)."""
    def dated(row: dict) -> dict:
        return row if "meta" in row else {"meta": earlier["meta"], **row}

    merged = dict(measured)
    for part, kept in earlier.get("parts", {}).items():
        if part in ROWS:  # dated row by row: the rows come from several runs
            key = ROWS[part]
            rows = {name: dated(row) for name, row in kept[key].items()}
            merged[part] = {key: {**rows, **measured.get(part, {}).get(key, {})}}
        elif part in PARTS and part not in measured:
            merged[part] = dated(kept)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                        help=f"run only these parts ({', '.join(PARTS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="trainer.seed values; results are their mean and std")
    parser.add_argument("--jobs", type=int, default=1,
                        help="trainings at once (seeds of one training; default 1)")
    parser.add_argument("--recipe", default="fsdd/gru", help="the FSDD recipe of loso and channel")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override added to loso's, channel's and ablation's trainings")
    parser.add_argument("--variant", help="ablation: the name of the default recipe's variant")
    parser.add_argument("--fsdd", type=Path, default=FSDD, help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=NOISE, help="the noise recordings folder")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one epoch a training, two LOSO folds (not meaningful)")
    args = parser.parse_args(argv)
    for folder in (args.fsdd, args.noise):
        if not folder.is_dir():
            raise SystemExit(f"{folder} not found; pass --fsdd / --noise")
    parts = args.only or [part for part in PARTS if part not in ON_REQUEST]

    started = meta.start()
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give 1 or more")
    train = Trainer(args.quick, args.jobs)
    out = meta.result_path("generalization", args.quick)
    earlier = json.loads(out.read_text()) if out.is_file() and not args.quick else {}
    measured = {}
    for part in parts:
        print(f"--- {part}", flush=True)
        if part == "ensemble":
            known = keep_earlier(measured, earlier).get("loso", {"recipes": {}})["recipes"]
            measured[part] = ensemble(args, known)
        else:
            measured[part] = RUNNERS[part](args, train)
    measured = keep_earlier(measured, earlier)
    meta.write("generalization",
               {"targets": TARGETS, "parts": {p: measured[p] for p in PARTS if p in measured}},
               started, threads={"torch": runs.torch_threads(args.jobs)
                                 or "default (one per core)",
                                 "onnxruntime": "default (one per core)",
                                 "trainings at once": args.jobs}, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
