"""Mistakes a user can make on the command line: each is refused before any work is done, in one
line that names the setting and the fix, printed once, without a traceback; usage errors exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from speechrnn.config import Config, check_section, compose_config, validate
from speechrnn.errors import UsageError

FSDD_MISSING = ["recipe=fsdd/gru", "data.root=/nonexistent/fsdd"]


def speechrnn(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    """The single line a refused command printed (on stderr), checked for its exit code."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


# -- item 1/4/12: every setting checked before data is read ---------------------------------------

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
