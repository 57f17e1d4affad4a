"""The recurrent cells with their gate equations written out, for reading and for inspection.

The equations, gate order and biases follow the PyTorch documentation of ``nn.RNN``,
``nn.LSTM`` and ``nn.GRU`` exactly, so weights move between these cells and the cuDNN-backed
modules unchanged: ``ReferenceRNN(...).load_state_dict(nn.LSTM(...).state_dict())`` works and
gives the same outputs (tests/test_cells.py checks it to 1e-5). Training uses the torch
modules; these are for seeing what the gates do (``return_gates=True``) and for checking.

Notation: x is the input at step t, h the previous hidden state, c the previous LSTM cell
state, ``*`` the element-wise product, sigma the logistic sigmoid. Each weight matrix stacks
the per-gate matrices row-wise in the order the docs give (LSTM: i, f, g, o; GRU: r, z, n).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Gates = dict[str, Tensor]


class RNNCell:
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh)   (relu instead of tanh if asked)."""

    num_gates = 1
    gate_names = ("hidden",)

    def __init__(self, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.activation = torch.tanh if nonlinearity == "tanh" else torch.relu

    def __call__(self, x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                 b_ih: Tensor, b_hh: Tensor) -> tuple[tuple[Tensor], Gates]:
        (h,) = state
        h_new = self.activation(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh))  # h' = tanh(...)
        return (h_new,), {"hidden": h_new}


class LSTMCell:
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate)."""

    num_gates = 4
    gate_names = ("input", "forget", "cell_candidate", "output", "cell")

    def __call__(self, x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
                 b_ih: Tensor, b_hh: Tensor) -> tuple[tuple[Tensor, Tensor], Gates]:
        h, c = state
        x_i, x_f, x_g, x_o = F.linear(x, w_ih, b_ih).chunk(4, dim=-1)
        h_i, h_f, h_g, h_o = F.linear(h, w_hh, b_hh).chunk(4, dim=-1)
        i = torch.sigmoid(x_i + h_i)  # i = sigma(W_ii x + b_ii + W_hi h + b_hi)   input gate
        f = torch.sigmoid(x_f + h_f)  # f = sigma(W_if x + b_if + W_hf h + b_hf)   forget gate
        g = torch.tanh(x_g + h_g)     # g = tanh(W_ig x + b_ig + W_hg h + b_hg)    cell candidate
        o = torch.sigmoid(x_o + h_o)  # o = sigma(W_io x + b_io + W_ho h + b_ho)   output gate
        c_new = f * c + i * g         # c' = f * c + i * g
        h_new = o * torch.tanh(c_new)  # h' = o * tanh(c')
        gates = {"input": i, "forget": f, "cell_candidate": g, "output": o, "cell": c_new}
        return (h_new, c_new), gates


class GRUCell:
    """Gated recurrent unit (Cho et al. 2014), in the form cuDNN and PyTorch compute."""

    num_gates = 3
    gate_names = ("reset", "update", "candidate")

    def __call__(self, x: Tensor, state: tuple[Tensor], w_ih: Tensor, w_hh: Tensor,
                 b_ih: Tensor, b_hh: Tensor) -> tuple[tuple[Tensor], Gates]:
        (h,) = state
        x_r, x_z, x_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)  # r = sigma(W_ir x + b_ir + W_hr h + b_hr)   reset gate
        z = torch.sigmoid(x_z + h_z)  # z = sigma(W_iz x + b_iz + W_hz h + b_hz)   update gate
        # The reset gate scales W_hn h + b_hn, bias included (not W_hn (r * h) as in the paper).
        n = torch.tanh(x_n + r * h_n)  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  candidate
        h_new = (1 - z) * n + z * h    # h' = (1 - z) * n + z * h
        return (h_new,), {"reset": r, "update": z, "candidate": n}


def make_cell(mode: str, nonlinearity: str = "tanh") -> RNNCell | LSTMCell | GRUCell:
    if mode == "rnn":
        return RNNCell(nonlinearity)
    if mode == "lstm":
        return LSTMCell()
    if mode == "gru":
        return GRUCell()
    raise ValueError(f"mode must be 'rnn', 'lstm' or 'gru', not {mode!r}")


class ReferenceRNN(nn.Module):
    """A multi-layer, optionally bidirectional RNN/LSTM/GRU built from the cells above.

    Parameters carry ``nn.RNN``/``nn.LSTM``/``nn.GRU``'s names and shapes (``weight_ih_l0``,
    ``bias_hh_l1_reverse``, ...) and initialisation, and ``forward`` takes and returns what
    theirs does, so the two are interchangeable. A step-by-step Python loop: slow, but every
    gate activation can be returned.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, nonlinearity: str = "tanh", dropout: float = 0.0,
                 batch_first: bool = True):
        super().__init__()
        self.mode = mode
        self.cell = make_cell(mode, nonlinearity)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.batch_first = batch_first
        rows = self.cell.num_gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            shapes = {"weight_ih": (rows, layer_input), "weight_hh": (rows, hidden_size),
                      "bias_ih": (rows,), "bias_hh": (rows,)}
            for suffix in self._suffixes(layer):
                for name, shape in shapes.items():
                    self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def reset_parameters(self) -> None:
        # The same initialisation as the torch modules: U(-1/sqrt(H), 1/sqrt(H)) everywhere.
        bound = self.hidden_size ** -0.5
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _weights(self, suffix: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(getattr(self, f"{name}{suffix}")
                     for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, x: Tensor, h0: Tensor | tuple[Tensor, Tensor] | None = None,
                return_gates: bool = False):
        """``x`` [B, T, I] (batch_first) -> ``(output, h_n)``, or ``(output, (h_n, c_n))`` for lstm.

        With ``return_gates`` a third item ``gates[layer][direction]`` (direction 0 forward,
        1 backward): a dict of gate activations, each [B, T, H] in input time order.
        """
        if x.dim() != 3:
            raise ValueError(f"expected a batched 3-D input, got shape {tuple(x.shape)}")
        if not self.batch_first:
            x = x.transpose(0, 1)
        states = self._initial_states(x, h0)  # per layer and direction: (h,) or (h, c), [B, H]
        finals: list[tuple[Tensor, ...]] = []
        gates: list[list[Gates]] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs, layer_gates = [], []
            for direction, suffix in enumerate(self._suffixes(layer)):
                state = states[layer * self.num_directions + direction]
                steps = layer_input.unbind(dim=1)
                if direction:  # the backward direction reads the sequence from its end
                    steps = steps[::-1]
                hidden, step_gates = [], []
                for x_t in steps:
                    state, g = self.cell(x_t, state, *self._weights(suffix))
                    hidden.append(state[0])
                    step_gates.append(g)
                if direction:
                    hidden, step_gates = hidden[::-1], step_gates[::-1]
                finals.append(state)
                outputs.append(torch.stack(hidden, dim=1))
                if return_gates:
                    layer_gates.append({name: torch.stack([g[name] for g in step_gates], dim=1)
                                        for name in self.cell.gate_names})
            gates.append(layer_gates)
            layer_input = torch.cat(outputs, dim=-1)
            if self.training and self.dropout and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        output = layer_input if self.batch_first else layer_input.transpose(0, 1)
        h_n = torch.stack([s[0] for s in finals])
        final = (h_n, torch.stack([s[1] for s in finals])) if self.mode == "lstm" else h_n
        return (output, final, gates) if return_gates else (output, final)

    def _initial_states(self, x: Tensor, h0) -> list[tuple[Tensor, ...]]:
        """[L * D, B, H] (and c0 for lstm), as torch takes them, split per layer and direction."""
        count = self.num_layers * self.num_directions
        if h0 is None:
            zeros = x.new_zeros(count, x.shape[0], self.hidden_size)
            h0 = (zeros, zeros) if self.mode == "lstm" else zeros
        if self.mode == "lstm":
            h, c = h0
            return [(h[k], c[k]) for k in range(count)]
        return [(h0[k],) for k in range(count)]
