"""Check every clip's audio before training, so a bad file stops nothing mid-epoch.

``check_clips`` decodes each file the splits use once (several clips may cut one long file, as
silence clips cut the noise recordings), in a thread pool since decoding releases the GIL; a file
whose clips are all in the decode cache is not decoded again.
With ``data.on_bad_file=skip`` the clips of bad files are dropped and the files are listed in a
warning; with ``error`` the run stops before training, listing them all.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

from .. import audio
from ..config import OnBadFile
from ..errors import AudioError, SpeechRNNError
from .base import Clip, Splits
from .cache import DecodeCache

log = logging.getLogger(__name__)

# (frames, problem) of a file whose clips are all cached: each decoded to at least one sample.
CACHED = (sys.maxsize, None)


def _check_file(path: str) -> tuple[int, Optional[str]]:
    """(its length in samples, None) for a usable file; (0, the problem) for one that is not.
    A file cut short is usable, with a warning in the log."""
    try:
        samples, _ = audio.read(path)
    except AudioError as exc:
        return 0, str(exc)
    warning = audio.cut_short(path)
    if warning:
        log.warning("%s: %s", _printable(path), warning)
    return len(samples), None


def _printable(text: str) -> str:
    # A name that is not valid UTF-8 carries surrogate escapes, which a UTF-8 log file rejects.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_clips(splits: Splits, on_bad_file: OnBadFile,
                cache: Optional[DecodeCache] = None) -> Splits:
    """The splits without the clips whose audio cannot be used. ``on_bad_file``: "skip" (log a
    warning listing the files) or "error" (raise SpeechRNNError listing them). A file whose
    clips are all in ``cache`` decoded before, as it is now: it is not decoded again."""
    paths = sorted({clip.path for _, clips in splits.items() for clip in clips
                    if cache is None or not cache.has(clip.path, clip.start, clip.frames)})
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        checked = dict(zip(paths, pool.map(_check_file, paths)))

    problems: dict[str, None] = {}  # ordered and without repeats: one line per bad file
    kept: dict[str, list[Clip]] = {}
    for split, clips in splits.items():
        kept[split] = []
        for clip in clips:
            frames, problem = checked.get(clip.path, CACHED)
            if problem is None and clip.start >= frames:
                problem = (f"{clip.path}: a clip starts at sample {clip.start}, past the end of "
                           f"the file ({frames} samples); fix the clip list or the file")
            if problem is None:
                kept[split].append(clip)
            else:
                problems[_printable(problem)] = None
    dropped = sum(map(len, (clips for _, clips in splits.items()))) - sum(map(len, kept.values()))
    if not dropped:
        return splits
    listing = "\n  ".join(problems)
    if on_bad_file == "error":
        raise SpeechRNNError(f"data: {len(problems)} audio files cannot be used:\n  {listing}\n"
                             "fix or remove them, or set data.on_bad_file=skip to train without them")
    log.warning("data: skipped %d clips of %d audio files that cannot be used "
                "(data.on_bad_file=skip):\n  %s", dropped, len(problems), listing)
    lost = sorted({clip.label for clip in splits.train} - {clip.label for clip in kept["train"]})
    if lost:  # a class the model would have to output without ever seeing it
        files = sorted({clip.path for clip in splits.train if clip.label == lost[0]})
        folder = os.path.commonpath([os.path.dirname(path) for path in files])
        raise SpeechRNNError(f"{_printable(folder)}: none of the {len(files)} training files of "
                             f"label {lost[0]!r} can be used (listed above); fix them, or remove "
                             "the label")
    return replace(splits, **kept)
