"""Your own keywords: ``data.root`` with one sub-folder per label (audio found recursively), or
CSV manifests.

Manifests (``data.train_manifest``, ``data.val_manifest``, ``data.test_manifest``): a header
row, a path column (``path`` or ``file``), a label column (``label`` or ``class``) and
optionally ``speaker``. Paths are relative to ``data.root`` and may not leave it, neither by
name (``..``, an absolute path) nor through a symbolic link: a listed file whose real path
(all links resolved) lies outside the real ``data.root`` is refused, naming the line. Listed
files that are missing are skipped and counted (``data.on_bad_file=error`` makes that an
error). A row that repeats an earlier one is dropped with a warning; a file listed under two
labels, or in two splits' manifests, is refused, and so is a label with no training clip. A
split without a manifest is carved from the train manifest by the rule below. Manifests are
UTF-8, with or without a byte order mark (Excel's "CSV UTF-8").

Splitting by name: a file's split is ``hash_split(key, data.val_fraction, data.test_fraction)``
where the key is the file's speaker when its name carries one, else its path under the root,
so one speaker's files always land in the same split. A name carries a speaker when it is
``<speaker>_nohash_<n>`` (Speech Commands) or ``<label>_<speaker>_<n>`` with ``<label>`` its
own label and ``<n>`` digits (FSDD). ``data.test_speakers`` puts those speakers' files in
test and nowhere else (the rest is split into train/val only). Hidden files (``.name``) are
skipped.

Labels are the sorted label names; ``data.silence`` / ``data.unknown`` do not apply (a
``_silence_`` folder is a label like any other).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

from .. import audio
from ..config import DataConfig
from ..errors import SpeechRNNError
from . import speech_commands
from .base import Clip, Splits, check_test_speakers, hash_split, report_missing

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PATH_COLUMNS = ("path", "file")
LABEL_COLUMNS = ("label", "class")
SKIPPED_FOLDERS = (speech_commands.NOISE_DIR,)


def speaker_of(path: str | Path, label: str) -> str:
    """The speaker id a file name carries (see the module docstring), or ""."""
    stem = Path(path).stem
    if "_nohash_" in stem:
        return speech_commands.speaker_of(stem)
    match = re.fullmatch(rf"{re.escape(label)}_(.+)_\d+", stem, re.IGNORECASE)
    return match[1] if match else ""


def _clip(path: Path, label: str, speaker: str = "") -> Clip:
    return Clip(str(path), label, speaker=speaker or speaker_of(path, label))


def _split_key(clip: Clip, root: Path) -> str:
    return clip.speaker or Path(os.path.relpath(clip.path, root)).as_posix()


def _scan(root: Path) -> list[Clip]:
    clips = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith(".") or folder.name in SKIPPED_FOLDERS:
            continue
        clips += [_clip(p, folder.name) for p in sorted(folder.rglob("*"))
                  if p.suffix.lower() in audio.AUDIO_EXTENSIONS and not p.name.startswith(".")
                  and p.is_file()]
    if not clips:
        raise SpeechRNNError(f"{root}: no audio files ({', '.join(audio.AUDIO_EXTENSIONS)}) in "
                             "label sub-folders; put each label's clips in <root>/<label>/, or "
                             "give CSV manifests (data.train_manifest=...)")
    return clips


def _column(fields: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((fields[n] for n in names if n in fields), None)


def _read_csv(manifest: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the (line number, row) pairs of a CSV file."""
    try:
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the first column name.
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            return reader.fieldnames or [], [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise SpeechRNNError(f"{manifest}: cannot open the manifest ({exc.strerror}); fix the "
                             "data.*_manifest setting") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SpeechRNNError(f"{manifest}: not readable as UTF-8 CSV ({exc}); save it as UTF-8 "
                             "text with a header row (e.g. path,label)") from None


def read_manifest(manifest: str | Path, root: Path, on_bad_file: str = "skip") -> list[Clip]:
    manifest = Path(manifest)
    header, rows = _read_csv(manifest)
    clips, missing = [], []
    base = os.path.normpath(root.absolute())
    real_base = os.path.realpath(base)
    fields = {name.strip().lower(): name for name in header}
    path_col, label_col = _column(fields, PATH_COLUMNS), _column(fields, LABEL_COLUMNS)
    if path_col is None or label_col is None:
        raise SpeechRNNError(
            f"{manifest}: header {header} lacks a path column "
            f"({' or '.join(PATH_COLUMNS)}) or a label column ({' or '.join(LABEL_COLUMNS)}); "
            "the first row must name the columns, e.g. path,label")
    speaker_col = fields.get("speaker")
    seen: dict[str, tuple[int, str]] = {}  # real path -> (line, label) of its first row
    repeated = []
    for line, row in rows:
        where = f"{manifest}, line {line}"
        rel, label = (row[path_col] or "").strip(), (row[label_col] or "").strip()
        if not rel or not label:
            raise SpeechRNNError(f"{where}: empty path or label; fill it in or delete the line")
        target = os.path.normpath(os.path.join(base, rel))
        if os.path.commonpath([base, target]) != base:
            raise SpeechRNNError(f"{where}: {rel!r} lies outside data.root ({root}); manifest "
                                 "paths must be relative to data.root and stay inside it")
        real = os.path.realpath(target)
        if os.path.commonpath([real_base, real]) != real_base:
            raise SpeechRNNError(f"{where}: {rel!r} is a symbolic link (or lies under one) to {real}, "
                                 f"outside data.root ({root}); manifest paths must stay inside "
                                 "data.root: copy the file in, or point data.root at a folder "
                                 "that holds it")
        first_line, first_label = seen.setdefault(real, (line, label))
        if first_line != line:
            if first_label != label:
                raise SpeechRNNError(f"{where}: {rel!r} is labelled {label!r} here and "
                                     f"{first_label!r} on line {first_line}; a file has one "
                                     "label: fix or delete one of the lines")
            repeated.append(line)
            continue
        if not os.path.isfile(target):
            missing.append(f"line {line}: {rel}")
            continue
        speaker = (row[speaker_col] or "").strip() if speaker_col else ""
        clips.append(_clip(Path(target), label, speaker))
    if repeated:
        log.warning("%s: dropped %d rows that repeat an earlier row (first: line %d)", manifest,
                    len(repeated), repeated[0])
    report_missing(missing, str(manifest), on_bad_file)
    return clips


def _distribute(clips: list[Clip], splits: Splits, root: Path, held_out: set[str],
                val_fraction: float, test_fraction: float) -> None:
    for clip in clips:
        if held_out:
            split = "test" if clip.speaker in held_out else hash_split(
                _split_key(clip, root), val_fraction, 0.0)
        else:
            split = hash_split(_split_key(clip, root), val_fraction, test_fraction)
        getattr(splits, split).append(clip)


def _refuse_overlap(read: dict[str, list[Clip]], manifests: dict[str, str]) -> None:
    """Refuse a file listed in two splits' manifests: a model evaluated on clips it trained on
    (or validated on its test clips) reports an accuracy it does not have."""
    owner: dict[str, str] = {}
    for split, clips in read.items():
        for clip in clips:
            other = owner.setdefault(os.path.realpath(clip.path), split)
            if other != split:
                raise SpeechRNNError(
                    f"{clip.path} is listed in data.{other}_manifest ({manifests[other]}) and in "
                    f"data.{split}_manifest ({manifests[split]}); the {split} split must not hold "
                    f"{other} clips: list each file in one manifest")


def read_splits(root: Path, cfg: DataConfig) -> Splits:
    manifests = {split: getattr(cfg, f"{split}_manifest") for split in SPLITS}
    held_out = set(cfg.test_speakers)
    if any(manifests.values()):
        if not manifests["train"]:
            raise SpeechRNNError("data.val_manifest/data.test_manifest are set but "
                                 "data.train_manifest is not; give the training manifest too")
        read = {split: read_manifest(m, root, cfg.on_bad_file)
                for split, m in manifests.items() if m}
        _refuse_overlap(read, manifests)
        pool = read.pop("train")
        splits = Splits(labels=[], **read)
        val_fraction = 0.0 if manifests["val"] else cfg.val_fraction
        test_fraction = 0.0 if manifests["test"] else cfg.test_fraction
    else:
        pool = _scan(root)
        splits = Splits(labels=[])
        val_fraction, test_fraction = cfg.val_fraction, cfg.test_fraction
    check_test_speakers(root, held_out, {c.speaker for c in pool if c.speaker})
    _distribute(pool, splits, root, held_out, val_fraction, test_fraction)
    trained = {c.label for c in splits.train}
    untrained = [(split, label) for split, clips in splits.items()
                 for label in sorted({c.label for c in clips} - trained)]
    if untrained:
        split, label = untrained[0]
        where = manifests[split] or manifests["train"] or root / label
        raise SpeechRNNError(f"{where}: label {label!r} has {split} clips but no training clips, "
                             "so the model could never predict it; add training clips of it"
                             + (f" to {manifests['train']}" if manifests["train"] else "")
                             + ", or remove it")
    splits.labels = sorted({c.label for _, clips in splits.items() for c in clips})
    for split, clips in splits.items():
        if not clips:
            log.warning("%s: the %s split is empty (too few files or speakers for "
                        "data.val_fraction/test_fraction?)", root, split)
    return splits
