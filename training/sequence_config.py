"""The [train] section the LSTM sequence families share (melody, notewise, multilabel).

Training windows are cut from the encoded songs (``sequence_length`` long, ``stride``
apart, in the family's unit: 16th steps, events or frames), then ``riffd.training.loop.fit``
trains on them. Each family's subclass gives the window defaults, its ``output_dir`` and any
fields of its own; a field redeclared there keeps its place in the section.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SequenceTrainConfig:
    sequence_length: int                   # steps per training window (the family's unit)
    stride: int                            # steps between window starts
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
