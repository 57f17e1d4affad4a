"""`speechrnn predict MODEL PATH...`: recognise the command in each audio file, torch-free.

PATHs are files, folders (searched recursively for .wav/.flac/.ogg), glob patterns (``**``
recurses) and ``-``, audio bytes on standard input. Batches of files are decoded and classified
in parallel threads. A file that cannot be read, and a PATH that matches nothing, become error
rows; the run goes on and exits 1. When no PATH matches anything, that is the error (exit 2).
A WAV cut short (its header promises more audio than the file holds) is classified from what is
there, with a warning in its row.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import io
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

try:
    from tqdm import tqdm
except ImportError:  # tqdm comes with the [train] extra; the bare runtime shows no bar
    tqdm = None

from . import audio
from .audio import AUDIO_EXTENSIONS
from .errors import AudioError, SpeechRNNError
from .runtime import ModelOutputError, Recognizer

FORMATS = ("table", "json", "csv")
PROGRESS_MIN_FILES = 200  # shorter lists finish before a bar would tell anything
STDIN = "-"


def expand(specs: list[str]) -> tuple[list[str], list[dict]]:
    """Files to classify, in order and without repeats, and error rows for specs that name none."""
    files: dict[str, None] = {}
    errors = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS
                           and (p.is_file() or p.is_symlink()))  # a broken link is an error row
            problem = f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder"
        elif not path.exists() and any(c in spec for c in "*?["):
            found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            problem = "no files match this pattern"
        elif not os.path.lexists(spec):
            found, problem = [], "not found: no such file or folder"
        else:
            found, problem = [spec], ""  # a broken link fails at decoding, with its path
        if not found:
            errors.append({"path": spec, "error": problem})
        files.update(dict.fromkeys(found))
    return list(files), errors


@contextlib.contextmanager
def stdin_file() -> Iterator[str]:
    """Standard input copied to a temporary file, so it is decoded as safely as any file."""
    if sys.stdin is None or sys.stdin.isatty():
        raise SpeechRNNError("PATH '-' reads audio from standard input, which is a terminal; "
                             "pipe a file in: speechrnn predict model.onnx - < clip.wav")
    with tempfile.TemporaryDirectory(prefix="speechrnn-stdin-") as folder:
        path = os.path.join(folder, "stdin")
        with open(path, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        yield path


def _classify_batch(recognizer: Recognizer, paths: list[str], top_k: int) -> list[dict]:
    clips, rows = [], []
    for path in paths:
        try:
            clips.append(recognizer.load(path))
            warning = audio.cut_short(path)
            rows.append({"path": path, **({"warning": warning} if warning else {})})
        except AudioError as exc:
            rows.append({"path": path, "error": exc.problem})
    probs = iter(recognizer.probabilities(np.stack(clips), len(clips)) if clips else [])
    for row in rows:
        if "error" not in row:
            try:
                row.update(recognizer.decide(next(probs), top_k).to_dict())
            except ModelOutputError as exc:
                row["error"] = str(exc)
    return rows


def classify(recognizer: Recognizer, paths: list[str], *, top_k: int = 3, batch_size: int = 64,
             workers: Optional[int] = None) -> Iterator[dict]:
    """One result row per path, in order: {"path", "label", "score", "top_k"} or {"path", "error"},
    with a "warning" for a file that was cut short (``audio.cut_short``).

    Each of ``workers`` threads decodes a batch and runs it through the (thread-safe) session;
    with one onnxruntime thread per batch, the cores stay busy without thread-pool hand-offs.
    """
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for rows in pool.map(lambda batch: _classify_batch(recognizer, batch, top_k), batches):
            yield from rows


def _top_k_text(row: dict, digits: int = 3) -> str:
    return ", ".join(f"{label} {score:.{digits}f}" for label, score in row["top_k"])


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "label", "score", "top_k", "error", "warning"])
        for row in rows:
            if "error" in row:
                writer.writerow([row["path"], "", "", "", row["error"], row.get("warning", "")])
            else:
                top = ";".join(f"{label}:{score:.6f}" for label, score in row["top_k"])
                writer.writerow([row["path"], row["label"], f"{row['score']:.6f}", top, "",
                                 row.get("warning", "")])
        return out.getvalue().rstrip("\n")
    path_width = max([len("path"), *(len(r["path"]) for r in rows)])
    label_width = max([len("label"), *(len(r.get("label", "")) for r in rows)])
    lines = [f"{'path':<{path_width}}  {'label':<{label_width}}  score  top_k"]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['path']:<{path_width}}  error: {row['error']}")
        else:
            lines.append(f"{row['path']:<{path_width}}  {row['label']:<{label_width}}  "
                         f"{row['score']:.3f}  {_top_k_text(row)}"
                         + (f"  warning: {row['warning']}" if "warning" in row else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn predict",
        description="Recognise the command in audio files with a model from `speechrnn export`.")
    parser.add_argument("model", help="the exported .onnx file")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio files, folders (recursive), glob patterns ('clips/**/*.wav') "
                        "or - for audio on standard input")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--top-k", type=int, default=3, help="best labels listed per file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="batches decoded and classified in parallel, one thread each "
                        "(default: one per core)")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be at least 1")

    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.paths.count(STDIN) > 1:
        parser.error("PATH '-' (standard input) can be given once")
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(stdin_file()) if STDIN in args.paths else None
        files, rows = expand([stdin if spec == STDIN else spec for spec in args.paths])
        unmatched = len(rows)
        if not files:
            parser.error("nothing to classify: "
                         + "; ".join(f"{row['path']!r}: {row['error']}" for row in rows))
        recognizer = Recognizer(args.model, threads=1)
        bar = (tqdm(total=len(files), unit="file", file=sys.stderr,
                    disable=len(files) < PROGRESS_MIN_FILES or None) if tqdm else None)
        for row in classify(recognizer, files, top_k=args.top_k, batch_size=args.batch_size,
                            workers=args.threads):
            rows.append({**row, "path": STDIN} if row["path"] == stdin else row)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A name that is not valid UTF-8 is printed as the bytes it is, not an encoding error.
        sys.stdout.reconfigure(errors="surrogateescape")
    print(render(rows, args.format))
    unreadable = sum("error" in row for row in rows) - unmatched
    print(f"speechrnn predict: {plural(len(files), 'file')} in {elapsed:.2f} s "
          f"({len(files) / max(elapsed, 1e-9):.0f} files/s)"
          + (f"; {unreadable} could not be read" if unreadable else "")
          + (f"; {plural(unmatched, 'PATH')} matched nothing" if unmatched else ""),
          file=sys.stderr)
    return 1 if unreadable or unmatched else 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
