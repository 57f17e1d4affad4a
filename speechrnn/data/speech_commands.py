"""Google Speech Commands v1/v2, and anything in its layout (the synthetic set is written so).

Layout: ``<root>/<word>/<speaker>_nohash_<n>.wav``, ``<root>/_background_noise_/*.wav``, and
optionally ``validation_list.txt`` / ``testing_list.txt`` in the root.

- Splits: the shipped lists when both are present (files in neither are training files; list
  entries whose files are missing are skipped and counted); otherwise TensorFlow's ``which_set``
  rule (SHA1 of the name without ``_nohash_...``, so a speaker stays in one split) with
  ``data.val_fraction`` / ``data.test_fraction``.
- Classes: ``data.words`` in that order, then ``_silence_`` and ``_unknown_`` when enabled (the
  12-class task). With no words every word folder is a class (the 35/30-word task), sorted, with
  ``_silence_`` when enabled; there is no ``_unknown_`` then, as no word is left over.
- ``_unknown_`` and ``_silence_`` make ``data.unknown_fraction`` / ``data.silence_fraction`` of
  each finished split (TensorFlow's prepare_data_index counts its percentages against the
  command-word clips instead: 10% there is 8.3% of the split); ``data.train_unknown_fraction``,
  when set, is ``_unknown_``'s share of the training split instead. Unknown clips are the other
  words' clips in stable_hash order; silence clips are clip-long cuts of the noise files at
  hash-chosen offsets (from anywhere in a file: the noise augmentation uses all of them too).
  The noise files are ``_background_noise_``'s, or ``data.noise_dir``'s when that is set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
import urllib.request
from pathlib import Path

from .. import audio
from ..config import DataConfig
from ..errors import SpeechRNNError
from .augment import NoiseBank
from .base import SILENCE, UNKNOWN, Clip, Splits, noise_folder, report_missing, stable_hash

log = logging.getLogger(__name__)

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
NOISE_DIR = "_background_noise_"
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
SPLITS = ("train", "val", "test")


def which_set(name: str, val_percentage: float, test_percentage: float) -> str:
    """TensorFlow's speech_commands ``which_set``: "train", "val" or "test" for a file name."""
    hash_name = re.sub(r"_nohash_.*$", "", os.path.basename(name))
    hashed = int(hashlib.sha1(hash_name.encode("utf-8")).hexdigest(), 16)
    percentage = (hashed % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < val_percentage:
        return "val"
    if percentage < val_percentage + test_percentage:
        return "test"
    return "train"


def speaker_of(name: str) -> str:
    """The speaker id of a ``<speaker>_nohash_<n>`` file name, or "" for other names."""
    base = os.path.basename(name)
    return base.split("_nohash_")[0] if "_nohash_" in base else ""


def has_words(root: Path) -> bool:
    return root.is_dir() and bool(_word_folders(root))


def download(root: Path) -> None:
    """Fetch the v2 tarball (about 2.3 GB) from its official URL and extract it into ``root``.
    Only called when ``data.download=true``."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / Path(URL).name
    partial = archive.with_name(archive.name + ".part")
    log.warning("downloading %s into %s (about 2.3 GB)", URL, root)
    try:
        urllib.request.urlretrieve(URL, partial)
        partial.replace(archive)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise SpeechRNNError(f"could not download or extract {URL} into {root} ({exc}); fetch "
                             f"and extract it by hand, then set data.root={root}") from None
    archive.unlink()


def _word_folders(root: Path) -> dict[str, list[str]]:
    """Word -> sorted file names of every word folder (not ``_background_noise_``)."""
    folders = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith(("_", ".")):
            continue
        names = sorted(f.name for f in os.scandir(entry.path)
                       if f.name.lower().endswith(audio.AUDIO_EXTENSIONS)
                       and not f.name.startswith(".") and f.is_file())
        if names:
            folders[entry.name] = names
    return folders


def _assign(root: Path, files: set[str], cfg: DataConfig) -> dict[str, str]:
    """Relative path ("word/name.wav") -> split."""
    lists = {split: root / name for split, name in LISTS.items()}
    if all(path.is_file() for path in lists.values()):
        split_of = {}
        for split, path in lists.items():
            entries = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            missing = [e for e in entries if e not in files and not (root / e).exists()]
            report_missing(missing, str(path), cfg.on_bad_file)
            split_of.update((e, split) for e in entries if e in files)
        return {rel: split_of.get(rel, "train") for rel in files}
    val_pct, test_pct = 100.0 * cfg.val_fraction, 100.0 * cfg.test_fraction
    return {rel: which_set(rel, val_pct, test_pct) for rel in files}


def read_splits(root: Path, cfg: DataConfig) -> Splits:
    folders = _word_folders(root)
    if not folders:
        raise SpeechRNNError(f"{root}: no word folders with audio files; point data.root at an "
                             "extracted Speech Commands folder (or set data.download=true)")
    words = list(cfg.words)
    absent = [w for w in words if w not in folders]
    if absent:
        raise SpeechRNNError(f"{root}: data.words lists {absent} but there is no such word "
                             f"folder; choose from {sorted(folders)}")
    use_unknown = bool(words) and cfg.unknown
    commands = words or sorted(folders)
    labels = commands + [SILENCE] * bool(cfg.silence) + [UNKNOWN] * use_unknown

    silence_share = cfg.silence_fraction if cfg.silence else 0.0
    unknown_shares = {split: cfg.unknown_fraction if use_unknown else 0.0 for split in SPLITS}
    if use_unknown and cfg.train_unknown_fraction is not None:
        unknown_shares["train"] = cfg.train_unknown_fraction
    for split, setting in (("test", "unknown_fraction"), ("train", "train_unknown_fraction")):
        if not 0.0 <= silence_share + unknown_shares[split] < 1.0:
            raise SpeechRNNError(f"data.silence_fraction + data.{setting} = "
                                 f"{silence_share + unknown_shares[split]}; it must be below 1")
    noise_dir = noise_folder(cfg) or root / NOISE_DIR
    bank = NoiseBank(noise_dir, "data.noise_dir", "data.silence=false") if cfg.silence else None

    files = {f"{word}/{name}" for word, names in folders.items() for name in names}
    split_of = _assign(root, files, cfg)
    command_set = set(commands)
    splits = Splits(labels=labels, noise_dir=str(noise_dir) if noise_dir.is_dir() else None)
    for split in SPLITS:
        mine = sorted(rel for rel, s in split_of.items() if s == split)
        clips = [Clip(str(root / rel), rel.split("/")[0], speaker=speaker_of(rel))
                 for rel in mine if rel.split("/")[0] in command_set]
        total = len(clips) / (1.0 - silence_share - unknown_shares[split])
        if use_unknown:
            others = sorted((rel for rel in mine if rel.split("/")[0] not in command_set),
                            key=lambda rel: (stable_hash(rel), rel))
            wanted = round(total * unknown_shares[split])
            if len(others) < wanted:
                log.warning("%s split: %d _unknown_ clips wanted, only %d non-command clips",
                            split, wanted, len(others))
            clips += [Clip(str(root / rel), UNKNOWN, speaker=speaker_of(rel))
                      for rel in others[:wanted]]
        if bank is not None:
            clips += bank.silence_clips(round(total * silence_share), cfg.clip_seconds, split)
        setattr(splits, split, clips)
    return splits
