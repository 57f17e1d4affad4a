"""`speechrnn listen MODEL`: keywords from the microphone, printed as they are spoken.

The audio goes through `speechrnn detect`'s pipeline (``detect.detect_stream``) a block at a
time: a ``--streaming`` export runs frame by frame with the streaming runtime, a plain export
on sliding windows. Each event is printed when it is over, about a clip length (plus the
restart interval, for a streaming model trained on clips) after the word; a streaming model
trained for streaming gives it out as soon as its keyword's run is over. The microphone is read with PortAudio
through ``sounddevice`` (the [listen] extra); ``--file`` plays a recording through the same
loop in real time instead, block by block at the pace a microphone would deliver it.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .detect import Event, add_settings_arguments, detect_stream, finite, settings_from
from .errors import SpeechRNNError
from .runtime import open_model, read_blocks


def microphone(rate: int, block_seconds: float, device: Optional[str] = None
               ) -> Iterator[np.ndarray]:
    """The default (or ``device``) input as mono float32 blocks at ``rate``, until stopped."""
    import sounddevice  # the [listen] extra; its absence is named by `speechrnn`'s CLI

    blocks: queue.Queue[np.ndarray] = queue.Queue()

    def received(indata, frames, when, status) -> None:
        if status.input_overflow:
            print("speechrnn listen: audio dropped (the machine fell behind)", file=sys.stderr)
        blocks.put(indata.mean(axis=1, dtype=np.float32))

    try:
        stream = sounddevice.InputStream(
            samplerate=rate, blocksize=round(block_seconds * rate), channels=1, dtype="float32",
            device=int(device) if device and device.isdigit() else device, callback=received)
    except (sounddevice.PortAudioError, ValueError) as exc:
        raise SpeechRNNError(f"cannot open the microphone ({exc}); pick another with --device "
                             "(`python -m sounddevice` lists them)") from None
    with stream:
        while True:
            yield blocks.get()


def played(path: str, rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """A recording's blocks at ``rate``, each given when it would have been recorded."""
    start, sent = time.monotonic(), 0
    for block in read_blocks(path, rate, block_seconds):
        sent += len(block)
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        yield block


def line(event: Event, fmt: str, width: int) -> str:
    if fmt == "jsonl":
        return json.dumps(event.to_dict())
    return f"{event.start:9.2f}  {event.end:9.2f}  {event.label:<{width}}  {event.score:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn listen",
        description="Recognise keywords from the microphone as they are spoken (or from a "
        "recording played in real time), with a model from `speechrnn export` (--streaming "
        "for the streaming runtime). Ctrl-C stops.")
    parser.add_argument("model", help="the exported .onnx file (streaming or plain)")
    parser.add_argument("--file", help="play this recording in real time instead of the microphone")
    parser.add_argument("--device", help="the input device (name or number; default: the "
                        "system's; `python -m sounddevice` lists them)")
    add_settings_arguments(parser)
    parser.add_argument("--block", type=finite, default=0.1,
                        help="seconds of audio read at a time (default %(default)s)")
    parser.add_argument("--format", choices=("table", "jsonl"), default="table",
                        help="table: start, end (seconds from the start), label, score; jsonl: "
                        "one JSON object per event")
    args = parser.parse_args(argv)
    settings = settings_from(parser, args)
    if not 0.01 <= args.block <= 10:
        parser.error("--block must be 0.01 to 10 seconds")
    if args.file and not Path(args.file).is_file():
        parser.error(f"--file {args.file}: no such file")
    _, info = open_model(args.model, threads=1)  # a bad model fails before the microphone opens
    if args.file:
        source, where = (lambda rate: played(args.file, rate, args.block)), args.file
    else:
        source = lambda rate: microphone(rate, args.block, args.device)  # noqa: E731
        where = f"microphone {args.device}" if args.device else "the microphone"
    kind = "streaming" if info.streaming else "sliding windows"
    print(f"speechrnn listen: {where} with {args.model} ({kind}); Ctrl-C stops", file=sys.stderr,
          flush=True)
    width = max(map(len, info.labels))
    if args.format == "table":
        print(f"{'start':>9}  {'end':>9}  {'label':<{width}}  score", flush=True)
    for event in detect_stream(args.model, source, settings, threads=1):
        print(line(event, args.format, width), flush=True)
    return 0
