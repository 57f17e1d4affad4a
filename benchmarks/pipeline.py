"""Pipeline efficiency of one training setup, measured in this process (bench_training runs it in a
fresh one per corpus, so peak memory is that setup's own).

The real data path is the Trainer's: DataLoader workers reading clips (through the decode
cache), augmenting and collating, then the optimizer step. The reference is the same Trainer
stepping on batches already in memory (taken from that loader, so the same clips and
augmentation). The two take turns in rounds of ``batches`` steps, on the same model, optimizer
and torch threads. The first ``2 x workers`` batches of a real round are stepped but not timed:
the workers prefetch them during the in-memory round before (DataLoader's prefetch_factor 2).

    efficiency = median clips/s of the real rounds / median clips/s of the in-memory rounds

Before the rounds: one whole epoch with a cold decode cache (every clip decoded and stored) and
one with a warm cache, and the Trainer's setup (which checks every clip) cold and warm. After
them, where a clip's time goes, one step at a time in this process (``profile``, ms a clip):
decoding its file, reading it from the cache, each augmentation step, collating, the model step.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from speechrnn import audio

PROFILE_CLIPS = 512  # clips that profile() follows through each stage


def _mb(kilobytes: int) -> float:
    return round(kilobytes / 1024, 1)  # ru_maxrss is in kB on Linux


def _folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def _timed_steps(trainer, batches, skip: int) -> float:
    """clips/s of the steps on ``batches`` after the first ``skip``."""
    seen, start = 0, None
    for i, (waves, labels) in enumerate(batches):
        if i == skip:
            start = time.perf_counter()
        trainer.train_step((waves, labels))
        if i >= skip:
            seen += len(labels)
    return seen / (time.perf_counter() - start)


class Draws:
    """The train loader's batches, epoch after epoch, as the Trainer draws them."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.batches = self._epoch()

    def _epoch(self):
        self.trainer.datasets["train"].set_epoch(self.trainer.epoch)
        self.trainer.sampler.set_epoch(self.trainer.epoch)
        return iter(self.trainer.train_loader)

    def take(self, count: int):
        for _ in range(count):
            batch = next(self.batches, None)
            if batch is None:
                self.trainer.epoch += 1
                self.batches = self._epoch()
                batch = next(self.batches)
            yield batch


def profile(trainer, clips: int) -> dict:
    """Milliseconds a clip of each stage of the data path and of the model step, measured one
    after the other on ``clips`` training clips spread over the split (the model step on
    batches of them)."""
    dataset = trainer.datasets["train"]
    indices = range(0, len(dataset), max(1, len(dataset) // clips))
    times: dict[str, float] = {}

    def timed(name: str, work):
        start = time.perf_counter()
        result = work()
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
        return result

    waves = []
    for i in indices:
        clip = dataset.clips[i]
        timed("decode the file", lambda: dataset.decode(clip))
        dataset.load(clip)  # as in a worker after its first epoch: the file's path resolved
        samples = audio.fix_length(timed("read the cache", lambda: dataset.load(clip)),
                                   dataset.num_samples)
        rng = np.random.default_rng((dataset.seed, dataset.epoch, i))
        for step in getattr(dataset.transform, "steps", []):
            samples = audio.fix_length(timed(f"augment: {type(step).__name__}",
                                             lambda: step(samples, rng)), dataset.num_samples)
        waves.append((torch.from_numpy(samples.astype(np.float32)), 0))
    size = trainer.cfg.data.batch_size
    batches = [timed("collate", lambda: default_collate(waves[b : b + size]))
               for b in range(0, len(waves), size)]
    for batch in batches:
        timed("model step", lambda: trainer.train_step(batch))
    return {name: round(seconds / len(waves) * 1e3, 3) for name, seconds in times.items()}


def measure(overrides: list[str], rounds: int, batches: int, threads: int | None) -> dict:
    """The efficiency, epoch times and memory of the training ``overrides`` describe."""
    from speechrnn.config import compose_config
    from speechrnn.training import Trainer

    if threads:
        torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    os.environ["SPEECHRNN_CACHE"] = str(work / "cache")  # a cold decode cache
    # Epochs enough that the learning-rate schedule outlasts the rounds (its length changes
    # nothing about speed).
    cfg = OmegaConf.to_object(compose_config(
        [*overrides, "trainer.epochs=1000", "trainer.progress=false", "export.enabled=false",
         "logger=none"]))

    def setup(name: str) -> tuple[Trainer, float]:
        start = time.perf_counter()
        return Trainer(cfg, work / name), time.perf_counter() - start

    # The setup checks every clip (decoding the files that are not cached); the first epoch
    # decodes every clip into the cache, the second reads it back.
    trainer, cold_setup = setup("cold")
    epochs = []
    for _ in range(2):
        epochs.append(trainer.train_epoch())
        trainer.epoch += 1
    _, warm_setup = setup("warm")

    skip = 2 * cfg.data.num_workers
    draws = Draws(trainer)
    in_memory = list(draws.take(batches))
    real, memory = [], []
    for _ in range(rounds):
        real.append(_timed_steps(trainer, draws.take(batches), skip))  # as the workers deliver
        memory.append(_timed_steps(trainer, in_memory, skip))
    clip_ms = profile(trainer, PROFILE_CLIPS)
    train_clips = len(trainer.datasets["train"])
    result = {
        "train_clips": train_clips,
        "labels": len(trainer.labels),
        "batch_size": cfg.data.batch_size,
        "workers": cfg.data.num_workers,
        "torch_threads": torch.get_num_threads(),
        "setup_seconds": {"cold_cache": round(cold_setup, 2), "warm_cache": round(warm_setup, 2)},
        "epoch_seconds": {"cold_cache": round(epochs[0]["epoch_seconds"], 1),
                          "warm_cache": round(epochs[1]["epoch_seconds"], 1)},
        "epoch_clips_per_s": {"cold_cache": round(epochs[0]["train/clips_per_s"], 1),
                              "warm_cache": round(epochs[1]["train/clips_per_s"], 1)},
        "rounds": rounds,
        "batches_per_round": batches,
        "real_clips_per_s": [round(x, 1) for x in real],
        "memory_clips_per_s": [round(x, 1) for x in memory],
        "efficiency": round(statistics.median(real) / statistics.median(memory), 3),
        "decode_cache_mb": _folder_mb(work / "cache" / "decoded"),
        "ms_a_clip": clip_ms,
    }
    del trainer, draws
    gc.collect()  # stops the DataLoader workers, so their peak memory is counted below
    shutil.rmtree(work)
    result["peak_rss_mb"] = {"main": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
                             "largest_worker": _mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)}
    return result
