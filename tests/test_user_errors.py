"""Mistakes a user can make on the command line: each is refused before any work is done, in one
line that names the setting and the fix, printed once, without a traceback; usage errors exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import OmegaConf

from helpers import tiny_onnx
from speechrnn import checkpoint, sweep
from speechrnn.config import Config, check_section, compose_config, validate
from speechrnn.errors import SpeechRNNError, UsageError
from speechrnn.training import fit

FSDD_MISSING = ["recipe=fsdd/gru", "data.root=/nonexistent/fsdd"]


def speechrnn(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    kwargs = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "timeout": 600, **kwargs}
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], cwd=cwd, env=env,
                          text=True, **kwargs)


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    """The single line a refused command printed (on stderr), checked for its exit code."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


# -- item 1/4/12: every setting checked before data is read ---------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("override, needle", [
    ("model.hidden_size=-3", "model.hidden_size=-3 is out of range"),
    ("+model.hiden_size=32", "unknown setting model.hiden_size; did you mean model.hidden_size?"),
    ("model.hiden_size=32", "unknown setting model.hiden_size; did you mean model.hidden_size?"),
    ("optim.lr=-1", "optim.lr=-1.0 is out of range; set it to a value above 0"),
    ("optim.lr=nan", "optim.lr=nan is not a finite number"),
    ("trainer.epochs=0", "trainer.epochs=0 is out of range; set it to a value of at least 1"),
    ("data.batch_size=0", "data.batch_size=0 is out of range"),
    ("data.num_workers=-1", "data.num_workers=-1 is out of range"),
])
def test_train_refuses_a_bad_setting_in_one_line_before_reading_data(tmp_path, override, needle):
    # The data root does not exist: had the data been read first, that would be the error.
    result = speechrnn("train", *FSDD_MISSING, override, f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    line = one_line_error(result, 2)
    assert line.startswith("speechrnn train: error") and needle in line
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # a CLI subprocess
def test_an_error_in_the_job_is_also_in_the_runs_train_log(tmp_path):
    result = speechrnn("train", *FSDD_MISSING, "model.hidden_size=-3", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert "model.hidden_size=-3 is out of range" in one_line_error(result, 2)
    assert "model.hidden_size=-3 is out of range" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize("overrides, needle", [
    (["model.dropout=1.0"], "model.dropout=1.0 is out of range; set it to a value in [0, 1)"),
    (["model.conv_layers=3"], "model.conv_layers=3 is out of range; set it to a value in [0, 2]"),
    (["data.clip_seconds=0"], "data.clip_seconds=0.0 is out of range; set it to a value in (0, 60]"),
    (["data.clip_seconds=0.001"], "fewer than one MFCC window needs"),
    (["features.n_mfcc=50"], "features.n_mfcc=50 exceeds features.n_mels=40"),
    (["features.f_max=9000", "data.sample_rate=16000", "features.f_min=9500"], "f_min"),
    (["augment.snr_db_min=40", "augment.snr_db_max=10"], "augment.snr_db_min=40.0 is above augment.snr_db_max=10.0"),
    (["optim.momentum=inf"], "optim.momentum=inf is not a finite number"),
    (["augment.gain_db_min=nan"], "augment.gain_db_min=nan is not a finite number"),
    (["data.val_fraction=0.5", "data.test_fraction=0.5"], "leaves no training data"),
    (["trainer.device=gpu"], "trainer.device=gpu is not a device"),
    (["export.opset=24"], "export.opset=24 is out of range; set it to a value in [9, 23]"),
    (["+trainer.epoch=3"], "unknown setting trainer.epoch; did you mean trainer.epochs?"),
    (["+lr=0.1"], "unknown setting lr; did you mean optim.lr?"),
    (["model.hidden_size=???"], "model.hidden_size has no value"),
])
def test_compose_names_the_setting_and_the_fix(overrides, needle):
    with pytest.raises(UsageError) as info:
        compose_config(["recipe=smoke", *overrides])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(UsageError) as info:
        compose_config(["recipe=smoke", "model.hidden_size=0", "optim.lr=0", "trainer.epochs=0"])
    assert all(key in str(info.value) for key in ("model.hidden_size", "optim.lr", "trainer.epochs"))


def test_every_recipe_and_the_schema_defaults_validate():
    validate(OmegaConf.structured(Config))
    for recipe in ("smoke", "fsdd/gru", "speech_commands/gsc35_bigru_attention", "synthetic/digits"):
        validate(compose_config([f"recipe={recipe}", "data.root=/somewhere"]))


def test_builders_that_take_one_section_check_it_with_the_same_rules():
    section = OmegaConf.structured(Config).model
    section.hidden_size = 0
    with pytest.raises(UsageError, match="model.hidden_size=0 is out of range"):
        check_section(section, "model")


# -- item 6: a grid with a failed job fails -------------------------------------------------------

@pytest.mark.slow
def test_a_multirun_with_a_failed_job_exits_non_zero(tmp_path):
    fast = ["recipe=smoke", "trainer.epochs=1", "trainer.limit_train_batches=1", "export.enabled=false"]
    result = speechrnn("train", "-m", *fast, "model.hidden_size=0,8", f"hydra.sweep.dir={tmp_path}",
                       "hydra/launcher=basic", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "model.hidden_size=0 is out of range" in result.stderr
    assert "1 job(s) failed" in result.stderr.strip().splitlines()[-1]
    rows = (tmp_path / "leaderboard.csv").read_text().splitlines()[1:]
    status = {row.split(",")[1].split()[-1]: row.split(",")[2] for row in rows}
    assert status == {"model.hidden_size=8": "complete", "model.hidden_size=0": "failed"}, rows


# -- a trained run for the commands that read one -------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished smoke run with its plain and streaming ONNX exports."""
    run_dir = tmp_path_factory.mktemp("run") / "run"
    fit(compose_config(["recipe=smoke", "trainer.epochs=1", "export.streaming=true"]), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def clip(run) -> Path:
    """One of the run's test recordings."""
    from speechrnn.data import build_splits

    return Path(build_splits(checkpoint.load_model(run)[1].data).test[0].path)


# -- item 4/12: eval ------------------------------------------------------------------------------

@pytest.mark.slow
def test_eval_names_an_unknown_override_with_the_closest_setting(run, tmp_path):
    line = one_line_error(speechrnn("eval", run, "data.rooot=/x", cwd=tmp_path), 2)
    assert line == "speechrnn eval: error: unknown setting data.rooot; did you mean data.root?"


@pytest.mark.slow
def test_eval_prints_the_accuracy_then_says_it_could_not_save_it(run, tmp_path):
    report = run / "eval_test.json"
    report.symlink_to("/dev/full")  # a write that fails as on a full or read-only disk, even as root
    try:
        result = speechrnn("eval", run, cwd=tmp_path)
    finally:
        report.unlink()
    assert result.stdout.startswith("test accuracy: ")
    line = one_line_error(result, 1)
    assert line == (f"speechrnn eval: error: {report}: could not write the report (No space left on "
                    "device); the accuracy above was not saved")


# -- item 12: predict into a full disk, detect's numbers ------------------------------------------

@pytest.mark.slow
def test_predict_into_a_full_disk_says_so_in_one_line(run, clip, tmp_path):
    with open("/dev/full", "w") as full:
        result = speechrnn("predict", run / "model.onnx", clip, cwd=tmp_path, stdout=full)
    assert one_line_error(result, 1) == "speechrnn predict: error: cannot write the output: No space left on device"


@pytest.mark.slow
@pytest.mark.parametrize("option, value", [("--smooth", "nan"), ("--smooth", "inf"), ("--hop", "nan"),
                                           ("--hop", "inf"), ("--threshold", "nan")])
def test_detect_refuses_a_number_that_is_not_finite(run, clip, tmp_path, option, value):
    result = speechrnn("detect", run / "model.onnx", clip, option, value, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"argument {option}: '{value}' is not a finite number")


@pytest.mark.slow
def test_detect_refuses_a_restart_shorter_than_a_frame(run, clip, tmp_path):
    result = speechrnn("detect", run / "model.streaming.onnx", clip, "--restart", "0.00001", cwd=tmp_path)
    assert "restart=1e-05 s (--restart) is shorter than one frame of the model (0.01 s)" in one_line_error(result, 2)


@pytest.mark.slow
def test_detect_refuses_more_threads_than_cores(run, clip, tmp_path):
    result = speechrnn("detect", run / "model.onnx", clip, "--threads", "100000", cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--threads must be 1 to {os.cpu_count()}" in result.stderr


def test_the_runtime_refuses_more_threads_than_cores(tmp_path):
    from speechrnn.runtime import Recognizer

    model = tiny_onnx(tmp_path / "model.onnx", ["yes", "no"])  # any model: no need to train one
    with pytest.raises(UsageError, match=f"threads=100000: use 1 to {os.cpu_count()}"):
        Recognizer(model, threads=100000)


# -- item 12: checkpoints whose config is invalid or does not fit the weights ----------------------

def edited_checkpoint(run: Path, tmp_path: Path, edit) -> Path:
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    edit(state)
    checkpoint.save(state, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.slow
@pytest.mark.parametrize("edit, needle", [
    (lambda s: s["config"]["model"].update(hidden_size=-1), "config is not a valid speechrnn config .*hidden_size=-1"),
    (lambda s: s["config"]["model"].update(hiden_size=8), "config is not a valid speechrnn config .*hiden_size"),
    (lambda s: s["config"].update(model=3), "config is not a valid speechrnn config"),
    (lambda s: s["config"]["optim"].update(lr="fast"), "config is not a valid speechrnn config"),
    (lambda s: s["config"]["model"].update(hidden_size=32), "weights do not match its config .*size mismatch"),
    (lambda s: s["model"].popitem(), "weights do not match its config"),
])
def test_a_checkpoint_that_does_not_describe_its_weights_is_a_speechrnn_error(run, tmp_path, edit, needle):
    with pytest.raises(SpeechRNNError, match=needle):
        checkpoint.load_model(edited_checkpoint(run, tmp_path, edit))


# -- items 4 and 5: sweep storage -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("url, needle", [
    ("postgres://me:secret@127.0.0.1:1/db", "sweep.storage=postgres://me@127.0.0.1:1/db: cannot use the database (connection"),
    ("postgresql://me:secret@127.0.0.1:1/db", "sweep.storage=postgresql://me@127.0.0.1:1/db: cannot use the database (connection"),
    ("not a url", "not a database URL"),
])
def test_sweep_storage_errors_are_one_line_without_the_password(tmp_path, url, needle):
    result = speechrnn("sweep", "sweep=smoke", f"sweep.dir={tmp_path}", f"sweep.storage={url}", cwd=tmp_path)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("[")]  # log lines
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and needle in lines[0], lines
    assert "secret" not in result.stderr + (tmp_path / sweep.STUDY_FILE).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_the_documented_postgresql_url_reaches_the_server(postgres_url, tmp_path, scheme):
    url = postgres_url.replace("postgresql+psycopg2", scheme)  # postgresql://postgres@127.0.0.1:PORT/postgres
    cfg = sweep.load_sweep(["sweep=smoke", f"sweep.dir={tmp_path}", f"sweep.storage={url}"])
    sweep.load_study(cfg.sweep, tmp_path).set_user_attr("written_through", url)
    assert optuna.load_study(study_name="smoke", storage=postgres_url).user_attrs == {"written_through": url}
