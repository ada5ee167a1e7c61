"""The [data] and [train] sections of a GAN recipe (configs/gan_cnn_chorales.toml,
configs/gan_bilstm_chorales.toml)."""
from __future__ import annotations

from dataclasses import dataclass

CORPORA = ("chorales",)                    # training.corpora: "bach_chorales" is read too


@dataclass
class GANDataConfig:
    corpus: str = "chorales"               # the 371 chorales of music21's corpus
    max_pieces: int = 0                    # 0 = every chorale
    transpose: bool = False                # move pieces to C major / A minor first
    pitch_low: int = 60                    # MIDI; 60–83 = C4–B5, the octave cutting range
    pitch_high: int = 83
    fold: bool = True                      # fold notes outside the range by octaves
    restrike_gap: bool = True              # a re-struck pitch leaves a one-frame gap
    bar_steps: int = 16                    # frames (16ths) per bar: 16 = 4/4 bars only
    val_fraction: float = 0.1              # share of pieces held out
    cache_dir: str = ".cache/riffd"


@dataclass
class GANTrainConfig:
    batch_size: int = 64                   # bars per batch
    epochs: int = 60
    optimizer: str = "adam"                # "adam" or "sgd"
    learning_rate: float = 2e-4
    beta1: float = 0.5                     # Adam's first-moment decay (DCGAN's 0.5)
    lr_decay: float = 1.0                  # learning rate × this after every epoch
    generator_updates: int = 1             # generator steps per batch …
    discriminator_updates: int = 1         # … and discriminator steps (the update ratio)
    pretrain_discriminator_epochs: int = 0 # epochs of discriminator-only training first
    pretrain_generator_epochs: int = 0     # epochs of generator feature matching first
    threshold: float = 0.5                 # probability above which a pitch sounds
    eval_bars: int = 256                   # bars generated after each epoch for the metrics
    max_batches_per_epoch: int = 0         # 0 = all
    max_minutes: float = 0.0               # stop after this much training time, 0 = none
    seed: int = 0
    device: str = "auto"
    threads: int = 0                       # torch CPU threads, 0 = torch's choice
    output_dir: str = "runs/gan"
