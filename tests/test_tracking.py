"""`logger=wandb` with a real offline wandb run: where it is and how to sync it are printed, the
ONNX export is logged as a model artifact and the test confusion matrix as a table."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from speechrnn import tracking
from speechrnn.errors import SpeechRNNError


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory) -> tuple[Path, str]:
    """The smoke recipe for one epoch with logger=wandb, offline, from the CLI."""
    tmp = tmp_path_factory.mktemp("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DATA_DIR": str(tmp / "data"),
           "WANDB_CACHE_DIR": str(tmp / "cache"), "WANDB_CONFIG_DIR": str(tmp / "config")}
    env.pop("WANDB_API_KEY", None)
    run_dir = tmp / "run"
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "train", "recipe=smoke", "logger=wandb",
         "trainer.epochs=1", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, cwd=tmp, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result.stdout + result.stderr


@pytest.mark.slow
def test_the_offline_run_and_its_sync_command_are_printed(wandb_run):
    run_dir, output = wandb_run
    match = re.search(r"wandb: offline run in (\S+); upload it with: wandb sync (\S+)\n", output)
    assert match and match[1] == match[2]
    where = Path(match[1])
    assert where.parent == run_dir / "wandb" and where.name.startswith("offline-run-")
    (log_file,) = where.glob("run-*.wandb")
    # The binary run log holds the logged metrics and the summary.
    payload = log_file.read_bytes()
    assert b"val/acc" in payload and b"test_accuracy" in payload


@pytest.mark.slow
def test_the_confusion_matrix_is_a_table(wandb_run):
    run_dir, _ = wandb_run
    summary = json.loads((run_dir / "summary.json").read_text())
    (table_file,) = (run_dir / "wandb").glob("offline-run-*/files/media/table/test/"
                                              "confusion_table_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["Actual", "Predicted", "nPredictions"]
    labels = summary["labels"]
    assert [row[:2] for row in table["data"]] == [[t, p] for t in labels for p in labels]
    counts = [row[2] for row in table["data"]]
    assert sum(counts) == summary["clips"]["test"]
    right = sum(row[2] for row in table["data"] if row[0] == row[1])
    assert right / sum(counts) == pytest.approx(summary["test_accuracy"])


@pytest.mark.slow
def test_the_onnx_model_is_an_artifact(wandb_run):
    run_dir, _ = wandb_run
    (where,) = (run_dir / "wandb").glob("offline-run-*")
    run_id = where.name.rsplit("-", 1)[1]
    payload = next(where.glob("run-*.wandb")).read_bytes()
    digest = base64.b64encode(hashlib.md5((run_dir / "model.onnx").read_bytes()).digest())
    # The artifact's manifest, in the run log: its name and type, and model.onnx by its digest.
    assert f"model-{run_id}".encode() in payload
    entries = [m.start() for m in re.finditer(rb"model\.onnx", payload)]
    assert any(digest in payload[at:at + 64] for at in entries)
    assert b'"test_accuracy":' in payload and b"speechrnn ONNX export" in payload


def test_logger_wandb_without_wandb_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if it were not installed
    cfg = OmegaConf.create({"name": "wandb", "mode": "offline", "project": "p", "group": None,
                            "tags": []})
    with pytest.raises(SpeechRNNError, match=r"pip install 'speechrnn\[wandb\]'"):
        tracking.start(cfg, {}, tmp_path)
