"""The [data] and [train] sections of a melody LSTM recipe (configs/melody_erk.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field

from riffd.training.sequence_config import SequenceTrainConfig


@dataclass
class MelodyDataConfig:
    corpus: list[str] = field(default_factory=lambda: ["essen:erk"])  # specs, see corpus.py
    max_songs: int = 0                     # 0 = every song the corpus has
    acceptable_durations: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0])  # beats
    transpose: bool = True                 # move songs to C major / A minor
    val_fraction: float = 0.1              # share of songs held out for validation
    cache_dir: str = ".cache/riffd"


@dataclass
class MelodyTrainConfig(SequenceTrainConfig):
    sequence_length: int = 64              # steps (16th notes) per training window
    stride: int = 32                       # steps between window starts
    output_dir: str = "runs/melody_erk"
