"""What `speechrnn sweep` prints and writes: rounded values on screen and exact ones in
best.json, whose command trains the winner on its own; one log format; no parameter plots drawn
from too few trials."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution

from speechrnn import sweep
from speechrnn.config import compose_config

LR = 0.0012337892345678


def study_with(completed: int) -> optuna.Study:
    """An in-memory study with ``completed`` finished trials over two parameters."""
    study = optuna.create_study(direction="maximize")
    distributions = {"optim.lr": FloatDistribution(1e-4, 1e-1, log=True),
                     "model.cell": CategoricalDistribution(["rnn", "gru"])}
    for i in range(completed):
        params = {"optim.lr": LR * (i + 1), "model.cell": ["rnn", "gru"][i % 2]}
        overrides = [f"{k}={v}" for k, v in params.items()]
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, value=0.5 + i / 100,
            user_attrs={"overrides": overrides, "run_dir": f"trial_{i:04d}", "test_accuracy": 0.4,
                        "train_overrides": ["recipe=smoke", "trainer.epochs=1", *overrides]}))
    return study


@pytest.mark.parametrize("completed,drawn", [
    (4, ["optimization_history"]),
    (5, ["optimization_history", "param_importances", "parallel_coordinate"]),
])
def test_parameter_plots_need_five_completed_trials(tmp_path, completed, drawn):
    (tmp_path / "param_importances.png").write_bytes(b"from an earlier report")
    written = sweep.save_plots(study_with(completed), tmp_path)
    assert [p.stem for p in written] == drawn
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == sorted(drawn)


def test_printed_values_are_rounded_and_best_json_is_exact(tmp_path):
    text = sweep.report(study_with(2), tmp_path)
    best = json.loads((tmp_path / "best.json").read_text())
    exact = f"optim.lr={LR * 2}"
    assert best["overrides"] == [exact, "model.cell=gru"] and best["params"]["optim.lr"] == LR * 2
    assert best["train_overrides"] == ["recipe=smoke", "trainer.epochs=1", exact, "model.cell=gru"]
    assert best["command"] == f"speechrnn train recipe=smoke trainer.epochs=1 {exact} model.cell=gru"
    assert "best overrides: optim.lr=0.002468 model.cell=gru (exact values" in text
    assert "`optim.lr=0.001234 model.cell=rnn`" in (tmp_path / "leaderboard.md").read_text()
    assert str(LR) not in text and str(LR * 2) not in text


def test_standalone_overrides_carry_the_recipe_and_the_space_settings():
    overrides = sweep.standalone_overrides(["sweep=fsdd_gru", "data.root=/d", "sweep.trials=3",
                                            "trainer.epochs=2"])
    assert overrides == ["recipe=fsdd/gru", "trainer.epochs=20", "trainer.progress=false",
                         "export.enabled=false", "data.root=/d", "trainer.epochs=2"]
    # Later values win in place: what a trial adds replaces what came before.
    assert sweep.merged(overrides, ["trainer.epochs=5"])[1] == "trainer.epochs=5"
    plain = OmegaConf.to_container(compose_config(sweep.merged(overrides)), resolve=True)
    in_sweep = OmegaConf.to_container(compose_config(["sweep=fsdd_gru", "data.root=/d",
                                                      "trainer.epochs=2"]), resolve=True)
    assert plain.pop("sweep") is None and in_sweep.pop("sweep")["name"] == "fsdd_gru"
    assert plain == in_sweep


OPTUNA_FORMAT = re.compile(r"^\[[IWE] \d{4}-\d\d-\d\d")
OUR_FORMAT = re.compile(r"^\[[\d\- :,]+\]\[w0\]\[[\w.]+\]\[(INFO|WARNING|ERROR)\] - ")


@pytest.mark.slow
def test_a_sweep_logs_in_one_format_and_its_best_trains_alone(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "sweep", "sweep=smoke", "sweep.trials=2",
         "sweep.pruner.name=none", "trainer.epochs=1", f"sweep.dir={sweep_dir}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert logged and not [line for line in logged if OPTUNA_FORMAT.match(line)]
    assert [line for line in logged if not OUR_FORMAT.match(line)] == []
    finished = [line for line in logged if re.search(r"trial \d finished: val/acc \d\.\d{4}$", line)]
    assert len(finished) == 2

    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["train_overrides"][:3] == ["recipe=smoke", "export.enabled=false", "trainer.epochs=1"]
    alone = tmp_path / "alone"
    rerun = subprocess.run([sys.executable, "-m", "speechrnn", "train", *best["train_overrides"],
                            f"hydra.run.dir={alone}"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trial_config = OmegaConf.to_container(OmegaConf.load(Path(best["run_dir"]) / "config.yaml"))
    alone_config = OmegaConf.to_container(OmegaConf.load(alone / "config.yaml"))
    assert trial_config.pop("sweep")["name"] == "smoke" and alone_config.pop("sweep") is None
    assert alone_config == trial_config
    summary = json.loads((alone / "summary.json").read_text())
    assert summary["val_accuracy"] == best["val_accuracy"]
