"""RNN vs LSTM vs GRU, measured on this machine: `.venv/bin/python -m benchmarks.compare_cells`.

Trains recipe compare/cells for each cell on FSDD and on the synthetic set, once at an equal
hidden size and once at an equal parameter budget (the GRU's at that size), then measures
parameters, test accuracy, training throughput and ONNX latency per clip. The memory probe
(read out at the last frame: accuracy against the delay between the word and the end of the
clip) also gives the gradient ratio ||dL/dh_1|| / ||dL/dh_T|| of models trained to use the
recurrence; an exploding relu RNN is trained with and without clipping. Writes
docs/compare_cells/report.md and its PNGs; run dirs go to outputs/compare_cells/ and a rerun
reuses every finished run whose config is unchanged (--fresh retrains).

Sized for a shared 2-core CPU (about 10-15 minutes): 1 recurrent layer, few epochs, 1 thread.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from speechrnn.checkpoint import load_model  # noqa: E402
from speechrnn.export import export_model  # noqa: E402
from speechrnn.config import compose_config, plain  # noqa: E402
from speechrnn.gradients import (clip_batch, exploding, plot_exploding,  # noqa: E402
                                 plot_profiles, profile, with_model, write_json)
from speechrnn.models import build_model, count_parameters  # noqa: E402
from speechrnn.training import fit  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
RECIPE = "compare/cells"
CELLS = ("rnn", "lstm", "gru")
BASE_HIDDEN = 64
BUDGET_CELL = "gru"  # the equal-budget runs match this cell's parameter count at BASE_HIDDEN
DATASETS = {
    "fsdd": [],
    "synthetic": ["data=synthetic", "data.root=null", "data.synth.per_word=100",
                  "data.synth.unknown_per_word=20"],
}
# The probe reads the last frame after the delay, so the features must be causal (no
# per-utterance normalisation, which would hand the last frame a trace of the word); a 0.6 s
# word window (90 % of FSDD recordings fit) and 20 ms frames keep the sequences short.
PROBE = ["model.pooling=last", "features.normalize=false", "model.input_norm=true",
         "data.clip_seconds=0.6", "features.hop_length=160"]
PLOT_DELAY = 0.0  # the probe delay whose gradient profiles are plotted
# In seconds; a cell's longer delays are skipped once two in a row are at chance.
DELAYS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
LATENCY_CALLS = 20  # calls per latency sample

log = logging.getLogger("compare_cells")


@dataclass
class Plan:
    epochs: int = 8
    probe_epochs: int = 5
    limit_train_batches: int | None = None
    timing_reps: int = 15
    grad_clips: int = 32
    exploding_steps: int = 25
    delays: tuple[float, ...] = DELAYS
    # The recipe's data folders (FSDD recordings, the probe's noise), from the command line.
    data: tuple[str, ...] = ()


QUICK = Plan(epochs=1, probe_epochs=1, limit_train_batches=2, timing_reps=2, grad_clips=4,
             exploding_steps=2, delays=(0.0, 0.5))


# --------------------------------------------------------------------------------- training

def run_config(overrides: list[str], epochs: int, plan: Plan):
    extra = [f"trainer.epochs={epochs}", "trainer.overwrite=true"]  # a stale run there is replaced
    if plan.limit_train_batches:
        extra.append(f"trainer.limit_train_batches={plan.limit_train_batches}")
    return compose_config([f"recipe={RECIPE}", *plan.data, *overrides, *extra])


WALL_SECONDS = "wall_seconds.txt"  # how long fit() took, kept beside a run for the report


def train(name: str, overrides: list[str], epochs: int, plan: Plan, runs: Path, fresh: bool) -> Path:
    """fit() into runs/name, unless a finished run with the same config is already there."""
    cfg = run_config(overrides, epochs, plan)
    run_dir = runs / name
    saved = run_dir / "config.yaml"
    if (not fresh and (run_dir / WALL_SECONDS).exists() and saved.exists()
            and OmegaConf.to_container(OmegaConf.load(saved)) == plain(cfg)):
        log.info("%s: reusing the finished run", name)
        return run_dir
    start = time.perf_counter()
    summary = fit(cfg, run_dir)
    seconds = time.perf_counter() - start
    (run_dir / WALL_SECONDS).write_text(f"{seconds:.1f}\n")
    log.info("%s: test acc %.3f, %d params, %.0f s", name, summary["test_accuracy"],
             summary["num_parameters"], seconds)
    return run_dir


def training_minutes(runs: Path, since: float = 0.0) -> float:
    """fit()'s wall time summed over the runs in ``runs`` finished after ``since`` (a time.time())."""
    return sum(float(p.read_text()) for p in runs.rglob(WALL_SECONDS) if p.stat().st_mtime >= since) / 60


def parameters(cfg, cell: str, hidden: int) -> int:
    """The classifier's trainable parameters (10-label head) for ``cell`` at ``hidden`` units."""
    model = with_model(cfg.data, cfg.features, cfg.model, [str(d) for d in range(10)], cell=cell,
                       hidden_size=hidden)
    return count_parameters(model)


def hidden_for_budget(cfg, cell: str, budget: int) -> int:
    """The hidden size whose parameter count is closest to ``budget`` (counts grow with it)."""
    hidden = 1
    while parameters(cfg, cell, hidden) < budget:
        hidden += 1
    below, above = parameters(cfg, cell, max(hidden - 1, 1)), parameters(cfg, cell, hidden)
    return hidden - 1 if hidden > 1 and budget - below < above - budget else hidden


# ---------------------------------------------------------------------------------- timing

def interleaved(timers: dict[str, Callable[[], None]], reps: int, warmup: int = 2) -> dict[str, np.ndarray]:
    """Seconds per call of each timer, taken in turns (a slow spell on a shared machine then
    hits every candidate alike, instead of whichever happened to run during it)."""
    for fn in timers.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {key: [] for key in timers}
    for _ in range(reps):
        for key, fn in timers.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: np.asarray(values) for key, values in times.items()}


def train_step_timer(model, waves: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = F.cross_entropy(model(waves), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def onnx_timer(path: Path, wave: np.ndarray) -> Callable[[], None]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: wave[None].astype(np.float32)}
    return lambda: [session.run(None, feed) for _ in range(LATENCY_CALLS)]


def torch_timer(model, wave: np.ndarray) -> Callable[[], None]:
    x = torch.from_numpy(wave[None].astype(np.float32))

    def call():
        with torch.inference_mode():
            for _ in range(LATENCY_CALLS):
                model(x)
    return call


def stats(seconds: np.ndarray, scale: float = 1.0) -> dict:
    values = scale * seconds
    return {"median": float(np.median(values)), "q25": float(np.percentile(values, 25)),
            "q75": float(np.percentile(values, 75))}


def verdict(better: dict, worse: dict, higher_is_better: bool) -> str:
    """Timings: 'yes' when the interquartile ranges do not overlap in the claimed direction,
    'no' when they do not overlap the other way, else 'within noise'."""
    if not higher_is_better:
        better, worse = worse, better
    if better["q25"] > worse["q75"]:
        return "yes"
    if worse["q25"] > better["q75"]:
        return "no (the opposite holds)"
    return "within noise"


def standard_error(accuracy: float, clips: int) -> float:
    return math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / clips)


def accuracy_verdict(better: float, worse: float, clips: int) -> str:
    """'yes' / 'no (the opposite holds)' when the accuracies differ by more than two standard
    errors of the difference on ``clips`` test clips, else 'within noise'."""
    margin = 2 * math.hypot(standard_error(better, clips), standard_error(worse, clips))
    if better - worse > margin:
        return "yes"
    if worse - better > margin:
        return "no (the opposite holds)"
    return f"within noise (+-{100 * margin:.0f} points)"


# -------------------------------------------------------------------------------- measuring

@dataclass
class Result:
    dataset: str
    sizing: str
    cell: str
    hidden: int
    run_dir: Path
    params: int = 0
    test_acc: float = 0.0
    test_clips: int = 0
    e2e_clips_s: float = 0.0
    train_clips_s: dict | None = None  # stats(): median, q25, q75
    onnx_ms: dict | None = None
    torch_ms: dict | None = None

    def row(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items()}


def measure_group(results: list[Result], plan: Plan) -> None:
    """Fill in each result: summary numbers, throughput and latency. A run that serves two
    sizings (the budget cell) is measured once."""
    runs = {}
    for r in results:
        if r.run_dir not in runs:
            runs[r.run_dir] = load_model(r.run_dir)[:2]
        summary = json.loads((r.run_dir / "summary.json").read_text())
        r.params, r.test_acc = summary["num_parameters"], summary["test_accuracy"]
        r.test_clips, r.e2e_clips_s = summary["clips"]["test"], summary["train_clips_per_s"]
    cfg = runs[results[0].run_dir][1]
    waves, labels, names = clip_batch(cfg.data, cfg.augment, "test", plan.grad_clips, seed=cfg.trainer.seed)

    timers, wave = {}, waves[0].numpy()
    for run_dir, (model, cfg) in runs.items():
        onnx_path = export_model(model, cfg.data, run_dir / "model.onnx")
        timers["train", run_dir] = train_step_timer(model, waves, labels)
        timers["onnx", run_dir] = onnx_timer(onnx_path, wave)
        timers["torch", run_dir] = torch_timer(model, wave)
    times = interleaved(timers, plan.timing_reps)
    for r in results:
        r.train_clips_s = stats(len(labels) / times["train", r.run_dir])
        r.onnx_ms = stats(times["onnx", r.run_dir] / LATENCY_CALLS, 1000.0)
        r.torch_ms = stats(times["torch", r.run_dir] / LATENCY_CALLS, 1000.0)


def thread_check(plan: Plan, waves: torch.Tensor, labels: torch.Tensor, names: list[str]) -> dict:
    """One GRU training step with 1 and with 2 intra-op threads, in turns: is the second core
    worth having on this (shared) machine?"""
    torch.manual_seed(0)
    cfg = run_config([], 1, plan)
    step = train_step_timer(build_model(cfg.data, cfg.features, cfg.model, names), waves, labels)

    def with_threads(n: int) -> Callable[[], None]:
        def call():
            torch.set_num_threads(n)
            step()
        return call

    times = interleaved({"1": with_threads(1), "2": with_threads(2)}, max(3, plan.timing_reps // 2))
    torch.set_num_threads(1)
    return {n: stats(len(labels) / t) for n, t in times.items()}


@dataclass
class ProbePoint:
    accuracy: float
    ratio_trained: float  # ||dL/dh_1|| / ||dL/dh_T|| on test clips
    ratio_init: float


def memory_probe(plan: Plan, runs: Path, fresh: bool, docs: Path) -> dict[str, dict[float, ProbePoint]]:
    """Accuracy and gradient ratios per cell and delay; a cell stops after two delays in a row
    at chance. Plots the gradient profiles at PLOT_DELAY."""
    probe: dict[str, dict[float, ProbePoint]] = {}
    profiles = []
    for cell in CELLS:
        at_chance = 0
        for delay in plan.delays:
            if at_chance >= 2:
                break
            run_dir = train(f"probe/{cell}-delay{delay:g}",
                            [*PROBE, f"model.cell={cell}", f"data.probe_delay_seconds={delay}"],
                            plan.probe_epochs, plan, runs, fresh)
            summary = json.loads((run_dir / "summary.json").read_text())
            model, cfg, _ = load_model(run_dir)
            waves, labels, names = clip_batch(cfg.data, cfg.augment, "test", plan.grad_clips,
                                              seed=cfg.trainer.seed)
            trained = profile(f"{cell} trained", model, waves, labels, trained=True)
            torch.manual_seed(0)
            init = profile(f"{cell} at init", build_model(cfg.data, cfg.features, cfg.model, names), waves, labels, trained=False)
            probe.setdefault(cell, {})[delay] = ProbePoint(summary["test_accuracy"], trained.ratio,
                                                           init.ratio)
            if delay == PLOT_DELAY:
                profiles += [trained, init]
            chance, clips = 1 / len(names), summary["clips"]["test"]
            at_chance = at_chance + 1 if summary["test_accuracy"] < chance + 2 * standard_error(chance, clips) else 0
    if profiles:
        plot_profiles(profiles, docs / "gradients.png",
                      f"memory probe, {PLOT_DELAY:g} s of noise: ||dLoss/dh_t|| over time, "
                      f"{plan.grad_clips} test clips, {BASE_HIDDEN} units, last-frame readout")
    return probe


# ---------------------------------------------------------------------------------- plots

COLORS = {"rnn": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}
SIZINGS = ("equal hidden", "equal params")


def bar_panel(ax, results: list[Result], metric: Callable[[Result], float | dict], ylabel: str,
              fmt: str = "{:.3g}"):
    """Bars per sizing and cell; a metric given as stats() gets its interquartile range."""
    width = 0.26
    for i, cell in enumerate(CELLS):
        picked = [next(r for r in results if r.cell == cell and r.sizing == s) for s in SIZINGS]
        values = [metric(r) for r in picked]
        heights = [v["median"] if isinstance(v, dict) else v for v in values]
        yerr = None
        if isinstance(values[0], dict):
            yerr = np.array([[h - v["q25"] for h, v in zip(heights, values)],
                             [v["q75"] - h for h, v in zip(heights, values)]])
        x = np.arange(len(SIZINGS)) + (i - 1) * width
        bars = ax.bar(x, heights, width, color=COLORS[cell], label=cell, yerr=yerr, capsize=2)
        for bar, r, h in zip(bars, picked, heights):
            ax.annotate(fmt.format(h) + f"\nh={r.hidden}", (bar.get_x() + width / 2, h),
                        ha="center", va="bottom", fontsize=6, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(SIZINGS)), SIZINGS)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)


def plot_overview(groups: dict[str, list[Result]], path: Path) -> Path:
    fig, axes = plt.subplots(4, len(groups), figsize=(5 * len(groups), 11), squeeze=False)
    for col, (dataset, results) in enumerate(groups.items()):
        bar_panel(axes[0, col], results, lambda r: r.params / 1000, "parameters (k)")
        bar_panel(axes[1, col], results, lambda r: 100 * r.test_acc, "test accuracy (%)", "{:.1f}")
        bar_panel(axes[2, col], results, lambda r: r.train_clips_s,
                  "training clips/s\n(1 thread, batch step)", "{:.0f}")
        bar_panel(axes[3, col], results, lambda r: r.onnx_ms, "ONNX latency\n(ms per 1 s clip)",
                  "{:.2f}")
        axes[0, col].set_title(dataset)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def plot_probe(probe: dict, path: Path, chance: float) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for cell, points in probe.items():
        delays = sorted(points)
        ax.plot(delays, [100 * points[d].accuracy for d in delays], marker="o",
                color=COLORS[cell], label=cell)
    ax.axhline(100 * chance, color="0.5", ls="--", lw=1, label="chance")
    ax.set_xscale("symlog", linthresh=0.1)
    delays = sorted({d for points in probe.values() for d in points})
    ax.set_xticks(delays, [f"{d:g}" for d in delays])
    ax.minorticks_off()
    ax.set_xlabel("seconds of background noise between the word and the last frame")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("memory probe: FSDD digit, then noise; classified from the last frame", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------- report

def fmt_stat(s: dict, digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} [{s['q25']:.{digits}f}-{s['q75']:.{digits}f}]"


def table(results: list[Result]) -> str:
    lines = ["| sizing | cell | hidden | parameters | test acc | train clips/s (batch step) "
             "| train clips/s (end to end) | ONNX ms/clip | torch ms/clip |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.sizing} | {r.cell} | {r.hidden} | {r.params:,} | {100 * r.test_acc:.1f} % | "
            f"{fmt_stat(r.train_clips_s)} | {r.e2e_clips_s:.0f} | {fmt_stat(r.onnx_ms, 2)} | "
            f"{fmt_stat(r.torch_ms, 2)} |")
    return "\n".join(lines)


def claims(groups: dict[str, list[Result]], probe: dict) -> list[str]:
    out = []
    for dataset, results in groups.items():
        pick = {(r.cell, r.sizing): r for r in results}
        for sizing in SIZINGS:
            gru, lstm = pick["gru", sizing], pick["lstm", sizing]
            sizes = f"{dataset}, {sizing}: GRU h={gru.hidden}, LSTM h={lstm.hidden}"
            out.append(
                f"- **GRU trains faster than LSTM** ({sizes}): "
                f"**{verdict(gru.train_clips_s, lstm.train_clips_s, higher_is_better=True)}** - "
                f"{gru.train_clips_s['median']:.0f} vs {lstm.train_clips_s['median']:.0f} clips/s "
                "per batch step.")
            out.append(
                f"- **GRU infers faster than LSTM in ONNX** ({sizes}): "
                f"**{verdict(gru.onnx_ms, lstm.onnx_ms, higher_is_better=False)}** - "
                f"{gru.onnx_ms['median']:.3f} vs {lstm.onnx_ms['median']:.3f} ms per clip "
                f"(torch eager: {gru.torch_ms['median']:.2f} vs {lstm.torch_ms['median']:.2f}).")
        for sizing in SIZINGS:
            rnn = pick["rnn", sizing]
            parts = [f"{cell} vs rnn: {accuracy_verdict(pick[cell, sizing].test_acc, rnn.test_acc, rnn.test_clips)}"
                     for cell in ("lstm", "gru")]
            out.append(f"- **LSTM and GRU are more accurate than the vanilla RNN** ({dataset}, "
                       f"{sizing}, {rnn.test_clips} test clips): " + "; ".join(parts) + " - "
                       + ", ".join(f"{c} {100 * pick[c, sizing].test_acc:.1f} %" for c in CELLS) + ".")
    if probe:
        first = min(probe["rnn"])
        for key, label in (("ratio_init", "at init"), ("ratio_trained", "trained")):
            ratios = {c: getattr(points[first], key) for c, points in probe.items()}
            holds = "yes" if ratios["rnn"] < min(ratios["lstm"], ratios["gru"]) else "no"
            out.append(f"- **The vanilla RNN's gradient vanishes fastest** ({label}, memory probe "
                       f"at {first:g} s): **{holds}** - ||dL/dh_1|| / ||dL/dh_T|| = "
                       + ", ".join(f"{c} {v:.2g}" for c, v in ratios.items()) + ".")
        reached = {c: max((d for d, p in points.items() if p.accuracy > 0.5), default=None)
                   for c, points in probe.items()}
        out.append("- **LSTM and GRU remember longer than the RNN** (memory probe; longest delay "
                   "with test accuracy above 50 %): "
                   + ", ".join(f"{c} {'none' if d is None else f'{d:g} s'}" for c, d in reached.items())
                   + ". A difference under 2 standard errors (about 8 points at 50 % on 300 test "
                   "clips) is noise.")
    return out


def hardware(threads: dict) -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
            f"{ort.__version__}, no GPU used.")


def probe_table(probe: dict, delays, cell_text: Callable) -> str:
    lines = ["| cell | " + " | ".join(f"{d:g} s" for d in delays) + " |",
             "|---|" + "---|" * len(delays)]
    for cell, points in probe.items():
        lines.append(f"| {cell} | " + " | ".join(cell_text(points[d]) if d in points else "-"
                                                 for d in delays) + " |")
    return "\n".join(lines)


def write_report(docs: Path, plan: Plan, groups, probe, explode, threads, loads, minutes,
                 quick: bool) -> Path:
    fsdd = groups["fsdd"][0]
    clips = json.loads((fsdd.run_dir / "summary.json").read_text())["clips"]
    lines = [
        "# RNN vs LSTM vs GRU, measured",
        "",
        "Generated by `.venv/bin/python -m benchmarks.compare_cells`"
        + (" **in --quick mode (a smoke run: the numbers mean nothing)**" if quick else "")
        + f" (recipe `speechrnn/conf/recipe/compare/cells.yaml`; raw numbers in `results.json`): "
        f"{minutes[0]:.1f} minutes of training (fit() wall time over all runs) and "
        f"{minutes[1]:.1f} minutes of measuring. One seed per run.",
        "",
        "## Setup",
        "",
        f"- Hardware: {hardware(threads)}",
        f"- The 2 cores were shared with other jobs (1-minute load average {loads[0]:.1f} at the "
        f"start, {loads[1]:.1f} at the end). So every timing is taken in turns across the "
        "candidates (each round times every model once) and reported as median [25th-75th "
        "percentile], and all torch work ran with 1 intra-op thread: a GRU-64 training step "
        f"gave {fmt_stat(threads['1'])} clips/s with 1 thread and {fmt_stat(threads['2'])} with "
        "2 (busy cores make torch's second thread wait). onnxruntime: 1 thread.",
        "- Model: MFCC (20 coefficients, 10 ms hop, 8 kHz, up to 4 kHz; causal: a LayerNorm "
        "per frame, no per-utterance normalisation) -> 1 recurrent layer -> mean over the frames "
        "-> linear head. Equal hidden size: "
        f"{BASE_HIDDEN} units each. Equal parameter budget: the {BUDGET_CELL.upper()}-"
        f"{BASE_HIDDEN}'s count (10-label head), the others' hidden size solved to match it.",
        f"- Training: AdamW, one-cycle LR 3e-3, batch 32, {plan.epochs} epochs"
        + (f" of {plan.limit_train_batches} batches" if plan.limit_train_batches else "")
        + ", no augmentation, the best epoch on val evaluated on test. FSDD: the official split "
        f"(train/val/test = {clips['train']}/{clips['val']}/{clips['test']} clips; test = "
        "recordings 0-4 of every speaker). Synthetic: espeak-ng words (10 commands + unknown + "
        "silence), 100 clips per command word, resampled to 8 kHz so both sets share the features.",
        "- Cut down to fit about 15 minutes on this machine: 1 layer instead of the default 2, "
        "few epochs (accuracies are not converged), one seed, 64 units.",
        "",
    ]
    for dataset, results in groups.items():
        lines += [f"## {dataset}", "", table(results), ""]
    lines += [
        "*train clips/s (batch step)*: one AdamW step (MFCC, recurrence, backward) on a fixed "
        f"batch of {plan.grad_clips} real 1 s clips, no data loading. *end to end*: what fit() "
        "saw over its epochs, data loading included, under whatever load there was then. *ONNX "
        "ms/clip*: one 1 s clip (batch 1) through the exported model in onnxruntime; *torch "
        "ms/clip*: the same in eager PyTorch.",
        "",
        "![parameters, accuracy, speed](overview.png)",
        "",
        "## Memory probe",
        "",
        "An FSDD digit (0.6 s window) followed by Speech Commands background noise 10 dB below "
        "the word, classified from the last frame; causal features, 20 ms frames, "
        f"{plan.probe_epochs} epochs, {BASE_HIDDEN} units each; chance is 10 %. A cell's longer "
        "delays are not trained once two delays in a row are at chance (-). Test accuracy:",
        "",
        probe_table(probe, plan.delays, lambda p: f"{100 * p.accuracy:.1f} %"),
        "",
        "This measures what a cell learns to remember in a few epochs from a cold start, not "
        "how long it could remember: the signal that would teach it to carry the word across "
        "the gap is the gradient that reaches the word's frames, and at init that is the tiny "
        "'at init' ratio in the gradient table below. Longer training would be needed to find "
        "each cell's limit.",
        "",
        "![memory probe](probe.png)",
        "",
        "## Gradient flow",
        "",
        "||dL/dh_1|| / ||dL/dh_T|| (`speechrnn gradients`: the total derivative through the "
        "recurrence, for the recurrent layer's state, mean over "
        f"{plan.grad_clips} test clips) of the memory-probe models, read out at the last frame, "
        "so an earlier frame reaches the loss only through the recurrence. Trained / at init:",
        "",
        probe_table(probe, plan.delays, lambda p: f"{p.ratio_trained:.2g} / {p.ratio_init:.2g}"),
        "",
        "![gradient flow](gradients.png)",
        "",
        "## Exploding gradients",
        "",
        f"A relu RNN ({explode['num_layers']} x {explode['hidden_size']}) whose recurrent matrix "
        f"starts as {explode['gain']} x an orthogonal matrix, trained with SGD (lr "
        f"{explode['lr']}) on one batch of {explode['batch_size']} FSDD clips from the same "
        f"init, without and with clipping the gradient norm at {explode['clip']}:",
        "",
    ]
    for key, run in explode["runs"].items():
        finite = [v for v in run["grad_norm"] if np.isfinite(v)]
        lines.append(f"- {key.replace('_', ' ')}: {run['steps_run']} steps, largest gradient norm "
                     f"{max(finite) if finite else float('nan'):.3g}, last loss {run['loss'][-1]:.3g}"
                     + (" - **diverged (non-finite loss or gradient)**" if run["diverged"] else ""))
    lines += ["", "![exploding](exploding.png)", "", "## Claims, checked on this machine", ""]
    lines += claims(groups, probe)
    lines += [
        "",
        "For timings, 'within noise' means the interquartile ranges overlap; for accuracies, "
        "that the difference is under two standard errors. Speed claims hold for this CPU, these "
        "sizes, batch-32 training, batch-1 inference and 1 thread only (GPU kernels behave "
        "differently). Accuracy claims rest on one seed and a few epochs.",
        "",
    ]
    path = docs / "report.md"
    path.write_text("\n".join(lines))
    return path


# ------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 epoch of 2 batches")
    parser.add_argument("--fresh", action="store_true", help="retrain even finished runs")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "compare_cells")
    parser.add_argument("--runs", type=Path, default=REPO / "outputs" / "compare_cells")
    parser.add_argument("--fsdd", type=Path, default=SHARED_DATA / "fsdd" / "recordings",
                        help="the FSDD recordings folder")
    parser.add_argument("--noise", type=Path, default=SHARED_DATA / "speech_commands_noise",
                        help="the noise recordings the memory probe plays after the word")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("speechrnn.training", "speechrnn.data"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    plan = dataclasses.replace(QUICK if args.quick else Plan(),
                               data=(f"data.root={args.fsdd}", f"augment.noise_dir={args.noise}"))
    torch.set_num_threads(1)
    args.docs.mkdir(parents=True, exist_ok=True)
    start, load_start = time.time(), os.getloadavg()[0]

    base_cfg = OmegaConf.to_object(compose_config([f"recipe={RECIPE}", *plan.data]))
    budget = parameters(base_cfg, BUDGET_CELL, BASE_HIDDEN)
    hidden = {("equal hidden", cell): BASE_HIDDEN for cell in CELLS}
    hidden.update({("equal params", cell): hidden_for_budget(base_cfg, cell, budget) for cell in CELLS})
    groups: dict[str, list[Result]] = {}
    for dataset, data_overrides in DATASETS.items():
        results = []
        for sizing in SIZINGS:
            for cell in CELLS:
                size = hidden[sizing, cell]
                overrides = [*data_overrides, f"model.cell={cell}", f"model.hidden_size={size}"]
                run_dir = train(f"{dataset}/{cell}-{size}", overrides, plan.epochs, plan,
                                args.runs, args.fresh)
                results.append(Result(dataset, sizing, cell, size, run_dir))
        measure_group(results, plan)
        groups[dataset] = results
        log.info("%s measured", dataset)

    probe = memory_probe(plan, args.runs, args.fresh, args.docs)
    plot_probe(probe, args.docs / "probe.png", chance=1 / 10)

    waves, labels, names = clip_batch(base_cfg.data, base_cfg.augment, "train", 32, seed=base_cfg.trainer.seed)
    build = functools.partial(with_model, base_cfg.data, base_cfg.features, base_cfg.model, names)
    explode = exploding(build, [(waves, labels)], plan.exploding_steps, gain=1.5, lr=0.05, clip=1.0, seed=0)
    plot_exploding(explode, args.docs / "exploding.png")
    threads = thread_check(plan, waves, labels, names)
    plot_overview(groups, args.docs / "overview.png")

    elapsed = (time.time() - start) / 60
    minutes = (training_minutes(args.runs), elapsed - training_minutes(args.runs, since=start))
    loads = (load_start, os.getloadavg()[0])
    write_json({"plan": vars(plan), "results": [r.row() for rs in groups.values() for r in rs],
                "probe": {c: {str(d): vars(p) for d, p in points.items()} for c, points in probe.items()},
                "exploding": explode, "threads": threads,
                "load_average": list(loads), "minutes": minutes}, args.docs / "results.json")
    report = write_report(args.docs, plan, groups, probe, explode, threads, loads, minutes, args.quick)
    log.info("report: %s (%.1f min)", report, minutes[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
