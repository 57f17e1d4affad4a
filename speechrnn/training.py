"""The training loop: checkpoints, exact resume, early stopping, metrics, AMP and DDP.

`fit(cfg, run_dir)` trains one run and returns its summary. Everything it writes goes into
run_dir: config.yaml, checkpoints/{best,last}.pt, metrics.jsonl, summary.json and the plots.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import checkpoint, reports, tracking
from .config import Config, Optimizer, OptimConfig, Schedule, SchedulerConfig, plain, validate
from .data import build_datasets, build_splits, build_stream_datasets, decode_cache, make_loader
from .data.validate import check_clips
from .devices import (export_submitit_environment, init_distributed, rng_state, seed_everything,
                      set_rng_state)
from .errors import SpeechRNNError, UsageError
from .objectives import ClipObjective, StreamObjective
from .export import export_after_training
from .models import build_model, count_parameters

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict], None]


def build_optimizer(optim: OptimConfig, params) -> torch.optim.Optimizer:
    if optim.name is Optimizer.sgd:
        return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum,
                               weight_decay=optim.weight_decay)
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)


def build_scheduler(scheduler: SchedulerConfig, max_lr: float, optimizer, total_steps: int):
    """Stepped once per batch; None when the learning rate is constant."""
    if scheduler.name is Schedule.onecycle:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=scheduler.pct_start
        )
    if scheduler.name is Schedule.cosine:
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=scheduler.min_lr
        )
    return None


class MetricsLog:
    """metrics.jsonl: one line per optimizer step ("kind": "step") and per epoch ("kind": "epoch")."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        self.steps: list[dict] = []
        self.epochs: list[dict] = []

    def restore(self, history: dict) -> None:
        """Resume: keep exactly what the checkpoint saw, dropping lines of an interrupted epoch."""
        self.steps, self.epochs = list(history["steps"]), list(history["epochs"])
        if self.enabled:
            lines = [{"kind": "step", **s} for s in self.steps] + [{"kind": "epoch", **e} for e in self.epochs]
            lines.sort(key=lambda r: (r.get("step", math.inf) if r["kind"] == "step" else r["last_step"] + 0.5))
            self.path.write_text("".join(json.dumps(r) + "\n" for r in lines))

    def add(self, kind: str, record: dict) -> None:
        (self.steps if kind == "step" else self.epochs).append(record)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps({"kind": kind, **record}) + "\n")

    def history(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs}


# -- the run dir: one run at a time, never trained over, resumed only with its own settings ----
LOCK_FILE = ".lock"
RUN_FILES = ("summary.json", "metrics.jsonl")  # with checkpoints/*.pt: a run is there
# What a run writes (with export.filename), removed by trainer.overwrite=true so nothing of the
# old run is left.
RUN_OUTPUTS = ("checkpoints", "config.yaml", "summary.json", "metrics.jsonl", "confusion_matrix.png",
               "curves.png", "model*.onnx", "eval_*.json")
# Settings a resume may change: where things are and how the run is shown, not what it learns.
RESUME_MAY_CHANGE = ("trainer.resume", "trainer.overwrite", "trainer.progress", "trainer.device",
                     "data.num_workers", "data.root", "data.noise_dir", "data.test_root", "data.download",
                     "logger.", "export.")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_FILES) or any((run_dir / "checkpoints").glob("*.pt"))


@contextlib.contextmanager
def lock_run_dir(run_dir: Path):
    """An exclusive lock on run_dir for as long as the run lasts (released by the kernel if the
    process dies): a second run into the same dir is refused instead of interleaving with it."""
    try:
        f = (run_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise SpeechRNNError(f"{run_dir}: cannot write in the run dir ({exc.strerror}); "
                             "train into another hydra.run.dir") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            raise UsageError(f"{run_dir}: another training run{f' (pid {holder})' if holder else ''} is "
                             "using this run dir; wait for it to end, or train into another "
                             "hydra.run.dir") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


def check_run_dir(cfg: Config, run_dir: Path) -> Optional[tuple[Path, dict]]:
    """Before anything is written: the checkpoint to resume and its state, checked to be the run
    these settings describe; None for a fresh run, which must not train over an existing one."""
    path = resume_path(cfg.trainer.resume, run_dir)
    if path is not None:
        state = checkpoint.load(path)
        changes = config_changes(state["config"], cfg, path)
        if changes:
            raise UsageError(f"cannot resume from {path}: {len(changes)} setting(s) differ from the run's "
                             "(resume with its values: drop these overrides; or train a new run dir):\n"
                             + "\n".join(changes))
        return path, state
    if holds_run(run_dir) and not cfg.trainer.overwrite:
        raise UsageError(f"{run_dir} already holds a run (checkpoints, metrics or summary); resume it "
                         "with trainer.resume=true, or train into a new hydra.run.dir (trainer.overwrite=true "
                         "replaces it)")
    return None


def config_changes(saved: dict, cfg: Config, path: Path) -> list[str]:
    """One line per setting that differs between a checkpoint's run and ``cfg`` (those a resume
    may change left out)."""
    try:
        before = _flat(plain(OmegaConf.merge(OmegaConf.structured(Config), saved)))
    except Exception as exc:  # OmegaConf's errors for keys or types the schema does not have
        raise SpeechRNNError(f"{path}: the checkpoint's config does not fit the settings of this "
                             f"version ({checkpoint.first_line(exc)})") from None
    now = _flat(plain(cfg))
    lines = []
    for key in sorted(before.keys() | now.keys()):
        if key.startswith(RESUME_MAY_CHANGE) or before.get(key) == now.get(key):
            continue
        note = (" (a run cannot be extended: its learning-rate schedule spans its epochs)"
                if key == "trainer.epochs" else "")
        lines.append(f"  {key}: {before.get(key)} in the run, {now.get(key)} now{note}")
    return lines


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def clear_run(run_dir: Path, export_filename: str) -> None:
    """trainer.overwrite=true: remove what the previous run wrote (logs and other files stay)."""
    for pattern in (*RUN_OUTPUTS, export_filename):
        for path in run_dir.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def resume_path(value: Optional[str], run_dir: Path) -> Optional[Path]:
    if value in (None, "", "false", "False"):
        return None
    if str(value) in ("true", "True", "last"):
        path = run_dir / "checkpoints" / "last.pt"
        if not path.exists():
            raise SpeechRNNError(
                f"{path}: nothing to resume in this run dir; pass hydra.run.dir=<the interrupted "
                "run> with trainer.resume=true, or trainer.resume=/path/to/last.pt"
            )
        return path
    return Path(value)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, epoch_callback: Optional[EpochCallback] = None):
        self.cfg, self.run_dir, self.epoch_callback = cfg, run_dir, epoch_callback
        self.dist, self.device = init_distributed(cfg.trainer.device)
        seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
        self.ckpt_dir = run_dir / "checkpoints"
        resume = check_run_dir(cfg, run_dir)  # may refuse: nothing is written before this
        if self.dist.is_main:
            if resume is None and holds_run(run_dir):  # trainer.overwrite=true, or check_run_dir refused
                clear_run(run_dir, cfg.export.filename)
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for torn in self.ckpt_dir.glob(".*.tmp"):  # left by a process killed mid-write
                torn.unlink()
            if resume is None:  # a resumed run keeps its config.yaml
                OmegaConf.save(cfg, run_dir / "config.yaml")

        # Rank 0 prepares the data first (the synthetic set may be rendered into a shared cache).
        if not self.dist.is_main:
            self.dist.barrier()
        self.splits = check_clips(build_splits(cfg.data), cfg.data.on_bad_file, decode_cache(cfg.data))
        if self.dist.is_main:
            self.dist.barrier()
        self.labels = self.splits.labels
        for split, clips in self.splits.items():
            if not clips:
                raise SpeechRNNError(f"data: the {split} split is empty; check data.root and the split settings")
        if cfg.stream.enabled:
            self.datasets = build_stream_datasets(cfg.data, cfg.augment, cfg.stream, self.splits,
                                                  cfg.features.hop_length, cfg.trainer.seed)
            self.objective = StreamObjective(self.splits.labels, cfg.stream,
                                             cfg.data.sample_rate / cfg.features.hop_length)
        else:
            self.datasets = build_datasets(cfg.data, cfg.augment, self.splits, cfg.trainer.seed)
            self.objective = ClipObjective()
        # Also for one process: its order depends only on (seed, epoch), so a resume is exact.
        self.sampler = DistributedSampler(self.datasets["train"], num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=True, seed=cfg.trainer.seed)
        self.train_loader = make_loader(self.datasets["train"], cfg.data.batch_size, shuffle=True,
                                        num_workers=cfg.data.num_workers, seed=cfg.trainer.seed,
                                        sampler=self.sampler)
        self.eval_loaders = {
            split: make_loader(self.datasets[split], cfg.data.batch_size, shuffle=False,
                               num_workers=cfg.data.num_workers, seed=cfg.trainer.seed)
            for split in ("val", "test")
        }

        self.model = build_model(cfg.data, cfg.features, cfg.model, self.labels,
                                 cfg.augment).to(self.device)
        self.num_parameters = count_parameters(self.model)
        self.net = (
            DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
            if self.dist.enabled else self.model
        )
        self.steps_per_epoch = len(self.train_loader)
        if cfg.trainer.limit_train_batches:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.trainer.limit_train_batches)
        self.optimizer = build_optimizer(cfg.optim, self.model.parameters())
        self.scheduler = build_scheduler(cfg.scheduler, cfg.optim.lr, self.optimizer,
                                         cfg.trainer.epochs * self.steps_per_epoch)
        self.amp = bool(cfg.trainer.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

        self.metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=self.dist.is_main)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.best_val_acc = -1.0
        self.best_val_loss = math.inf
        self.best_epoch = 0
        self.epochs_since_best = 0
        self.train_seconds = 0.0
        if resume is not None:
            self.load_state(resume[1])
            log.info("resumed from %s after epoch %d", resume[0], self.epoch)
        elif self.dist.is_main:
            self.metrics.path.unlink(missing_ok=True)
        self.tracker = (
            tracking.start(cfg.logger, plain(cfg), run_dir) if self.dist.is_main else tracking.Tracker()
        )

    # -- checkpoint state ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "config": plain(self.cfg),
            "labels": self.labels,
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "best_val_acc": self.best_val_acc,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_since_best": self.epochs_since_best,
            "train_seconds": self.train_seconds,
            "history": self.metrics.history(),
        }

    def load_state(self, state: dict) -> None:
        if list(state["labels"]) != self.labels:
            raise SpeechRNNError(f"cannot resume: checkpoint labels {state['labels']} differ from the data's {self.labels}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise SpeechRNNError(f"cannot resume: the checkpoint's weights do not fit its own model "
                                 f"settings ({checkpoint.first_line(exc)}); it was changed or written by "
                                 "another program") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_val_acc, self.best_epoch = state["best_val_acc"], state["best_epoch"]
        self.best_val_loss = state.get("best_val_loss", math.inf)  # older checkpoints lack it
        self.epochs_since_best = state["epochs_since_best"]
        self.train_seconds = state["train_seconds"]
        self.metrics.restore(state["history"])

    def save(self, name: str) -> None:
        if self.dist.is_main:
            checkpoint.save(self.state(), self.ckpt_dir / name)

    # -- the loop -----------------------------------------------------------------------
    def train_step(self, batch):
        """One optimizer step on a batch of the objective's: its loss, the examples it got
        right and counted (clips, or keyword occurrences), and the pre-clip gradient norm."""
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            loss, correct, seen = self.objective.step(self.net, batch, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.trainer.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return loss, correct, seen, grad_norm

    def train_epoch(self) -> dict:
        self.net.train()
        dataset = self.datasets["train"]
        dataset.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        total_loss, correct, seen = 0.0, 0, 0
        start = time.perf_counter()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{self.cfg.trainer.epochs}",
                   disable=not (self.cfg.trainer.progress and self.dist.is_main), leave=False, dynamic_ncols=True)
        for batch_index, batch in enumerate(self.train_loader):
            if batch_index >= self.steps_per_epoch:
                break
            loss, batch_correct, batch_seen, grad_norm = self.train_step(batch)
            total_loss += loss.item() * batch_seen
            correct += batch_correct
            seen += batch_seen
            record = {"step": self.step, "epoch": self.epoch + 1, "train/loss": loss.item(),
                      "train/grad_norm": float(grad_norm), "lr": self.optimizer.param_groups[0]["lr"]}
            self.metrics.add("step", record)
            self.tracker.log(record, step=self.step)
            bar.update()
            bar.set_postfix(loss=f"{total_loss / max(seen, 1):.3f}", acc=f"{correct / max(seen, 1):.3f}",
                            clips_s=f"{seen * self.dist.world_size / (time.perf_counter() - start):.0f}")
        bar.close()
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        return {"train/loss": total_loss / max(seen, 1), "train/acc": correct / max(seen, 1),
                "train/clips_per_s": seen * self.dist.world_size / seconds, "epoch_seconds": seconds}

    def validate(self) -> dict:
        result = self.objective.evaluate(self.model, self.eval_loaders["val"], self.device, self.labels)
        return {"val/loss": result["loss"], "val/acc": result["accuracy"]}

    def run(self) -> dict:
        if self.epoch == 0 and self.dist.is_main:
            # A resumable state exists from the start, so an early Ctrl-C loses nothing.
            self.save("last.pt")
        try:
            while self.epoch < self.cfg.trainer.epochs and not self.should_stop():
                self.run_epoch()
        except BaseException as exc:
            self.tracker.abort()
            if isinstance(exc, KeyboardInterrupt):
                self.log_how_to_resume()
            raise
        return self.finish()

    def log_how_to_resume(self) -> None:
        log.warning(
            "interrupted: %s holds the state after epoch %d. Resume with:\n  speechrnn train %s "
            "hydra.run.dir=%s trainer.resume=true",
            self.ckpt_dir / "last.pt", self.epoch, " ".join(self.overrides()), self.run_dir,
        )

    def run_epoch(self) -> None:
        record = self.train_epoch()
        record.update(self.validate() if self.dist.is_main else {})
        self.epoch += 1
        record.update(epoch=self.epoch, last_step=self.step, lr=self.optimizer.param_groups[0]["lr"])
        if self.dist.is_main:
            # A small validation set ties often on accuracy: the lower loss breaks the tie.
            improved = (record["val/acc"], -record["val/loss"]) > (self.best_val_acc, -self.best_val_loss)
            if improved:
                self.best_val_acc, self.best_val_loss = record["val/acc"], record["val/loss"]
                self.best_epoch, self.epochs_since_best = self.epoch, 0
            else:
                self.epochs_since_best += 1
            self.metrics.add("epoch", record)
            self.tracker.log(record, step=self.step)
            log.info("epoch %d: train/loss %.4f train/acc %.4f val/loss %.4f val/acc %.4f (%.0f clips/s)",
                     self.epoch, record["train/loss"], record["train/acc"], record["val/loss"],
                     record["val/acc"], record["train/clips_per_s"])
            if improved:
                self.save("best.pt")
            self.save("last.pt")
            if self.epoch_callback is not None:
                self.epoch_callback(self.epoch, record)
        self.epochs_since_best = self.dist.broadcast(self.epochs_since_best)

    def should_stop(self) -> bool:
        patience = self.cfg.trainer.early_stopping_patience
        if patience and self.epochs_since_best >= patience:
            log.info("early stopping: val/acc has not improved for %d epochs", patience)
            return True
        return False

    def overrides(self) -> list[str]:
        try:
            overrides = HydraConfig.get().overrides.task
            return [o for o in overrides if not o.startswith("trainer.resume=")]
        except ValueError:
            return []

    def finish(self) -> dict:
        summary = {}
        if self.dist.is_main:
            summary = self.test_and_report()
        self.dist.barrier()
        return self.dist.broadcast(summary)

    def test_and_report(self) -> dict:
        best = checkpoint.load(self.ckpt_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        test = self.objective.evaluate(self.model, self.eval_loaders["test"], self.device, self.labels)
        epochs = self.metrics.epochs
        summary = {
            "test_accuracy": test["accuracy"],
            "val_accuracy": self.best_val_acc,
            "test_loss": test["loss"],
            "best_epoch": self.best_epoch,
            "epochs": self.epoch,
            "labels": self.labels,
            "num_parameters": self.num_parameters,
            "train_seconds": round(self.train_seconds, 2),
            "train_clips_per_s": round(float(np.mean([e["train/clips_per_s"] for e in epochs])), 1),
            "clips": {split: len(clips) for split, clips in self.splits.items()},
            "device": str(self.device),
            "per_class": test["per_class"],
            "overrides": self.overrides(),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        images = {
            "test/confusion_matrix": reports.plot_confusion(
                test["confusion"], self.labels, self.run_dir / "confusion_matrix.png",
                f"test accuracy {test['accuracy']:.2%}"),
            "curves": reports.plot_curves(epochs, self.metrics.steps, self.run_dir / "curves.png"),
        }
        self.tracker.log({"test/acc": test["accuracy"], "test/loss": test["loss"]}, step=self.step)
        if self.cfg.export.enabled:
            summary.update(export_after_training(self.run_dir, self.cfg.export))
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.tracker.finish(summary, images, test["confusion"])
        log.info("test/acc %.4f (best val/acc %.4f at epoch %d); run dir %s",
                 test["accuracy"], self.best_val_acc, self.best_epoch, self.run_dir)
        return summary


def fit(cfg: DictConfig, run_dir: str | os.PathLike, epoch_callback: Optional[EpochCallback] = None) -> dict:
    """Train one run into run_dir and return its summary (see summary.json).

    Every setting is checked before data is read; the run dir is locked for the run; a run
    already there is resumed (trainer.resume) with its own settings, replaced
    (trainer.overwrite) or left alone with a UsageError."""
    validate(cfg)
    cfg = OmegaConf.to_object(cfg)  # the typed Config: every section below is a checked dataclass
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    export_submitit_environment()
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun's rank 0 holds the lock
    try:
        with lock_run_dir(run_dir) if main_process else contextlib.nullcontext():
            return Trainer(cfg, run_dir, epoch_callback).run()
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise SpeechRNNError(f"{exc.filename or run_dir}: {exc.strerror}; the last complete checkpoint in "
                             f"{run_dir / 'checkpoints'} is kept: free some space, then resume with "
                             "trainer.resume=true") from None
    finally:
        # A gloo group left alive at exit can abort the process ("terminate called without an
        # active exception") when the other rank has already gone.
        if dist.is_initialized():
            dist.destroy_process_group()
