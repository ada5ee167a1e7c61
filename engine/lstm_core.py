"""The body the notewise and multilabel families share, with a streaming ``step``.

    [causal CNN front end] → LSTM × layers → [windowed attention] → dense → ReLU → dropout

The CNN front end is the CNN-LSTM document's Conv1D → max-pool → batch-norm → ReLU, made
causal so it streams: the convolution is left-padded (step t sees inputs t-k+1 … t) and the
max-pool runs over a causal window of ``pool`` conv outputs with stride 1 (step t takes the
max over conv outputs t-pool+1 … t). The document's pool also halves the sequence length
(and the training time); a stride-1 pool keeps one output per step so a step can be served
every 16th note. Batch-norm uses its running statistics in eval mode, so ``step`` equals
``forward`` for a model in eval mode (the state holds the last k-1 inputs and pool-1 conv
outputs). PyTorch's LSTM has no recurrent dropout; the documents' recurrent dropout becomes
dropout between LSTM layers.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from riffd.engine.attention import WindowedAttention

CoreState = dict[str, Any]


class CausalConvFrontEnd(nn.Module):
    """Conv1D(channels, kernel) → causal max-pool(pool, stride 1) → BatchNorm → ReLU.

    Works on (B, T, C_in) → (B, T, channels): one output per input step.
    """

    def __init__(self, in_dim: int, channels: int, kernel: int, pool: int):
        super().__init__()
        if kernel < 1 or pool < 1:
            raise ValueError(f"conv kernel and pool must be at least 1, got {kernel}, {pool}")
        self.in_dim, self.channels, self.kernel, self.pool = in_dim, channels, kernel, pool
        self.conv = nn.Conv1d(in_dim, channels, kernel)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))            # (B, C_in, T + k - 1)
        y = self.conv(x)                                               # (B, C, T)
        y = F.pad(y, (self.pool - 1, 0), value=float("-inf"))          # (B, C, T + p - 1)
        y = F.max_pool1d(y, self.pool, stride=1)                       # (B, C, T)
        return F.relu(self.norm(y)).transpose(1, 2)                    # (B, T, C)

    def init_state(self, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(batch, self.in_dim, self.kernel - 1, device=device),
                torch.full((batch, self.channels, self.pool - 1), float("-inf"), device=device))

    def step(self, x: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        """x: (B, C_in) → (B, C); the state keeps the last k-1 inputs and p-1 conv outputs."""
        inputs, conv_out = state
        window = torch.cat([inputs, x.unsqueeze(-1)], dim=-1)         # (B, C_in, k)
        y = self.conv(window)                                          # (B, C, 1)
        pooled = torch.cat([conv_out, y], dim=-1)                      # (B, C, p)
        out = F.relu(self.norm(pooled.amax(dim=-1, keepdim=True)))[..., 0]   # (B, C)
        return out, (window[..., 1:], pooled[..., 1:])


class RecurrentCore(nn.Module):
    """Front end (optional CNN), LSTM stack, optional attention and the dense layer."""

    def __init__(self, in_dim: int, hidden_size: int, num_layers: int, dense_size: int,
                 dropout: float, lstm_dropout: float, attention: bool, attention_dim: int,
                 attention_window: int, cnn: bool, cnn_channels: int, cnn_kernel: int,
                 cnn_pool: int):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.cnn = CausalConvFrontEnd(in_dim, cnn_channels, cnn_kernel, cnn_pool) if cnn else None
        lstm_in = cnn_channels if cnn else in_dim
        self.lstm = nn.LSTM(lstm_in, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=lstm_dropout if num_layers > 1 else 0.0)
        self.attention = (WindowedAttention(hidden_size, attention_dim, attention_window)
                          if attention else None)
        self.dense = nn.Linear(hidden_size, dense_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, in_dim) → features (B, T, dense_size)."""
        if self.cnn is not None:
            x = self.cnn(x)                                            # (B, T, C)
        y, _ = self.lstm(x)                                            # (B, T, H)
        if self.attention is not None:
            y = self.attention(y)                                      # (B, T, H)
        return self.dropout(F.relu(self.dense(y)))                     # (B, T, dense)

    def init_state(self, batch: int, device) -> CoreState:
        shape = (self.num_layers, batch, self.hidden_size)
        state: CoreState = {"lstm": (torch.zeros(shape, device=device),
                                     torch.zeros(shape, device=device))}
        if self.cnn is not None:
            state["cnn"] = self.cnn.init_state(batch, device)
        if self.attention is not None:
            state["attention"] = self.attention.init_state(batch, device)
        return state

    def step(self, x: torch.Tensor, state: CoreState) -> tuple[torch.Tensor, CoreState]:
        """x: (B, in_dim) one step → features (B, dense_size) and the new state."""
        new: CoreState = {}
        if self.cnn is not None:
            x, new["cnn"] = self.cnn.step(x, state["cnn"])
        y, new["lstm"] = self.lstm(x.unsqueeze(1), state["lstm"])     # (B, 1, H)
        y = y[:, 0]
        if self.attention is not None:
            y, new["attention"] = self.attention.step(y, state["attention"])
        return self.dropout(F.relu(self.dense(y))), new
