"""Cross-corpus testing: train/val from one source, the test split of another (data.test_source),
as in recipe=synthetic/digits (espeak-ng digit words -> the real FSDD test split)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from speechrnn.config import CONF_DIR
from speechrnn.data import build_datasets, build_splits
from speechrnn.data.synthetic import DIGIT_WORDS
from speechrnn.errors import SpeechRNNError
from speechrnn.training import fit

FSDD_NAME = re.compile(r"(\d)_(\w+)_(\d+)\.wav")


def digits_config(fsdd_root: Path, synth_root: Path, *overrides: str):
    """The recipe, on a small synthetic render (20 speakers, each says each digit once) of
    espeak-ng voices only: the recipe's neural voices take 10 s to load, and nothing here
    depends on which synthesiser spoke (test_neural renders with them)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[
            "recipe=synthetic/digits", f"data.test_root={fsdd_root}", f"data.root={synth_root}",
            "data.synth.per_word=20", "data.synth.neural_fraction=0", *overrides])


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digits") / "render"


@pytest.fixture(scope="module")
def digits(fsdd_root, synth_root):
    cfg = digits_config(fsdd_root, synth_root)
    return cfg, build_splits(cfg.data)


def test_labels_are_the_digit_words_and_line_up_with_fsdd(digits):
    _, splits = digits
    assert splits.labels == list(DIGIT_WORDS)
    assert len(splits.test) == 300
    for clip in splits.test:
        digit = int(FSDD_NAME.fullmatch(Path(clip.path).name).group(1))
        assert clip.label == DIGIT_WORDS[digit]


def test_the_test_split_is_the_300_fsdd_test_clips(digits, fsdd_root):
    _, splits = digits
    expected = sorted(str(p) for p in fsdd_root.glob("*.wav")
                      if int(FSDD_NAME.fullmatch(p.name).group(3)) < 5)
    assert len(expected) == 300
    assert sorted(clip.path for clip in splits.test) == expected
    assert {clip.speaker for clip in splits.test} == {"george", "jackson", "lucas", "nicolas",
                                                      "theo", "yweweler"}


def test_train_and_val_are_synthetic_only(digits, synth_root, fsdd_root):
    _, splits = digits
    for clips in (splits.train, splits.val):
        assert clips and all(Path(c.path).is_relative_to(synth_root) for c in clips)
        assert {c.label for c in clips} == set(DIGIT_WORDS)
    assert not any(Path(c.path).is_relative_to(fsdd_root) for c in splits.train + splits.val)
    assert splits.noise_dir == str(synth_root / "_background_noise_")  # synthetic noise only


def test_the_test_clips_are_not_augmented_and_read_at_the_training_rate(digits):
    cfg, splits = digits
    datasets = build_datasets(cfg.data, cfg.augment, splits)
    assert datasets["train"].transform is not None and datasets["test"].transform is None
    wave, label = datasets["test"][0]
    assert wave.shape == (16000,) and splits.labels[label] == splits.test[0].label


def test_unmatched_labels_and_a_missing_test_root_are_clear_errors(fsdd_root, synth_root,
                                                                   tiny_synth, digits):
    cfg = digits_config(fsdd_root, tiny_synth, "data.words=[yes,no,up]")  # no digit among them
    with pytest.raises(SpeechRNNError, match="test label '0' .* matches none of the training labels"):
        build_splits(cfg.data)
    cfg = digits_config(fsdd_root, synth_root, "data.test_root=null")
    with pytest.raises(SpeechRNNError, match="data.test_root is not set for data.test_source=fsdd"):
        build_splits(cfg.data)


def test_default_recipe_has_no_cross_corpus_test():
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        default = compose("config")
        recipe = compose("config", overrides=["recipe=synthetic/digits"])
    assert default.data.test_source is None and default.data.test_root is None
    assert recipe.data.test_source == "fsdd" and recipe.data.test_root is None


@pytest.mark.slow
def test_a_short_digits_run_reports_accuracy_on_fsdd(fsdd_root, synth_root, tmp_path):
    cfg = digits_config(fsdd_root, synth_root, "trainer.epochs=1", "model.hidden_size=16",
                        "model.num_layers=1", "data.num_workers=0", "trainer.progress=false",
                        "export.enabled=false")
    summary = fit(cfg, tmp_path / "run")
    assert summary["clips"]["test"] == 300 and summary["labels"] == list(DIGIT_WORDS)
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["clips"]["test"] == 300
