"""Hydra composition: every recipe and every group option composes; mistakes fail early and clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from speechrnn.config import CONF_DIR

RECIPES = sorted(
    str(p.relative_to(CONF_DIR / "recipe").with_suffix(""))
    for p in (CONF_DIR / "recipe").rglob("*.yaml")
)
GROUP_OPTIONS = sorted(
    (group.name, option.stem)
    for group in CONF_DIR.iterdir()
    if group.is_dir() and group.name not in ("recipe", "sweep")
    for option in group.glob("*.yaml")
)


def compose_config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_the_required_recipes_exist():
    required = {"synthetic/gru", "fsdd/gru", "fsdd/lstm", "fsdd/rnn", "speech_commands/gsc12_gru",
                "speech_commands/gsc35_bigru_attention", "smoke"}
    assert required <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_and_starts_with_its_command(recipe):
    cfg = compose_config(f"recipe={recipe}")
    assert cfg.trainer.epochs >= 1
    text = (CONF_DIR / "recipe" / f"{recipe}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "speechrnn train" in text.split("defaults:")[0], "the comment block gives the command"


@pytest.mark.parametrize("recipe", RECIPES)
def test_no_recipe_builds_in_a_relative_data_path(recipe):
    """A relative path would be read from wherever the command runs: recipes leave data
    folders to the command line (or build in an absolute path)."""
    cfg = compose_config(f"recipe={recipe}")
    for section in ("data", "augment"):
        for key, value in OmegaConf.to_container(cfg[section]).items():
            if key.endswith(("root", "_dir")):
                assert value in (None, "???") or Path(value).is_absolute(), f"{section}.{key}: {value}"


def test_compare_cells_reads_its_data_from_any_folder(fsdd_root, noise_root, tmp_path, monkeypatch):
    from speechrnn.config import compose_config as checked_config
    from speechrnn.data import build_datasets, build_splits
    from speechrnn.errors import SpeechRNNError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpeechRNNError, match=r"^data\.root is not set .*; add data\.root=<folder>"):
        build_splits(checked_config(["recipe=compare/cells"]).data)
    cfg = checked_config(["recipe=compare/cells", f"data.root={fsdd_root}",
                          f"augment.noise_dir={noise_root}", "data.probe_delay_seconds=0.5"])
    splits = build_splits(cfg.data)
    assert splits.labels == [str(d) for d in range(10)] and len(splits.train) > 1000
    wave, _ = build_datasets(cfg.data, cfg.augment, splits)["val"][0]  # the word, then noise from augment.noise_dir
    assert len(wave) == 1.5 * cfg.data.sample_rate


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_composes(group, option):
    cfg = compose_config(f"{group}={option}", "recipe=smoke")
    assert OmegaConf.select(cfg, group) is not None


def test_default_is_the_synthetic_gru_recipe():
    cfg = compose_config()
    assert cfg.data.source == "synthetic"
    assert cfg.model.cell == "gru"
    assert list(cfg.data.words)[:2] == ["yes", "no"], "YAML must not read yes/no as booleans"


def test_a_recipe_changes_the_groups_it_overrides():
    cfg = compose_config("recipe=fsdd/lstm", "data.root=/somewhere")
    assert cfg.data.source == "fsdd" and cfg.model.cell == "lstm"


def test_bad_value_lists_the_valid_choices():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("model.cell=transformer")
    message = str(info.value) + str(info.value.__cause__)
    assert "rnn" in message and "lstm" in message and "gru" in message


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="hiden_size"):
        compose_config("model.hiden_size=3")


def test_unknown_group_option_lists_the_options():
    with pytest.raises(Exception) as info:
        compose_config("model=transformer")
    assert "gru" in str(info.value) and "lstm" in str(info.value)


@pytest.mark.slow
def test_train_cli_reports_a_typo_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "train", "model.cell=transformer", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "transformer" in result.stderr and "gru" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_cli_names_a_missing_data_root(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "train", "recipe=fsdd/gru", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "data.root" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_slurm_ddp_launcher_composes_over_the_submitit_plugin():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm_ddp", "hydra.launcher.nodes=2",
                                           "hydra.launcher.tasks_per_node=4", "recipe=fsdd/gru"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    # One GPU a task unless set otherwise.
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)
    assert launcher.partition is None and cfg.model.pooling == "attention"
