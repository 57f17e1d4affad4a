"""`speechrnn detect MODEL LONG_AUDIO`: keyword spotting in long recordings.

The recording is read a block at a time (``runtime.read_blocks``), so memory does not grow
with its length. It becomes keyword posteriors over time in one of two ways, chosen by the
model file:

- a plain export (the default, any encoder): the clip model on windows of its clip length
  every ``hop`` seconds. Each window is the kind of input the model was trained on, and each
  posterior is about one window's audio.
- a ``--streaming`` export: the streaming model's per-frame outputs (``FramePooling``), every
  10 ms. A model trained for streaming (``stream.enabled``: long sequences, the max-pooling
  loss; its metadata says so in ``stream_training``) runs one state through the whole
  recording, never reset: the audio's cost once, in constant memory. A model trained on 1 s
  clips never saw a recurrent state that had run for minutes,
  and on one never-reset stream it drifts. So its state restarts every ``restart`` seconds, on
  segments that overlap by one clip length: every frame's state has heard between one clip
  and one clip plus ``restart`` seconds, at (clip + restart) / restart times the cost of the
  audio. The closer to one clip, the closer to what the model trained on (and the better its
  recall when tried on tests/test_detect.py's recording); the longer, the cheaper. Windows
  cost more (one clip every ``hop``) and did a little better there, with events that start
  closer to the word, so they are the default; the stream is the cheaper, lower-latency
  choice. Both are measured by benchmarks/bench_inference.py (benchmarks/results/
  inference.json; README.md, "Keyword spotting in long recordings").

Then, per time step: a moving average of the posteriors over ``smooth`` seconds; a step is
active when its best keyword (``_silence_`` and ``_unknown_`` are never keywords) reaches
``threshold``; a run of one keyword lasts while it stays at ``threshold * release`` or above
(hysteresis when ``release`` < 1) and no other keyword beats it above ``threshold``; runs of
one keyword at most ``merge`` seconds apart are one event. An event spans the audio that the
posteriors of all its steps are about (their intersection), so events never overlap; each is
``{"label", "start", "end", "score"}`` in seconds, ``score`` the highest smoothed posterior
of its keyword in it. For a model trained for streaming, the moving average is shorter
(``STREAM_SMOOTH``: it names a keyword in a few frames), a frame's posterior is taken as about
the ``delay_seconds`` before it (it is trained to name a keyword by then after its end), and
an event is given out as soon as its run is over (``EventTracker(eager=True)``): a later event
starts where it ends, instead of it ending where a later one starts, which would hold every
event back by one clip length.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .errors import AudioError, SpeechRNNError, UsageError
from .labels import NOT_KEYWORDS
from .predict import plural
from .runtime import (ModelOutputError, Recognizer, StreamingRecognizer, check_scores, open_model,
                      read_blocks)

FORMATS = ("table", "json", "csv")
COLUMNS = ("label", "start", "end", "score")


@dataclass(frozen=True)
class Event:
    label: str
    start: float
    end: float
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": round(self.score, 4)}


@dataclass(frozen=True)
class Posteriors:
    """Keyword posteriors at consecutive time steps: ``probs`` [steps, labels]; step i covers
    the audio from ``starts[i]`` to ``ends[i]`` seconds."""

    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray


# --------------------------------------------------------------------------- posteriors

def sliding_windows(blocks: Iterable[np.ndarray], size: int, hop: int
                    ) -> Iterator[tuple[int, np.ndarray]]:
    """Windows of ``size`` samples starting every ``hop`` samples of a stream given in blocks:
    ``(first window's start, [windows, size] view)`` as soon as they are complete. Every
    window that starts before the end is given; those running past it are zero-padded. Holds
    one window and one block, whatever the stream's length."""
    pending = np.zeros(0, np.float32)  # the stream from the next window's start on
    start, seen, skip = 0, 0, 0  # skip: samples before the next start not yet read (hop > size)
    for block in blocks:
        seen += len(block)
        cut = min(skip, len(block))
        pending, skip = np.concatenate([pending, block[cut:]]), skip - cut
        count = (len(pending) - size) // hop + 1 if len(pending) >= size else 0
        if count:
            yield start, np.lib.stride_tricks.sliding_window_view(pending, size)[::hop][:count]
            skip = max(hop * count - len(pending), 0)
            pending = pending[hop * count:]
            start += hop * count
    count = -(-(seen - start) // hop) if seen > start else 0  # windows starting before the end
    if count:
        padded = np.pad(pending, (0, size + hop * count - len(pending)))
        yield start, np.lib.stride_tricks.sliding_window_view(padded, size)[::hop][:count]


def window_posteriors(recognizer: Recognizer, blocks: Iterable[np.ndarray], hop: int,
                      batch_size: int = 64) -> Iterator[Posteriors]:
    """The clip model on windows of its clip length every ``hop`` samples (plain models):
    each posterior is about one window."""
    clip, rate = recognizer.clip_samples, recognizer.sample_rate
    for first, windows in sliding_windows(blocks, clip, hop):
        for i in range(0, len(windows), batch_size):  # a batch of windows copied at a time
            batch = windows[i : i + batch_size]
            starts = first + hop * (i + np.arange(len(batch)))
            yield Posteriors(starts / rate, (starts + clip) / rate,
                             recognizer.probabilities(batch, batch_size))


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class FramePooling:
    """Per-frame logits of a stream -> what the clip model says of the ``frames`` frames up to
    each one. ``last`` pooling: the frame's own logits (the head of the last frame is the
    model's output). ``mean`` pooling: the mean of the logits of those frames (the head is
    linear, so that is the head of the mean of their outputs); at a stream's start, of the
    frames there are."""

    def __init__(self, pooling: str, frames: int):
        self.pooling, self.frames = pooling, frames
        self.history: Optional[np.ndarray] = None

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """[..., new frames, labels] -> posteriors of the same shape; remembers the frames."""
        if self.pooling == "last":
            return softmax(logits)
        past = self.history if self.history is not None else logits[..., :0, :]
        rows = np.concatenate([past, logits], axis=-2)
        sums = np.cumsum(rows, axis=-2, dtype=np.float64)
        sums = np.concatenate([np.zeros_like(sums[..., :1, :]), sums], axis=-2)
        end = past.shape[-2] + 1 + np.arange(logits.shape[-2])
        begin = np.maximum(end - self.frames, 0)
        self.history = rows[..., max(rows.shape[-2] - self.frames + 1, 0):, :]
        means = (sums[..., end, :] - sums[..., begin, :]) / (end - begin)[:, None]
        return softmax(means.astype(np.float32))


def stream_posteriors(streamer: StreamingRecognizer, blocks: Iterable[np.ndarray], span: int,
                      pooling: str, restart: Optional[int] = None) -> Iterator[Posteriors]:
    """Per-frame posteriors of a streaming export: at each frame, what the
    model says of the ``span`` samples up to it (``FramePooling``).

    With ``restart`` samples, the stream is cut into segments that each start from a fresh
    state and overlap the previous one by ``span`` samples; a segment's frames count from the
    end of that overlap on (the first segment's from its start), so every frame has seen
    between ``span`` and ``span + restart`` samples. The segments run as a batch of streams."""
    rate, hop = streamer.sample_rate, streamer.hop
    span_frames = -(-span // hop)

    def posteriors(frames: np.ndarray, probs: np.ndarray) -> Posteriors:
        times = frames * hop
        return Posteriors(np.maximum(times - span, 0) / rate, times / rate, probs)

    if restart is None:
        streamer.reset()
        pool = FramePooling(pooling, span_frames)
        for step in _pushed(streamer, blocks):
            frames = step.first_frame + np.arange(len(step.logits))
            yield posteriors(frames, pool(step.logits))
        return

    restart_frames = -(-restart // hop)
    segment_frames = span_frames + restart_frames
    # A fresh stream of this many samples gives the segment's frames without a flush().
    size = max((segment_frames + streamer.delay_frames) * hop, streamer.min_first_chunk)
    seen = 0

    def counted():
        nonlocal seen
        for block in blocks:
            seen += len(block)
            yield block

    for first, segments in sliding_windows(counted(), size, restart_frames * hop):
        streamer.reset(len(segments))
        logits = streamer.push(np.ascontiguousarray(segments)).logits[:, :segment_frames]
        probs = FramePooling(pooling, span_frames)(logits)
        for k, rows in enumerate(probs):
            origin = first // hop + k * restart_frames  # the segment's first frame
            skip = span_frames if origin else 0
            frames = origin + np.arange(skip, segment_frames)
            inside = frames * hop < seen  # not in the padding past the end
            yield posteriors(frames[inside], rows[skip:][inside])
    streamer.reset()


def _pushed(streamer: StreamingRecognizer, blocks: Iterable[np.ndarray]):
    """Every block through one stream, then its end (unless too short to give a frame)."""
    for block in blocks:
        yield streamer.push(block)
    if streamer.samples_seen > max(streamer.start_padding, streamer.end_padding):
        yield streamer.flush()


# --------------------------------------------------------------------------- events

class EventTracker:
    """Posteriors in, keyword events out, step by step (memory does not grow with the stream).

    A moving average over ``smooth`` steps (centred); a step is active when its best keyword
    reaches ``threshold``, and a run of one keyword lasts while it stays at ``release`` or
    above and no other keyword beats it above ``threshold``; runs of one keyword whose steps
    are at most ``merge`` seconds apart are one event. An event spans the audio that all of
    its steps' posteriors are about (their intersection; their union when that is empty), cut
    short where the next event begins, so events never overlap. With ``eager``, an event is
    given out once no later run can merge with it, and the next one begins where it ends."""

    def __init__(self, labels: list[str], threshold: float, release: float, smooth: int,
                 merge: float, eager: bool = False):
        self.labels = labels
        self.keywords = np.array([label not in NOT_KEYWORDS for label in labels])
        if not self.keywords.any():
            raise SpeechRNNError(f"the model's labels {labels} hold no keyword to detect")
        self.threshold, self.release, self.merge, self.eager = threshold, release, merge, eager
        self.before, self.after = (smooth - 1) // 2, smooth - 1 - (smooth - 1) // 2
        self.raw = np.zeros((0, len(labels)), np.float32)  # steps not yet smoothed + context
        self.spans = np.zeros((0, 2))
        self.context = 0  # leading rows of ``raw`` kept only as smoothing context
        self.run: Optional[dict] = None  # the open run of one keyword
        self.pending: Optional[dict] = None  # the last finished run, until it cannot merge
        self.last_end = 0.0  # where the last event given out ends

    def push(self, posteriors: Posteriors, final: bool = False) -> list[Event]:
        self.raw = np.concatenate([self.raw, posteriors.probs])
        self.spans = np.concatenate([self.spans, np.stack([posteriors.starts, posteriors.ends], 1)])
        ready = len(self.raw) - self.context - (0 if final else self.after)
        if ready <= 0:
            return []
        sums = np.cumsum(np.concatenate([np.zeros((1, len(self.labels))), self.raw]), axis=0)
        centre = self.context + np.arange(ready)
        lo = np.maximum(centre - self.before, 0)
        hi = np.minimum(centre + self.after + 1, len(self.raw))
        smoothed = (sums[hi] - sums[lo]) / (hi - lo)[:, None]
        events = self._track(smoothed, self.spans[centre])
        drop = max(self.context + ready - self.before, 0)
        self.raw, self.spans = self.raw[drop:], self.spans[drop:]
        self.context = self.context + ready - drop
        return events

    def close(self) -> list[Event]:
        """Events still open at the end of the stream."""
        events = self.push(Posteriors(np.zeros(0), np.zeros(0), self.raw[:0]), final=True)
        if self.run is not None:
            events += self._finish_run()
        if self.pending is not None:
            events += self._emit(self._event(self.pending))
            self.pending = None
        return events

    def _track(self, smoothed: np.ndarray, spans: np.ndarray) -> list[Event]:
        events = []
        scores = np.where(self.keywords, smoothed, -1.0)
        best = scores.argmax(axis=1)
        for row, label, span in zip(scores, best, spans):
            events += self._settle(span)
            run = self.run
            if run is not None:
                mine = row[run["label"]]
                if mine >= self.release and not (row[label] >= self.threshold and row[label] > mine):
                    run["last"], run["score"] = span, max(run["score"], float(mine))
                    continue
                events += self._finish_run()
            if row[label] >= self.threshold:
                self.run = {"label": int(label), "first": span, "last": span,
                            "score": float(row[label])}
        return events

    def _settle(self, span: np.ndarray) -> list[Event]:
        """Give out the pending event as soon as nothing to come can change it: no later run
        can merge with it or begin before its end (and so cut it short). A live stream then
        sees each event about when it is over, not when the next one is."""
        if self.pending is None:
            return []
        # The earliest step a run to come can begin at: the open run's first, or this one.
        next_first = self.run["first"] if self.run is not None else span
        event = self._event(self.pending)
        if next_first.mean() - self.pending["last"].mean() <= self.merge + 1e-9 or \
                (next_first[0] < event.end and not self.eager):
            return []
        self.pending = None
        return self._emit(event)

    def _finish_run(self) -> list[Event]:
        """Close the open run: merged into the pending one, or that one is final."""
        run, self.run = self.run, None
        pending = self.pending
        if pending is not None and pending["label"] == run["label"] and \
                run["first"].mean() - pending["last"].mean() <= self.merge + 1e-9:
            pending["last"], pending["score"] = run["last"], max(pending["score"], run["score"])
            return []
        self.pending = run
        if pending is None:
            return []
        event = self._event(pending)
        end = min(event.end, self._event(run).start)
        return self._emit(Event(event.label, event.start, end, event.score))

    def _event(self, run: dict) -> Event:
        start, end = run["last"][0], run["first"][1]  # every step's span holds [start, end]
        if start >= end:
            start, end = run["first"][0], run["last"][1]
        return Event(self.labels[run["label"]], max(float(start), self.last_end), float(end),
                     run["score"])

    def _emit(self, event: Event) -> list[Event]:
        if event.end <= event.start:  # squeezed out by its neighbours
            return []
        self.last_end = event.end
        return [event]


# --------------------------------------------------------------------------- command line

CLIP_RESTART = 0.25  # seconds between fresh states for a streaming model trained on clips
# A model trained for streaming names a keyword in a run of a few frames (the max-pooling loss
# scores the best run of stream.peak_seconds), which a clip-long moving average would flatten:
# chosen on a validation recording (benchmarks/bench_stream.py --validation,
# benchmarks/results/stream_validation.json: the highest F1 of fsdd/kws_stream seed 0 at the
# default threshold, among 0.01-0.1 s).
STREAM_SMOOTH = 0.1
CLIP_SMOOTH = 0.3


@dataclass(frozen=True)
class Settings:
    # threshold: chosen on benchmarks/bench_inference.py's hour of FSDD test digits (precision
    # and recall at each threshold it tries: benchmarks/results/inference.json, README's
    # detection table). A model trained for a few epochs is less sure of itself and wants less.
    # Measured on tests/test_detect.py's recordings: smoothing over 3 windows and no
    # hysteresis or merging placed the most events within 0.5 s of the spoken digit (both
    # lengthen runs, and a longer run's intersection starts later).
    threshold: float = 0.7
    release: float = 1.0  # a run lasts while its keyword stays at threshold * release
    # Seconds of moving average; None: the model's own (STREAM_SMOOTH for a streaming export of
    # a model trained for streaming, CLIP_SMOOTH otherwise).
    smooth: Optional[float] = None
    merge: float = 0.0  # seconds between runs of one keyword that make one event
    hop: float = 0.1  # plain models: seconds between windows
    # Streaming models: seconds between fresh states, 0 for never; None: the model's own (never
    # for a model trained for streaming, CLIP_RESTART for one trained on clips).
    restart: Optional[float] = None
    block: float = 10.0  # seconds of audio decoded at a time


def detect(model: str | os.PathLike, path: str | os.PathLike, settings: Settings = Settings(),
           threads: Optional[int] = None) -> Iterator[Event]:
    """Keyword events in a long recording, in order, as they are found. A model that scores
    the recording NaN is an AudioError of the recording, as a file that cannot be read is."""
    try:
        yield from detect_stream(model, lambda rate: read_blocks(path, rate, settings.block),
                                 settings, threads)
    except ModelOutputError as exc:
        raise AudioError(path, str(exc)) from None


def detect_stream(model: str | os.PathLike, blocks_at: Callable[[int], Iterable[np.ndarray]],
                  settings: Settings = Settings(), threads: Optional[int] = None
                  ) -> Iterator[Event]:
    """Keyword events in audio that ``blocks_at(sample_rate)`` gives as mono float32 blocks at
    the model's rate (a file's, a microphone's), in order, each as soon as it is over."""
    _, info = open_model(model, threads)
    rate = info.sample_rate
    seen = 0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal seen
        for block in blocks_at(rate):
            seen += len(block)
            yield block

    if info.streaming:
        pooling = info.model.get("pooling", "last")
        if pooling not in ("last", "mean"):
            raise SpeechRNNError(f"{model}: a streaming model with {pooling} pooling has no "
                                 "per-frame posterior; detect with its plain export instead")
        runner = StreamingRecognizer(model, threads)
        step = runner.hop / rate
        seconds = settings.restart
        if seconds is None:
            seconds = 0.0 if info.stream_training else CLIP_RESTART
        restart = round(seconds * rate) or None
        if seconds and (restart is None or restart < runner.hop):
            raise UsageError(f"restart={settings.restart} s (--restart) is shorter than one frame of "
                             f"the model ({runner.hop / rate:g} s); use at least that, or 0 for one "
                             "state over the whole recording")
        # A stream-trained model names a keyword by delay_seconds after its end: its frame's
        # posterior is taken as about that much audio before it (where the event starts).
        span = (round(info.stream_training["delay_seconds"] * rate) if info.stream_training
                else info.clip_samples)
        source = stream_posteriors(runner, blocks(), span, pooling, restart)
    else:
        hop = max(1, round(settings.hop * rate))
        step = hop / rate
        source = window_posteriors(Recognizer(model, threads), blocks(), hop)
    streamed = info.streaming and bool(info.stream_training)
    smooth = settings.smooth if settings.smooth is not None else (STREAM_SMOOTH if streamed else CLIP_SMOOTH)
    tracker = EventTracker(info.labels, settings.threshold, settings.threshold * settings.release,
                           max(1, round(smooth / step)), settings.merge, eager=streamed)
    for posteriors in source:
        check_scores(info, posteriors.probs)
        yield from tracker.push(posteriors)
    # Only the last events can reach past the end (the last windows are padded there).
    for event in tracker.close():
        yield Event(event.label, event.start, min(event.end, seen / rate), event.score)


def render(rows: list[dict], fmt: str, with_path: bool = False) -> str:
    """Event rows (Event.to_dict(), with a "path" key when ``with_path``) as text."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, ["path", *COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    path_width = max([len("path"), *(len(row["path"]) for row in rows if with_path)])
    width = max([len("label"), *(len(row["label"]) for row in rows)])

    def line(path: str, label: str, start: str, end: str, score: str) -> str:
        where = f"{path:<{path_width}}  " if with_path else ""
        return f"{where}{label:<{width}}  {start:>9}  {end:>9}  {score}"

    return "\n".join([line("path", *COLUMNS)] + [
        line(row.get("path", ""), row["label"], f"{row['start']:.3f}", f"{row['end']:.3f}",
             f"{row['score']:.3f}") for row in rows])


def finite(text: str) -> float:
    """An argparse type: a float that is a number (nan passes every range check, inf overflows)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that set `Settings`, for detect and listen; read back with `settings_from`."""
    defaults = Settings()
    parser.add_argument("--threshold", type=finite, default=defaults.threshold,
                        help="smoothed posterior a keyword must reach (default %(default)s)")
    parser.add_argument("--smooth", type=finite, default=defaults.smooth,
                        help="seconds of moving average over the posteriors (default: "
                        f"{STREAM_SMOOTH} for a streaming model trained for streaming, "
                        f"{CLIP_SMOOTH} otherwise)")
    parser.add_argument("--release", type=finite, default=defaults.release,
                        help="a keyword's run lasts while it stays at threshold * RELEASE; "
                        "below 1 is hysteresis (default %(default)s)")
    parser.add_argument("--merge", type=finite, default=defaults.merge,
                        help="runs of one keyword this many seconds apart or less are one event "
                        "(default %(default)s)")
    parser.add_argument("--hop", type=finite, default=defaults.hop,
                        help="plain models: seconds between windows (default %(default)s)")
    parser.add_argument("--restart", type=finite, default=defaults.restart,
                        help="streaming models: seconds between fresh recurrent states, on "
                        "segments overlapping by one clip length; 0: one state for the whole "
                        f"recording (default: 0 for a model trained for streaming, {CLIP_RESTART} "
                        "for one trained on clips)")


def settings_from(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """The `Settings` of `add_settings_arguments`' options; a value out of range is a usage error."""
    if not 0.0 < args.threshold <= 1.0:
        parser.error("--threshold must be in (0, 1]")
    if not 0.0 < args.release <= 1.0:
        parser.error("--release must be in (0, 1]")
    if args.hop <= 0 or (args.smooth or 0) < 0 or args.merge < 0 or (args.restart or 0) < 0:
        parser.error("--hop must be positive; --smooth, --merge and --restart not negative")
    return Settings(threshold=args.threshold, release=args.release, smooth=args.smooth,
                    merge=args.merge, hop=args.hop, restart=args.restart)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn detect",
        description="Spot keywords in a long recording with a model from `speechrnn export`: "
        "a plain export runs on sliding windows of its clip length, a --streaming export frame "
        "by frame. Prints one event per keyword: label, start and end (seconds), score.")
    parser.add_argument("model", help="the exported .onnx file (plain or --streaming)")
    parser.add_argument("audio", nargs="+", help="the recordings (WAV, FLAC or OGG; any rate and "
                        "length); with more than one, each event names its file, as csv always does")
    add_settings_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime threads (default: onnxruntime's choice)")
    args = parser.parse_args(argv)
    settings = settings_from(parser, args)
    cores = os.cpu_count() or 1
    if args.threads is not None and not 1 <= args.threads <= cores:
        parser.error(f"--threads must be 1 to {cores} (the cores of this machine)")
    with_path = len(args.audio) > 1 or args.format == "csv"
    rows, failed = [], 0
    for path in args.audio:
        start = time.perf_counter()
        try:
            events = [event.to_dict() for event in detect(args.model, path, settings, args.threads)]
        except AudioError as exc:
            if len(args.audio) == 1:
                raise
            print(f"speechrnn detect: error: {exc}", file=sys.stderr)  # the others still run
            failed += 1
            continue
        rows += [{"path": path, **event} for event in events] if with_path else events
        print(f"speechrnn detect: {plural(len(events), 'event')} in {path} "
              f"({time.perf_counter() - start:.2f} s)", file=sys.stderr)
    print(render(rows, args.format, with_path))
    return 1 if failed else 0
