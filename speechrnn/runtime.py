"""Inference with an exported model: numpy, onnxruntime and soundfile, no torch.

``Recognizer("model.onnx")`` classifies clips; ``StreamingRecognizer("model.streaming.onnx")``
runs a stream chunk by chunk. Both read everything they need (labels, sample rate, clip length,
the streaming state) from the file's metadata, whose keys export/README.md documents; a file
without them is refused with the key that is wrong.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np
import onnxruntime as ort
import soundfile as sf
import soxr

from . import audio
from .errors import SpeechRNNError, UsageError

# The metadata format this reader understands (export.py writes it).
FORMAT = 1
FORMAT_KEY = "speechrnn_format"
# Keys a model may lack and still run: the model card (speechrnn/card.py) is documentation,
# and files exported before it existed have none (present, it must be a JSON object); files
# exported before streaming training existed have no stream_training and were trained on clips.
OPTIONAL_KEYS = frozenset({"model_card", "stream_training"})
# The sample rates a model may have (DataConfig.sample_rate's bounds) and the longest clip it
# may take (DataConfig.clip_seconds'): beyond them a file is corrupt or hostile, and preparing
# its input could take more memory than the machine has.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000
MAX_CLIP_SECONDS = 60

AudioInput = Union[str, os.PathLike, np.ndarray]


@dataclass(frozen=True)
class ModelInfo:
    """What an exported file's metadata says about it."""

    path: Path
    labels: list[str]
    sample_rate: int
    clip_samples: int
    features: dict[str, Any]
    model: dict[str, Any]
    version: str
    test_accuracy: Optional[float]
    quantize: str
    streaming: bool
    stream: Optional[dict[str, Any]] = None
    card: Optional[dict[str, Any]] = None
    # How the model was trained for a stream that never restarts (the run's stream settings);
    # None for a model trained on clips (and for files written before the key existed).
    stream_training: Optional[dict[str, Any]] = None

    @classmethod
    def from_metadata(cls, path: Path, meta: dict[str, str]) -> "ModelInfo":
        if FORMAT_KEY not in meta:
            raise SpeechRNNError(f"{path}: not a speechrnn model (no {FORMAT_KEY!r} in its "
                                 "metadata); export one with `speechrnn export RUN_DIR`")
        reader = _MetadataReader(path, meta)
        fmt = reader.integer(FORMAT_KEY, 1)
        if fmt > FORMAT:
            raise SpeechRNNError(f"{path}: written in speechrnn model format {fmt}, this version "
                                 f"reads format {FORMAT}; upgrade speechrnn")
        labels = reader.json("labels", list)
        if len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            reader.bad("labels", "must be a JSON list of at least 2 strings")
        for label in labels:  # printed as they are: an escape sequence would reach the terminal
            if not label or not label.isprintable():
                reader.bad("labels", f"holds {label!r}; a label must be non-empty printable text "
                                     "(no control characters or line breaks)")
        streaming = reader.json("streaming", bool)
        features = reader.json("features", dict)
        sample_rate = reader.integer("sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
        info = cls(
            path=path, labels=labels, sample_rate=sample_rate,
            clip_samples=reader.integer("clip_samples", reader.min_samples(features),
                                        MAX_CLIP_SECONDS * sample_rate),
            features=features, model=reader.json("model", dict),
            version=reader.text("speechrnn_version"),
            test_accuracy=reader.json("test_accuracy", (float, int, type(None))),
            quantize=reader.text("quantize"), streaming=streaming,
            stream=reader.json("stream", dict) if streaming else None,
            card=reader.json("model_card", dict) if "model_card" in meta else None,
            stream_training=(reader.json("stream_training", (dict, type(None)))
                             if "stream_training" in meta else None),
        )
        if streaming:
            for key in ("hop_length", "min_first_chunk", "delay_frames", "start_padding",
                        "end_padding", "states"):
                if key not in info.stream:
                    reader.bad("stream", f"lacks {key!r}")
        return info


class _MetadataReader:
    def __init__(self, path: Path, meta: dict[str, str]):
        self.path = path
        self.meta = meta

    def bad(self, key: str, problem: str):
        raise SpeechRNNError(f"{self.path}: metadata key {key!r} {problem}; re-export the model "
                             "with `speechrnn export`")

    def text(self, key: str) -> str:
        if key not in self.meta:
            self.bad(key, "is missing")
        return self.meta[key]

    def json(self, key: str, kind):
        raw = self.text(key)
        try:
            value = json.loads(raw)
        except ValueError:
            self.bad(key, f"is not valid JSON ({raw[:40]!r})")
        # bool is an int subclass: "true" must not pass for a number, nor 1 for a flag.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.bad(key, f"has the wrong type ({raw[:40]!r})")
        return value

    def integer(self, key: str, low: int, high: Optional[int] = None) -> int:
        value = self.json(key, int)
        if value < low or (high is not None and value > high):
            self.bad(key, f"is {value}, outside {low} to {high}" if high is not None else
                     f"must be at least {low}, not {value}")
        return value

    def min_samples(self, features: dict[str, Any]) -> int:
        """The shortest clip the model's MFCC frontend frames (features.MFCC.min_samples)."""
        n_fft, win_length = features.get("n_fft"), features.get("win_length")
        if not all(type(v) is int and v > 0 for v in (n_fft, win_length)):
            self.bad("features", "lacks the positive integers n_fft and win_length")
        return n_fft // 2 - (n_fft - win_length) // 2 + 1


def open_model(path: str | os.PathLike, threads: Optional[int] = None
               ) -> tuple[ort.InferenceSession, ModelInfo]:
    """An onnxruntime CPU session and the validated metadata of an exported model."""
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: model file not found; pass the .onnx file `speechrnn "
                             "export` wrote (model.onnx in the run dir)")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # Idle pool threads sleep instead of spinning: on a shared machine spinning threads take
    # the cores the decoding threads need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        cores = os.cpu_count() or 1
        if not 1 <= threads <= cores:  # thousands of onnxruntime threads take minutes to start
            raise UsageError(f"threads={threads}: use 1 to {cores}, the cores of this machine "
                             "(or leave it unset)")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable files
        raise SpeechRNNError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]}); "
                             "pass a .onnx file written by `speechrnn export`") from None
    info = ModelInfo.from_metadata(path, session.get_modelmeta().custom_metadata_map)
    inputs = [i.name for i in session.get_inputs()]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if not inputs or inputs[0] != "audio" or "probs" not in outputs:
        raise SpeechRNNError(f"{path}: the graph lacks the `audio` input or the `probs` output "
                             "of the speechrnn contract; re-export the model with `speechrnn export`")
    width = (outputs["probs"] or [None])[-1]  # None, or a name, where the graph leaves it open
    if isinstance(width, int):
        check_width(info, width)
    return session, info


def check_width(info: ModelInfo, width: int) -> None:
    """Refuse a model whose ``probs`` give ``width`` scores per clip for another number of labels."""
    if width != len(info.labels):
        raise SpeechRNNError(f"{info.path}: metadata key 'labels' lists {len(info.labels)} labels "
                             f"but the model scores {width}; re-export the model with "
                             "`speechrnn export`")


class ModelOutputError(SpeechRNNError):
    """A model gave NaN or infinite scores: the model, not the input, is broken."""


def check_scores(info: ModelInfo, scores: np.ndarray) -> None:
    """ModelOutputError naming the model unless ``scores`` are all finite."""
    if not np.isfinite(scores).all():
        raise ModelOutputError(f"{info.path}: the model's scores are NaN or infinite; the "
                               "model is broken (did its training diverge?): export an earlier "
                               "checkpoint or train it again")


def as_mono(samples: np.ndarray) -> np.ndarray:
    """A float32 mono signal from a 1-D array or a 2-D one with channels on its shorter axis
    ([frames, channels] as soundfile reads it, or [channels, frames] as torchaudio does).
    Signed integer PCM is scaled to [-1, 1)."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        raise SpeechRNNError(f"unsigned {samples.dtype} audio is ambiguous; pass float or "
                             "signed integer samples")
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(np.iinfo(samples.dtype).max + 1)
    if samples.ndim == 2 and samples.shape[0] < samples.shape[1]:
        samples = samples.T
    if samples.ndim not in (1, 2) or samples.size == 0:
        raise SpeechRNNError(f"audio arrays must be non-empty, 1-D (mono) or 2-D (with channels), "
                             f"got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise SpeechRNNError("the audio array contains NaN or infinite samples")
    return audio.mix_down(samples.astype(np.float32, copy=False))


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    top_k: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score,
                "top_k": [[label, score] for label, score in self.top_k]}


class Recognizer:
    """Classify clips with an exported (non-streaming) model.

    Inputs are resampled to the model's rate, mixed down to mono and padded or centre-cropped
    to the clip length it was trained on, exactly as training prepared its clips.
    """

    def __init__(self, model_path: str | os.PathLike, threads: Optional[int] = None):
        self.session, self.info = open_model(model_path, threads)
        if self.info.streaming:
            raise SpeechRNNError(f"{model_path}: a streaming model; classify clips with the "
                                 "plain export (without --streaming), or use StreamingRecognizer")
        self.labels = self.info.labels
        self.sample_rate = self.info.sample_rate
        self.clip_samples = self.info.clip_samples

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """A file as the model's input: [clip_samples] float32. Raises AudioError."""
        return audio.load(path, self.sample_rate, self.clip_samples)

    def prepare(self, item: AudioInput, sample_rate: Optional[int] = None) -> np.ndarray:
        """A path, or an array at ``sample_rate`` (default: the model's), as the model's input."""
        if not isinstance(item, np.ndarray):
            return self.load(item)
        if sample_rate is None:
            sample_rate = self.sample_rate
        elif (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating))
              or not audio.MIN_RATE <= sample_rate <= audio.MAX_RATE):
            raise UsageError(f"sample_rate={sample_rate!r}: the rate of the audio array must be "
                             f"{audio.MIN_RATE} to {audio.MAX_RATE} Hz (None: the model's rate, "
                             f"{self.sample_rate} Hz)")
        samples = audio.resample(as_mono(item), sample_rate, self.sample_rate)
        return audio.fix_length(samples, self.clip_samples)

    def probabilities(self, clips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Prepared clips [N, clip_samples] -> class probabilities [N, labels]."""
        clips = np.asarray(clips, dtype=np.float32)
        out = [self.session.run(["probs"], {"audio": clips[i : i + batch_size]})[0]
               for i in range(0, len(clips), batch_size)]
        for batch in out:
            check_width(self.info, batch.shape[-1])
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def decide(self, probs: np.ndarray, top_k: int = 3) -> Prediction:
        """One row of probabilities -> the best label, its score and the ``top_k`` best;
        ModelOutputError when the row is not finite."""
        check_scores(self.info, probs)
        order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
        best = [(self.labels[i], float(probs[i])) for i in order]
        return Prediction(best[0][0], best[0][1], best[:top_k])

    def predict(self, item: AudioInput, sample_rate: Optional[int] = None,
                top_k: int = 3) -> Prediction:
        return self.predict_batch([item], sample_rate, top_k)[0]

    def predict_batch(self, items: Iterable[AudioInput], sample_rate: Optional[int] = None,
                      top_k: int = 3, batch_size: int = 64) -> list[Prediction]:
        clips = [self.prepare(item, sample_rate) for item in items]
        if not clips:
            return []
        return [self.decide(row, top_k)
                for row in self.probabilities(np.stack(clips), batch_size)]


@dataclass(frozen=True)
class StreamStep:
    """What one ``push`` or ``flush`` produced: per new frame, logits/probs
    [..., frames, labels] and the encoder outputs [..., frames, D]; ``first_frame`` is the
    stream index of the first of them (frame t is centred on sample t * hop_length)."""

    logits: np.ndarray
    probs: np.ndarray
    frames: np.ndarray
    first_frame: int


def read_blocks(path: str | os.PathLike, sample_rate: int, block_seconds: float = 10.0
                ) -> Iterator[np.ndarray]:
    """A (long) file as consecutive float32 mono blocks at ``sample_rate``: decoded and
    resampled ``block_seconds`` of the file at a time, so memory does not grow with its length.
    The blocks joined are the whole file resampled. Raises AudioError for a file that is
    unusable (before the first block) or turns out corrupt (at the block where it does)."""
    path = Path(path)
    _, rate = audio.read(path, 0, 1)  # checks the file and its header
    with sf.SoundFile(os.fsencode(path)) as f:
        total = f.frames
    block = max(1, round(block_seconds * rate))
    resampler = (soxr.ResampleStream(rate, sample_rate, 1, dtype="float32")
                 if rate != sample_rate else None)
    for start in range(0, total, block):
        samples, _ = audio.read(path, start, block)
        last = start + block >= total or len(samples) < block
        if resampler is not None:
            samples = resampler.resample_chunk(samples, last=last)
        yield samples
        if last:
            break


class StreamingRecognizer:
    """Run a ``--streaming`` export on a stream: push samples as they come, get frame outputs.

    Samples are buffered until a whole number of hops (and, at the start, the first chunk's
    minimum) is there, so any push size works. ``flush()`` ends the stream the way the offline
    model ends a clip, so pushes + flush give exactly the offline model's frames. Several
    streams advance together as a batch: push [streams, samples] arrays.
    """

    def __init__(self, model_path: str | os.PathLike, threads: Optional[int] = None):
        self.session, self.info = open_model(model_path, threads)
        if not self.info.streaming:
            raise SpeechRNNError(f"{model_path}: not a streaming model; export one with "
                                 "`speechrnn export RUN_DIR --streaming`")
        stream = self.info.stream
        self.labels = self.info.labels
        self.sample_rate = self.info.sample_rate
        self.hop = int(stream["hop_length"])
        self.min_first_chunk = int(stream["min_first_chunk"])
        self.delay_frames = int(stream["delay_frames"])
        self.start_padding = int(stream["start_padding"])
        self.end_padding = int(stream["end_padding"])
        outputs = self.session.get_outputs()
        self._outputs = [o.name for o in outputs]
        self._frame_dim = outputs[self._outputs.index("frames")].shape[-1]
        self.reset()

    def reset(self, streams: int = 1) -> None:
        """Forget the stream(s): the next push starts new ones."""
        def zeros(name, shape):
            dtype = np.int64 if name == "offset" else np.float32
            return np.zeros([streams if d == "batch" else d for d in shape], dtype)

        self.state = {name: zeros(name, shape) for name, shape in self.info.stream["states"].items()}
        self.pending = np.zeros((streams, 0), np.float32)
        self.tail = np.zeros((streams, 0), np.float32)
        self.samples_seen = 0
        self.frames_done = 0
        self._single = True

    def push(self, samples: np.ndarray) -> StreamStep:
        """Samples [n] (one stream) or [streams, n], float32 at the model's sample rate."""
        samples = np.asarray(samples, dtype=np.float32)
        self._single = samples.ndim == 1
        samples = np.atleast_2d(samples)
        if samples.shape[0] != self.pending.shape[0]:
            raise SpeechRNNError(f"pushed {samples.shape[0]} streams into {self.pending.shape[0]};"
                                 " call reset(streams) first")
        self.samples_seen += samples.shape[1]
        self.tail = np.concatenate([self.tail, samples], axis=1)[:, -(self.end_padding + 1):]
        buffered = np.concatenate([self.pending, samples], axis=1)
        minimum = self.min_first_chunk if self.frames_done == 0 else self.hop
        usable = buffered.shape[1] // self.hop * self.hop if buffered.shape[1] >= minimum else 0
        self.pending = buffered[:, usable:]
        return self._run(buffered[:, :usable])

    def flush(self) -> StreamStep:
        """End the stream(s): reflect the end as the offline frontend pads a clip, return the
        frames still owed (the offline model has 1 + samples // hop_length) and reset."""
        if self.samples_seen <= max(self.start_padding, self.end_padding):
            raise SpeechRNNError(f"the stream holds {self.samples_seen} samples, too few to "
                                 "frame; push more before flush()")
        owed = 1 + self.samples_seen // self.hop - self.frames_done
        reflection = self.tail[:, -2::-1]  # x[N-2], x[N-3], ..., x[N-1-end_padding]
        # Placeholder zeros after the reflection only feed frames past the last one, dropped.
        fed = self.pending.shape[1] + reflection.shape[1]
        needed = (owed + (self.delay_frames if self.frames_done == 0 else 0)) * self.hop
        length = max(-(-fed // self.hop) * self.hop, needed)
        chunk = np.concatenate([self.pending, reflection], axis=1)
        step = self._run(np.pad(chunk, ((0, 0), (0, length - fed))), keep=owed)
        streams, single = self.pending.shape[0], self._single
        self.reset(streams)
        self._single = single
        return step

    def _run(self, chunk: np.ndarray, keep: Optional[int] = None) -> StreamStep:
        first = self.frames_done
        if chunk.shape[1]:
            results = dict(zip(self._outputs, self.session.run(None, {"audio": chunk, **self.state})))
            self.state = {name: results[f"{name}_out"] for name in self.state}
            self.frames_done = int(self.state["offset"][0])
            logits, probs, frames = (results[k][:, :keep] for k in ("logits", "probs", "frames"))
        else:
            logits = probs = np.zeros((len(chunk), 0, len(self.labels)), np.float32)
            frames = np.zeros((len(chunk), 0, self._frame_dim), np.float32)
        if self._single:
            logits, probs, frames = logits[0], probs[0], frames[0]
        return StreamStep(logits, probs, frames, first)
