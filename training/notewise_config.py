"""The [data] and [train] sections of a notewise recipe (configs/notewise_*.toml, cnn_lstm_*.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field

from riffd.training.sequence_config import SequenceTrainConfig


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
class NotewiseTrainConfig(SequenceTrainConfig):
    sequence_length: int = 32              # events per training window
    stride: int = 8                        # events between window starts
    output_dir: str = "runs/notewise"
