"""`speechrnn inspect RUN_DIR AUDIO [--out DIR]`: look inside the recurrent cells on one utterance.

One figure with a shared time axis: the waveform, the MFCC the model computes (each coefficient
standardised for display), every recurrent layer's hidden state, the gate activations (LSTM:
forget, input, output; GRU: update, reset) and the class posterior over time.

The gates come from the written-out reference cells (``models/cells.py``) loaded with the
trained weights, one layer at a time, fed the exact input the trained ``nn.RNN``/``nn.LSTM``/
``nn.GRU`` receives. The posterior at frame t is the head applied to the encoder's pooling of
frames 0..t (the model's own pooling, on the prefix): for a forward-only encoder it is what the
model would answer had the clip ended at t (the per-utterance MFCC normalisation, when on, still
sees the whole clip). Its last frame is the model's actual prediction.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from . import audio  # noqa: E402
from .checkpoint import load_model  # noqa: E402
from .models.cells import ReferenceRNN  # noqa: E402

# The gates worth looking at per cell (the candidate and cell state are not gates).
PLOTTED_GATES = {"rnn": (), "lstm": ("forget", "input", "output"), "gru": ("update", "reset")}
_LAYER_KEY = re.compile(r"^(?P<name>\w+?)_l(?P<layer>\d+)(?P<reverse>_reverse)?$")


@dataclass
class LayerTrace:
    """One recurrent layer on one clip: ``hidden`` [T, D] (both directions side by side when
    bidirectional) and ``gates[direction][name]`` [T, H]."""

    hidden: np.ndarray
    gates: list[dict[str, np.ndarray]]


@dataclass
class Inspection:
    wave: np.ndarray          # [S]
    sample_rate: int
    hop_seconds: float        # time between feature frames
    features: np.ndarray      # [T, F]
    layers: list[LayerTrace]
    posterior: np.ndarray     # [T, C], softmax of the head on the pooled prefix 0..t
    labels: list[str]
    cell: str

    @property
    def prediction(self) -> tuple[str, float]:
        index = int(self.posterior[-1].argmax())
        return self.labels[index], float(self.posterior[-1, index])


def layer_state_dict(rnn: nn.Module, layer: int) -> dict[str, Tensor]:
    """The weights of one layer of a (multi-layer) torch or reference RNN, renamed as layer 0."""
    picked = {}
    for key, value in rnn.state_dict().items():
        match = _LAYER_KEY.match(key)
        if match and int(match["layer"]) == layer:
            picked[f"{match['name']}_l0{match['reverse'] or ''}"] = value
    return picked


@torch.no_grad()
def trace_layers(rnn: nn.Module, cell: str, nonlinearity: str, x: Tensor) -> list[LayerTrace]:
    """Run ``rnn``'s trained weights through the reference cells, layer by layer, on ``x``
    [1, T, I] (the trained module's input). Eval mode: no dropout between layers."""
    traces = []
    for layer in range(rnn.num_layers):
        reference = ReferenceRNN(cell, x.shape[-1], rnn.hidden_size, num_layers=1,
                                 bidirectional=rnn.bidirectional, nonlinearity=nonlinearity)
        reference.load_state_dict(layer_state_dict(rnn, layer))
        x, _, gates = reference.to(x.device)(x, return_gates=True)
        traces.append(LayerTrace(
            hidden=x[0].cpu().numpy(),
            gates=[{name: g[0].cpu().numpy() for name, g in direction.items()} for direction in gates[0]],
        ))
    return traces


@contextlib.contextmanager
def rnn_inputs(model: nn.Module) -> Iterator[list[Tensor]]:
    """Collects what the model's recurrent module receives while the block runs (after the
    frontend, the input norm and the convs): one [B, T, I] tensor per forward pass."""
    seen: list[Tensor] = []
    hook = model.encoder.rnn.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        yield seen
    finally:
        hook.remove()


@torch.no_grad()
def inspect_wave(model, wave: np.ndarray) -> Inspection:
    """Everything the figure shows, for one waveform at the model's sample rate."""
    model.eval()
    device = next(model.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).unsqueeze(0).to(device)
    with rnn_inputs(model) as rnn_input:
        features = model.features(batch)
        frames = model.encode_frames(features)  # [1, T, D]
    layers = trace_layers(model.encoder.rnn, model.encoder.cell, model.encoder.nonlinearity, rnn_input[0])
    pooled = torch.cat([model.encoder.pool(frames[:, : t + 1]) for t in range(frames.shape[1])])
    posterior = torch.softmax(model.head(pooled).float(), dim=-1)
    return Inspection(
        wave=np.asarray(wave, dtype=np.float32), sample_rate=model.sample_rate,
        hop_seconds=model.frontend.mfcc.hop_length / model.sample_rate,
        features=features[0].cpu().numpy(), layers=layers, posterior=posterior.cpu().numpy(),
        labels=list(model.labels), cell=model.encoder.cell,
    )


def _heatmap(fig, ax, cax, values: np.ndarray, inspection: Inspection, label: str, **style):
    """values [T, units] as an image: time along x (frame centres), units along y."""
    t_end = values.shape[0] * inspection.hop_seconds
    extent = (-inspection.hop_seconds / 2, t_end - inspection.hop_seconds / 2, values.shape[1], 0)
    image = ax.imshow(values.T, aspect="auto", interpolation="nearest", extent=extent, **style)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.colorbar(image, cax=cax)


def plot(inspection: Inspection, path: Path, title: str) -> Path:
    gate_names = PLOTTED_GATES[inspection.cell]
    bidirectional = len(inspection.layers[0].gates) == 2
    rows: list[tuple[str, object]] = [("waveform", None), ("features", None)]
    for i, layer in enumerate(inspection.layers):
        rows.append((f"layer {i + 1}\nhidden h", layer.hidden))
        for name in gate_names:
            values = np.concatenate([direction[name] for direction in layer.gates], axis=1)
            rows.append((f"layer {i + 1}\n{name} gate", values))
    rows.append(("posterior", None))

    heights = [1.0] + [1.3] * (len(rows) - 1)
    fig_height = 0.95 * sum(heights) + 1.0
    fig = plt.figure(figsize=(10, fig_height))
    grid = fig.add_gridspec(len(rows), 2, width_ratios=(60, 1), height_ratios=heights,
                            hspace=0.25, wspace=0.02, top=1 - 0.5 / fig_height,
                            bottom=0.5 / fig_height)
    axes = [fig.add_subplot(grid[0, 0])]
    axes += [fig.add_subplot(grid[r, 0], sharex=axes[0]) for r in range(1, len(rows))]
    caxes = [fig.add_subplot(grid[r, 1]) for r in range(len(rows))]

    seconds = np.arange(len(inspection.wave)) / inspection.sample_rate
    axes[0].plot(seconds, inspection.wave, lw=0.4, color="black")
    axes[0].set_ylabel("waveform", rotation=0, ha="right", va="center", fontsize=8)
    # Unnormalised MFCCs span hundreds of dB in c0 and a few in the rest: each coefficient is
    # standardised over the clip for display, so every row shows its own contour.
    feats = inspection.features
    shown = (feats - feats.mean(axis=0)) / (feats.std(axis=0) + 1e-6)
    _heatmap(fig, axes[1], caxes[1], shown, inspection, "MFCC\n(per coefficient,\nstandardised)",
             cmap="magma")
    for (label, values), ax, cax in zip(rows[2:-1], axes[2:-1], caxes[2:-1]):
        if label.endswith("hidden h"):
            bound = max(float(np.abs(values).max()), 1e-6)
            _heatmap(fig, ax, cax, values, inspection, label, cmap="RdBu_r", vmin=-bound, vmax=bound)
        else:
            _heatmap(fig, ax, cax, values, inspection, label, cmap="viridis", vmin=0.0, vmax=1.0)
        if bidirectional:
            ax.axhline(values.shape[1] / 2, color="white", lw=0.8)

    frames = np.arange(len(inspection.posterior)) * inspection.hop_seconds
    top = np.argsort(inspection.posterior.max(axis=0))[::-1][:5]
    for k in range(inspection.posterior.shape[1]):
        if k in top:
            axes[-1].plot(frames, inspection.posterior[:, k], lw=1.4, label=inspection.labels[k])
        else:
            axes[-1].plot(frames, inspection.posterior[:, k], lw=0.6, color="0.75")
    axes[-1].set_ylim(0, 1.02)
    axes[-1].set_ylabel("P(class | frames 0..t)", rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].legend(loc="upper left", fontsize=7, ncol=5, frameon=False)
    axes[-1].set_xlabel("time (s)")
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    for cax, (label, values) in zip(caxes, rows):
        if values is None and label != "features":
            cax.set_visible(False)
    caxes[1].set_visible(True)
    axes[0].set_xlim(0, len(inspection.wave) / inspection.sample_rate)
    fig.suptitle(title, fontsize=11, y=1 - 0.2 / fig_height)
    if bidirectional:
        fig.text(0.01, 0.005, "bidirectional: forward units above the white line, backward below",
                 fontsize=7)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def describe(inspection: Inspection, model, audio_path: Path) -> str:
    label, prob = inspection.prediction
    rnn = model.encoder.rnn
    return (f"{audio_path.name}: predicted '{label}' ({prob:.0%})  |  {inspection.cell.upper()}, "
            f"{rnn.num_layers} x {rnn.hidden_size} units, pooling {model.encoder.pooling}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn inspect",
        description="Plot the waveform, MFCC, hidden states, gate activations and class "
                    "posterior over time for one utterance.")
    parser.add_argument("run_dir", type=Path, help="a run dir (its best checkpoint) or a .pt file")
    parser.add_argument("audio", type=Path, help="one audio file (WAV, FLAC or OGG)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: RUN_DIR/inspect)")
    args = parser.parse_args(argv)

    model, _, _ = load_model(args.run_dir)
    wave = audio.load(args.audio, sample_rate=model.sample_rate, num_samples=model.clip_samples)
    inspection = inspect_wave(model, wave)
    out = args.out or (args.run_dir if args.run_dir.is_dir() else args.run_dir.parent) / "inspect"
    out.mkdir(parents=True, exist_ok=True)
    path = plot(inspection, out / f"{args.audio.stem}.png", describe(inspection, model, args.audio))
    print(f"{describe(inspection, model, args.audio)}\nwritten to {path}")
    return 0
