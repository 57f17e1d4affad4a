"""Plots written into a run dir: the confusion matrix and the training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    size = max(4.0, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(epochs: list[dict], steps: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, and the pre-clip gradient norm per step (log scale)."""
    fig, (loss_ax, acc_ax, grad_ax) = plt.subplots(1, 3, figsize=(15, 4))
    x = [e["epoch"] for e in epochs]
    for key in ("train/loss", "val/loss"):
        loss_ax.plot(x, [e[key] for e in epochs], marker="o", label=key)
    for key in ("train/acc", "val/acc"):
        acc_ax.plot(x, [e[key] for e in epochs], marker="o", label=key)
    grad_ax.plot([s["step"] for s in steps], [s["train/grad_norm"] for s in steps], lw=0.8)
    grad_ax.set_yscale("log")
    for ax, title, xlabel in (
        (loss_ax, "loss", "epoch"),
        (acc_ax, "accuracy", "epoch"),
        (grad_ax, "gradient norm before clipping", "step"),
    ):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if ax is not grad_ax:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
