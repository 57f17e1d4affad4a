"""The written-out cells against torch's nn.RNN / nn.LSTM / nn.GRU, weight for weight."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from speechrnn.audio import load
from speechrnn.config import Config
from speechrnn.models import build_model
from speechrnn.models.cells import ReferenceRNN

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread

TOL = dict(rtol=1e-5, atol=1e-5)
MODES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def pair(mode, nonlinearity, bidirectional, batch_first=True, num_layers=3):
    """A torch module with random weights and a ReferenceRNN loaded with the same weights."""
    args = dict(input_size=5, hidden_size=6, num_layers=num_layers, bidirectional=bidirectional,
                batch_first=batch_first)
    reference = ReferenceRNN(mode, nonlinearity=nonlinearity, **args)
    if mode == "rnn":
        args["nonlinearity"] = nonlinearity
    module = TORCH[mode](**args)
    reference.load_state_dict(module.state_dict())  # strict: same names and shapes
    return module, reference


def flat(state):
    return torch.cat(state) if isinstance(state, tuple) else state


@pytest.mark.parametrize("mode,nonlinearity", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_reference_matches_torch(mode, nonlinearity, bidirectional, with_h0):
    torch.manual_seed(0)
    module, reference = pair(mode, nonlinearity, bidirectional)
    x = torch.randn(4, 9, 5)
    h0 = None
    if with_h0:
        shape = (module.num_layers * (2 if bidirectional else 1), 4, 6)
        h0 = (torch.randn(shape), torch.randn(shape)) if mode == "lstm" else torch.randn(shape)
    expected_out, expected_state = module(x, h0)
    out, state = reference(x, h0)
    torch.testing.assert_close(out, expected_out, **TOL)
    torch.testing.assert_close(flat(state), flat(expected_state), **TOL)

    # Backpropagation through the written-out equations gives torch's gradients too.
    (expected_out.square().sum() + flat(expected_state).sum()).backward()
    (out.square().sum() + flat(state).sum()).backward()
    grads = dict(module.named_parameters())
    for name, param in reference.named_parameters():
        torch.testing.assert_close(param.grad, grads[name].grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_time_major_input(mode):
    torch.manual_seed(1)
    module, reference = pair(mode, "tanh", bidirectional=True, batch_first=False, num_layers=2)
    x = torch.randn(7, 3, 5)  # [T, B, I]
    torch.testing.assert_close(reference(x)[0], module(x)[0], **TOL)


def test_same_parameters_as_torch_modules():
    for mode, cls in TORCH.items():
        module = cls(5, 6, num_layers=2, bidirectional=True)
        reference = ReferenceRNN(mode, 5, 6, num_layers=2, bidirectional=True)
        assert {n: p.shape for n, p in reference.named_parameters()} == \
               {n: p.shape for n, p in module.named_parameters()}


def test_lstm_gates_obey_the_recurrence():
    torch.manual_seed(2)
    _, reference = pair("lstm", "tanh", bidirectional=True, num_layers=2)
    x = torch.randn(3, 8, 5)
    h0, c0 = torch.randn(4, 3, 6), torch.randn(4, 3, 6)
    out, (h_n, c_n), gates = reference(x, (h0, c0), return_gates=True)
    assert len(gates) == 2 and all(len(layer) == 2 for layer in gates)
    for layer, per_direction in enumerate(gates):
        for direction, g in enumerate(per_direction):
            k = layer * 2 + direction
            for name in ("input", "forget", "output"):
                assert g[name].shape == (3, 8, 6)
                assert g[name].min() >= 0 and g[name].max() <= 1
            assert g["cell_candidate"].abs().max() <= 1
            i, f, cand, o, cell = (g[n] for n in reference.cell.gate_names)
            # Time order as read: forward 0..T-1, backward T-1..0; the state before is c0.
            steps = range(8) if direction == 0 else range(7, -1, -1)
            previous = c0[k]
            for t in steps:
                assert torch.equal(cell[:, t], f[:, t] * previous + i[:, t] * cand[:, t])
                previous = cell[:, t]
            torch.testing.assert_close(previous, c_n[k], rtol=0, atol=0)
            if layer == 1:  # the last layer's hidden states are the output
                hidden = out[..., direction * 6:(direction + 1) * 6]
                torch.testing.assert_close(hidden, o * torch.tanh(cell), **TOL)


def test_gru_gates_obey_the_update():
    torch.manual_seed(3)
    _, reference = pair("gru", "tanh", bidirectional=False, num_layers=1)
    x = torch.randn(2, 10, 5)
    out, h_n, [[g]] = reference(x, return_gates=True)
    for name in ("reset", "update"):
        assert 0 <= g[name].min() and g[name].max() <= 1
    previous = torch.cat([torch.zeros(2, 1, 6), out[:, :-1]], dim=1)
    z = g["update"]
    torch.testing.assert_close(out, (1 - z) * g["candidate"] + z * previous, **TOL)
    torch.testing.assert_close(out[:, -1], h_n[0], rtol=0, atol=0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_hidden_gate_is_the_output(nonlinearity):
    torch.manual_seed(4)
    _, reference = pair("rnn", nonlinearity, bidirectional=False, num_layers=1)
    out, _, [[g]] = reference(torch.randn(2, 6, 5), return_gates=True)
    assert list(g) == ["hidden"]
    assert torch.equal(g["hidden"], out)
    if nonlinearity == "relu":
        assert g["hidden"].min() >= 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_reference_encoder_gives_the_same_logits(cell, fsdd_root):
    """A whole classifier on a real recording: impl=reference reproduces impl=torch."""
    cfg = OmegaConf.structured(Config)
    cfg.data.sample_rate = 8000
    cfg.model.merge_with(dict(cell=cell, hidden_size=16, num_layers=2, bidirectional=True,
                              conv_layers=1, conv_channels=8, input_norm=True, pooling="attention"))
    labels = [str(d) for d in range(10)]
    torch.manual_seed(5)
    fast = build_model(cfg.data, cfg.features, cfg.model, labels).eval()
    cfg.model.impl = "reference"
    slow = build_model(cfg.data, cfg.features, cfg.model, labels).eval()
    slow.load_state_dict(fast.state_dict())
    wave = torch.from_numpy(load(fsdd_root / "3_jackson_0.wav", 8000, 8000)).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(slow(wave), fast(wave), **TOL)
