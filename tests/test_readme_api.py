"""The README's Python API snippet runs as written and does what its comments say."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers import REPO

HEADING = "### Python API"


def snippet() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"^{re.escape(HEADING)}\n(.*?)^```python\n(.*?)^```", text, re.S | re.M)
    assert match, f"README.md has no ```python block under {HEADING!r}"
    assert "\n#" not in match[1], "the block must be in the Python API section itself"
    return match[2]


def test_the_snippet_shows_the_whole_api():
    code = snippet()
    for name in ("compose_config", "fit", "Recognizer", "StreamingRecognizer"):
        assert re.search(rf"\b{name}\(", code), f"the snippet does not show {name}"


@pytest.mark.slow  # runs the README snippet, which trains, in a subprocess
def test_the_python_api_snippet_runs(tmp_path):
    code = snippet()
    (tmp_path / "snippet.py").write_text(code)
    result = subprocess.run([sys.executable, "snippet.py"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / "runs" / "api"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (run_dir / "model.onnx").is_file() and (run_dir / "model.streaming.onnx").is_file()
    accuracy, prediction, stream = result.stdout.strip().splitlines()[-3:]
    assert accuracy == (f"test accuracy {summary['test_accuracy']:.2%} on "
                        f"{summary['clips']['test']} clips")
    label, score, _ = prediction.split(" ", 2)
    assert label in summary["labels"] and 0 < float(score) <= 1
    # One second at 16 kHz is 101 frames of 10 ms, each scored over the run's labels.
    shape, last = re.fullmatch(r"(\(\d+, \d+\)) (\S+)", stream).groups()
    assert shape == f"(101, {len(summary['labels'])})" and last in summary["labels"]
