"""The recurrent encoder: [B, T, F] feature frames -> per-frame outputs [B, T, D] -> pooled [B, D].

Everything in front of the recurrent layers is causal (an output frame depends on the
current and earlier frames only), so the per-frame outputs of a forward-only encoder can be
reproduced by a streaming model that carries state from one chunk to the next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Impl, ModelConfig
from .cells import ReferenceRNN

RNNS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class CausalConv(nn.Module):
    """Conv1d over time (kernel 3) + ReLU, padded on the left only: the length is kept and
    frame t sees frames t-2..t, never the future (a symmetric pad would break streaming)."""

    kernel_size = 3

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, self.kernel_size)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, T] -> [B, C', T]
        return torch.relu(self.conv(F.pad(x, (self.kernel_size - 1, 0))))


class LastPool(nn.Module):
    """The final state of each direction: the forward direction's last frame and, when
    bidirectional, the backward direction's first frame (where it has read the whole clip)."""

    def __init__(self, hidden_size: int, bidirectional: bool):
        super().__init__()
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional

    def forward(self, frames: Tensor) -> Tensor:
        last = frames[:, -1, : self.hidden_size]
        if not self.bidirectional:
            return last
        return torch.cat([last, frames[:, 0, self.hidden_size:]], dim=-1)


class MeanPool(nn.Module):
    def forward(self, frames: Tensor) -> Tensor:
        return frames.mean(dim=1)


class MaxPool(nn.Module):
    def forward(self, frames: Tensor) -> Tensor:
        return frames.amax(dim=1)


class AttentionPool(nn.Module):
    """A learned score per frame, softmax over time, the weighted sum of the frames."""

    def __init__(self, dim: int):
        super().__init__()
        # No bias: softmax over time ignores a shift shared by every frame.
        self.score = nn.Linear(dim, 1, bias=False)

    def weights(self, frames: Tensor) -> Tensor:  # [B, T, D] -> [B, T], each row sums to 1
        return torch.softmax(self.score(frames).squeeze(-1), dim=1)

    def forward(self, frames: Tensor) -> Tensor:
        return torch.einsum("bt,btd->bd", self.weights(frames), frames)


class RecurrentEncoder(nn.Module):
    """Optional LayerNorm and causal convs, then ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (or the
    written-out ``ReferenceRNN`` with the same parameter names, ``impl=reference``), then
    pooling over time and dropout."""

    def __init__(self, input_size: int, model: ModelConfig):
        super().__init__()
        self.cell = cell = model.cell.value
        self.nonlinearity = nonlinearity = model.nonlinearity.value
        self.pooling = pooling = model.pooling.value
        self.bidirectional = bool(model.bidirectional)
        self.input_norm = nn.LayerNorm(input_size) if model.input_norm else nn.Identity()
        channels = [input_size] + [model.conv_channels] * model.conv_layers
        self.convs = nn.Sequential(*(CausalConv(a, b) for a, b in zip(channels, channels[1:])))

        rnn_args = dict(input_size=channels[-1], hidden_size=model.hidden_size,
                        num_layers=model.num_layers, bidirectional=self.bidirectional,
                        # torch applies it between layers only, and warns when there is one.
                        dropout=model.dropout if model.num_layers > 1 else 0.0, batch_first=True)
        if model.impl is Impl.reference:
            self.rnn = ReferenceRNN(cell, nonlinearity=nonlinearity, **rnn_args)
        elif cell == "rnn":
            self.rnn = nn.RNN(nonlinearity=nonlinearity, **rnn_args)
        else:
            self.rnn = RNNS[cell](**rnn_args)

        self.output_dim = model.hidden_size * (2 if self.bidirectional else 1)
        if pooling == "last":
            self.pool = LastPool(model.hidden_size, self.bidirectional)
        elif pooling == "attention":
            self.pool = AttentionPool(self.output_dim)
        else:
            self.pool = MeanPool() if pooling == "mean" else MaxPool()
        self.dropout = nn.Dropout(model.dropout)

    def frames(self, feats: Tensor) -> Tensor:
        """Per-frame encoder outputs: [B, T, F] -> [B, T, output_dim]."""
        x = self.input_norm(feats)
        x = self.convs(x.transpose(1, 2)).transpose(1, 2)  # an empty Sequential passes x on
        return self.rnn(x)[0]

    def forward(self, feats: Tensor) -> Tensor:
        """[B, T, F] -> one vector per clip [B, output_dim]."""
        return self.dropout(self.pool(self.frames(feats)))
