"""`speechrnn inspect`: the gates it shows are the reference cells' on the trained weights, its
posterior ends at the model's prediction, and the command writes one PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from speechrnn import audio, checkpoint
from speechrnn.config import Config
from speechrnn.errors import AudioError
from speechrnn.inspect_cells import PLOTTED_GATES, inspect_wave, main
from speechrnn.models import build_model
from speechrnn.models.cells import ReferenceRNN

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread

RATE = 8000
LABELS = [str(d) for d in range(10)]
CASES = [("rnn", "tanh", False), ("rnn", "relu", False), ("lstm", "tanh", False),
         ("lstm", "tanh", True), ("gru", "tanh", False), ("gru", "tanh", True)]


def tiny_config(**model):
    cfg = OmegaConf.structured(Config)
    cfg.data.merge_with(dict(source="fsdd", silence=False, sample_rate=RATE, clip_seconds=0.6))
    cfg.features.merge_with(dict(n_fft=256, win_length=200, hop_length=80, n_mels=20, n_mfcc=13))
    cfg.model.merge_with(dict(hidden_size=5, num_layers=2, dropout=0.2, **model))
    return cfg


@pytest.fixture(scope="module")
def wave(fsdd_root):
    return audio.load(fsdd_root / "4_yweweler_7.wav", RATE, int(0.6 * RATE))


@pytest.mark.parametrize("cell,nonlinearity,bidirectional", CASES)
def test_gates_are_the_reference_cells_on_the_trained_weights(wave, cell, nonlinearity, bidirectional):
    torch.manual_seed(0)
    cfg = tiny_config(cell=cell, nonlinearity=nonlinearity, bidirectional=bidirectional,
                      input_norm=True, conv_layers=1, conv_channels=7)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS)
    inspection = inspect_wave(model, wave)

    # The same input the trained module gets, computed here by hand, through the reference cells.
    batch = torch.from_numpy(wave).unsqueeze(0)
    with torch.no_grad():
        feats = model.features(batch)
        x = model.encoder.convs(model.encoder.input_norm(feats).transpose(1, 2)).transpose(1, 2)
        reference = ReferenceRNN(cell, 7, 5, num_layers=2, bidirectional=bidirectional,
                                 nonlinearity=nonlinearity)
        reference.load_state_dict(model.encoder.rnn.state_dict())
        out, _, gates = reference(x, return_gates=True)
        torch_out, torch_final = model.encoder.rnn(x)

    assert len(inspection.layers) == 2
    for layer, trace in enumerate(inspection.layers):
        assert len(trace.gates) == (2 if bidirectional else 1)
        for direction, expected in enumerate(gates[layer]):
            assert set(PLOTTED_GATES[cell]) <= set(trace.gates[direction])
            for name, values in expected.items():
                np.testing.assert_allclose(trace.gates[direction][name], values[0].numpy(),
                                           rtol=1e-5, atol=1e-6)
    # Hidden states: the top layer is the trained module's output; the first layer ends in its h_n.
    np.testing.assert_allclose(inspection.layers[-1].hidden, torch_out[0].numpy(), atol=1e-5)
    h_n = torch_final[0] if cell == "lstm" else torch_final
    np.testing.assert_allclose(inspection.layers[0].hidden[-1, :5], h_n[0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(inspection.features, feats[0].numpy())
    if cell != "rnn":
        assert 0 < inspection.layers[0].gates[0][PLOTTED_GATES[cell][0]].min()
        assert inspection.layers[0].gates[0][PLOTTED_GATES[cell][0]].max() < 1


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_posterior_is_the_pooled_prefix_and_ends_at_the_prediction(wave, pooling):
    torch.manual_seed(0)
    cfg = tiny_config(cell="gru", pooling=pooling)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS)
    inspection = inspect_wave(model, wave)
    batch = torch.from_numpy(wave).unsqueeze(0)
    with torch.no_grad():
        probs = torch.softmax(model(batch), dim=-1)[0].numpy()
        frames = model.encode_frames(model.features(batch))[0]
    assert inspection.posterior.shape == (61, 10)
    np.testing.assert_allclose(inspection.posterior.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(inspection.posterior[-1], probs, rtol=1e-5, atol=1e-6)
    assert inspection.prediction == (LABELS[probs.argmax()], pytest.approx(probs.max(), rel=1e-5))
    if pooling == "last":  # forward-only, last frame: the head on frame t itself
        with torch.no_grad():
            expected = torch.softmax(model.head(frames), dim=-1).numpy()
        np.testing.assert_allclose(inspection.posterior, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cli_writes_one_png_named_after_the_clip(fsdd_root, tmp_path, capsys):
    torch.manual_seed(0)
    cfg = tiny_config(cell="lstm")
    run = tmp_path / "run"
    checkpoint.save({"model": build_model(cfg.data, cfg.features, cfg.model, LABELS).state_dict(), "labels": LABELS,
                     "epoch": 1, "config": OmegaConf.to_container(cfg, enum_to_str=True)},
                    run / "checkpoints" / "best.pt")
    clip = fsdd_root / "8_lucas_12.wav"
    assert main([str(run), str(clip), "--out", str(tmp_path / "figs")]) == 0
    png = tmp_path / "figs" / "8_lucas_12.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "predicted '" in capsys.readouterr().out
    assert main([str(run), str(clip)]) == 0  # default folder: RUN_DIR/inspect
    assert (run / "inspect" / "8_lucas_12.png").stat().st_size > 20_000
    with pytest.raises(AudioError, match="missing.wav"):
        main([str(run), str(tmp_path / "missing.wav")])
