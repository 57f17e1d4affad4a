"""`make demo`: the whole pipeline on the embedded default data, offline.

Renders the synthetic set (first use only), trains the default recipe with `speechrnn train`,
which also exports model.onnx, then runs `speechrnn predict` on the held-out test clips and
prints a sample of the result table, the accuracy and where the plots are.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .config import compose_config
from .data.base import UNKNOWN
from .data.synthetic import ensure_rendered

RUN_DIR = Path("outputs/demo")
SHOWN = 12


def speechrnn(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "speechrnn", *args]
    paths = [a for a in args if a.endswith(".wav")]
    shown = [a for a in args if not a.endswith(".wav")] + ([f"<{len(paths)} clips>"] if paths else [])
    print("\n$ speechrnn " + " ".join(shown), flush=True)
    return subprocess.run(command, check=capture is False, text=True,
                          stdout=subprocess.PIPE if capture else None)


def held_out_clips(root: Path) -> list[Path]:
    return [root / line for line in (root / "testing_list.txt").read_text().split()]


def true_label(path: Path, labels: list[str]) -> str:
    word = path.parent.name
    return word if word in labels else UNKNOWN


def main() -> int:
    start = time.perf_counter()
    root = ensure_rendered(compose_config().data)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    speechrnn("train", f"hydra.run.dir={RUN_DIR}")

    summary = json.loads((RUN_DIR / "summary.json").read_text())
    model = RUN_DIR / "model.onnx"
    clips = held_out_clips(root)
    result = speechrnn("predict", str(model), *map(str, clips), "--format", "json", capture=True)
    rows = json.loads(result.stdout)
    by_path = {row["path"]: row for row in rows}

    sample = random.Random(0).sample(clips, min(SHOWN, len(clips)))
    speechrnn("predict", str(model), *map(str, sample), "--top-k", "2")

    labels = summary["labels"]
    correct = sum(by_path[str(p)].get("label") == true_label(p, labels) for p in clips)
    print(f"\nHeld-out synthetic speakers: {correct}/{len(clips)} clips recognised "
          f"({correct / len(clips):.1%}) by the ONNX model through `speechrnn predict`")
    print(f"Test accuracy in training (with {UNKNOWN} and _silence_): {summary['test_accuracy']:.1%}")
    print(f"Run dir:  {RUN_DIR}/  (config.yaml, checkpoints/, metrics.jsonl, summary.json)")
    print(f"Plots:    {RUN_DIR / 'confusion_matrix.png'}, {RUN_DIR / 'curves.png'}")
    print(f"Model:    {model}  (try: speechrnn predict {model} your_clip.wav)")
    print(f"Demo finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
