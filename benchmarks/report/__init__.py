"""Regenerate the measured sections of README.md and docs/ from the committed benchmark results.

    python -m benchmarks.report            # rewrite the sections in DOCUMENTS
    python -m benchmarks.report --check    # exit 1 where a document differs from the results

A section is the text between ``<!-- report:NAME -->`` and ``<!-- /report -->``; every number
in it comes from the result files of ``SECTIONS[NAME]`` (benchmarks/results/<name>.json, as
the benchmarks write them; never the *_quick.json of a smoke run). A section whose files are
not there yet says so, with the command that measures it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import data, detection, generalization, inference, pipeline, stream, training

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
# Where the sections live: together they hold each section of SECTIONS once.
DOCUMENTS = (README, REPO / "docs" / "generalization.md", REPO / "docs" / "scale.md")
SECTION = re.compile(r"(<!-- report:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /report -->)",
                     re.DOTALL)


@dataclass(frozen=True)
class Section:
    sources: tuple[str, ...]  # result files, relative to the repository root
    render: Callable[..., str]  # one loaded result per source -> markdown
    command: str  # what measures it


def results(name: str) -> str:
    return f"benchmarks/results/{name}.json"


BENCH = "`make bench` (or `python -m benchmarks.{}`)"
SECTIONS = {
    "synth": Section((results("synth"),), data.synth, BENCH.format("bench_synth --large")),
    "data": Section((results("data"),), data.loader, BENCH.format("bench_data")),
    "frontend": Section((results("frontend"),), data.frontend, BENCH.format("bench_frontend")),
    "training": Section((results("training"),), training.recipes, BENCH.format("bench_training")),
    "pipeline": Section((results("pipeline"),), pipeline.efficiency,
                        "`python -m benchmarks.bench_training --pipeline --corpus DIR`"),
    "ddp": Section((results("ddp"),), pipeline.ddp, "`python -m benchmarks.bench_training --ddp`"),
    "generalization": Section((results("generalization"),), generalization.render,
                              "`python -m benchmarks.bench_generalization` (part of `make bench`)"),
    "ablation": Section((results("generalization"),), generalization.ablation,
                        "`python -m benchmarks.bench_generalization --only default` and "
                        "`--only ablation --variant NAME --override KEY=VALUE`"),
    "screening": Section(("benchmarks/results/screen_default.jsonl",), generalization.screening,
                         "`python -m benchmarks.screen_default NAME [KEY=VALUE ...]`"),
    "speaker_screening": Section(("benchmarks/results/screen_speakers.jsonl",),
                                 generalization.speaker_screening,
                                 "`python -m benchmarks.screen_speakers NAME [KEY=VALUE ...]`"),
    "cells": Section(("docs/compare_cells/results.json",), training.cells,
                     "`python -m benchmarks.compare_cells`"),
    "inference": Section((results("inference"),), inference.render, BENCH.format("bench_inference")),
    "memory": Section((results("inference"),), inference.memory, BENCH.format("bench_inference")),
    "detection": Section((results("inference"),), detection.render,
                         BENCH.format("bench_inference")),
    "stream": Section((results("stream"),), stream.render,
                      "`python -m benchmarks.bench_stream`"),
}


def load(path: Path):
    """A result file: one JSON document, or a list of rows for JSON Lines (``.jsonl``)."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def render_section(name: str, root: Path = REPO) -> str:
    """The body of section ``name`` from the result files under ``root``."""
    if name not in SECTIONS:
        raise SystemExit(f"report section {name!r} is not one of {sorted(SECTIONS)}")
    section = SECTIONS[name]
    paths = [root / source for source in section.sources]
    missing = [source for source, path in zip(section.sources, paths) if not path.is_file()]
    if missing:
        return (f"*Not measured yet: run {section.command}, then `python -m benchmarks.report` "
                f"(missing: {', '.join(f'`{m}`' for m in missing)}).*\n")
    loaded = [load(path) for path in paths]
    for source, result in zip(section.sources, loaded):
        if isinstance(result, dict) and result.get("quick"):
            raise SystemExit(f"{source} holds a --quick run: its numbers are not meaningful")
    return section.render(*loaded).rstrip("\n") + "\n"


def preview(path: Path) -> str:
    """Every section that the result file ``path`` feeds (a --quick one too), rendered from it:
    what a benchmark prints when it is done."""
    source = results(path.stem.removesuffix("_quick"))
    result = json.loads(path.read_text())
    return "\n\n".join(s.render(result) for s in SECTIONS.values() if s.sources == (source,))


def update(text: str, root: Path = REPO) -> str:
    """``text`` (README.md) with every section regenerated from the results under ``root``."""
    return SECTION.sub(lambda m: m[1] + render_section(m["name"], root) + m[4], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a document differs from the results")
    parser.add_argument("--readme", type=Path, action="append",
                        help="a document to regenerate (repeatable; default: README.md, "
                             "docs/generalization.md and docs/scale.md)")
    parser.add_argument("--root", type=Path, default=REPO,
                        help="where benchmarks/results/ and docs/ are read from")
    args = parser.parse_args(argv)
    documents = args.readme or list(DOCUMENTS)
    texts = {path: path.read_text() for path in documents}
    found = [m["name"] for text in texts.values() for m in SECTION.finditer(text)]
    if sorted(found) != sorted(SECTIONS):
        print(f"{', '.join(map(str, documents))}: sections {sorted(found)}, expected each of "
              f"{sorted(SECTIONS)} once", file=sys.stderr)
        return 1
    stale = 0
    for path, text in texts.items():
        new = update(text, args.root)
        if new == text:
            print(f"{path} is up to date with the results")
        elif args.check:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       str(path), "from the results"))
            print(f"{path} differs from the results: run python -m benchmarks.report",
                  file=sys.stderr)
            stale += 1
        else:
            path.write_text(new)
            print(f"rewrote {len(SECTION.findall(text))} sections of {path}")
    return 1 if stale else 0
