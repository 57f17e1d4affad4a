"""Free Spoken Digit Dataset: ``data.root`` is its ``recordings/`` folder of
``{digit}_{speaker}_{index}.wav`` files (8 kHz; ClipDataset resamples them).

- Official split (``data.test_speakers`` empty): index 0-4 is test (300 files), index 5-49 is
  train + val (2,700). Val is carved from those by file name: ``hash_split(name,
  data.val_fraction, 0)``, about 10% by default, the same files on every machine.
- Speaker held out (``data.test_speakers=[george]``): every file of those speakers is test and
  none is elsewhere; the other speakers' files are split into train/val as above.

Labels are the digits "0".."9"; ``data.silence`` / ``data.unknown`` do not apply.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import SpeechRNNError
from .base import Clip, Splits, hash_split

log = logging.getLogger(__name__)

NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>.+)_(?P<index>\d+)\.wav$", re.IGNORECASE)
TEST_INDICES = range(5)


def read_splits(root: Path, cfg) -> Splits:
    parsed = []
    skipped = 0
    for path in sorted(root.iterdir()):
        match = NAME.match(path.name)
        if match and path.is_file():
            parsed.append((path, match))
        else:
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d entries not named {digit}_{speaker}_{index}.wav",
                    root, skipped)
    if not parsed:
        raise SpeechRNNError(f"{root}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav); "
                             "point data.root at the dataset's recordings/ folder")

    held_out = set(cfg.test_speakers)
    speakers = {m["speaker"] for _, m in parsed}
    if held_out - speakers:
        raise SpeechRNNError(f"{root}: data.test_speakers names {sorted(held_out - speakers)}, "
                             f"who has no recordings; the speakers are {sorted(speakers)}")

    splits = Splits(labels=sorted({m["digit"] for _, m in parsed}))
    for path, m in parsed:
        if held_out:
            test = m["speaker"] in held_out
        else:
            test = int(m["index"]) in TEST_INDICES
        split = "test" if test else hash_split(path.name, cfg.val_fraction, 0.0)
        getattr(splits, split).append(Clip(str(path), m["digit"], speaker=m["speaker"]))
    return splits
