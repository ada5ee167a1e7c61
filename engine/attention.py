"""Causal attention over a bounded window of earlier time steps, in a form that streams.

Each step's output attends over the last ``window`` LSTM outputs (itself included), a
soft (Bahdanau-style) attention that the notewise and multilabel documents put between
the last LSTM layer and the dense layer. In training ``forward`` applies a banded causal
mask (step t sees steps t-window+1 … t); at serve time ``step`` keeps the keys and values
of the last ``window`` steps in a ring buffer, so the cost per step is bounded by the
window, not the history. There is no positional encoding, so the order of entries in
the ring does not matter and stepping gives the same numbers as ``forward``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# (keys (B, W, A), values (B, W, D), valid (B, W) bool, next slot (0-dim int64 tensor))
AttentionState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class WindowedAttention(nn.Module):
    """Scaled dot-product attention over the last ``window`` steps; output h + tanh(W[h; c]).

    The residual path (h +) lets a deep LSTM stack train as fast as without attention.

    dim: size of the inputs (the last LSTM layer's hidden size). attn_dim: size of queries
    and keys. window: how many steps (this one included) a step can see.
    """

    def __init__(self, dim: int, attn_dim: int, window: int):
        super().__init__()
        if window < 1:
            raise ValueError(f"attention window must be at least 1 step, got {window}")
        self.dim, self.attn_dim, self.window = dim, attn_dim, window
        self.query = nn.Linear(dim, attn_dim)
        self.key = nn.Linear(dim, attn_dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, T, D) → (B, T, D); step t attends over steps max(0, t-W+1) … t."""
        T = h.shape[1]
        q, k, v = self.query(h), self.key(h), self.value(h)          # (B,T,A) (B,T,A) (B,T,D)
        scores = q @ k.transpose(1, 2) / math.sqrt(self.attn_dim)    # (B, T, T)
        t = torch.arange(T, device=h.device)
        lag = t[:, None] - t[None, :]                                # query t, key s: t - s
        band = (lag >= 0) & (lag < self.window)                      # (T, T)
        weights = torch.softmax(scores.masked_fill(~band, float("-inf")), dim=-1)
        context = weights @ v                                        # (B, T, D)
        return h + torch.tanh(self.out(torch.cat([h, context], dim=-1)))

    def init_state(self, batch: int, device: torch.device | str) -> AttentionState:
        W = self.window
        return (torch.zeros(batch, W, self.attn_dim, device=device),
                torch.zeros(batch, W, self.dim, device=device),
                torch.zeros(batch, W, dtype=torch.bool, device=device),
                torch.zeros((), dtype=torch.long, device=device))

    def step(self, h: torch.Tensor, state: AttentionState) -> tuple[torch.Tensor, AttentionState]:
        """h: (B, D) one step → (B, D) and the new state (the ring holds at most W steps)."""
        keys, values, valid, slot = state
        i = int(slot) % self.window
        keys, values, valid = keys.clone(), values.clone(), valid.clone()
        keys[:, i] = self.key(h)
        values[:, i] = self.value(h)
        valid[:, i] = True
        q = self.query(h)                                            # (B, A)
        scores = (keys @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.attn_dim)   # (B, W)
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
        context = (weights.unsqueeze(1) @ values).squeeze(1)         # (B, D)
        out = h + torch.tanh(self.out(torch.cat([h, context], dim=-1)))
        return out, (keys, values, valid, slot + 1)
