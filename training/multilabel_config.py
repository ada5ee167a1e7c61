"""The [data] and [train] sections of a multilabel recipe (configs/multilabel_m*_chorales.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field

from riffd.training.sequence_config import SequenceTrainConfig


@dataclass
class MultilabelDataConfig:
    corpus: list[str] = field(default_factory=lambda: ["chorales"])  # "chorales" or corpus specs
    max_songs: int = 0                     # 0 = every piece
    low: int = 60                          # lowest pitch (MIDI): C4, the document's octave cut
    high: int = 83                         # highest pitch: B5 (21 … 108 = the full piano)
    fold: bool = True                      # move outside notes by octaves into the range
    transpose: bool = False                # C major / A minor (the document preferred False)
    restrike_gap: bool = True              # a re-struck pitch leaves a one-frame gap
    val_fraction: float = 0.1              # share of pieces held out for validation
    cache_dir: str = ".cache/riffd"


@dataclass
class MultilabelTrainConfig(SequenceTrainConfig):
    sequence_length: int = 64              # frames (16ths) per training window: 4 bars
    stride: int = 16                       # frames between window starts
    epochs: int = 20                       # the document: 20 epochs
    output_dir: str = "runs/multilabel"
    inference_mode: str = "threshold"      # threshold | bernoulli (stored for serving)
    threshold: float = 0.3                 # the document's p = 0.3
