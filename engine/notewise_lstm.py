"""The notewise LSTMs of the LSTM document (N1–N4): next (pitch, duration) event from the events so far.

    pitch embedding ⊕ duration embedding → [causal CNN] → LSTM × 3 → [attention] → dense
    → two softmax heads: pitch token and duration token

N1: three LSTM layers and the dense layer. N2: N1 with attention between the last LSTM
and the dense layer. N3: the CNN-LSTM (Conv1D → max-pool → batch-norm → ReLU in front).
N4: N3 with attention. The switches ``attention`` and ``cnn`` pick the variant.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from riffd.engine.lstm_core import CoreState, RecurrentCore

FAMILY = "notewise_lstm"


@dataclass
class NotewiseLSTMConfig:
    """Everything the model needs. ``vocab_size``: pitch tokens; ``num_durations``: duration tokens.

    Sizes are units; ``attention_window`` is in events; ``cnn_kernel`` and ``cnn_pool`` too.
    """

    vocab_size: int
    num_durations: int
    pitch_embed_dim: int = 64
    duration_embed_dim: int = 16
    hidden_size: int = 256
    num_layers: int = 3
    dense_size: int = 128
    dropout: float = 0.0            # after the dense layer (the document's Dropout(0))
    lstm_dropout: float = 0.0       # between LSTM layers (stands in for recurrent dropout)
    attention: bool = False
    attention_dim: int = 64
    attention_window: int = 32
    cnn: bool = False
    cnn_channels: int = 512
    cnn_kernel: int = 5
    cnn_pool: int = 2


class NotewiseLSTM(nn.Module):
    def __init__(self, cfg: NotewiseLSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.pitch_embed = nn.Embedding(cfg.vocab_size, cfg.pitch_embed_dim)
        self.duration_embed = nn.Embedding(cfg.num_durations, cfg.duration_embed_dim)
        self.core = RecurrentCore(
            cfg.pitch_embed_dim + cfg.duration_embed_dim, cfg.hidden_size, cfg.num_layers,
            cfg.dense_size, cfg.dropout, cfg.lstm_dropout, cfg.attention, cfg.attention_dim,
            cfg.attention_window, cfg.cnn, cfg.cnn_channels, cfg.cnn_kernel, cfg.cnn_pool)
        self.pitch_head = nn.Linear(cfg.dense_size, cfg.vocab_size)
        self.duration_head = nn.Linear(cfg.dense_size, cfg.num_durations)

    def _embed(self, pitches: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pitch_embed(pitches), self.duration_embed(durations)], dim=-1)

    def forward(self, pitches: torch.Tensor, durations: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """pitches, durations: (B, T) ids → logits for the next event: (B, T, P), (B, T, D)."""
        y = self.core(self._embed(pitches, durations))                # (B, T, dense)
        return self.pitch_head(y), self.duration_head(y)

    def init_state(self, batch: int, device: torch.device | str) -> CoreState:
        return self.core.init_state(batch, device)

    def step(self, pitch: torch.Tensor, duration: torch.Tensor, state: CoreState
             ) -> tuple[tuple[torch.Tensor, torch.Tensor], CoreState]:
        """One event: pitch, duration (B,) ids → ((B, P), (B, D)) logits and the new state."""
        y, state = self.core.step(self._embed(pitch, duration), state)
        return (self.pitch_head(y), self.duration_head(y)), state
