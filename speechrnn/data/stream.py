"""Long training sequences for a model that streams without restarts (``stream.enabled``).

Each example is ``stream.seconds`` of audio: ``stream.words`` clips of a split (each as the
clip dataset gives it, augmented on train, then cut to its speech), at random offsets with
random gaps of digital silence between them, then, with probability ``augment.noise_prob``,
a bed of noise under the whole sequence. Its targets are per frame of the model (frame ``t``
is centred on sample ``t * hop_length``):

- ``frames`` [T]: the class every frame must give (``_silence_`` outside words, ``_unknown_``
  on an unknown word and until ``stream.delay_seconds`` after it), ``NOTHING`` (no keyword) on
  a keyword before its window, or ``IGNORE`` in a keyword's window;
- ``windows`` [words, 3]: ``(first frame, last frame, label)`` of each keyword occurrence, from
  its speech's start (or ``stream.window_seconds`` before its end) to ``delay_seconds`` after
  its end (cut short where the next clip begins), which the max-pooling loss
  (speechrnn/objectives.py) scores; rows of ``-1`` pad.

Randomness comes from (seed, epoch, index), as in ``ClipDataset``: the same sequences whatever
the number of DataLoader workers.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import StreamConfig
from ..labels import SILENCE, UNKNOWN
from .augment import NoiseBank, speech_span
from .base import ClipDataset

IGNORE = -100  # torch's cross_entropy ignore_index
NOTHING = -101  # a frame that may give any class that is no keyword
MARGIN_SECONDS = 0.1  # kept around a clip's speech when it is cut


class StreamDataset(Dataset):
    def __init__(self, clips: ClipDataset, stream: StreamConfig, hop_length: int,
                 noise: Optional[NoiseBank], noise_prob: float, seed: int = 0):
        self.clips, self.stream, self.hop = clips, stream, hop_length
        self.noise, self.noise_prob, self.seed = noise, noise_prob, seed
        self.rate = clips.sample_rate
        self.samples = round(stream.seconds * self.rate)
        self.silence, self.unknown = clips.index[SILENCE], clips.index.get(UNKNOWN)

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)

    def __len__(self) -> int:
        return max(1, len(self.clips) // self.stream.words)

    def _pieces(self, picks: np.ndarray) -> list[tuple[np.ndarray, int, Optional[int]]]:
        """Each picked clip as (audio, label index, end of its speech in the audio or None),
        cut to its speech and a margin; no more than fit in a sequence."""
        margin = round(MARGIN_SECONDS * self.rate)
        pieces, total = [], 0
        for j in picks:
            wave, label = self.clips[int(j)]
            wave = wave.numpy()
            span = None if label == self.silence else speech_span(wave, self.rate)
            if span is not None:
                start = max(span[0] - margin, 0)
                wave, span = wave[start : span[1] + margin], span[1] - start
            elif label != self.silence:  # as loud throughout: all of it is the word
                span = len(wave)
            if total + len(wave) > self.samples:
                break
            pieces.append((wave, label, span))
            total += len(wave)
        return pieces

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch = self.clips.epoch
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.clips))
        rng = np.random.default_rng((self.seed, epoch, i, 1))
        words = self.stream.words
        pieces = self._pieces(np.resize(order, (i + 1) * words)[i * words:])
        free = self.samples - sum(len(wave) for wave, _, _ in pieces)
        gaps = np.floor(rng.dirichlet(np.ones(len(pieces) + 1)) * free).astype(int)

        wave = np.zeros(self.samples, np.float32)
        frame_count = self.samples // self.hop + 1
        frames = np.full(frame_count, self.silence, np.int64)
        windows = np.full((words, 3), -1, np.int64)
        delay = round(self.stream.delay_seconds * self.rate)
        position = 0
        for k, (piece, label, speech_end) in enumerate(pieces):
            position += gaps[k]
            wave[position : position + len(piece)] = piece
            following = position + len(piece) + gaps[k + 1]  # where the next clip begins
            if label != self.silence:
                first = -(-position // self.hop)
                last = min(position + speech_end + delay, following, self.samples - 1) // self.hop
                if label == self.unknown:
                    frames[first : last + 1] = label
                else:
                    opens = first
                    if self.stream.window_seconds is not None:
                        lead = round(self.stream.window_seconds * self.rate)
                        opens = max(first, -(-(position + speech_end - lead) // self.hop))
                    frames[first:opens] = NOTHING
                    frames[opens : last + 1] = IGNORE
                    windows[k] = (opens, last, label)
            position += len(piece)
        if self.noise is not None and rng.random() < self.noise_prob:
            bed = self.noise.segment(self.samples, self.rate, rng)
            rms = max(float(np.sqrt(np.mean(bed.astype(np.float64) ** 2))), 1e-9)
            level = 10 ** (rng.uniform(self.stream.noise_dbfs_min, self.stream.noise_dbfs_max) / 20)
            wave += (bed * (level / rms)).astype(np.float32)
        return torch.from_numpy(wave), torch.from_numpy(frames), torch.from_numpy(windows)
