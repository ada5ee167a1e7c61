"""The CNN-LSTM GAN of the GAN document: a DCGAN-like CNN generator, a bi-LSTM discriminator.

Generator (document, Fig. 6): dense → reshape to a small 2-D map → [upsample ×2 →
transposed conv → batch-norm → leaky ReLU] → [upsample ×2 → transposed conv → leaky ReLU]
→ transposed conv → one channel, cropped to a bar of ``bar_steps`` frames × ``num_pitches``
pitches → sigmoid (in ``forward``; the generator itself returns logits).
The map starts at (bar_steps/4, ceil(num_pitches/4)) so two ×2 upsamplings reach the bar.
Discriminator: the bi-LSTM discriminator of ``riffd.engine.gan_bilstm``.
See ``riffd.engine.gan_bilstm.GANBase`` for the bar-level streaming contract.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from riffd.engine.gan_bilstm import GANBase, build_discriminator

FAMILY = "gan_cnn"


@dataclass
class CNNGANConfig:
    num_pitches: int = 24           # decided by the data's pitch range
    bar_steps: int = 16             # frames per bar (16ths; must be a multiple of 4)
    latent_dim: int = 100
    channels: int = 128             # channels after the dense layer; halved per subunit
    kernel_size: int = 5            # odd, so "same" padding keeps the map size
    disc_hidden_size: int = 512
    disc_dense1: int = 512
    disc_dense2: int = 256


class CNNBarGenerator(nn.Module):
    """(B, latent_dim) → (B, T, P) logits of a bar."""

    def __init__(self, cfg: CNNGANConfig):
        super().__init__()
        if cfg.bar_steps % 4:
            raise ValueError(f"bar_steps={cfg.bar_steps}: the CNN generator upsamples twice "
                             "by 2, so a bar must be a multiple of 4 frames")
        if cfg.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={cfg.kernel_size} must be odd")
        c, k, pad = cfg.channels, cfg.kernel_size, cfg.kernel_size // 2
        self.height, self.width = cfg.bar_steps // 4, math.ceil(cfg.num_pitches / 4)
        self.num_pitches = cfg.num_pitches
        self.dense = nn.Linear(cfg.latent_dim, c * self.height * self.width)
        self.first_act = nn.LeakyReLU(0.2)
        self.unit1 = nn.Sequential(nn.Upsample(scale_factor=2),
                                   nn.ConvTranspose2d(c, c // 2, k, padding=pad),
                                   nn.BatchNorm2d(c // 2), nn.LeakyReLU(0.2))
        self.unit2 = nn.Sequential(nn.Upsample(scale_factor=2),
                                   nn.ConvTranspose2d(c // 2, c // 4, k, padding=pad),
                                   nn.LeakyReLU(0.2))
        self.out = nn.ConvTranspose2d(c // 4, 1, k, padding=pad)
        self.channels = c

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.first_act(self.dense(z))                           # (B, C·H·W)
        x = x.view(-1, self.channels, self.height, self.width)      # (B, C, T/4, ⌈P/4⌉)
        x = self.unit1(x)                                           # (B, C/2, T/2, ⌈P/4⌉·2)
        x = self.unit2(x)                                           # (B, C/4, T, ⌈P/4⌉·4)
        x = self.out(x)                                             # (B, 1, T, ⌈P/4⌉·4)
        return x[:, 0, :, :self.num_pitches]                        # (B, T, P)


class CNNGAN(GANBase):
    """CNN generator + bi-LSTM discriminator."""

    family = FAMILY

    def __init__(self, cfg: CNNGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = CNNBarGenerator(cfg)
        self.discriminator = build_discriminator(cfg)
