"""Files from strangers: checkpoints never run code, ONNX files that are not speechrnn models or
carry broken metadata are refused naming the key, a model's sample rate is honoured by
resampling, and manifests cannot reach outside data.root."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from onnx import TensorProto, helper

from helpers import tiny_onnx
from speechrnn import audio, checkpoint, cli
from speechrnn.config import CONF_DIR
from speechrnn.data import build_splits
from speechrnn.errors import SpeechRNNError
from speechrnn.runtime import OPTIONAL_KEYS, ModelOutputError, Recognizer

LABELS = ["zero", "one", "two"]


# --- checkpoints -------------------------------------------------------------------------------

class CreatesAFile:
    """Unpickling this calls open(marker, "w"): code run by merely loading the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "legacy torch.save", "plain pickle"])
def test_a_checkpoint_carrying_pickled_code_is_refused_and_never_run(tmp_path, writer):
    import pickle

    marker = tmp_path / "pwned"
    state = {"model": CreatesAFile(marker), "config": {}, "labels": LABELS, "epoch": 1}
    path = tmp_path / "checkpoints" / "best.pt"
    path.parent.mkdir()
    if writer == "plain pickle":
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=writer == "torch.save")
    assert not marker.exists()

    for load in (lambda: checkpoint.load(path), lambda: checkpoint.load_model(tmp_path)):
        with pytest.raises(SpeechRNNError, match="refused to load") as caught:
            load()
        message = str(caught.value)
        assert str(path) in message and "not safe to open" in message
        assert "weights_only` set to `False`" not in message, "never advise the unsafe load"
        assert not marker.exists(), "loading the checkpoint ran its code"
    if writer != "plain pickle":
        assert "open" in message, "the message names what was refused"


def test_a_truncated_checkpoint_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save({"model": {"w": torch.ones(64, 64)}, "config": {}, "labels": LABELS}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SpeechRNNError, match="not a readable checkpoint"):
        checkpoint.load(path)


# --- ONNX files --------------------------------------------------------------------------------

# Untrained models; without the input LayerNorm their outputs follow the input closely enough
# to tell a right sample rate from a wrong one.
@pytest.fixture(scope="module")
def model_16k(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m16") / "model.onnx", LABELS, "model.input_norm=false")


@pytest.fixture(scope="module")
def model_8k(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("m8") / "model.onnx", LABELS, "data.sample_rate=8000",
                      "model.input_norm=false")


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of an ONNX file with metadata keys replaced (a str) or removed (None)."""
    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(changes)
    del proto.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    return target


def test_an_onnx_file_that_is_not_a_speechrnn_model_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(SpeechRNNError, match="not a speechrnn model") as caught:
        Recognizer(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_onnx_at_all_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00garbage, not a protobuf" * 10)
    with pytest.raises(SpeechRNNError, match="not a loadable ONNX model"):
        Recognizer(path)


def test_every_metadata_key_is_required_and_named_when_missing(model_16k, tmp_path):
    # The model card is documentation a model may lack (tests/test_model_card.py).
    keys = sorted(set(metadata(model_16k)) - OPTIONAL_KEYS)
    assert {"labels", "sample_rate"} <= set(keys)
    for key in keys:
        broken = with_metadata(model_16k, tmp_path / f"without_{key}.onnx", **{key: None})
        with pytest.raises(SpeechRNNError, match=repr(key)):
            Recognizer(broken)


def test_a_file_from_before_streaming_training_runs_as_trained_on_clips(model_16k, tmp_path):
    older = with_metadata(model_16k, tmp_path / "older.onnx", stream_training=None)
    assert "stream_training" in metadata(model_16k) and "stream_training" not in metadata(older)
    assert Recognizer(older).info.stream_training is None


@pytest.mark.parametrize("key,value", [
    ("labels", "zero, one, two"),  # not JSON
    ("labels", '"zero"'),  # JSON, not a list
    ("labels", '["zero"]'),  # one class
    ("labels", "[1, 2, 3]"),  # not strings
    ("sample_rate", "sixteen thousand"),
    ("sample_rate", "16000.5"),
    ("sample_rate", "-16000"),
    ("sample_rate", "true"),
    ("clip_samples", "0"),
    # Out of range: a rate outside DataConfig.sample_rate's 1-384 kHz, a clip shorter than one
    # MFCC window (241 samples with n_fft=512, win_length=480) or longer than 60 s, labels that
    # would write escape sequences or line breaks to the terminal.
    ("sample_rate", "999"),
    ("sample_rate", "384001"),
    ("sample_rate", "1000000000000"),
    ("clip_samples", "1"),
    ("clip_samples", "240"),
    ("clip_samples", str(60 * 16000 + 1)),
    ("clip_samples", "1000000000"),
    ("features", '{"n_fft": 512}'),
    ("labels", '["zero", "\\u001b[2J\\u001b[31mone", "two"]'),
    ("labels", '["zero", "one\\nfake row", "two"]'),
    ("labels", '["zero", "", "two"]'),
])
def test_garbled_metadata_is_refused_naming_the_key(model_16k, tmp_path, key, value):
    broken = with_metadata(model_16k, tmp_path / "garbled.onnx", **{key: value})
    with pytest.raises(SpeechRNNError, match=repr(key)) as caught:
        Recognizer(broken)
    assert str(broken) in str(caught.value)


@pytest.mark.parametrize("key,value", [("sample_rate", "1000"), ("sample_rate", "384000"),
                                       ("clip_samples", "241"), ("clip_samples", str(60 * 16000))])
def test_metadata_at_the_ends_of_its_ranges_runs(model_16k, tmp_path, key, value):
    recognizer = Recognizer(with_metadata(model_16k, tmp_path / "edge.onnx", **{key: value}))
    assert recognizer.predict(np.zeros(1600, np.float32), 16000).label in LABELS


@pytest.mark.parametrize("rate", [0, -16000, 1, 999, 768_001, float("nan"), float("inf"), True,
                                  "16000"])
def test_the_sample_rate_of_an_array_is_checked(model_16k, rate):
    recognizer = Recognizer(model_16k)
    with pytest.raises(SpeechRNNError, match="sample_rate=") as caught:
        recognizer.predict(np.zeros(1600, np.float32), sample_rate=rate)
    assert "None: the model's rate, 16000 Hz" in str(caught.value)


def test_an_array_without_a_sample_rate_is_at_the_models(model_16k):
    recognizer = Recognizer(model_16k)
    clip = audio.fix_length(np.sin(np.arange(8000, dtype=np.float32) / 3), 16000)
    assert recognizer.predict(clip, top_k=3) == recognizer.predict(clip, 16000, top_k=3)


def with_probs(source: Path, target: Path, *nodes) -> Path:
    """A copy of an ONNX model whose ``probs`` output is what ``nodes`` make of the model's own
    probabilities (renamed ``probs_raw``), its shape left for onnxruntime to infer."""
    proto = onnx.load(str(source))
    for node in proto.graph.node:
        node.output[:] = ["probs_raw" if name == "probs" else name for name in node.output]
    proto.graph.node.extend(nodes)
    next(o for o in proto.graph.output if o.name == "probs").type.tensor_type.ClearField("shape")
    onnx.save(proto, str(target))
    return target


def test_a_graph_scoring_another_number_of_labels_is_refused_when_opened(model_16k, tmp_path):
    doubled = with_probs(model_16k, tmp_path / "doubled.onnx",
                         helper.make_node("Concat", ["probs_raw", "probs_raw"], ["probs"], axis=1))
    with pytest.raises(SpeechRNNError, match="lists 3 labels but the model scores 6") as caught:
        Recognizer(doubled)
    assert str(doubled) in str(caught.value)


def test_a_graph_whose_width_shows_only_when_run_is_refused_when_run(model_16k, tmp_path):
    """probs tiled by a count computed from the input: onnxruntime cannot tell the width."""
    tiled = with_probs(model_16k, tmp_path / "tiled.onnx",
                       helper.make_node("Shape", ["audio"], ["n"], start=1, end=2),
                       helper.make_node("Div", ["n", "n"], ["one"]),
                       helper.make_node("Add", ["one", "one"], ["two"]),
                       helper.make_node("Concat", ["one", "two"], ["repeats"], axis=0),
                       helper.make_node("Tile", ["probs_raw", "repeats"], ["probs"]))
    recognizer = Recognizer(tiled)
    with pytest.raises(SpeechRNNError, match="lists 3 labels but the model scores 6") as caught:
        recognizer.predict(np.zeros(1600, np.float32))
    assert str(tiled) in str(caught.value)


@pytest.fixture(scope="module")
def nan_on_silence(model_16k, tmp_path_factory) -> Path:
    """The model with its probabilities multiplied by max|audio| / max|audio|: NaN for silence."""
    return with_probs(model_16k, tmp_path_factory.mktemp("nan") / "model.onnx",
                      helper.make_node("Abs", ["audio"], ["magnitude"]),
                      helper.make_node("ReduceMax", ["magnitude"], ["peak"], axes=[1], keepdims=1),
                      helper.make_node("Div", ["peak", "peak"], ["one_or_nan"]),
                      helper.make_node("Mul", ["probs_raw", "one_or_nan"], ["probs"]))


def test_nan_scores_are_an_error_not_a_prediction(nan_on_silence):
    recognizer = Recognizer(nan_on_silence)
    assert recognizer.predict(np.full(1600, 0.1, np.float32)).label in LABELS
    with pytest.raises(ModelOutputError, match="NaN or infinite") as caught:
        recognizer.predict(np.zeros(1600, np.float32))
    assert str(nan_on_silence) in str(caught.value)


def test_predict_and_detect_report_nan_scores_in_the_files_row(nan_on_silence, tmp_path, capsys):
    silent, tone = tmp_path / "silent.wav", tmp_path / "tone.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    sf.write(tone, 0.1 * np.sin(np.arange(16000, dtype=np.float32) / 3), 16000)

    code = cli.main(["predict", str(nan_on_silence), str(silent), str(tone), "--format", "json",
                     "--threads", "1"])
    rows = {row["path"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert "NaN or infinite" in rows[str(silent)]["error"] and "label" not in rows[str(silent)]
    assert rows[str(tone)]["label"] in LABELS and "error" not in rows[str(tone)]

    code = cli.main(["detect", str(nan_on_silence), str(silent), str(tone), "--threads", "1"])
    _, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert f"error: {silent}: {nan_on_silence}: the model's scores are NaN" in err
    assert f"in {tone}" in err  # the next file still ran


def fsdd_clip(fsdd_root: Path) -> tuple[np.ndarray, int]:
    samples, rate = audio.read(fsdd_root / "3_theo_0.wav")
    assert rate == 8000
    return samples, rate


def test_input_at_another_rate_than_the_model_is_resampled(model_8k, model_16k, fsdd_root, tmp_path):
    clip8, _ = fsdd_clip(fsdd_root)
    clip16 = audio.resample(clip8, 8000, 16000)
    sf.write(tmp_path / "at8k.wav", clip8, 8000, subtype="FLOAT")
    sf.write(tmp_path / "at16k.wav", clip16, 16000, subtype="FLOAT")
    for model in (model_8k, model_16k):
        recognizer = Recognizer(model)
        files = recognizer.predict_batch([tmp_path / "at8k.wav", tmp_path / "at16k.wav"], top_k=3)
        arrays = [recognizer.predict(clip8, 8000, top_k=3), recognizer.predict(clip16, 16000, top_k=3)]
        probs = [dict(p.top_k) for p in files + arrays]
        for other in probs[1:]:
            assert max(abs(other[k] - probs[0][k]) for k in LABELS) < 0.02
        # Declaring the wrong rate changes the model's input: the rate is used, not ignored.
        # (Compared on the input: a model this small may score both inputs alike.)
        right, wrong = recognizer.prepare(clip16, 16000), recognizer.prepare(clip16, 8000)
        assert np.abs(wrong - right).max() > 0.1 * np.abs(right).max()


# --- manifests ---------------------------------------------------------------------------------

def folder_config(root: Path, manifest: Path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["recipe=smoke", "data=folder", f"data.root={root}",
                                           f"data.train_manifest={manifest}"])
    return cfg.data


@pytest.mark.parametrize("escape", ["../../etc/passwd", "/etc/passwd", "yes/../../outside.wav",
                                    "./../root_sibling.wav"])
def test_manifest_paths_escaping_the_data_root_are_rejected(tmp_path, escape):
    root = tmp_path / "root"
    (root / "yes").mkdir(parents=True)
    sf.write(root / "yes" / "a.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "outside.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "root_sibling.wav", np.zeros(1600, np.float32), 16000)
    manifest = tmp_path / "train.csv"
    manifest.write_text(f"path,label\nyes/a.wav,yes\n{escape},no\n")
    with pytest.raises(SpeechRNNError, match="outside data.root") as caught:
        build_splits(folder_config(root, manifest))
    assert escape in str(caught.value) and "line 3" in str(caught.value)


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_manifest_path_through_a_symlink_out_of_the_data_root_is_rejected(tmp_path, link):
    """Lexically inside data.root, really outside: a symbolic link in the root to a file (or a
    folder) elsewhere is refused, naming the line, the path and where it leads."""
    root, outside = tmp_path / "root", tmp_path / "secret"
    (root / "yes").mkdir(parents=True)
    outside.mkdir()
    sf.write(root / "yes" / "a.wav", np.zeros(1600, np.float32), 16000)
    sf.write(outside / "b.wav", np.zeros(1600, np.float32), 16000)
    if link == "file":
        (root / "yes" / "b.wav").symlink_to(outside / "b.wav")
        rel = "yes/b.wav"
    else:
        (root / "no").symlink_to(outside, target_is_directory=True)
        rel = "no/b.wav"
    manifest = tmp_path / "train.csv"
    manifest.write_text(f"path,label\nyes/a.wav,yes\n{rel},no\n")
    with pytest.raises(SpeechRNNError, match="outside data.root") as caught:
        build_splits(folder_config(root, manifest))
    message = str(caught.value)
    assert f"{manifest}, line 3: {rel!r} is a symbolic link" in message
    assert str(outside / "b.wav") in message


def write_label_folders(root: Path) -> Path:
    """root/yes and root/no, four short silent WAVs each (0.wav to 3.wav)."""
    for label in ("yes", "no"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            sf.write(root / label / f"{i}.wav", np.zeros(1600, np.float32), 16000)
    return root


def test_symlinks_that_stay_inside_the_data_root_are_followed(tmp_path):
    """A link to a file elsewhere in the root, and a data.root that is itself a link, are fine."""
    real_root = write_label_folders(tmp_path / "real")
    (real_root / "unlisted").mkdir()
    sf.write(real_root / "unlisted" / "x.wav", np.zeros(1600, np.float32), 16000)
    (real_root / "no" / "alias.wav").symlink_to(real_root / "unlisted" / "x.wav")
    root = tmp_path / "root"
    root.symlink_to(real_root, target_is_directory=True)
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,label\n" + "".join(f"{l}/{i}.wav,{l}\n" for l in ("yes", "no")
                                                 for i in range(4)) + "no/alias.wav,no\n")
    splits = build_splits(folder_config(root, manifest))
    assert sorted(Path(c.path).name for _, clips in splits.items() for c in clips) == \
        sorted(["alias.wav"] + [f"{i}.wav" for i in range(4)] * 2)


def test_a_manifest_inside_the_root_still_works(tmp_path):
    root = write_label_folders(tmp_path / "root")
    manifest = tmp_path / "train.csv"
    manifest.write_text("path,label\n" + "".join(f"{l}/{i}.wav,{l}\n" for l in ("yes", "no")
                                                 for i in range(4)))
    splits = build_splits(folder_config(root, manifest))
    assert splits.labels == ["no", "yes"]
    assert sum(len(c) for _, c in splits.items()) == 8
    assert all(Path(c.path).is_relative_to(root) for _, clips in splits.items() for c in clips)
