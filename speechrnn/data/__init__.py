"""Data: ``build_splits`` (which clips, which labels) -> ``build_datasets`` (lazy waveforms,
augmentation on train only) -> ``make_loader`` (batches).

Every source yields (waveform, label index) at ``data.sample_rate``, ``data.clip_seconds`` long;
splits depend only on the files and the config, augmentation only on the seed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from ..config import AugmentConfig, DataConfig, StreamConfig
from ..errors import SpeechRNNError
from . import folder, fsdd, speech_commands
from .augment import NoiseBank, build_transform
from .base import (SILENCE, UNKNOWN, Clip, ClipDataset, Splits, WaveTransform, absolute,
                   cache_dir, stable_hash)
from .cache import DecodeCache
from .probe import wrap
from .stream import StreamDataset
from .synthetic import DIGIT_WORDS, ensure_rendered

__all__ = ["SILENCE", "UNKNOWN", "Clip", "ClipDataset", "Splits", "WaveTransform", "stable_hash",
           "build_splits", "build_datasets", "build_stream_datasets", "decode_cache", "make_loader",
           "data_root"]

log = logging.getLogger(__name__)

READERS = {"speech_commands": speech_commands, "fsdd": fsdd, "folder": folder}
HINTS = {
    "speech_commands": "extract Speech Commands v1 or v2 there, or set data.download=true to "
                       "fetch v2 (2.3 GB) into it",
    "fsdd": "point it at the recordings/ folder of the Free Spoken Digit Dataset",
    "folder": "point it at a folder with one sub-folder of clips per label (or at the folder "
              "that the paths in your data.*_manifest files are relative to)",
}


def data_root(data: DataConfig) -> Path:
    """``data.root`` as an absolute, normalised path; an error naming the fix when unset."""
    try:
        root = data.root
    except MissingMandatoryValue:
        root = None
    if not root:
        source = data.source.value
        raise SpeechRNNError(f"data.root is not set for data.source={source}; add "
                             f"data.root=<folder> to the command line ({HINTS[source]})")
    return absolute(root)


def build_splits(data: DataConfig) -> Splits:
    """The train/val/test clips and the label list ``data`` describes; with
    ``data.test_source`` set, the test clips come from that corpus instead."""
    splits = _read_splits(data)
    if data.test_source is not None:
        splits.test = _cross_corpus_test(data, splits.labels)
    if data.mix_synthetic:
        splits.train += _synthetic_training_clips(data, splits.labels)
    return splits


def _synthetic_training_clips(cfg: DataConfig, labels: list[str]) -> list[Clip]:
    """Every clip of a synthetic render of ``data.mix_synthetic``'s words (all its splits: its
    speakers are none of the corpus's), labelled with the corpus's labels."""
    mapping = dict(cfg.mix_synthetic)
    strangers = sorted(set(mapping) - set(labels))
    if strangers:
        raise SpeechRNNError(f"data.mix_synthetic names labels {strangers} that the data does "
                             f"not have; use labels from {labels}")
    words = list(dict.fromkeys(mapping.values()))
    render_cfg = OmegaConf.merge(cfg, {"source": "synthetic", "root": None, "words": words,
                                       "unknown": False})
    root = Path(ensure_rendered(render_cfg))
    clips = [Clip(str(path), label, speaker=speech_commands.speaker_of(path.name))
             for label, word in mapping.items() for path in sorted((root / word).glob("*.wav"))]
    log.info("data.mix_synthetic: %d synthetic training clips of %d labels from %s", len(clips),
             len(mapping), root)
    return clips


def _label_aliases() -> dict[str, str]:
    """Labels that name the same class in different corpora: "0" <-> "zero" ... "9" <-> "nine"."""
    digits = {str(i): word for i, word in enumerate(DIGIT_WORDS)}
    return {**digits, **{word: digit for digit, word in digits.items()}}


def _cross_corpus_test(cfg: DataConfig, labels: list[str]) -> list[Clip]:
    """The test split of ``data.test_source`` read from ``data.test_root`` (by that source's own
    split rules), relabelled to the training labels."""
    test_cfg = OmegaConf.merge(cfg, {"source": cfg.test_source, "root": cfg.test_root,
                                     "test_source": None, "test_root": None})
    source = test_cfg.source.value
    if not test_cfg.root:
        raise SpeechRNNError(f"data.test_root is not set for data.test_source={source}; add "
                             f"data.test_root=<folder> to the command line ({HINTS[source]})")
    clips = _read_splits(test_cfg).test
    aliases = _label_aliases()
    mapping = {}
    for label in sorted({clip.label for clip in clips}):
        mapping[label] = label if label in labels else aliases.get(label)
        if mapping[label] not in labels:
            raise SpeechRNNError(
                f"{test_cfg.root}: test label {label!r} of data.test_source={source} matches "
                f"none of the training labels {labels}; train on that word too, or test on a "
                "corpus with the same words")
    log.info("test split: %d clips of %s at %s", len(clips), source, test_cfg.root)
    return [dataclasses.replace(clip, label=mapping[clip.label]) for clip in clips]


def _read_splits(cfg: DataConfig) -> Splits:
    source = cfg.source.value
    if source == "synthetic":
        root = Path(ensure_rendered(cfg))
        splits = speech_commands.read_splits(root, cfg)
    else:
        root = data_root(cfg)
        if source == "speech_commands" and cfg.download and not speech_commands.has_words(root):
            speech_commands.download(root)
        if not root.is_dir():
            raise SpeechRNNError(f"{root}: data.root does not exist; {HINTS[source]}")
        if not any(root.iterdir()):
            raise SpeechRNNError(f"{root}: data.root is empty; {HINTS[source]}")
        splits = READERS[source].read_splits(root, cfg)
    log.info("%s at %s: %d labels, train/val/test = %d/%d/%d clips", source, root,
             len(splits.labels), len(splits.train), len(splits.val), len(splits.test))
    return splits


def build_datasets(data: DataConfig, augment: AugmentConfig, splits: Splits,
                   seed: int = 0) -> dict[str, ClipDataset]:
    """One lazy dataset per split; only train is augmented (by ``augment``, drawn from ``seed``)."""
    rate = data.sample_rate
    num_samples = round(rate * data.clip_seconds)
    noise_dir = augment.noise_dir or splits.noise_dir
    cache = decode_cache(data)
    transform = build_transform(augment, rate, noise_dir, cache)
    datasets = {
        split: ClipDataset(clips, splits.labels, rate, num_samples,
                           transform if split == "train" else None, seed, cache)
        for split, clips in splits.items()
    }
    if data.probe_delay_seconds is not None:  # memory probe: word, then noise
        datasets = wrap(data, noise_dir, datasets)
    return datasets


def decode_cache(data: DataConfig) -> Optional[DecodeCache]:
    """The cache of decoded clips at ``data.sample_rate``, or None with ``data.cache=false``."""
    return DecodeCache(cache_dir() / "decoded", data.sample_rate) if data.cache else None


def build_stream_datasets(data: DataConfig, augment: AugmentConfig, stream: StreamConfig,
                          splits: Splits, hop_length: int, seed: int = 0) -> dict[str, StreamDataset]:
    """``build_datasets``' clips as long sequences (speechrnn/data/stream.py), one dataset per
    split; only train's clips are augmented, every split gets the bed of noise."""
    noise_dir = augment.noise_dir or splits.noise_dir
    noise = NoiseBank(noise_dir) if noise_dir is not None and augment.noise_prob > 0 else None
    return {split: StreamDataset(clips, stream, hop_length, noise, augment.noise_prob, seed)
            for split, clips in build_datasets(data, augment, splits, seed).items()}


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                sampler: Optional[Sampler] = None) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (a given sampler, e.g. DDP's
    DistributedSampler, decides the order instead); workers persist across epochs."""
    if num_workers > 0:
        # Workers hand batches over as named shared-memory files, not as file descriptors: those
        # go through a server thread in each worker that prints an EOFError traceback when the
        # main process stops mid-transfer (Ctrl-C during training).
        torch.multiprocessing.set_sharing_strategy("file_system")
    if sampler is None and shuffle:
        # Its own generator: the loader's is also drawn from when an iterator starts, which
        # happens every epoch without workers but once with persistent ones.
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
    )
