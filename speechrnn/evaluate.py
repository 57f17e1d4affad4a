"""Evaluation: accuracy, confusion matrix and per-class scores; `speechrnn eval RUN_DIR`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from . import checkpoint
from .config import apply_overrides
from .data import build_datasets, build_splits, make_loader
from .devices import pick_device
from .errors import SpeechRNNError, UsageError


@torch.no_grad()
def predict_loader(model, loader, device) -> tuple[float, np.ndarray, np.ndarray]:
    """Run the model over a loader: (mean loss, predicted indices, true indices)."""
    model.eval()
    total_loss, preds, targets = 0.0, [], []
    for waves, labels in loader:
        waves, labels = waves.to(device), labels.to(device)
        logits = model(waves).float()
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        preds.append(logits.argmax(dim=1).cpu())
        targets.append(labels.cpu())
    if not preds:
        return float("nan"), np.zeros(0, int), np.zeros(0, int)
    preds_np, targets_np = torch.cat(preds).numpy(), torch.cat(targets).numpy()
    return total_loss / len(targets_np), preds_np, targets_np


def confusion(preds: np.ndarray, targets: np.ndarray, num_labels: int) -> np.ndarray:
    """Rows are true labels, columns predictions."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (targets, preds), 1)
    return matrix


def per_class_scores(matrix: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    true_pos = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(true_pos), where=denom > 0)
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for label, p, r, f, n in zip(labels, precision, recall, f1, actual)
    }


def accuracy(preds: np.ndarray, targets: np.ndarray) -> float:
    return float((preds == targets).mean()) if len(targets) else float("nan")


def evaluate_split(model, loader, device, labels: list[str]) -> dict:
    loss, preds, targets = predict_loader(model, loader, device)
    matrix = confusion(preds, targets, len(labels))
    return {
        "loss": loss,
        "accuracy": accuracy(preds, targets),
        "confusion": matrix,
        "per_class": per_class_scores(matrix, labels),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn eval", description="Re-evaluate a trained run on its test split."
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="data overrides, e.g. data.root=/path")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    args = parser.parse_args(argv)

    model, cfg, _ = checkpoint.load_model(args.run_dir)
    bad = [o for o in args.overrides if not o.startswith("data.")]
    if bad:
        raise UsageError(f"only data.* overrides apply to a trained run, got {bad}")
    cfg = OmegaConf.to_object(apply_overrides(cfg, args.overrides))
    device = pick_device(cfg.trainer.device)
    model.to(device)
    splits = build_splits(cfg.data)
    if splits.labels != model.labels:
        raise SpeechRNNError(
            f"{args.run_dir}: the data's labels {splits.labels} differ from the model's "
            f"{model.labels}; point data.* at a corpus with the same classes"
        )
    dataset = build_datasets(cfg.data, cfg.augment, splits, cfg.trainer.seed)[args.split]
    loader = make_loader(dataset, cfg.data.batch_size, shuffle=False,
                         num_workers=cfg.data.num_workers, seed=cfg.trainer.seed)
    result = evaluate_split(model, loader, device, model.labels)
    report = {
        "split": args.split,
        "clips": int(result["confusion"].sum()),
        "accuracy": result["accuracy"],
        "loss": result["loss"],
        "per_class": result["per_class"],
        "overrides": args.overrides,
    }
    print(f"{args.split} accuracy: {result['accuracy']:.4f} on {report['clips']} clips", flush=True)
    if not args.run_dir.is_dir():
        return 0
    out = args.run_dir / f"eval_{args.split}.json"
    try:
        out.write_text(json.dumps(report, indent=2))
    except OSError as exc:  # a read-only or full run dir: the result above stands
        raise SpeechRNNError(f"{out}: could not write the report ({exc.strerror}); the accuracy "
                             "above was not saved") from None
    print(f"written to {out}")
    return 0
