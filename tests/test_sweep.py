"""Sweeps on the smoke recipe: Optuna search (pruning, resume, parallel workers on a journal file
and on a throwaway PostgreSQL server) and Hydra grids, each with its leaderboard."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from speechrnn import sweep
from speechrnn.errors import SpeechRNNError
from helpers import REPO

# One batch per epoch: the machinery is under test here, not the model.
FAST = ["trainer.epochs=1", "trainer.limit_train_batches=1", "trainer.progress=false", "export.enabled=false"]


def smoke_sweep(sweep_dir: Path, *extra: str) -> list[str]:
    return ["sweep=smoke", f"sweep.dir={sweep_dir}", *FAST, *extra]


def journal_study(sweep_dir: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / sweep.JOURNAL)))
    return optuna.load_study(study_name="smoke", storage=storage)


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechrnn", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "WANDB_MODE": "disabled"}, **kwargs)


def test_search_space_samples_within_its_ranges_and_composes():
    base = ["sweep=fsdd_gru", "data.root=/nowhere"]
    cfg = sweep.load_sweep(base)
    params = cfg.sweep.params
    assert {"model.cell", "model.hidden_size", "model.num_layers", "model.dropout", "model.pooling",
            "optim.lr", "optim.weight_decay"} <= set(params)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(4):
        trial = study.ask()
        trial_cfg = sweep.compose_config([*base, *sweep.sampled_overrides(trial, params)])
        for name, spec in params.items():
            value = OmegaConf.select(trial_cfg, name)
            assert value == trial.params[name]
            if spec.type.value == "categorical":
                assert value in spec.choices
            else:
                assert spec.low <= value <= spec.high
        study.tell(trial, 0.0)


def test_sweep_command_errors_name_the_fix(tmp_path):
    with pytest.raises(SpeechRNNError, match="sweep=<name>"):
        sweep.load_sweep([])
    with pytest.raises(SpeechRNNError, match="fsdd_gru"):
        sweep.load_sweep(["sweep=nope"])
    with pytest.raises(SpeechRNNError, match="model.hidden_size: both searched"):
        sweep.load_sweep(["sweep=smoke", "model.hidden_size=64"])
    with pytest.raises(SpeechRNNError, match="not a sweep dir"):
        sweep.main(["--show", str(tmp_path)])


@pytest.mark.slow
def test_pruning_resume_and_leaderboard(tmp_path, capsys):
    two_epochs = "trainer.epochs=2"
    sweep.main(smoke_sweep(tmp_path, "sweep.trials=2", "sweep.pruner.name=none", two_epochs))
    assert [t.state for t in journal_study(tmp_path).trials] == [TrialState.COMPLETE] * 2
    finished = {n: (tmp_path / f"trial_{n:04d}" / "summary.json").stat().st_mtime_ns for n in (0, 1)}

    # The same command with more trials resumes the study. A threshold no run can reach
    # prunes every new trial after its first epoch.
    sweep.main(smoke_sweep(tmp_path, "sweep.trials=4", "sweep.pruner.name=threshold",
                           "sweep.pruner.lower=1.01", two_epochs))
    study = journal_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] * 2
    for n, mtime in finished.items():  # finished trials are not run again
        assert (tmp_path / f"trial_{n:04d}" / "summary.json").stat().st_mtime_ns == mtime
    for trial in study.trials:
        run_dir = tmp_path / f"trial_{trial.number:04d}"
        config = OmegaConf.load(run_dir / "config.yaml")
        for name, value in trial.params.items():  # the sampled values are what the run trained with
            assert OmegaConf.select(config, name) == value
        assert config.logger.group == "smoke"
        epochs = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                  if r["kind"] == "epoch"]
        if trial.state == TrialState.PRUNED:
            assert len(epochs) == 1 and not (run_dir / "summary.json").exists()
            assert list(trial.intermediate_values) == [1]
        else:
            assert len(epochs) == 2

    rows = read_csv(tmp_path / "leaderboard.csv")
    assert [r["status"] for r in rows] == ["complete"] * 2 + ["pruned"] * 2
    complete_accs = [float(r["val/acc"]) for r in rows[:2]]
    assert complete_accs == sorted(complete_accs, reverse=True)
    for row in rows:
        run_dir = tmp_path / row["run_dir"]
        trial = study.trials[int(row["run_dir"].removeprefix("trial_"))]
        assert row["overrides"] == " ".join(f"{k}={v}" for k, v in trial.params.items())
        if row["status"] == "complete":
            assert float(row["val/acc"]) == summary(run_dir)["val_accuracy"] == trial.value
            assert int(row["parameters"]) == summary(run_dir)["num_parameters"]
        else:
            assert float(row["val/acc"]) == trial.intermediate_values[1]
    # The test split is reported for the winner only.
    winner = tmp_path / rows[0]["run_dir"]
    assert float(rows[0]["test/acc"]) == summary(winner)["test_accuracy"]
    assert all(r["test/acc"] == "" for r in rows[1:])
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["params"] == study.best_trial.params
    assert (tmp_path / "optimization_history.png").stat().st_size > 1000
    # Two completed trials are too few for importances (tests/test_sweep_report.py).
    assert not list(tmp_path.glob("param_importances.png")) + list(tmp_path.glob("parallel_*.png"))

    capsys.readouterr()
    sweep.main(["--show", str(tmp_path)])
    shown = capsys.readouterr().out
    assert (tmp_path / "leaderboard.md").read_text().strip() in shown
    assert f"best: trial {best['trial']}" in shown


@pytest.mark.slow
def test_killed_worker_trial_is_failed_and_retried(tmp_path):
    args = smoke_sweep(tmp_path, "sweep.trials=2", "sweep.pruner.name=none")
    process = subprocess.Popen([sys.executable, "-m", "speechrnn", "sweep", *args], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env={**os.environ, "WANDB_MODE": "disabled"})
    deadline = time.monotonic() + 300
    while not (tmp_path / "trial_0001").exists():  # trial 0 finished, trial 1 started
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = (tmp_path / "trial_0000" / "summary.json").stat().st_mtime_ns
    assert journal_study(tmp_path).trials[1].state == TrialState.RUNNING

    sweep.main(args)
    trials = journal_study(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params
    assert (tmp_path / "trial_0000" / "summary.json").stat().st_mtime_ns == first
    statuses = {r["run_dir"]: r["status"] for r in read_csv(tmp_path / "leaderboard.csv")}
    assert statuses == {"trial_0000": "complete", "trial_0001": "failed", "trial_0002": "complete"}


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_two_workers_share_one_study(storage, tmp_path, request):
    if storage == "postgresql":
        if not os.environ.get("CI"):
            pytest.importorskip("psycopg2")
        url = request.getfixturevalue("postgres_url")
        extra, load = [f"sweep.storage={url}"], lambda: optuna.load_study(study_name="smoke", storage=url)
    else:
        extra, load = [], lambda: journal_study(tmp_path)
    sweep.main(smoke_sweep(tmp_path, "sweep.trials=3", "sweep.workers=2", "sweep.pruner.name=none", *extra))

    finished = [t for t in load().trials if not t.user_attrs.get("surplus")]
    assert [t.state for t in finished] == [TrialState.COMPLETE] * 3
    numbers = [t.number for t in finished]
    assert len(set(numbers)) == 3
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both processes took trials
    rows = read_csv(tmp_path / "leaderboard.csv")
    assert sorted(r["run_dir"] for r in rows) == [f"trial_{n:04d}" for n in sorted(numbers)]
    for row in rows:
        assert float(row["val/acc"]) == summary(tmp_path / row["run_dir"])["val_accuracy"]


@pytest.mark.slow
def test_grid_multirun_writes_its_leaderboard(tmp_path, capsys):
    # Two jobs in parallel through the joblib launcher where it is installed, else one by one.
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401

        extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    except ImportError:
        extra = []
    result = cli("train", "-m", "recipe=smoke", "model.cell=rnn,gru", *FAST, f"hydra.sweep.dir={tmp_path}", *extra)
    assert result.returncode == 0, result.stderr[-3000:]

    rows = read_csv(tmp_path / "leaderboard.csv")
    assert sorted(r["overrides"].split()[1] for r in rows) == ["model.cell=gru", "model.cell=rnn"]
    accs = [float(r["val/acc"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    for row in rows:
        run = summary(tmp_path / row["run_dir"])
        assert float(row["val/acc"]) == run["val_accuracy"] and float(row["test/acc"]) == run["test_accuracy"]
        assert int(row["parameters"]) == run["num_parameters"]
        cell = OmegaConf.load(tmp_path / row["run_dir"] / "config.yaml").model.cell
        assert f"model.cell={cell}" in row["overrides"]
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert markdown.strip() in result.stdout

    (tmp_path / "leaderboard.md").unlink()
    sweep.main(["--show", str(tmp_path)])
    assert capsys.readouterr().out.strip() == markdown.strip()
    assert (tmp_path / "leaderboard.md").read_text() == markdown
