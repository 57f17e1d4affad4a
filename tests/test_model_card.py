"""The model card: written into every export from the run's config and summary.json, read back
by `speechrnn info` without torch, optional for running a model but refused when garbled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from omegaconf import OmegaConf

from speechrnn import card as model_card
from speechrnn.config import ExportConfig, compose_config
from speechrnn.errors import SpeechRNNError
from speechrnn.export import export_run
from speechrnn.runtime import Recognizer
from helpers import BLOCK_TORCH, REPO


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def rewrite_card(source: Path, target: Path, value: str | None) -> Path:
    """A copy of an exported file whose model_card is replaced, or removed (None)."""
    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props if p.key != model_card.KEY}
    if value is not None:
        props[model_card.KEY] = value
    del proto.metadata_props[:]
    for key, val in props.items():
        proto.metadata_props.add(key=key, value=val)
    onnx.save(proto, str(target))
    return target


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real smoke run, trained and exported by the CLI."""
    out = tmp_path_factory.mktemp("card") / "run"
    result = subprocess.run([sys.executable, "-m", "speechrnn", "train", "recipe=smoke",
                             f"hydra.run.dir={out}"], capture_output=True, text=True, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_every_export_carries_the_runs_card(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    card = json.loads(metadata(run_dir / "model.onnx")[model_card.KEY])
    assert card["labels"] == summary["labels"] == ["yes", "no", "up", "_silence_", "_unknown_"]
    assert (card["sample_rate"], card["clip_seconds"]) == (16000, 1.0)
    assert card["training_data"]["source"] == "synthetic"
    assert card["training_data"]["words"] == ["yes", "no", "up"]
    assert card["training_data"]["clips"] == summary["clips"]
    assert card["test_accuracy"] == {"value": summary["test_accuracy"],
                                     "split": "the test split of synthetic",
                                     "clips": summary["clips"]["test"]}
    assert card["overrides"] == ["recipe=smoke"]
    limits = " ".join(card["limits"])
    assert "synthetic espeak-ng voices" in limits and "accuracy on real voices is not measured" in limits
    assert f"from {summary['clips']['test']} clips only" in limits
    assert "other words should come out as _unknown_" in limits
    assert "int8" not in limits
    # The plain metadata key agrees with the card.
    assert json.loads(metadata(run_dir / "model.onnx")["test_accuracy"]) == summary["test_accuracy"]


@pytest.mark.slow
def test_info_prints_the_card_without_torch(run_dir):
    model = run_dir / "model.onnx"
    summary = json.loads((run_dir / "summary.json").read_text())
    script = BLOCK_TORCH + textwrap.dedent(f"""
        from speechrnn import cli
        code = cli.main(["info", {str(model)!r}])
        code += cli.main(["info", {str(model)!r}, "--format", "json"])
        assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
        sys.exit(code)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    text, _, as_json = result.stdout.partition("\n{")
    lines = text.splitlines()
    clips = summary["clips"]
    assert lines[0] == f"{model}: speechrnn model (fp32, clip model), written by speechrnn 0.1.0"
    assert "input: mono audio at 16000 Hz, trained on 1 s clips (16000 samples)" in lines
    assert "labels (5): yes, no, up, _silence_, _unknown_" in lines
    assert "model: gru, hidden size 16, 1 layer, mean pooling" in lines
    assert (f"training data: synthetic ({clips['train']} train / {clips['val']} val / "
            f"{clips['test']} test clips)") in lines
    assert "trained with: speechrnn train recipe=smoke" in lines
    assert (f"test accuracy: {summary['test_accuracy']:.2%} on the test split of synthetic, "
            f"{clips['test']} clips") in lines
    limits = lines[lines.index("known limits:") + 1:]
    card = json.loads(metadata(model)[model_card.KEY])
    assert limits == [f"  - {limit}" for limit in card["limits"]]
    shown = json.loads("{" + as_json)
    assert shown["card"] == card and shown["labels"] == card["labels"]


@pytest.mark.slow
def test_an_int8_export_says_whose_accuracy_it_reports(run_dir, tmp_path):
    path = export_run(run_dir, ExportConfig(quantize="int8"), tmp_path / "model.int8.onnx")
    card = json.loads(metadata(path)[model_card.KEY])
    assert any("int8 weights: the test accuracy was measured with the fp32 checkpoint" in limit
               for limit in card["limits"])


@pytest.mark.slow
def test_a_checkpoint_without_its_run_exports_a_card_without_accuracy(run_dir, tmp_path):
    shutil.copy(run_dir / "checkpoints" / "best.pt", tmp_path / "best.pt")
    card = json.loads(metadata(export_run(tmp_path / "best.pt"))[model_card.KEY])
    assert card["test_accuracy"] is None and card["training_data"]["clips"] == {}
    assert "No test accuracy was recorded (the run had no summary.json)." in card["limits"]


@pytest.mark.slow
def test_a_model_without_a_card_runs_and_info_says_so(run_dir, tmp_path, capsys):
    bare = rewrite_card(run_dir / "model.onnx", tmp_path / "bare.onnx", None)
    clip = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    with_card = Recognizer(run_dir / "model.onnx").predict(clip)
    without = Recognizer(bare)
    assert without.info.card is None
    assert without.predict(clip) == with_card
    assert model_card.main([str(bare)]) == 0
    out = capsys.readouterr().out
    assert "no model card (exported before speechrnn wrote one" in out
    assert "known limits" not in out


@pytest.mark.slow
@pytest.mark.parametrize("value", ["not json", "[1, 2]", '"a card"'])
def test_a_garbled_card_is_refused_naming_the_key(run_dir, tmp_path, value):
    broken = rewrite_card(run_dir / "model.onnx", tmp_path / "garbled.onnx", value)
    with pytest.raises(SpeechRNNError, match=repr(model_card.KEY)):
        Recognizer(broken)


@pytest.mark.slow
def test_control_characters_in_a_card_are_escaped_by_info(run_dir, tmp_path, capsys):
    card = json.loads(metadata(run_dir / "model.onnx")[model_card.KEY])
    card["limits"] = ["\x1b[2Jcleared your screen"]
    hostile = rewrite_card(run_dir / "model.onnx", tmp_path / "hostile.onnx", json.dumps(card))
    model_card.main([str(hostile)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "  - \\x1b[2Jcleared your screen" in out


def plain(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_config(overrides), resolve=True, enum_to_str=True)


def test_a_test_set_from_another_source_is_named_in_the_card():
    config = plain(["recipe=synthetic/digits", "data.test_root=/data/fsdd/recordings"])
    labels = [str(d) for d in range(10)]
    card = model_card.build(config["data"], labels, {"test_accuracy": 0.5, "clips": {"test": 300}},
                            quantize="none")
    assert card["test_accuracy"] == {
        "value": 0.5, "clips": 300,
        "split": "the test split of fsdd at /data/fsdd/recordings (another source than training)"}
    assert ("Trained on synthetic espeak-ng voices, not recordings of people; its test clips "
            "are real.") in card["limits"]
    assert not any("clips only" in limit for limit in card["limits"])
    assert "Knows only its 10 labels; any other word is forced onto one of them, and so is " \
           "silence or noise." in card["limits"]


def test_held_out_speakers_are_named_in_the_split():
    config = plain(["recipe=fsdd/gru", "data.root=/d/fsdd", "data.test_speakers=[george]"])
    assert model_card.test_split(config["data"]) == \
        "the test split of fsdd at /d/fsdd, speakers george held out"
