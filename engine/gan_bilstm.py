"""The bi-LSTM GAN of the GAN document: bi-LSTM generator and bi-LSTM discriminator.

A GAN makes one bar at a time: a latent vector ``z`` (``latent_dim`` numbers, standard
normal) → a bar of ``bar_steps`` 16th-note frames × ``num_pitches`` pitches, each the
probability that the pitch sounds in that frame (threshold it to get a piano roll, see
``riffd.engine.gan_generator``).

Generator (document, Fig. 4): LSTM(512) → dropout → bi-LSTM(2×512) → dropout →
bi-LSTM(2×512) → dense(1024) → leaky ReLU → batch-norm → dense(pitches) → sigmoid. The
latent vector is fed at every frame together with a learned frame embedding (the
document feeds a sequence; here the sequence is the bar).
Discriminator (Fig. 5, shared with the CNN GAN): LSTM(512) → bi-LSTM(2×512), last
states → dense(512) → leaky ReLU → dense(256) → leaky ReLU → dense(1). It returns logits
(the sigmoid is folded into the loss, ``BCEWithLogits``, for numerical safety).

Streaming contract: a bar is the unit of generation. ``init_state``/``step(z, state)``
return the same bar as ``forward(z)`` (a bar depends on its latent only), so the cost of a
bar is one generator pass, independent of how much was played before.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FAMILY = "gan_bilstm"


class BiLSTMDiscriminator(nn.Module):
    """(B, T, P) bars (probabilities or 0/1) → (B,) logits that they are real."""

    def __init__(self, num_pitches: int, hidden_size: int, dense_sizes: tuple[int, int]):
        super().__init__()
        self.lstm = nn.LSTM(num_pitches, hidden_size, batch_first=True)
        self.bilstm = nn.LSTM(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        d1, d2 = dense_sizes
        self.head = nn.Sequential(nn.Linear(2 * hidden_size, d1), nn.LeakyReLU(0.2),
                                  nn.Linear(d1, d2), nn.LeakyReLU(0.2), nn.Linear(d2, 1))

    def forward(self, bars: torch.Tensor) -> torch.Tensor:
        x, _ = self.lstm(bars)                                      # (B, T, H)
        _, (h, _) = self.bilstm(x)                                  # h: (2, B, H)
        last = torch.cat([h[0], h[1]], dim=-1)                      # (B, 2H)
        return self.head(last)[:, 0]                                # (B,)


@dataclass
class BiLSTMGANConfig:
    num_pitches: int = 24           # decided by the data's pitch range
    bar_steps: int = 16             # frames per bar (16ths; 16 = 4/4)
    latent_dim: int = 100
    frame_embed_dim: int = 16       # learned embedding of the frame position in the bar
    hidden_size: int = 512          # generator LSTMs, per direction
    dense_size: int = 1024
    dropout: float = 0.3
    disc_hidden_size: int = 512
    disc_dense1: int = 512
    disc_dense2: int = 256


class BiLSTMBarGenerator(nn.Module):
    """(B, latent_dim) → (B, T, P) logits of a bar."""

    def __init__(self, cfg: BiLSTMGANConfig):
        super().__init__()
        self.frames = nn.Parameter(torch.randn(cfg.bar_steps, cfg.frame_embed_dim) * 0.1)
        h = cfg.hidden_size
        self.lstm1 = nn.LSTM(cfg.latent_dim + cfg.frame_embed_dim, h, batch_first=True)
        self.lstm2 = nn.LSTM(h, h, batch_first=True, bidirectional=True)
        self.lstm3 = nn.LSTM(2 * h, h, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(cfg.dropout)
        self.dense = nn.Linear(2 * h, cfg.dense_size)
        self.act = nn.LeakyReLU(0.2)
        self.norm = nn.BatchNorm1d(cfg.dense_size)
        self.out = nn.Linear(cfg.dense_size, cfg.num_pitches)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, T = z.shape[0], self.frames.shape[0]
        x = torch.cat([z[:, None, :].expand(B, T, z.shape[1]),
                       self.frames[None].expand(B, T, self.frames.shape[1])], dim=-1)
        x, _ = self.lstm1(x)                                        # (B, T, H)
        x, _ = self.lstm2(self.drop(x))                             # (B, T, 2H)
        x, _ = self.lstm3(self.drop(x))                             # (B, T, 2H)
        x = self.act(self.dense(self.drop(x)))                      # (B, T, D)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)            # batch-norm over D
        return self.out(x)                                          # (B, T, P)


class GANBase(nn.Module):
    """What both GAN families share: sampling latents, bars, the streaming contract."""

    family = ""
    cfg: object
    generator: nn.Module
    discriminator: nn.Module

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """(n, latent_dim) standard-normal latents."""
        return torch.randn(n, self.cfg.latent_dim, generator=generator, device=device)

    def bar_logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, bar_steps, num_pitches) logits."""
        return self.generator(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) → (B, bar_steps, num_pitches) probabilities that a pitch sounds."""
        return torch.sigmoid(self.generator(z))

    def init_state(self, batch: int, device: torch.device | str):
        """A GAN bar has no recurrent state between bars (coherence comes from the latent)."""
        return None

    def step(self, z: torch.Tensor, state=None):
        """One bar: (B, latent_dim) → ((B, bar_steps, num_pitches) probabilities, state)."""
        return self.forward(z), state

    def discriminate(self, bars: torch.Tensor) -> torch.Tensor:
        """(B, bar_steps, num_pitches) → (B,) logits that the bars are real."""
        return self.discriminator(bars)


def build_discriminator(cfg) -> BiLSTMDiscriminator:
    return BiLSTMDiscriminator(cfg.num_pitches, cfg.disc_hidden_size,
                               (cfg.disc_dense1, cfg.disc_dense2))


class BiLSTMGAN(GANBase):
    """Bi-LSTM generator + bi-LSTM discriminator."""

    family = FAMILY

    def __init__(self, cfg: BiLSTMGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = BiLSTMBarGenerator(cfg)
        self.discriminator = build_discriminator(cfg)
