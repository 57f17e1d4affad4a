"""The torch-free runtime: metadata contract, input preparation, parity with the PyTorch model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from speechrnn import audio
from speechrnn.errors import AudioError, SpeechRNNError
from speechrnn.export import export_model
from speechrnn.runtime import Recognizer, StreamingRecognizer
from helpers import BLOCK_TORCH, LABELS, REPO, SAMPLE_RATE, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny GRU classifier of 0.75 s clips and its ONNX export."""
    model, cfg = tiny_model("data.clip_seconds=0.75")
    path = export_model(model, cfg.data, tmp_path_factory.mktemp("model") / "model.onnx")
    return model, path


@pytest.fixture(scope="module")
def recognizer(exported):
    return Recognizer(exported[1], threads=1)


@pytest.fixture(scope="module")
def files(fsdd_root):
    return sorted(fsdd_root.glob("*_jackson_1*.wav"))[:6]


def torch_probs(model, clips: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(clips)), dim=-1).numpy()


# The torch-free side of the package: what `pip install speechrnn` (no extras) runs.
RUNTIME_MODULES = ("audio", "card", "cli", "detect", "errors", "labels", "listen", "predict", "runtime")


def test_runtime_modules_import_without_torch():
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import importlib
        for name in {RUNTIME_MODULES!r}:
            importlib.import_module("speechrnn." + name)
        assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_runtime_and_predict_work_without_torch(exported, files, tmp_path):
    model, path = exported
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import io, json, contextlib
        from speechrnn.runtime import Recognizer
        from speechrnn import cli
        recognizer = Recognizer({str(path)!r}, threads=1)
        files = {[str(f) for f in files]!r}
        single = recognizer.predict(files[0], top_k=2)
        batch = recognizer.predict_batch(files, top_k=len(recognizer.labels))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(["predict", {str(path)!r}, *files, "--format", "json"])
        assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
        print(json.dumps({{"single": single.to_dict(), "batch": [p.to_dict() for p in batch],
                          "cli": json.loads(out.getvalue()), "code": code}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)

    # The same answers as the PyTorch model on clips prepared the way training prepares them.
    clips = np.stack([audio.load(f, SAMPLE_RATE, round(0.75 * SAMPLE_RATE)) for f in files])
    want = torch_probs(model, clips)
    assert got["code"] == 0
    assert got["single"]["label"] == LABELS[want[0].argmax()]
    assert len(got["single"]["top_k"]) == 2
    assert len(got["batch"]) == len(got["cli"]) == len(want) == len(files) > 1
    for row, probs, cli_row, path in zip(got["batch"], want, got["cli"], files):
        by_label = dict(row["top_k"])
        np.testing.assert_allclose([by_label[label] for label in LABELS], probs, atol=1e-4)
        assert row["label"] == LABELS[probs.argmax()] == cli_row["label"]
        assert cli_row["path"] == str(path)


def test_metadata_is_read(recognizer):
    info = recognizer.info
    assert info.labels == recognizer.labels == LABELS
    assert info.sample_rate == SAMPLE_RATE and info.clip_samples == 12000
    assert info.model["cell"] == "gru" and info.features["hop_length"] == 160
    assert info.test_accuracy is None and info.quantize == "none" and not info.streaming


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of ``source`` with metadata keys changed (a value of None removes the key)."""
    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        props.pop(key) if value is None else props.__setitem__(key, value)
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    return target


@pytest.mark.parametrize("changes,needle", [
    ({"speechrnn_format": None}, "not a speechrnn model \\(no 'speechrnn_format'"),
    ({"speechrnn_format": "one"}, "'speechrnn_format' is not valid JSON"),
    ({"speechrnn_format": "2"}, "upgrade speechrnn"),
    ({"labels": "[\"yes\", "}, "'labels' is not valid JSON"),
    ({"labels": "[\"only\"]"}, "'labels' must be a JSON list of at least 2 strings"),
    ({"sample_rate": "0"}, "'sample_rate' is 0, outside 1000 to 384000"),
    ({"clip_samples": "true"}, "'clip_samples' has the wrong type"),
    ({"features": None}, "'features' is missing"),
    ({"labels": json.dumps(LABELS + ["extra"])}, "'labels' lists 5 labels but the model scores 4"),
    ({"streaming": "1"}, "'streaming' has the wrong type"),
])
def test_garbled_metadata_is_refused_naming_the_key(exported, tmp_path, changes, needle):
    path = _with_metadata(exported[1], tmp_path / "bad.onnx", **changes)
    with pytest.raises(SpeechRNNError, match=needle) as err:
        Recognizer(path)
    assert str(path) in str(err.value)


def test_files_that_are_not_speechrnn_models_are_refused(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(plain))
    with pytest.raises(SpeechRNNError, match="not a speechrnn model"):
        Recognizer(plain)
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(SpeechRNNError, match="not a loadable ONNX model"):
        Recognizer(text)
    with pytest.raises(SpeechRNNError, match="model file not found"):
        Recognizer(tmp_path / "missing.onnx")


def test_inputs_are_resampled_mixed_down_and_fitted_to_the_clip(recognizer, files):
    samples, rate = audio.read(files[0])
    assert rate == 8000  # FSDD; the model runs at 16 kHz
    from_file = recognizer.predict(files[0], top_k=4)
    from_array = recognizer.predict(samples, sample_rate=rate, top_k=4)
    stereo = recognizer.predict(np.stack([samples, samples], axis=1), sample_rate=rate, top_k=4)
    channels_first = recognizer.predict(np.stack([samples, samples]), sample_rate=rate, top_k=4)
    pcm16 = recognizer.predict((samples * 32768).round().clip(-32768, 32767).astype(np.int16),
                               sample_rate=rate, top_k=4)
    for other in (from_array, stereo, channels_first, pcm16):
        assert other.label == from_file.label
        np.testing.assert_allclose(dict(other.top_k)[from_file.label], from_file.score, atol=1e-3)

    # Longer audio keeps its centre: the same as cropping it by hand.
    long = np.concatenate([samples] * 4)
    at_rate = audio.resample(long, rate, SAMPLE_RATE)
    cropped = recognizer.predict(audio.fix_length(at_rate, recognizer.clip_samples), top_k=4)
    assert recognizer.predict(long, sample_rate=rate, top_k=4) == cropped


def test_top_k_and_batches(recognizer, files):
    single = [recognizer.predict(f, top_k=3) for f in files]
    batched = recognizer.predict_batch(files, top_k=3, batch_size=4)
    assert [p.label for p in batched] == [p.label for p in single]
    np.testing.assert_allclose([s for p in batched for _, s in p.top_k],
                               [s for p in single for _, s in p.top_k], atol=1e-6)
    for p in single:
        assert len(p.top_k) == 3 and (p.label, p.score) == p.top_k[0]
        assert [s for _, s in p.top_k] == sorted((s for _, s in p.top_k), reverse=True)
    everything = recognizer.predict(files[0], top_k=100)
    assert sorted(label for label, _ in everything.top_k) == sorted(LABELS)
    assert sum(score for _, score in everything.top_k) == pytest.approx(1.0, abs=1e-5)
    assert recognizer.predict_batch([]) == []


def test_bad_inputs_are_clear_errors(recognizer, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(AudioError) as err:
        recognizer.predict(broken)
    assert err.value.path == str(broken)
    for array, needle in [(np.zeros(0, np.float32), "non-empty"),
                          (np.zeros((2, 2, 2), np.float32), "1-D"),
                          (np.full(100, np.nan, np.float32), "NaN")]:
        with pytest.raises(SpeechRNNError, match=needle):
            recognizer.predict(array)


def test_streaming_and_clip_models_are_not_mixed_up(exported, tmp_path):
    model, cfg = tiny_model("features.normalize=false")
    streaming = export_model(model, cfg.data, tmp_path / "s.onnx", streaming=True)
    with pytest.raises(SpeechRNNError, match="streaming model"):
        Recognizer(streaming)
    with pytest.raises(SpeechRNNError, match="--streaming"):
        StreamingRecognizer(exported[1])
    stream = StreamingRecognizer(streaming, threads=1)
    assert stream.info.streaming and stream.hop == cfg.features.hop_length
    # Fewer samples than the first chunk needs: nothing yet, and no frame is lost.
    step = stream.push(np.zeros(100, np.float32))
    assert step.probs.shape == (0, len(LABELS)) and step.first_frame == 0
    with pytest.raises(SpeechRNNError, match="too few"):
        stream.flush()
    with pytest.raises(SpeechRNNError, match="reset"):
        stream.push(np.zeros((2, 400), np.float32))
