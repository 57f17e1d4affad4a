"""The trainer end to end on the smoke recipe: run dir contents, exact resume, DDP, wandb offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from hydra import compose, initialize_config_dir

from speechrnn import checkpoint
from speechrnn.config import CONF_DIR
from speechrnn.devices import export_submitit_environment
from speechrnn.errors import SpeechRNNError
from speechrnn.training import fit

# Every test trains (fit) or runs `speechrnn train`, and is marked slow, but the one that is
# refused before any work.

FAST = ["recipe=smoke", "export.enabled=false"]


def smoke_config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[*FAST, *overrides])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("smoke")
    return run_dir, fit(smoke_config(), run_dir)


@pytest.mark.slow
def test_smoke_run_writes_the_run_dir(smoke_run):
    run_dir, summary = smoke_run
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "confusion_matrix.png", "curves.png",
                 "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    # The test accuracy is the test split's confusion matrix: its diagonal over its clips.
    per_class = summary["per_class"].values()
    assert summary["clips"]["test"] == sum(c["support"] for c in per_class) == 4
    correct = sum(round(c["recall"] * c["support"]) for c in per_class)
    assert summary["test_accuracy"] == pytest.approx(correct / 4)
    assert summary["labels"] == ["yes", "no", "up", "_silence_", "_unknown_"]
    assert summary["epochs"] == 2
    assert summary["num_parameters"] == sum(p.numel() for p in
                                            checkpoint.load_model(run_dir)[0].parameters())
    assert summary["train_seconds"] > 0
    assert set(summary["per_class"]["yes"]) == {"precision", "recall", "f1", "support"}


@pytest.mark.slow
def test_metrics_log_every_step_with_the_pre_clip_gradient_norm(smoke_run):
    run_dir, summary = smoke_run
    records = read_jsonl(run_dir / "metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [s["step"] for s in steps] == list(range(1, 7))  # 2 epochs x 3 batches
    assert all(s["train/grad_norm"] > 0 for s in steps)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= epochs[0].keys()
    assert summary["val_accuracy"] == max(e["val/acc"] for e in epochs)
    # The best epoch: highest val/acc, a tie going to the lower val/loss.
    assert summary["best_epoch"] == max(epochs, key=lambda e: (e["val/acc"], -e["val/loss"]))["epoch"]


@pytest.mark.slow
def test_checkpoints_are_plain_data_that_load_with_weights_only(smoke_run):
    run_dir, _ = smoke_run
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["labels"][0] == "yes"
    assert {"optimizer", "scheduler", "rng", "model", "config"} <= state.keys()
    model, cfg, _ = checkpoint.load_model(run_dir)
    assert model.labels == state["labels"] and cfg.model.cell == "gru"


@pytest.mark.slow
def test_a_checkpoint_from_before_a_setting_existed_loads_with_its_default(tmp_path, smoke_run):
    state = torch.load(smoke_run[0] / "checkpoints" / "best.pt", weights_only=True)
    del state["config"]["data"]["noise_dir"]
    checkpoint.save(state, tmp_path / "old.pt")
    model, cfg, _ = checkpoint.load_model(tmp_path / "old.pt")
    assert cfg.data.noise_dir is None and model.labels == state["labels"]


# Every source of randomness a resume must carry over: waveform augmentation and SpecAugment,
# dropout (drawn from the global torch RNG, which only the checkpoint's "rng" state restores)
# and DataLoader worker processes.
RANDOM = ["augment=default", "features=mfcc_specaugment", "model.dropout=0.3", "data.num_workers=2"]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["waveforms", "batch warp"])
def test_resume_after_an_interruption_gives_the_same_result(tmp_path, where):
    """Speed and VTLP on each waveform in the workers, or on the batch in the model."""
    random = [*RANDOM, "augment.vtlp_min=0.9", "augment.vtlp_max=1.1",
              f"augment.warp_spectrogram={where == 'batch warp'}"]
    uninterrupted = fit(smoke_config(*random), tmp_path / "uninterrupted")
    run_dir = tmp_path / "run"

    def stop_after_first_epoch(epoch, record):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(smoke_config(*random), run_dir, epoch_callback=stop_after_first_epoch)
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = fit(smoke_config(*random, "trainer.resume=true"), run_dir)

    first = read_jsonl(tmp_path / "uninterrupted" / "metrics.jsonl")
    second = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["kind"] for r in second] == [r["kind"] for r in first] == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch"]
    # Bit for bit: the second epoch's dropout and SpecAugment masks are the uninterrupted run's.
    assert [r["train/loss"] for r in second] == [r["train/loss"] for r in first]
    for key in ("test_accuracy", "val_accuracy", "test_loss", "best_epoch", "epochs"):
        assert resumed[key] == uninterrupted[key], key


@pytest.mark.slow
def test_the_batch_warp_perturbs_training(tmp_path):
    """With augment.warp_spectrogram the model warps each training batch: a speed and VTLP range
    changes every step's loss against factors of 1 (the same weights at the start, the same
    draws, the same waveforms)."""
    def steps(name, *overrides):
        fit(smoke_config("augment=default", "augment.warp_spectrogram=true", *overrides),
            tmp_path / name)
        return [r["train/loss"] for r in read_jsonl(tmp_path / name / "metrics.jsonl")
                if r["kind"] == "step"]

    still = steps("still", "augment.speed_min=1.0", "augment.speed_max=1.0")
    wide = steps("wide", "augment.speed_min=0.8", "augment.speed_max=1.2", "augment.vtlp_max=1.2")
    assert len(still) == len(wide) > 0
    assert all(a != b for a, b in zip(still, wide))


def test_resume_without_a_checkpoint_says_how(tmp_path):
    with pytest.raises(SpeechRNNError, match="trainer.resume"):
        fit(smoke_config("trainer.resume=true"), tmp_path)


@pytest.mark.slow
def test_seeded_runs_are_identical(tmp_path, smoke_run):
    again = fit(smoke_config(), tmp_path)
    assert again["test_loss"] == smoke_run[1]["test_loss"]


TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                      "MASTER_PORT")


def test_a_slurm_task_of_a_submitit_job_gets_torchruns_variables():
    # Task 5 of 8: 2 nodes x 4 tasks, the second task on the second node.
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": "5",
             "SLURM_LOCALID": "1"}
    with mock.patch.dict(os.environ, slurm):  # the whole environment comes back afterwards
        for name in TORCHRUN_VARIABLES:
            os.environ.pop(name, None)
        export_submitit_environment()
        exported = {name: os.environ.get(name) for name in TORCHRUN_VARIABLES}
    assert exported | {"MASTER_PORT": None} == {
        "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu07", "MASTER_PORT": None}
    assert int(exported["MASTER_PORT"]) > 0
    assert "MASTER_ADDR" not in os.environ


# Two ways to start 2 processes of one run: torchrun, and Hydra's submitit launcher as 2 tasks
# of one job (locally here; hydra/launcher=slurm_ddp on Slurm): (command, the run dir it fills).
LAUNCHERS = {
    "torchrun": lambda run_dir: ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  "--nproc_per_node=2", "-m", "speechrnn.train_cli",
                                  f"hydra.run.dir={run_dir}"], run_dir),
    "submitit": lambda run_dir: ([sys.executable, "-m", "speechrnn", "train", "-m",
                                  "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                                  f"hydra.sweep.dir={run_dir}"], run_dir / "0"),
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_ddp_on_two_processes_trains_as_one_process_on_the_same_global_batch(tmp_path, launcher):
    """2 processes x 8 clips per step = 1 process x 16: DistributedSampler deals the same
    shuffled order to both ranks in turn, so the two halves of each step make the single
    process's batch, and averaging their gradients gives its gradient. No dropout or
    augmentation (recipe=smoke), and the first 2 full batches of each epoch (33 clips: the
    third would be a 1-clip batch, padded by DistributedSampler with a repeated clip)."""
    same = ["trainer.limit_train_batches=2", "trainer.epochs=2"]
    command, run_dir = LAUNCHERS[launcher](tmp_path / "ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*command, *FAST, *same, "data.batch_size=8"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    single = fit(smoke_config(*same, "data.batch_size=16"), tmp_path / "single")

    ddp_steps = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "step"]
    single_steps = [r for r in read_jsonl(tmp_path / "single" / "metrics.jsonl") if r["kind"] == "step"]
    assert len(ddp_steps) == len(single_steps) == 4
    ddp_weights = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    single_weights = torch.load(tmp_path / "single" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert ddp_weights.keys() == single_weights.keys()
    for name, weight in single_weights.items():
        torch.testing.assert_close(ddp_weights[name], weight, rtol=0, atol=1e-4,
                                   msg=lambda message, name=name: f"{name}: {message}")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["labels"] == single["labels"]
    ddp_epochs = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "epoch"]
    single_epochs = [r for r in read_jsonl(tmp_path / "single" / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["val/loss"] for r in ddp_epochs] == pytest.approx([r["val/loss"] for r in single_epochs], abs=1e-5)
    assert summary["test_loss"] == pytest.approx(single["test_loss"], abs=1e-5)


@pytest.mark.slow
def test_a_finished_run_exports_its_onnx_variants(tmp_path):
    from speechrnn.runtime import Recognizer

    summary = fit(smoke_config("export.enabled=true", "export.quantize=int8", "export.streaming=true",
                               "trainer.epochs=1"), tmp_path)
    for key, name in (("onnx", "model.onnx"), ("onnx_int8", "model.int8.onnx"),
                      ("onnx_streaming", "model.streaming.onnx")):
        assert summary[key] == str(tmp_path / name) and (tmp_path / name).stat().st_size > 0
    recognizer = Recognizer(tmp_path / "model.onnx")
    assert recognizer.labels == summary["labels"]
    assert recognizer.info.test_accuracy == pytest.approx(summary["test_accuracy"])


@pytest.mark.slow
def test_a_variant_the_model_cannot_have_is_skipped_not_fatal(tmp_path, caplog):
    summary = fit(smoke_config("export.enabled=true", "export.streaming=true", "model.bidirectional=true",
                               "trainer.epochs=1"), tmp_path)
    assert (tmp_path / "model.onnx").is_file() and "onnx_streaming" not in summary
    assert "skipped the onnx_streaming export" in caplog.text
