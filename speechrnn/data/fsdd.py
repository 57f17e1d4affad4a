"""Free Spoken Digit Dataset: ``data.root`` is its ``recordings/`` folder of
``{digit}_{speaker}_{index}.wav`` files (8 kHz; ClipDataset resamples them).

- Official split (``data.test_speakers`` empty): index 0-4 is test (300 files), index 5-49 is
  train + val (2,700). Val is carved from those by file name: ``hash_split(name,
  data.val_fraction, 0)``, about 10% by default, the same files on every machine.
- Speaker held out (``data.test_speakers=[george]``): every file of those speakers is test and
  none is elsewhere; the other speakers' files are split into train/val as above.

Labels are the digits "0".."9", and ``_silence_`` with ``data.silence=true``: clip-long cuts of
the noise recordings in ``data.noise_dir`` (FSDD has none of its own; Speech Commands'
``_background_noise_`` will do), ``data.silence_fraction`` of each split. That folder is then
noise augmentation's default too. ``data.unknown`` does not apply.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..config import DataConfig
from ..errors import SpeechRNNError
from .augment import NoiseBank
from .base import SILENCE, Clip, Splits, check_test_speakers, hash_split, noise_folder

log = logging.getLogger(__name__)

NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>.+)_(?P<index>\d+)\.wav$", re.IGNORECASE)
TEST_INDICES = range(5)


def read_splits(root: Path, cfg: DataConfig) -> Splits:
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
    check_test_speakers(root, held_out, {m["speaker"] for _, m in parsed})

    noise_dir = noise_folder(cfg)
    splits = Splits(labels=sorted({m["digit"] for _, m in parsed}),
                    noise_dir=str(noise_dir) if noise_dir else None)
    for path, m in parsed:
        if held_out:
            test = m["speaker"] in held_out
        else:
            test = int(m["index"]) in TEST_INDICES
        split = "test" if test else hash_split(path.name, cfg.val_fraction, 0.0)
        getattr(splits, split).append(Clip(str(path), m["digit"], speaker=m["speaker"]))
    if cfg.silence:
        _add_silence(splits, cfg)
    return splits


def _add_silence(splits: Splits, cfg: DataConfig) -> None:
    if splits.noise_dir is None:
        raise SpeechRNNError("data.silence=true needs data.noise_dir: a folder of noise "
                             "recordings (Speech Commands' _background_noise_ will do) to cut "
                             "_silence_ clips from; set it, or set data.silence=false")
    share = cfg.silence_fraction
    if not 0.0 < share < 1.0:
        raise SpeechRNNError(f"data.silence_fraction={share}; it must be between 0 and 1")
    bank = NoiseBank(splits.noise_dir, "data.noise_dir", "data.silence=false")
    splits.labels.append(SILENCE)
    for split, clips in splits.items():
        clips += bank.silence_clips(round(len(clips) * share / (1.0 - share)), cfg.clip_seconds,
                                    split)
