"""The [data] and [train] sections of a notewise recipe (configs/notewise_*.toml, cnn_lstm_*.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NotewiseDataConfig:
    corpus: list[str] = field(default_factory=lambda: ["essen:erk"])  # specs, see corpus.py
    variant: str = "root"                  # chords | root | rests (engine.notewise_representation)
    max_songs: int = 0                     # 0 = every song the corpus has
    transpose: bool = True                 # move songs to C major / A minor
    melody_only: bool = True               # multi-track MIDI: keep only the melody track
    val_fraction: float = 0.1              # share of songs held out for validation
    cache_dir: str = ".cache/riffd"


@dataclass
class NotewiseTrainConfig:
    sequence_length: int = 32              # events per training window
    stride: int = 8                        # events between window starts
    batch_size: int = 64
    learning_rate: float = 1e-3
    epochs: int = 50
    grad_clip: float = 1.0
    lr_patience: int = 2                   # epochs without improvement before annealing
    lr_factor: float = 0.5
    early_stop_patience: int = 6
    max_batches_per_epoch: int = 0         # 0 = all
    seed: int = 0
    device: str = "auto"
    threads: int = 0                       # torch CPU threads, 0 = torch's choice
    output_dir: str = "runs/notewise"
