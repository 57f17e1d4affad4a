"""The keyword classifier: every encoder configuration builds, runs, trains and stays causal."""

from __future__ import annotations

import io
import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speechrnn.config import CONF_DIR, Config
from speechrnn.errors import SpeechRNNError
from speechrnn.models import build_model, count_parameters
from speechrnn.models.encoder import AttentionPool

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread

LABELS = ["yes", "no", "up", "down", "_unknown_"]
SAMPLE_RATE = 8000
CELLS = ["rnn", "lstm", "gru"]
POOLINGS = ["last", "mean", "max", "attention"]


def config(**model) -> Config:
    cfg = OmegaConf.structured(Config)
    cfg.data.sample_rate = SAMPLE_RATE
    cfg.features.merge_with(dict(n_fft=256, win_length=200, hop_length=80, n_mels=20, n_mfcc=13))
    cfg.model.merge_with({"hidden_size": 8, "num_layers": 2, "conv_channels": 6, **model})
    return OmegaConf.to_object(cfg)


def classifier(cfg: Config, labels=LABELS):
    return build_model(cfg.data, cfg.features, cfg.model, labels)


def waves(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    samples = rng.normal(0, 0.1, (batch, int(seconds * SAMPLE_RATE)))
    return torch.from_numpy(samples.astype(np.float32))


# The encoder's choices are independent code paths (the cell picks the RNN module, pooling the
# pool module, bidirectional doubles the output width and changes what `last` takes, conv_layers
# stacks 0-2 convs in front): what can go wrong is each choice alone or two of them meeting
# (say max pooling over a bidirectional output, or a conv feeding an LSTM). So the grid covers
# every pair of values of any two choices (pairwise), not all 72 products: each cell meets each
# pooling once, and the conv count and direction rotate with them -- (cell + pooling) mod 3 and
# mod 2 -- so every cell and every pooling also meets each conv count and both directions.
# Then the paths outside the product: the ReLU RNN, the written-out reference cells and no
# input LayerNorm.
PAIRWISE = [(cell, pooling, bool((c + p) % 2), (c + p) % 3)
            for c, cell in enumerate(CELLS) for p, pooling in enumerate(POOLINGS)]
OTHER_PATHS = [
    ("rnn", "last", True, 1, dict(nonlinearity="relu")),
    ("lstm", "attention", True, 2, dict(impl="reference")),
    ("gru", "last", False, 0, dict(impl="reference", input_norm=False)),
]


@pytest.mark.parametrize("cell,pooling,bidirectional,conv_layers,other",
                         [(*case, {}) for case in PAIRWISE] + OTHER_PATHS,
                         ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "default"
                         if isinstance(v, dict) else None)
def test_every_configuration_gives_logits(cell, pooling, bidirectional, conv_layers, other):
    torch.manual_seed(0)
    model = classifier(config(cell=cell, pooling=pooling, bidirectional=bidirectional,
                              conv_layers=conv_layers, **other), LABELS).eval()
    assert model.labels == LABELS and model.sample_rate == SAMPLE_RATE
    with torch.no_grad():
        for batch, seconds in itertools.product([1, 7], [0.5, 1.0, 3.0]):
            wave = waves(batch, seconds)
            logits = model(wave)
            assert logits.shape == (batch, len(LABELS))
            assert torch.isfinite(logits).all()
            feats = model.features(wave)
            frames = model.encode_frames(feats)
            assert frames.shape == (batch, feats.shape[1], model.encoder.output_dim)
        # Each clip is classified on its own: batching does not change a clip's logits.
        torch.testing.assert_close(model(wave[:1]), logits[:1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_last_pooling_takes_the_final_state_of_each_direction(bidirectional):
    torch.manual_seed(0)
    cfg = config(cell="gru", bidirectional=bidirectional, pooling="last", input_norm=False)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS).eval()
    feats = model.features(waves(3, 1.0))
    encoder = model.encoder
    with torch.no_grad():
        _, h_n = encoder.rnn(feats)
        final = torch.cat(list(h_n[-(2 if bidirectional else 1):]), dim=-1)  # last layer's states
        torch.testing.assert_close(encoder(feats), final, rtol=0, atol=0)


def test_attention_weights_sum_to_one():
    torch.manual_seed(0)
    model = classifier(config(cell="lstm", pooling="attention", bidirectional=True), LABELS)
    assert isinstance(model.encoder.pool, AttentionPool)
    frames = model.encode_frames(model.features(waves(4, 1.0)))
    weights = model.encoder.pool.weights(frames)
    assert weights.shape == frames.shape[:2]
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))
    assert weights.std(dim=1).min() > 0  # frames are scored, not averaged


@pytest.mark.parametrize("cell,pooling", list(itertools.product(CELLS, POOLINGS)))
def test_gradients_reach_every_parameter(cell, pooling):
    torch.manual_seed(0)
    model = classifier(config(cell=cell, pooling=pooling, bidirectional=True, conv_layers=2,
                               input_norm=True, dropout=0.0), LABELS).train()
    logits = model(waves(4, 0.5))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_recurrent_parameter_counts_are_4_3_1():
    counts = {}
    for cell in CELLS:
        model = classifier(config(cell=cell, hidden_size=16, bidirectional=True), LABELS)
        counts[cell] = count_parameters(model.encoder.rnn)
    assert counts["lstm"] == 4 * counts["rnn"] and counts["gru"] == 3 * counts["rnn"]
    # rnn, 2 layers, both directions: (W_ih, W_hh, b_ih, b_hh) per layer and direction.
    h, i = 16, 13
    assert counts["rnn"] == 2 * (h * i + h * h + 2 * h) + 2 * (h * 2 * h + h * h + 2 * h)


def test_count_parameters_is_the_trainable_total():
    model = classifier(config(cell="gru", num_layers=1, bidirectional=False), LABELS)
    h, i, k = 8, 13, len(LABELS)
    layer_norm = 2 * i
    assert count_parameters(model) == layer_norm + 3 * (h * i + h * h + 2 * h) + (h * k + k)
    assert len(list(model.buffers()))  # the MFCC basis is fixed, so not counted


@pytest.mark.parametrize("cell", CELLS)
def test_forward_encoder_is_causal(cell):
    """A frame's output never depends on later frames, convs included: streaming is possible."""
    torch.manual_seed(0)
    model = classifier(config(cell=cell, conv_layers=2, input_norm=True), LABELS).eval()
    feats = torch.randn(2, 40, 13)
    with torch.no_grad():
        full = model.encode_frames(feats)
        prefix = model.encode_frames(feats[:, :25])
    torch.testing.assert_close(prefix, full[:, :25], rtol=1e-5, atol=1e-6)


# Every cell and every pooling once; the full export is tested with the exporter.
@pytest.mark.parametrize("cell,pooling", [("rnn-relu", "last"), ("lstm", "attention"),
                                          ("gru", "max"), ("rnn", "mean")])
def test_exports_to_onnx_with_dynamic_batch_and_length(cell, pooling):
    """TorchScript-based export (dynamo=False), run by onnxruntime at other shapes than traced."""
    cell, _, nonlinearity = cell.partition("-")
    torch.manual_seed(0)
    model = classifier(config(cell=cell, pooling=pooling, bidirectional=True, conv_layers=1,
                               input_norm=True, nonlinearity=nonlinearity or "tanh"), LABELS).eval()
    onnx_file = io.BytesIO()
    torch.onnx.export(model, (waves(2, 1.0),), onnx_file, dynamo=False, opset_version=17,
                      input_names=["wave"], output_names=["logits"],
                      dynamic_axes={"wave": {0: "batch", 1: "samples"}, "logits": {0: "batch"}})
    session = ort.InferenceSession(onnx_file.getvalue(), providers=["CPUExecutionProvider"])
    for batch, seconds in [(1, 0.5), (5, 3.0)]:
        wave = waves(batch, seconds, seed=3)
        with torch.no_grad():
            expected = model(wave).numpy()
        np.testing.assert_allclose(session.run(None, {"wave": wave.numpy()})[0], expected,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("group", ["rnn", "lstm", "gru", "crnn"])
def test_model_groups_from_hydra_build(group):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={group}", "model.hidden_size=8"])
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS).eval()
    assert model.encoder.cell == cfg.model.cell.value
    wave = torch.randn(2, int(cfg.data.clip_seconds * cfg.data.sample_rate)) * 0.1
    with torch.no_grad():
        assert model(wave).shape == (2, len(LABELS))


@pytest.mark.parametrize("override,message", [
    (dict(conv_layers=3), "model.conv_layers"),
    (dict(hidden_size=0), "model.hidden_size"),
    (dict(dropout=1.0), "model.dropout"),
])
def test_bad_model_settings_are_user_errors(override, message):
    with pytest.raises(SpeechRNNError, match=message):
        classifier(config(**override), LABELS)


def test_too_few_labels_is_a_user_error():
    with pytest.raises(SpeechRNNError, match="labels"):
        classifier(config(), ["yes"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cell", CELLS)
def test_cuda_matches_cpu(cell):
    torch.manual_seed(0)
    cfg = config(cell=cell, bidirectional=True, conv_layers=1, pooling="attention", hidden_size=32)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS).eval()
    wave = waves(7, 1.0)
    with torch.no_grad():
        expected = model(wave)
        got = model.cuda()(wave.cuda()).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    cfg.model.impl = "reference"  # the written-out cells against cuDNN, on the GPU
    reference = build_model(cfg.data, cfg.features, cfg.model, LABELS).cuda().eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(reference(wave.cuda()).cpu(), expected, rtol=1e-4, atol=1e-4)
    model.train()
    model(wave.cuda()).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
