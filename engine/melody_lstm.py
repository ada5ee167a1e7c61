"""The melody LSTM of the melody document: embedding → LSTM → dropout → linear → softmax.

``forward`` trains on whole sequences; ``init_state`` / ``step`` generate one 16th-note
token at a time with a cost per step that does not depend on the history length.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FAMILY = "melody_lstm"

LSTMState = tuple[torch.Tensor, torch.Tensor]   # (h, c), each (layers, B, hidden)


@dataclass
class MelodyLSTMConfig:
    """Everything the model needs. ``vocab_size`` counts the token vocabulary."""

    vocab_size: int
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.2


class MelodyLSTM(nn.Module):
    def __init__(self, cfg: MelodyLSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_size, num_layers=cfg.num_layers,
                            batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor, state: LSTMState | None = None) -> torch.Tensor:
        """Logits for the next token at every position.

        tokens: (B, T) int64 token ids → logits (B, T, V).
        """
        x = self.embed(tokens)                       # (B, T, E)
        y, _ = self.lstm(x, state)                   # (B, T, H)
        return self.head(self.dropout(y))            # (B, T, V)

    def init_state(self, batch: int, device: torch.device | str) -> LSTMState:
        """Zero state for ``batch`` streams."""
        shape = (self.cfg.num_layers, batch, self.cfg.hidden_size)
        return (torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def step(self, token: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """Advance one step. token: (B,) ids → logits (B, V) and the new state."""
        x = self.embed(token).unsqueeze(1)           # (B, 1, E)
        y, state = self.lstm(x, state)               # (B, 1, H)
        return self.head(self.dropout(y[:, 0])), state
