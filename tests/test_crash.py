"""Crashes and interruptions: a SIGKILL at any moment (even mid checkpoint write) leaves only
loadable checkpoints and a resumed run ends exactly where an uninterrupted one does; Ctrl-C
stops cleanly, keeps last.pt and prints how to resume."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speechrnn import checkpoint
from helpers import REPO

pytestmark = pytest.mark.slow  # every test runs `speechrnn train` in a subprocess

# The smoke recipe with every source of randomness a resume must carry over: waveform
# augmentation, SpecAugment, dropout (global torch RNG, restored only from the checkpoint's
# "rng" state) and DataLoader worker processes.
EPOCHS = 4
TRAIN = [sys.executable, "-m", "speechrnn", "train", "recipe=smoke", "export.enabled=false",
         f"trainer.epochs={EPOCHS}", "augment=default", "features=mfcc_specaugment",
         "model.dropout=0.3", "data.num_workers=2"]
STEPS = 3 * EPOCHS  # 3 batches an epoch of the smoke set


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    # SIGINT back to its default, in case the test runner was started with it ignored (as a
    # background job is), so the child's Python turns it into KeyboardInterrupt.
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return  # it finished first: whatever state it left is checked the same way
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def steps_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count('"kind": "step"') if path.exists() else 0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_losses(run_dir: Path) -> list[float]:
    return [r["train/loss"] for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "step"]


def assert_checkpoints_load(run_dir: Path) -> None:
    paths = list((run_dir / "checkpoints").glob("*.pt"))
    assert run_dir / "checkpoints" / "last.pt" in paths
    for path in paths:
        state = checkpoint.load(path)  # raises on a torn file
        assert state["labels"] and "model" in state, path


def final_result(run_dir: Path) -> tuple:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["test_loss"], summary["test_accuracy"], train_losses(run_dir)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = subprocess.run([*TRAIN, f"hydra.run.dir={run_dir}"], cwd=run_dir, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return final_result(run_dir)


SAVER = """
import sys, torch
from speechrnn import checkpoint
for i in range(1_000_000):
    state = {"model": {"w": torch.full((4_000_000,), float(i))}, "config": {}, "labels": ["a", "b"],
             "epoch": i}
    checkpoint.save(state, sys.argv[1])
    print(i, flush=True)
"""


def test_sigkill_during_checkpoint_writes_never_leaves_a_torn_file(tmp_path):
    path = tmp_path / "last.pt"
    rng = random.Random(0)
    torn_writes = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline(), "the saver wrote no checkpoint"
        time.sleep(rng.uniform(0.0, 0.3))  # a 16 MB write + fsync is most of each loop
        proc.kill()
        proc.wait()
        leftovers = list(tmp_path.glob(".last.pt.*.tmp"))
        torn_writes += bool(leftovers)
        for leftover in leftovers:
            leftover.unlink()
        state = checkpoint.load(path)
        weights = state["model"]["w"]
        assert torch.equal(weights, torch.full_like(weights, float(state["epoch"]))), \
            "the checkpoint mixes two writes"
        if torn_writes and attempt >= 2:
            break
    assert torn_writes, "no kill landed during a write; the test proved nothing"


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    rng = random.Random(1)
    # Each kill lands up to 0.05 s after a random number of further optimizer steps, all within
    # the first half: the two epochs still to run take far longer (about 0.17 s each on 2 cores;
    # a 0.5 s wait once let a quiet machine finish training before the kill).
    for kill_after in sorted(rng.sample(range(1, STEPS // 2 + 1), 2)):
        resume = ["trainer.resume=true"] if (run_dir / "checkpoints" / "last.pt").exists() else []
        proc = start([*TRAIN, f"hydra.run.dir={run_dir}", *resume], tmp_path)
        wait_until(lambda: steps_logged(run_dir) >= kill_after, proc)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is not None:
            pytest.fail("the run ended before the kill; the test proved nothing\n"
                        + proc.communicate()[1][-3000:])
        proc.kill()
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        # Killed mid-training: no summary, and the last checkpoint is from before the last epoch.
        assert not (run_dir / "summary.json").exists()
        assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["epoch"] < EPOCHS
        assert_checkpoints_load(run_dir)

    result = subprocess.run([*TRAIN, f"hydra.run.dir={run_dir}", "trainer.resume=true"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_checkpoints_load(run_dir)
    test_loss, test_accuracy, losses = final_result(run_dir)
    assert (test_loss, test_accuracy) == uninterrupted[:2]
    assert losses == uninterrupted[2]


def test_ctrl_c_stops_cleanly_keeps_last_pt_and_says_how_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    proc = start([*TRAIN, f"hydra.run.dir={run_dir}"], tmp_path)
    wait_until(lambda: steps_logged(run_dir) >= 1, proc)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    output = stdout + stderr
    assert proc.returncode != 0
    assert "Traceback" not in output, output[-3000:]
    assert "interrupted" in output
    assert f"hydra.run.dir={run_dir} trainer.resume=true" in output
    epoch = checkpoint.load(run_dir / "checkpoints" / "last.pt")["epoch"]
    assert epoch < EPOCHS and f"holds the state after epoch {epoch}" in output
    assert_checkpoints_load(run_dir)
    assert not list((run_dir / "checkpoints").glob(".*.tmp")), "a torn temp file was left"
