"""`speechrnn gradients`: its dLoss/dh_t norms agree with autograd computed another way, and the
command writes its plots and JSON for fresh models and for trained runs."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from speechrnn import audio, checkpoint
from speechrnn.config import Config
from speechrnn.errors import SpeechRNNError
from speechrnn.gradients import hidden_gradient_norms, main
from speechrnn.models import build_model
from helpers import REPO

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread

RATE = 8000
LABELS = [str(d) for d in range(10)]
FEATURES = dict(n_fft=256, win_length=200, hop_length=80, n_mels=20, n_mfcc=13)
TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def tiny_config(**model):
    cfg = OmegaConf.structured(Config)
    cfg.data.sample_rate = RATE
    cfg.features.merge_with(FEATURES)
    cfg.model.merge_with(dict(hidden_size=6, num_layers=2, dropout=0.0, conv_layers=0, **model))
    return cfg


@pytest.fixture(scope="module")
def clips(fsdd_root):
    """Four real recordings, 0.4 s each (41 frames), with their digit labels."""
    paths = [fsdd_root / name for name in
             ("0_george_0.wav", "3_jackson_1.wav", "7_theo_2.wav", "9_nicolas_3.wav")]
    waves = torch.stack([torch.from_numpy(audio.load(p, RATE, int(0.4 * RATE))) for p in paths])
    return waves, torch.tensor([int(p.name[0]) for p in paths])


def autograd_norms(model, waves, labels):
    """The same quantity, independently: torch's single-step cells loaded with the trained
    layer weights, unrolled by hand, every top-layer h_t kept, torch.autograd.grad at them."""
    rnn = model.encoder.rnn
    cells = []
    for layer in range(rnn.num_layers):
        kwargs = {"nonlinearity": rnn.nonlinearity} if model.encoder.cell == "rnn" else {}
        cell = TORCH_CELLS[model.encoder.cell](rnn.input_size if layer == 0 else rnn.hidden_size,
                                               rnn.hidden_size, **kwargs)
        cell.load_state_dict({name: getattr(rnn, f"{name}_l{layer}")
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
        cells.append(cell)
    x = model.encoder.input_norm(model.features(waves))  # no convs in these configs
    zeros = x.new_zeros(len(waves), rnn.hidden_size)
    states = [(zeros, zeros) if model.encoder.cell == "lstm" else zeros for _ in cells]
    hs = []
    for t in range(x.shape[1]):
        inp = x[:, t]
        for layer, cell in enumerate(cells):
            states[layer] = cell(inp, states[layer])
            inp = states[layer][0] if model.encoder.cell == "lstm" else states[layer]
        hs.append(inp)
    logits = model.head(model.encoder.pool(torch.stack(hs, dim=1)))
    loss = F.cross_entropy(logits, labels, reduction="sum")
    grads = torch.autograd.grad(loss, hs)
    return logits, torch.stack(grads, dim=1).norm(dim=-1).numpy()


@pytest.mark.parametrize("cell,nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"),
                                               ("gru", "tanh")])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_norms_match_autograd(clips, cell, nonlinearity, pooling):
    waves, labels = clips
    torch.manual_seed(0)
    cfg = tiny_config(cell=cell, nonlinearity=nonlinearity, pooling=pooling)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS)
    model.eval()
    logits, expected = autograd_norms(model, waves, labels)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(waves), rtol=1e-5, atol=1e-5)

    norms = hidden_gradient_norms(model, waves, labels)
    assert norms.shape == (4, 41)
    assert (expected[:, :-1] > 0).any()  # the gradient really travels back in time
    np.testing.assert_allclose(norms, expected, rtol=1e-4, atol=1e-6 * expected.max())
    assert all(p.grad is None for p in model.parameters())  # leaves the model as it found it


def check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.slow
def test_cli_on_fresh_models_writes_plots_and_json(fsdd_root, tmp_path):
    overrides = ["data=fsdd", f"data.root={fsdd_root}", f"data.sample_rate={RATE}",
                 "data.clip_seconds=0.5", "model.hidden_size=8", "model.num_layers=1",
                 *(f"features.{k}={v}" for k, v in FEATURES.items())]
    assert main([*overrides, "--out", str(tmp_path), "--clips", "6", "--exploding-steps", "3"]) == 0
    for name in ("gradients.png", "exploding.png"):
        check_png(tmp_path / name)
    report = json.loads((tmp_path / "gradients.json").read_text())
    assert [p["cell"] for p in report["profiles"]] == ["rnn", "lstm", "gru"]
    for p in report["profiles"]:
        assert p["clips"] == 6 and len(p["mean"]) == 51 and not p["trained"]
        assert p["mean"][-1] > 0 and p["ratio_first_last"] == pytest.approx(p["mean"][0] / p["mean"][-1])
    result = json.loads((tmp_path / "exploding.json").read_text())
    for run in result["runs"].values():
        assert 1 <= run["steps_run"] <= 3 and len(run["loss"]) == len(run["grad_norm"]) == run["steps_run"]
    assert result["runs"]["clip"]["clip"] == 1.0 and result["runs"]["no_clip"]["clip"] is None


@pytest.mark.slow
def test_cli_on_a_trained_run(fsdd_root, tmp_path):
    cfg = tiny_config(cell="gru")
    cfg.data.merge_with(dict(source="fsdd", root=str(fsdd_root), silence=False, clip_seconds=0.5))
    torch.manual_seed(0)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS)
    run = tmp_path / "run"
    checkpoint.save({"model": model.state_dict(), "labels": LABELS, "epoch": 1,
                     "config": OmegaConf.to_container(cfg, enum_to_str=True)},
                    run / "checkpoints" / "best.pt")
    assert main([str(run), "--out", str(tmp_path / "out"), "--clips", "3",
                 "--exploding-steps", "0"]) == 0
    check_png(tmp_path / "out" / "gradients.png")
    (profile,) = json.loads((tmp_path / "out" / "gradients.json").read_text())["profiles"]
    assert profile["trained"] and profile["cell"] == "gru" and len(profile["mean"]) == 51
    assert not (tmp_path / "out" / "exploding.json").exists()


@pytest.mark.slow
def test_the_readme_example_shows_the_vanilla_rnn_gradient_vanish(fsdd_root, tmp_path, monkeypatch):
    """The README's `speechrnn gradients recipe=...` line, run as written from the repository's
    folder (its data.root is ../shared/data, where fsdd_root is), on 4 clips without the
    exploding part: the gradient that reaches the first frame is a vanishing part of the last's."""
    (line,) = [line for line in (REPO / "README.md").read_text().splitlines()
               if line.startswith("speechrnn gradients recipe=")]
    program, command, *args = shlex.split(line)
    assert (program, command) == ("speechrnn", "gradients")
    monkeypatch.chdir(REPO)
    assert main([*args, "--clips", "4", "--exploding-steps", "0", "--out", str(tmp_path)]) == 0
    ratios = {p["cell"]: p["ratio_first_last"]
              for p in json.loads((tmp_path / "gradients.json").read_text())["profiles"]}
    assert ratios["rnn"] < 1e-3 and ratios["rnn"] == min(ratios.values()), ratios


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(SpeechRNNError, match="no such run dir"):
        main([str(tmp_path / "missing")])
    with pytest.raises(SpeechRNNError, match="not both"):
        main([str(tmp_path), "model.cell=gru"])
