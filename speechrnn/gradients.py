"""`speechrnn gradients RUN_DIR... | OVERRIDES... [--out DIR]`: how gradients flow back in time.

Vanishing gradients: on a batch of real clips, the norm of dLoss/dh_t for every frame t, where
h_t is the last recurrent layer's state (forward-only encoders) and the derivative is the total
one, through every later step of the recurrence. For trained runs (``speechrnn gradients
runs/rnn runs/lstm runs/gru``) or for freshly initialised rnn, lstm and gru models built from
a recipe (``speechrnn gradients recipe=compare/cells model.pooling=last data.root=DIR``). The
loss is the cross-entropy summed over the batch, so the gradient at clip b is that clip's own
loss gradient; the plot shows its mean over the clips, with the 25-75 % band. With
``model.pooling=last`` an earlier frame reaches the loss only through the recurrence, so
||dL/dh_1|| / ||dL/dh_T|| says how much of the start of the clip the gradient still sees.

Exploding gradients: a relu RNN whose recurrent matrices start as ``gain`` times an orthogonal
matrix (every singular value = gain), trained for a few SGD steps on one fixed batch of train
clips twice, from the same init, without and with gradient-norm clipping; the loss and the
pre-clip gradient norm per step.

Writes gradients.{png,json} and exploding.{png,json} into --out.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch import nn  # noqa: E402

from .checkpoint import load_model  # noqa: E402
from .config import AugmentConfig, DataConfig, FeaturesConfig, ModelConfig, compose_config  # noqa: E402
from .data import build_datasets, build_splits  # noqa: E402
from .devices import pick_device  # noqa: E402
from .errors import SpeechRNNError  # noqa: E402
from .inspect_cells import rnn_inputs  # noqa: E402
from .models import build_model, count_parameters  # noqa: E402

CELLS = ("rnn", "lstm", "gru")


@dataclass
class GradientProfile:
    """Per-clip ||dL/dh_t|| for one model on one batch: ``norms`` [clips, frames]."""

    name: str
    cell: str
    norms: np.ndarray
    hop_seconds: float
    num_parameters: int
    pooling: str
    trained: bool

    @property
    def mean(self) -> np.ndarray:
        return self.norms.mean(axis=0)

    @property
    def ratio(self) -> float:
        """||dL/dh_1|| / ||dL/dh_T|| on the batch-mean norms (tiny: the start is forgotten)."""
        mean = self.mean
        return float(mean[0] / mean[-1]) if mean[-1] > 0 else math.inf

    def to_json(self) -> dict:
        return {
            "name": self.name, "cell": self.cell, "trained": self.trained,
            "pooling": self.pooling, "num_parameters": self.num_parameters,
            "hop_seconds": self.hop_seconds, "clips": int(self.norms.shape[0]),
            "ratio_first_last": self.ratio,
            "mean": self.mean.tolist(),
            "p25": np.percentile(self.norms, 25, axis=0).tolist(),
            "p75": np.percentile(self.norms, 75, axis=0).tolist(),
        }


@torch.no_grad()
def rnn_input(model: nn.Module, waves: torch.Tensor) -> torch.Tensor:
    """What the model's recurrent module receives for ``waves`` (after the frontend, the
    input norm and the convs): [B, T, I]."""
    with rnn_inputs(model) as seen:
        model.encode_frames(model.features(waves))
    return seen[0]


def _replace_top(state, h: torch.Tensor):
    """``state`` (h_n, or (h_n, c_n) for lstm) with its last layer's h swapped for ``h``."""
    if isinstance(state, tuple):
        return _replace_top(state[0], h), state[1]
    return torch.cat([state[:-1], h.unsqueeze(0)])


def unrolled_frames(rnn: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The trained recurrent module run one frame at a time: the last layer's h_t, per frame.

    The fused modules hand the next step their own copy of h_t, so a gradient taken at their
    output sequence misses the path through the recurrence. Here each h_t is one tensor that
    both the next step and the pooling read, so its gradient is the total dLoss/dh_t.
    """
    if rnn.bidirectional:
        raise SpeechRNNError("gradients over time need a forward-only encoder; "
                             "set model.bidirectional=false")
    state, hs = None, []
    for t in range(x.shape[1]):
        out, state = rnn(x[:, t : t + 1], state)
        hs.append(out[:, 0])
        state = _replace_top(state, hs[-1])
    return hs


def hidden_gradient_norms(model: nn.Module, waves: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """||d(sum of per-clip cross-entropies)/dh_t|| per clip and frame, [B, T], in eval mode.

    A tensor hook on every h_t receives its gradient during one backward pass. cuDNN's RNN
    backward refuses eval mode, so cuDNN is off here (the native kernels compute the same).
    """
    model.eval()
    x = rnn_input(model, waves)
    grads: dict[int, torch.Tensor] = {}
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        hs = unrolled_frames(model.encoder.rnn, x)
        for t, h in enumerate(hs):
            h.register_hook(lambda grad, t=t: grads.__setitem__(t, grad))
        pooled = model.encoder.dropout(model.encoder.pool(torch.stack(hs, dim=1)))
        loss = F.cross_entropy(model.head(pooled).float(), labels, reduction="sum")
        loss.backward()
    model.zero_grad(set_to_none=True)
    return torch.stack([grads[t] for t in range(len(hs))], dim=1).norm(dim=-1).cpu().numpy()


def profile(name: str, model: nn.Module, waves: torch.Tensor, labels: torch.Tensor,
            trained: bool) -> GradientProfile:
    return GradientProfile(
        name=name, cell=model.encoder.cell, norms=hidden_gradient_norms(model, waves, labels),
        hop_seconds=model.frontend.mfcc.hop_length / model.sample_rate,
        num_parameters=count_parameters(model), pooling=model.encoder.pooling, trained=trained,
    )


def clip_batch(data: DataConfig, augment: AugmentConfig, split: str, count: int,
               labels: list[str] | None = None, seed: int = 0):
    """``count`` clips spread evenly over ``split`` (waves [B, S], label indices [B])."""
    splits = build_splits(data)
    if labels is not None and splits.labels != list(labels):
        raise SpeechRNNError(f"the data's labels {splits.labels} differ from the model's {labels}; "
                             "point data.* at the corpus the run was trained on")
    dataset = build_datasets(data, augment, splits, seed)[split]
    if len(dataset) == 0:
        raise SpeechRNNError(f"data: the {split} split is empty; pick another with --split")
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    items = [dataset[int(i)] for i in indices]
    return torch.stack([w for w, _ in items]), torch.tensor([y for _, y in items]), splits.labels


def with_model(data: DataConfig, features: FeaturesConfig, model: ModelConfig, labels: list[str],
               **changes) -> nn.Module:
    """The classifier these sections describe, with ``changes`` to the model settings."""
    return build_model(data, features, replace(model, **changes), labels)


# ------------------------------------------------------------------------- exploding gradients

def relu_rnn(build: Callable[..., nn.Module], gain: float, seed: int) -> nn.Module:
    """A vanilla relu RNN (``build``: with_model with its sections and labels given) whose
    recurrent matrices are ``gain`` x orthogonal."""
    torch.manual_seed(seed)
    model = build(cell="rnn", nonlinearity="relu", dropout=0.0)
    for name, weight in model.encoder.rnn.named_parameters():
        if name.startswith("weight_hh"):
            nn.init.orthogonal_(weight, gain=gain)
    return model


def train_steps(model: nn.Module, batches: list, steps: int, lr: float, clip: float | None) -> dict:
    """Plain SGD on ``batches`` (cycled): loss and pre-clip gradient norm per step; stops at the
    first non-finite loss or gradient (the parameters are then garbage)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    losses, norms = [], []
    for step in range(steps):
        waves, labels = batches[step % len(batches)]
        loss = F.cross_entropy(model(waves).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(nn.utils.clip_grad_norm_(model.parameters(), clip if clip else math.inf))
        losses.append(loss.item())
        norms.append(norm)
        if not (math.isfinite(losses[-1]) and math.isfinite(norm)):
            break
        optimizer.step()
    return {"loss": losses, "grad_norm": norms, "clip": clip, "steps_run": len(losses),
            "diverged": not all(map(math.isfinite, losses + norms))}


def exploding(build: Callable[..., nn.Module], batches: list, steps: int, gain: float,
              lr: float, clip: float, seed: int) -> dict:
    """The same relu RNN (same init, same batches) trained without and with clipping."""
    runs = {}
    for key, max_norm in (("no_clip", None), ("clip", clip)):
        model = relu_rnn(build, gain, seed).to(batches[0][0].device)
        runs[key] = train_steps(model, batches, steps, lr, max_norm)
    rnn = model.encoder.rnn
    return {"gain": gain, "lr": lr, "clip": clip, "seed": seed, "hidden_size": rnn.hidden_size,
            "num_layers": rnn.num_layers, "batch_size": len(batches[0][1]), "runs": runs}


# ------------------------------------------------------------------------------- outputs

def _json_safe(value):
    """NaN and infinity are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(data: dict, path: Path) -> Path:
    path.write_text(json.dumps(_json_safe(data), indent=1))
    return path


def plot_profiles(profiles: list[GradientProfile], path: Path, title: str) -> Path:
    """One line per profile (mean over clips, 25-75 % band); untrained models dashed. Colours
    follow the cell when that tells the profiles apart."""
    by_cell = len({(p.cell, p.trained) for p in profiles}) == len(profiles)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, p in enumerate(profiles):
        t = np.arange(p.norms.shape[1]) * p.hop_seconds
        color = f"C{CELLS.index(p.cell) if by_cell else i}"
        ax.plot(t, p.mean, lw=1.5, color=color, ls="-" if p.trained else "--",
                label=f"{p.name}  (h_1/h_T = {p.ratio:.2g})")
        ax.fill_between(t, np.percentile(p.norms, 25, axis=0), np.percentile(p.norms, 75, axis=0),
                        color=color, alpha=0.12, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("time of h_t (s)")
    ax.set_ylabel("||dLoss / dh_t||  (mean over clips)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_exploding(result: dict, path: Path) -> Path:
    fig, (loss_ax, norm_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("no_clip", "no clipping"), ("clip", f"clip at {result['clip']}")):
        run = result["runs"][key]
        steps = np.arange(1, run["steps_run"] + 1)
        for ax, values in ((loss_ax, run["loss"]), (norm_ax, run["grad_norm"])):
            values = np.asarray(values, dtype=float)
            ok = np.isfinite(values)
            line, = ax.plot(steps[ok], values[ok], marker=".", lw=1, label=label)
            if run["diverged"]:
                top = values[ok].max() if ok.any() else 1.0
                ax.plot(steps[-1], top, "x", ms=10, color=line.get_color())
                ax.annotate("non-finite", (steps[-1], top), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")
    loss_ax.set_ylabel("training loss")
    norm_ax.set_ylabel("gradient norm before clipping")
    for ax in (loss_ax, norm_ax):
        ax.set_yscale("log")
        ax.set_xlabel("SGD step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"relu RNN, {result['num_layers']} x {result['hidden_size']}, recurrent init "
                 f"{result['gain']} x orthogonal, SGD lr {result['lr']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------ CLI

def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="speechrnn gradients",
        description="Plot ||dLoss/dh_t|| over time for rnn/lstm/gru (trained runs, or fresh "
                    "models from a recipe) and an exploding-gradient run with and without "
                    "clipping.",
        epilog="examples:\n  speechrnn gradients runs/rnn runs/lstm runs/gru\n"
               "  speechrnn gradients recipe=compare/cells model.pooling=last "
               "data.root=../shared/data/fsdd/recordings",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*",
                        help="run dirs / checkpoints, or Hydra overrides for fresh models")
    parser.add_argument("--out", type=Path, default=Path("outputs/gradients"))
    parser.add_argument("--cells", default=",".join(CELLS),
                        help="cells to build fresh (with overrides only; default rnn,lstm,gru)")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--clips", type=int, default=32, help="clips in the batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exploding-steps", type=int, default=30, help="0 skips that part")
    parser.add_argument("--gain", type=float, default=1.5,
                        help="recurrent init of the exploding relu RNN, x orthogonal")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate there")
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm there")
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = _parse(argv)
    runs = [t for t in args.targets if "=" not in t]
    overrides = [t for t in args.targets if "=" in t]
    if runs and overrides:
        raise SpeechRNNError(f"pass either run dirs ({runs}) or overrides for fresh models "
                             f"({overrides}), not both")
    missing = [r for r in runs if not Path(r).exists()]
    if missing:
        raise SpeechRNNError(f"{missing[0]}: no such run dir or checkpoint; pass run dirs "
                             "written by `speechrnn train`, or Hydra overrides (key=value)")
    device = pick_device("auto")
    profiles, batches = [], {}

    def batch_for(cfg, split, labels=None):
        key = (split, OmegaConf.to_yaml(cfg.data))  # models on the same data share one batch
        if key not in batches:
            waves, targets, labels = clip_batch(cfg.data, cfg.augment, split, args.clips, labels,
                                                cfg.trainer.seed)
            batches[key] = (waves.to(device), targets.to(device), labels)
        return batches[key]

    if runs:
        for run in runs:
            model, cfg, _ = load_model(run)
            cfg = OmegaConf.to_object(cfg)
            waves, targets, _ = batch_for(cfg, args.split, model.labels)
            profiles.append(profile(f"{Path(run).name} ({model.encoder.cell})", model.to(device),
                                    waves, targets, trained=True))
        base_cfg = cfg
    else:
        base_cfg = OmegaConf.to_object(compose_config(overrides))
        waves, targets, labels = batch_for(base_cfg, args.split)
        for cell in [c.strip() for c in args.cells.split(",") if c.strip()]:
            if cell not in CELLS:
                raise SpeechRNNError(f"--cells: {cell!r} is not one of {list(CELLS)}")
            torch.manual_seed(args.seed)
            model = with_model(base_cfg.data, base_cfg.features, base_cfg.model, labels, cell=cell).to(device)
            profiles.append(profile(f"{cell} (initial)", model, waves, targets, trained=False))

    args.out.mkdir(parents=True, exist_ok=True)
    clips = profiles[0].norms.shape[0]
    title = (f"||dLoss/dh_t|| of the last recurrent layer over time, {clips} {args.split} clips, "
             f"pooling {profiles[0].pooling}")
    written = [plot_profiles(profiles, args.out / "gradients.png", title),
               write_json({"split": args.split, "loss": "cross-entropy summed over the clips",
                           "profiles": [p.to_json() for p in profiles]}, args.out / "gradients.json")]
    for p in profiles:
        print(f"{p.name:30s} ||dL/dh_1|| / ||dL/dh_T|| = {p.ratio:.3g}")

    if args.exploding_steps > 0:
        waves, targets, labels = batch_for(base_cfg, "train")
        build = functools.partial(with_model, base_cfg.data, base_cfg.features, base_cfg.model, labels)
        result = exploding(build, [(waves, targets)], args.exploding_steps, args.gain, args.lr,
                           args.clip, args.seed)
        written += [plot_exploding(result, args.out / "exploding.png"),
                    write_json(result, args.out / "exploding.json")]
        for key, run in result["runs"].items():
            finite = [n for n in run["grad_norm"] if math.isfinite(n)]
            print(f"relu RNN, {key:8s}: {run['steps_run']} steps, max grad norm "
                  f"{max(finite) if finite else float('nan'):.3g}, "
                  f"final loss {run['loss'][-1]:.3g}" + (" (diverged)" if run["diverged"] else ""))
    print("written: " + ", ".join(str(p) for p in written))
    return 0
