"""The multilabel LSTMs of the LSTM document (M4–M7): next piano-roll frame, one sigmoid per pitch.

    frame (P multi-hot) → [causal CNN] → LSTM × 3 → [attention] → dense → ReLU → dropout
    → dense(P) → sigmoid (binary cross-entropy in training)

M4: LSTM(512) × 3 → Dense(256). M5: M4 with attention between the last LSTM and the
dense layer. M6: LSTM(256) × 3 → attention → Dense(128). M7: M4 with Dense(128).
Dropout 0.3 after the dense layer; the first layer's recurrent dropout becomes dropout
between LSTM layers. A frame is a 16th note (0.25 beats); P = 24 for C4–B5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from riffd.engine.lstm_core import CoreState, RecurrentCore

FAMILY = "multilabel_lstm"


@dataclass
class MultilabelLSTMConfig:
    """Everything the model needs. ``num_pitches``: columns of a frame (set by the data)."""

    num_pitches: int
    hidden_size: int = 512
    num_layers: int = 3
    dense_size: int = 256
    dropout: float = 0.3
    lstm_dropout: float = 0.3
    attention: bool = False
    attention_dim: int = 64
    attention_window: int = 64      # frames (16ths): 4 bars of 4/4
    cnn: bool = False
    cnn_channels: int = 256
    cnn_kernel: int = 5             # frames
    cnn_pool: int = 2               # frames


class MultilabelLSTM(nn.Module):
    def __init__(self, cfg: MultilabelLSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.core = RecurrentCore(
            cfg.num_pitches, cfg.hidden_size, cfg.num_layers, cfg.dense_size, cfg.dropout,
            cfg.lstm_dropout, cfg.attention, cfg.attention_dim, cfg.attention_window, cfg.cnn,
            cfg.cnn_channels, cfg.cnn_kernel, cfg.cnn_pool)
        self.head = nn.Linear(cfg.dense_size, cfg.num_pitches)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, P) in {0, 1} → logits of the next frame (B, T, P)."""
        return self.head(self.core(frames))

    def init_state(self, batch: int, device: torch.device | str) -> CoreState:
        return self.core.init_state(batch, device)

    def step(self, frame: torch.Tensor, state: CoreState) -> tuple[torch.Tensor, CoreState]:
        """One frame (B, P) → logits of the next (B, P) and the new state."""
        y, state = self.core.step(frame, state)
        return self.head(y), state
