"""What a training step optimises and how a split is scored: clips (one label a clip, the
pooled output) or streams (speechrnn/data/stream.py: per-frame targets, the max-pooling loss).

Max-pooling loss (Sun et al., "Max-pooling loss training of LSTM networks for small-footprint
keyword spotting", 2016): a keyword occurrence needs no frame alignment, only a window; its loss
is the cross-entropy at the one frame of the window where the keyword's posterior is highest
(or, with ``stream.peak_seconds``, the mean over the run of that many frames where it is highest:
smoothed max pooling, after Park et al., "Learning to detect keyword parts and whole by smoothed
max pooling", 2020).
Every frame outside keyword windows gets a frame-wise cross-entropy towards its own target
(``_silence_``, ``_unknown_``), or, on a keyword's frames before its window
(``stream.window_seconds``), towards no keyword: -log of the summed posterior of the classes
that are none. The other frames of a window may say their keyword or nothing
(``_silence_``, ``_unknown_``), but no other keyword: -log of those classes' summed posterior.
Without that term they are free, and the model learnt to name a random digit there with
confidence (on validation sequences: the right digit at its best frame, others around it). The
three means are added, so the few keyword windows weigh as much as the many background frames.
The logits are the model's per-frame outputs (``KeywordClassifier(wave, per_frame=True)``), the
ones the streaming export gives frame by frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import StreamConfig
from .data.stream import IGNORE, NOTHING
from .labels import NOT_KEYWORDS
from .evaluate import accuracy, confusion, evaluate_split, per_class_scores


def run_means(values: Tensor, inside: Tensor, frames: int) -> Tensor:
    """``values`` [N, T] averaged over the ``frames`` from each step on, counting only the steps
    ``inside`` [N, T] (a run is cut short where its window ends)."""
    steps = torch.arange(values.shape[1], device=values.device)
    ends = (steps + frames).clamp(max=values.shape[1])
    sums = F.pad(values.masked_fill(~inside, 0.0), (1, 0)).cumsum(1)
    counts = F.pad(inside.to(values.dtype), (1, 0)).cumsum(1)
    return (sums[:, ends] - sums[:, steps]) / (counts[:, ends] - counts[:, steps]).clamp(min=1)


def max_pooling_loss(logits: Tensor, frames: Tensor, windows: Tensor, nothing: list[int],
                     peak: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """``logits`` [B, T, C], ``frames`` [B, T] (targets, NOTHING or IGNORE), ``windows`` [B, K, 3]
    (first frame, last frame, label; label -1 pads), ``nothing`` the classes that are no
    keyword, ``peak`` the frames a keyword's run lasts -> (loss, each window's label [N], the
    class predicted at the start of each window's chosen run [N])."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    frames = frames[:, : log_probs.shape[1]]
    unnamed = frames == NOTHING
    background = F.cross_entropy(log_probs.transpose(1, 2), frames.masked_fill(unnamed, IGNORE),
                                 ignore_index=IGNORE, reduction="sum")
    if unnamed.any():
        background = background - log_probs[..., nothing].logsumexp(-1)[unnamed].sum()
    counted = (frames != IGNORE).sum()
    batch, slot = torch.nonzero(windows[..., 2] >= 0, as_tuple=True)
    first, last, label = windows[batch, slot].unbind(-1)
    steps = torch.arange(log_probs.shape[1], device=logits.device)
    inside = (steps >= first[:, None]) & (steps <= last[:, None])  # [N, T]
    target = log_probs[batch, :, label]  # [N, T]: each window's keyword at every frame
    held = target if peak == 1 else run_means(target, inside, peak)
    best = held.masked_fill(~inside, -torch.inf).argmax(dim=1)
    keyword = -held.gather(1, best[:, None]).squeeze(1)
    loss = background / counted.clamp(min=1)
    if len(label):
        # Each window frame: its keyword or nothing, as one class.
        allowed = torch.logsumexp(torch.stack(
            [target, *(log_probs[batch, :, k] for k in nothing)]), dim=0)  # [N, T]
        loss = loss + keyword.mean() - allowed[inside].mean()
    predicted = log_probs[batch, best].argmax(dim=-1)
    return loss, label, predicted


class ClipObjective:
    """One label a clip, scored on the pooled output."""

    def step(self, net, batch, device) -> tuple[Tensor, int, int]:
        waves, labels = (t.to(device, non_blocking=True) for t in batch)
        logits = net(waves)
        return F.cross_entropy(logits.float(), labels), int((logits.argmax(1) == labels).sum()), len(labels)

    def evaluate(self, model, loader, device, labels: list[str]) -> dict:
        return evaluate_split(model, loader, device, labels)


class StreamObjective:
    """Long sequences, the max-pooling loss on per-frame outputs; the accuracy counts keyword
    occurrences whose chosen frame names them."""

    def __init__(self, labels: list[str], stream: StreamConfig, frames_per_second: float):
        self.nothing = [labels.index(label) for label in NOT_KEYWORDS if label in labels]
        self.peak = max(1, round(stream.peak_seconds * frames_per_second))

    def step(self, net, batch, device) -> tuple[Tensor, int, int]:
        waves, frames, windows = (t.to(device, non_blocking=True) for t in batch)
        loss, label, predicted = max_pooling_loss(net(waves, per_frame=True), frames, windows,
                                                  self.nothing, self.peak)
        return loss, int((predicted == label).sum()), len(label)

    @torch.no_grad()
    def evaluate(self, model, loader, device, labels: list[str]) -> dict:
        model.eval()
        total, batches, truth, guesses = 0.0, 0, [], []
        for batch in loader:
            loss, label, predicted = max_pooling_loss(
                model(batch[0].to(device), per_frame=True), batch[1].to(device), batch[2].to(device),
                self.nothing, self.peak)
            total, batches = total + float(loss), batches + 1
            truth.append(label.cpu())
            guesses.append(predicted.cpu())
        truth_np, guesses_np = torch.cat(truth).numpy(), torch.cat(guesses).numpy()
        matrix = confusion(guesses_np, truth_np, len(labels))
        return {"loss": total / max(batches, 1), "accuracy": accuracy(guesses_np, truth_np),
                "confusion": matrix, "per_class": per_class_scores(matrix, labels)}
