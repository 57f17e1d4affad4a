"""ONNX export: parity with PyTorch for every encoder, metadata, int8 weights, streaming state.

Models are tiny, random-weight classifiers built from composed Hydra configs; inputs are real
FSDD recordings resampled to 16 kHz; outputs come from real onnxruntime sessions.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from omegaconf import OmegaConf
from onnx import numpy_helper

from speechrnn import __version__, audio, checkpoint, cli
from speechrnn.data.fsdd import read_splits as read_fsdd_splits
from speechrnn.errors import SpeechRNNError
from speechrnn.export import export_model, export_run
from speechrnn.runtime import StreamingRecognizer
from helpers import LABELS, SAMPLE_RATE, tiny_config, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def fsdd_waves(root: Path, count: int, seconds: float, seed: int = 0) -> np.ndarray:
    """``count`` real recordings at 16 kHz, each padded/cropped to ``seconds``."""
    files = sorted(root.glob("*.wav"))
    picks = np.random.default_rng(seed).choice(len(files), count, replace=False)
    return np.stack([audio.load(files[i], SAMPLE_RATE, round(seconds * SAMPLE_RATE))
                     for i in picks])


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def torch_logits(model, wave: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(wave)).numpy()


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def waves(fsdd_root):
    """Real audio at the three tested lengths, 7 clips each."""
    return {seconds: fsdd_waves(fsdd_root, 7, seconds) for seconds in (0.5, 1.0, 3.0)}


# Each cell exports to its native ONNX op, one- or bidirectional, followed by each pooling:
# every cell meets every pooling, and the direction alternates so that each cell and each
# pooling is exported both ways (every pair of choices, 12 of the 24 products).
@pytest.mark.parametrize("cell,bidirectional,pooling", [
    (cell, bool((c + p) % 2), pooling) for c, cell in enumerate(["rnn", "lstm", "gru"])
    for p, pooling in enumerate(["last", "mean", "max", "attention"])])
def test_onnx_matches_pytorch(cell, bidirectional, pooling, waves, tmp_path):
    model, cfg = tiny_model(f"model.cell={cell}", f"model.bidirectional={bidirectional}",
                            f"model.pooling={pooling}")
    path = export_model(model, cfg.data, tmp_path / "model.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert cell.upper() in {node.op_type for node in proto.graph.node}  # the native op
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["audio"]
    assert [o.name for o in sess.get_outputs()] == ["logits", "probs"]
    for seconds, wave in waves.items():
        want = torch_logits(model, wave)  # a clip's logits do not depend on its batch (test_models)
        for batch in (1, 7):
            logits, probs = sess.run(None, {"audio": wave[:batch]})
            assert logits.shape == probs.shape == (batch, len(LABELS))
            np.testing.assert_allclose(logits, want[:batch], rtol=0, atol=1e-4)
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("overrides", [
    ["model.conv_layers=2", "model.input_norm=true", "model.pooling=mean"],
    ["model.cell=rnn", "model.nonlinearity=relu", "features.deltas=2",
     "features.normalize=true", "features.normalize_variance=false"],
    ["model.impl=reference", "model.cell=lstm", "features.normalize=false"],
])
def test_onnx_matches_pytorch_for_frontend_and_encoder_options(overrides, waves, tmp_path):
    model, cfg = tiny_model(*overrides)
    sess = session(export_model(model, cfg.data, tmp_path / "model.onnx"))
    for seconds in waves:
        logits = sess.run(["logits"], {"audio": waves[seconds]})[0]
        np.testing.assert_allclose(logits, torch_logits(model, waves[seconds]), rtol=0, atol=1e-4)


def test_metadata_and_cli_export_of_a_run_dir(tmp_path, waves):
    model, cfg = tiny_model("model.cell=lstm", "data.clip_seconds=0.75")
    run = tmp_path / "run"
    checkpoint.save({"model": model.state_dict(), "labels": LABELS, "epoch": 0,
                     "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)},
                    run / "checkpoints" / "best.pt")
    (run / "summary.json").write_text(json.dumps({"test_accuracy": 0.875}))

    assert cli.main(["export", str(run)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}
    assert json.loads(meta["speechrnn_format"]) == 1
    assert meta["speechrnn_version"] == __version__
    assert json.loads(meta["labels"]) == LABELS
    assert json.loads(meta["sample_rate"]) == SAMPLE_RATE
    assert json.loads(meta["clip_samples"]) == 12000
    assert json.loads(meta["features"]) == OmegaConf.to_container(cfg.features, enum_to_str=True)
    assert json.loads(meta["model"])["cell"] == "lstm"
    assert json.loads(meta["model"]) == OmegaConf.to_container(cfg.model, enum_to_str=True)
    assert json.loads(meta["test_accuracy"]) == 0.875
    assert meta["quantize"] == "none" and json.loads(meta["streaming"]) is False
    # The file the CLI wrote is the trained model (loaded back from the checkpoint).
    logits = session(run / "model.onnx").run(["logits"], {"audio": waves[1.0][:3]})[0]
    np.testing.assert_allclose(logits, torch_logits(model, waves[1.0][:3]), rtol=0, atol=1e-4)

    # A checkpoint path and -o; the trainer's entry point with its ExportConfig.
    out = tmp_path / "elsewhere" / "m.onnx"
    assert cli.main(["export", str(run / "checkpoints" / "best.pt"), "-o", str(out)]) == 0
    assert json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}
                      ["test_accuracy"]) == 0.875
    written = export_run(run, cfg.export)
    assert written == run / cfg.export.filename and written.is_file()


def saved_run(folder: Path, model, cfg, accuracy: float) -> Path:
    checkpoint.save({"model": model.state_dict(), "labels": LABELS, "epoch": 0,
                     "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)},
                    folder / "checkpoints" / "best.pt")
    (folder / "summary.json").write_text(json.dumps({"test_accuracy": accuracy,
                                                     "overrides": [f"trainer.seed={folder.name}"]}))
    return folder


def test_cli_exports_runs_of_one_recipe_as_one_ensemble(tmp_path, waves, capsys):
    """Its probabilities are the mean of its runs' (one file, one frontend); the card names the
    runs and their test accuracies; what an ensemble cannot be is a one-line usage error."""
    members = [tiny_model("model.cell=gru", "model.pooling=attention", seed=seed)
               for seed in range(3)]
    runs = [str(saved_run(tmp_path / str(seed), model, cfg, [0.8, 0.81, 0.82][seed]))
            for seed, (model, cfg) in enumerate(members)]
    out = tmp_path / "ensemble.onnx"
    assert cli.main(["export", *runs, "-o", str(out)]) == 0
    assert "ensemble of 3" in capsys.readouterr().out
    probs = session(out).run(["probs"], {"audio": waves[1.0]})[0]
    each = [torch.softmax(torch.from_numpy(torch_logits(model, waves[1.0])), -1).numpy()
            for model, _ in members]
    np.testing.assert_allclose(probs, np.mean(each, axis=0), rtol=0, atol=1e-5)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the runs differ, so the mean is news
    assert sum(node.op_type == "GRU" for node in onnx.load(str(out)).graph.node) == 3 * 2
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    card = json.loads(meta["model_card"])
    assert [m["run"] for m in card["ensemble"]] == runs
    assert [m["test_accuracy"] for m in card["ensemble"]] == [0.8, 0.81, 0.82]
    assert json.loads(meta["model"])["ensemble"] == 3 and card["test_accuracy"] is None

    for argv, needle in [(["export", *runs], "name the file with -o"),
                         (["export", *runs, "-o", str(tmp_path / "s.onnx"), "--streaming"],
                          "cannot export an ensemble for streaming")]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err
    lstm = saved_run(tmp_path / "lstm", *tiny_model("model.cell=lstm"), 0.5)
    assert cli.main(["export", runs[0], str(lstm), "-o", str(tmp_path / "mixed.onnx")]) == 2
    assert "model settings differ" in capsys.readouterr().err
    assert not (tmp_path / "mixed.onnx").exists()


def test_cli_export_of_a_broken_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["export", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("cell", ["gru", "rnn", "lstm"])
def test_int8_quantizes_the_encoder_weights_and_keeps_the_frontend_float(cell, waves, tmp_path):
    model, cfg = tiny_model(f"model.cell={cell}", "model.conv_layers=1")
    fp32_path = export_model(model, cfg.data, tmp_path / "fp32.onnx")
    path = export_model(model, cfg.data, tmp_path / "int8.onnx", quantize="int8")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = op_types(path)
    if cell == "lstm":
        assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    else:  # no int8 kernel: the native op, its weights stored int8 and restored by Cast, Mul
        recurrent = next(n for n in proto.graph.node if n.op_type == cell.upper())
        made_by = {out: n for n in proto.graph.node for out in n.output}
        int8 = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8}
        for weight in recurrent.input[1:3]:
            mul = made_by[weight]
            cast = made_by[mul.input[0]]
            assert (mul.op_type, cast.op_type) == ("Mul", "Cast") and cast.input[0] in int8
    assert "ConvInteger" in ops  # the encoder's causal conv
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights
    # The DFT conv of the frontend keeps float weights.
    frontend_convs = [n for n in proto.graph.node if n.op_type == "Conv" and "/frontend/" in n.name]
    assert len(frontend_convs) == 1
    assert {p.key: p.value for p in proto.metadata_props}["quantize"] == "int8"

    # Every int8 weight is its fp32 weight rounded to the nearest step of a scale that spans the
    # int8 range: max |w| / 127 (per tensor by onnxruntime, per row for GRU/RNN). Half a step is
    # the most rounding may move a weight; a weight off by one step more fails.
    float_weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32_path)).graph.initializer}
    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    checked = []
    for name, weight in float_weights.items():
        suffix = next((s for s in ("_quantized", "_int8") if name + s in stored), None)
        if suffix is None:
            continue
        q, scale = stored[name + suffix], stored[name + "_scale"]
        assert q.dtype == np.int8
        zero_point = stored.get(name + "_zero_point", np.zeros((), np.int8))
        assert not zero_point.any(), name  # symmetric
        if q.shape != weight.shape:  # DynamicQuantizeLSTM keeps W and R as [dirs, inputs, gates]
            q = q.transpose(0, 2, 1)
        if suffix == "_int8":  # one scale per row
            np.testing.assert_allclose(scale, np.abs(weight).max(axis=2, keepdims=True) / 127, rtol=1e-6)
        else:
            np.testing.assert_allclose(scale, np.abs(weight).max() / 127, rtol=1e-6)
        error = np.abs(q.astype(np.float32) * scale - weight)
        assert (error <= scale * (0.5 + 1e-3)).all(), f"{name}: {error.max() / np.max(scale):.2f} steps off"
        checked.append(name)
    recurrent = next(n for n in proto.graph.node if n.op_type in ("DynamicQuantizeLSTM", cell.upper()))
    weight_inputs = {name.removesuffix("_quantized") for name in recurrent.input[1:3]}
    assert weight_inputs <= set(checked), "the recurrent W and R were not checked"
    assert len(checked) >= 2 * cfg.model.num_layers + 1  # W and R of each layer, the conv

    # It runs, and the untrained model's near-uniform outputs say no more than that.
    probs = session(path).run(["probs"], {"audio": waves[1.0]})[0]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


FSDD_RATE = 8000  # FSDD's own rate: half the frames of 16 kHz, the same digits


@pytest.fixture(scope="module")
def fsdd_official(fsdd_root):
    """FSDD's official split as speechrnn reads it: index 5-49 (2,700 clips) to train on,
    index 0-4 (300 clips) to test, 1 s each at 8 kHz."""
    cfg = tiny_config("data.source=fsdd", f"data.root={fsdd_root}", "data.silence=false")
    splits = read_fsdd_splits(fsdd_root, cfg.data)
    labels = splits.labels

    def load(clips):
        waves = np.stack([audio.load(c.path, FSDD_RATE, FSDD_RATE) for c in clips])
        return waves, np.array([labels.index(c.label) for c in clips])

    train, test = load(splits.train + splits.val), load(splits.test)
    assert len(train[0]) == 2700 and len(test[0]) == 300
    return labels, train, test


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_keeps_fp32_accuracy_on_the_fsdd_test_split_after_training(cell, fsdd_official, tmp_path):
    """The README's bound: an int8 export of a trained model scores within 0.5 points of its fp32
    export on the 300 FSDD test clips, i.e. at most one clip worse."""
    labels, (train_waves, train_targets), (test_waves, test_targets) = fsdd_official
    model, cfg = tiny_model(f"model.cell={cell}", "model.hidden_size=48", "model.num_layers=1",
                            "model.conv_layers=0", "model.pooling=mean", f"data.sample_rate={FSDD_RATE}",
                            labels=labels)
    # The frontend has no weights: its features are computed once, the encoder and head trained.
    with torch.no_grad():
        feats = model.features(torch.from_numpy(train_waves))
    targets = torch.from_numpy(train_targets)
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(0)
    for _ in range(8):
        for batch in torch.randperm(len(feats), generator=order).split(32):
            loss = torch.nn.functional.cross_entropy(model.head(model.encoder(feats[batch])), targets[batch])
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()

    fp32 = session(export_model(model, cfg.data, tmp_path / "fp32.onnx")).run(["probs"], {"audio": test_waves})[0]
    int8 = session(export_model(model, cfg.data, tmp_path / "int8.onnx", quantize="int8")).run(
        ["probs"], {"audio": test_waves})[0]
    fp32_correct = int((fp32.argmax(1) == test_targets).sum())
    int8_correct = int((int8.argmax(1) == test_targets).sum())
    # Accurate enough that a broken int8 model shows (294-295 of 300 here).
    assert fp32_correct >= 285, f"fp32 {fp32_correct}/300: the model did not learn"
    assert int8_correct >= fp32_correct - 1, f"int8 {int8_correct}/300 vs fp32 {fp32_correct}/300"
    # The probabilities themselves: the right int8 weights move them by a mean L1 of about 0.001
    # (GRU) to 0.002 (LSTM); LSTM weights each off by up to 2 steps move them by 0.01 or more.
    distance = np.abs(int8 - fp32).sum(1).mean()
    assert distance < 0.01, f"int8 probabilities are {distance:.4f} (mean L1) from fp32"


def _run_graph_in_chunks(path, wave: np.ndarray, chunk_hops: list[int]):
    """Drive the raw streaming graph by the README's contract, with chunks of ``chunk_hops``
    hops in turn; return the frames, the final state and the samples consumed."""
    sess = session(path)
    stream = json.loads(sess.get_modelmeta().custom_metadata_map["stream"])
    batch = len(wave)
    state = {name: np.zeros([batch if d == "batch" else d for d in shape],
                            np.int64 if name == "offset" else np.float32)
             for name, shape in stream["states"].items()}
    outputs = [o.name for o in sess.get_outputs()]
    frames, position = [], 0
    for hops in itertools.cycle(chunk_hops):
        size = hops * stream["hop_length"]
        if position + size > wave.shape[1]:
            break
        result = dict(zip(outputs, sess.run(None, {"audio": wave[:, position : position + size],
                                                   **state})))
        state = {name: result[f"{name}_out"] for name in state}
        frames.append(result["frames"])
        assert result["logits"].shape[:2] == result["frames"].shape[:2]
        position += size
    return np.concatenate(frames, axis=1), state, position


def _offline(model, wave: np.ndarray, frames: int | None = None):
    """The offline per-frame encoder outputs and the recurrent state after ``frames`` frames."""
    with torch.no_grad():
        feats = model.features(torch.from_numpy(wave))
        enc = model.encoder
        rnn_input = enc.convs(enc.input_norm(feats).transpose(1, 2)).transpose(1, 2)
        _, final = enc.rnn(rnn_input[:, :frames])
        h = final[0] if isinstance(final, tuple) else final
        return model.encode_frames(feats).numpy(), h.numpy()


@pytest.mark.parametrize("cell,overrides", [
    ("gru", []),
    ("lstm", ["model.conv_layers=2", "model.input_norm=true"]),
    ("rnn", ["model.conv_layers=1", "model.pooling=mean"]),
])
def test_streaming_reproduces_the_offline_frames(cell, overrides, fsdd_root, tmp_path):
    model, cfg = tiny_model(f"model.cell={cell}", "features.normalize=false", *overrides)
    path = export_model(model, cfg.data, tmp_path / "stream.onnx", streaming=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    hop = cfg.features.hop_length
    # Two streams of real speech, 2.5 s each (several recordings back to back).
    wave = fsdd_waves(fsdd_root, 2, 2.5, seed=1)

    # The raw graph, chunks of 2, 5, 3, 1 hops (the first at least min_first_chunk): after n
    # samples, frames 0 .. n // hop - 2 (delay_frames = 1 with the default features).
    frames, state, consumed = _run_graph_in_chunks(path, wave, [2, 5, 3, 1])
    offline, h = _offline(model, wave, frames.shape[1])
    assert frames.shape[1] == consumed // hop - 1 == state["offset"][0]
    np.testing.assert_allclose(frames, offline[:, : frames.shape[1]], rtol=0, atol=1e-4)
    np.testing.assert_allclose(state["h"], h, rtol=0, atol=1e-4)

    # The runtime, pushing arbitrary sizes, then flush(): every offline frame.
    stream = StreamingRecognizer(path)
    stream.reset(streams=2)
    steps, position = [], 0
    for size in itertools.cycle([1000, 37, 160, 2999]):
        steps.append(stream.push(wave[:, position : position + size]))
        position += size
        if position >= wave.shape[1]:
            break
    steps.append(stream.flush())
    counts = [s.frames.shape[1] for s in steps]
    assert [s.first_frame for s in steps] == [sum(counts[:i]) for i in range(len(steps))]
    frames = np.concatenate([s.frames for s in steps], axis=1)
    assert frames.shape == offline.shape
    np.testing.assert_allclose(frames, offline, rtol=0, atol=1e-4)


def test_streaming_logits_are_the_head_of_each_frame(fsdd_root, tmp_path):
    model, cfg = tiny_model("features.normalize=false", "model.pooling=last")
    stream = StreamingRecognizer(export_model(model, cfg.data, tmp_path / "s.onnx", streaming=True))
    wave = fsdd_waves(fsdd_root, 1, 1.0)[0]
    steps = [stream.push(wave), stream.flush()]
    frames = np.concatenate([s.frames for s in steps])
    logits = np.concatenate([s.logits for s in steps])
    with torch.no_grad():
        np.testing.assert_allclose(logits, model.head(torch.from_numpy(frames)).numpy(),
                                   rtol=0, atol=1e-4)
    np.testing.assert_allclose(steps[0].probs.sum(-1), 1.0, atol=1e-5)
    # With last pooling, the final frame's logits are the offline logits of the whole clip.
    np.testing.assert_allclose(logits[-1], torch_logits(model, wave[None])[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("override,needle", [
    ("model.bidirectional=true", "model.bidirectional=false"),
    ("features.normalize=true", "features.normalize=false"),
    ("features.deltas=1", "features.deltas=0"),
])
def test_streaming_refuses_what_it_cannot_reproduce(override, needle, tmp_path):
    model, cfg = tiny_model("features.normalize=false", override)
    with pytest.raises(SpeechRNNError, match=needle):
        export_model(model, cfg.data, tmp_path / "s.onnx", streaming=True)
    assert not (tmp_path / "s.onnx").exists()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_streaming_int8(cell, fsdd_root, tmp_path):
    model, cfg = tiny_model(f"model.cell={cell}", "features.normalize=false")
    fp32 = export_model(model, cfg.data, tmp_path / "s.onnx", streaming=True)
    int8 = export_model(model, cfg.data, tmp_path / "s8.onnx", streaming=True, quantize="int8")
    assert {"MatMulInteger", "DynamicQuantizeLSTM"} & op_types(int8)
    wave = fsdd_waves(fsdd_root, 1, 1.0)
    want = _run_graph_in_chunks(fp32, wave, [4])[0]
    got = _run_graph_in_chunks(int8, wave, [4])[0]
    assert np.abs(got - want).max() < 0.05
    # The state carried between calls is the same state: chunking does not change the output.
    whole = _run_graph_in_chunks(int8, wave, [100])[0][:, : got.shape[1]]
    assert np.abs(whole - got).max() < 1e-3
