"""Choosing the next token from logits: greedy, temperature, top-k, top-p and masks."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SamplingSettings:
    """How to draw a token.

    temperature: divides the logits (1.0 = the model's distribution, lower = safer).
    top_k: keep the k most likely tokens (0 = off). top_p: keep the smallest set whose
    probability reaches p (1.0 = off). greedy: always take the most likely token.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False


def sample(logits: torch.Tensor, settings: SamplingSettings,
           allowed: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row.

    logits: (B, V). allowed: optional (V,) bool mask of tokens that may be chosen (pitch
    range, scale). Returns (B,) int64 ids.
    """
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if settings.greedy:
        return logits.argmax(dim=-1)
    logits = logits / max(settings.temperature, 1e-4)
    if settings.top_k > 0 and settings.top_k < logits.shape[-1]:
        kth = torch.topk(logits, settings.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already reach top_p; keep the first
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= settings.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
