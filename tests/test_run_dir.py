"""A run dir holds one run: training into it again is refused (or resumes it, or replaces it on
request), a resume never changes the saved run, two runs never share it, and a full disk keeps
the last complete checkpoint."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from speechrnn import checkpoint, export
from speechrnn.config import CONF_DIR
from speechrnn.errors import SpeechRNNError
from speechrnn.training import fit

pytestmark = pytest.mark.slow  # every test trains into a run dir (fit or `speechrnn train`)

FAST = ["recipe=smoke", "export.enabled=false"]
HYDRA_FILES = (".hydra", "train.log", ".lock")  # what every `speechrnn train` call writes


def smoke_config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[*FAST, *overrides])


def train_cli(run_dir: Path, *overrides: str, popen: bool = False):
    command = [sys.executable, "-m", "speechrnn", "train", *FAST, f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if popen:
        return subprocess.Popen(command, cwd=run_dir.parent, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=run_dir.parent, env=env, capture_output=True, text=True, timeout=600)


def contents(run_dir: Path) -> dict[str, str]:
    """Every file of the run (not Hydra's per-call files) and a hash of its bytes."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.relative_to(run_dir).parts[0] not in HYDRA_FILES}


def refused(result: subprocess.CompletedProcess) -> list[str]:
    """The error lines of a command refused as a usage error (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch smoke run; tests copy it before changing it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    fit(smoke_config(), run_dir)
    return run_dir


@pytest.fixture
def run(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


# -- item 2 ---------------------------------------------------------------------------------------

def test_training_into_a_run_dir_that_holds_a_run_is_refused_and_changes_nothing(run):
    before = contents(run)
    lines = refused(train_cli(run))
    assert len(lines) == 1
    assert str(run) in lines[0] and "already holds a run" in lines[0]
    assert "trainer.resume=true" in lines[0] and "trainer.overwrite=true" in lines[0]
    assert "new hydra.run.dir" in lines[0]
    assert contents(run) == before


def test_overwrite_replaces_the_run_and_leaves_nothing_of_the_old_one(run):
    (run / "model.int8.onnx").write_bytes(b"stale export of the old run")
    summary = fit(smoke_config("trainer.overwrite=true", "trainer.epochs=1"), run)
    assert summary["epochs"] == 1
    assert not (run / "model.int8.onnx").exists()
    assert checkpoint.load(run / "checkpoints" / "last.pt")["epoch"] == 1
    assert (run / "config.yaml").read_text().count("overwrite: true") == 1


def test_a_fresh_run_dir_with_only_a_failed_start_in_it_trains(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("written by a run that failed before its first checkpoint\n")
    assert fit(smoke_config("trainer.epochs=1"), run_dir)["epochs"] == 1


# -- items 3 and 11: a resume has the run's own settings and never changes the run -------------------

def test_resuming_with_other_settings_lists_each_difference_and_changes_nothing(run):
    before = contents(run)
    lines = refused(train_cli(run, "trainer.resume=true", "model.hidden_size=32", "optim.lr=0.01"))
    assert lines[0].startswith("speechrnn train: error: cannot resume from") and "2 setting(s)" in lines[0]
    assert lines[1:] == ["  model.hidden_size: 16 in the run, 32 now", "  optim.lr: 0.003 in the run, 0.01 now"]
    assert contents(run) == before  # config.yaml and the checkpoints as they were


def test_a_finished_run_cannot_be_extended(run):
    before = contents(run)
    lines = refused(train_cli(run, "trainer.resume=true", "trainer.epochs=5"))
    assert lines[1:] == ["  trainer.epochs: 2 in the run, 5 now (a run cannot be extended: its "
                         "learning-rate schedule spans its epochs)"]
    assert contents(run) == before


def test_a_resume_may_change_where_data_is_and_how_the_run_is_shown(run):
    config = (run / "config.yaml").read_bytes()
    summary = fit(smoke_config("trainer.resume=true", "trainer.progress=true", "data.num_workers=1"), run)
    assert summary["epochs"] == 2 and (run / "config.yaml").read_bytes() == config


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_refused_on_resume(run):
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["model"] = {name: tensor[:1] for name, tensor in state["model"].items()}
    checkpoint.save(state, run / "checkpoints" / "last.pt")
    with pytest.raises(SpeechRNNError, match="the checkpoint's weights do not fit its own model settings"):
        fit(smoke_config("trainer.resume=true"), run)


# -- item 10 --------------------------------------------------------------------------------------

def test_a_second_run_into_a_busy_run_dir_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = train_cli(run_dir, "trainer.epochs=200", popen=True)
    try:
        lock = run_dir / ".lock"
        deadline = time.monotonic() + 300
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.2)
        second = train_cli(run_dir)
        lines = refused(second)
        assert lines == [f"speechrnn train: error: {run_dir}: another training run (pid {first.pid}) is "
                         "using this run dir; wait for it to end, or train into another hydra.run.dir"]
        assert first.poll() is None, "the refused run stopped the first one"
    finally:
        first.kill()
        first.communicate()
    # Once the holder is gone (even killed), the dir is free: the run resumes.
    if (run_dir / "checkpoints" / "last.pt").exists():
        result = train_cli(run_dir, "trainer.epochs=200", "trainer.resume=true", "trainer.limit_train_batches=1")
        assert "another training run" not in result.stderr


# -- item 12: a full disk -------------------------------------------------------------------------

def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real_save, calls = torch.save, []

    def disk_full_on_third_save(obj, f):  # last.pt at the start, best.pt, then last.pt of epoch 1
        calls.append(1)
        if len(calls) == 3:
            f.write(b"the first bytes fit")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full_on_third_save)
    with pytest.raises(SpeechRNNError) as info:
        fit(smoke_config(), run_dir)
    message = str(info.value)
    assert "No space left on device" in message and "trainer.resume=true" in message and "\n" not in message
    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["epoch"] == 0  # the previous one, whole
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))

    monkeypatch.setattr(checkpoint.torch, "save", real_save)  # space freed: the run resumes
    assert fit(smoke_config("trainer.resume=true"), run_dir)["epochs"] == 2


def test_a_full_disk_while_exporting_keeps_the_previous_model(run, monkeypatch):
    model = export.export_run(run)
    before = model.read_bytes()

    def disk_full(proto, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export.onnx, "save", disk_full)
    with pytest.raises(SpeechRNNError, match=r"model.onnx: could not write the ONNX model \(No space left on device\)"):
        export.export_run(run)
    assert model.read_bytes() == before
    assert not list(run.glob(".export-*"))
