"""The [data] and [train] sections of a spectral LSTM recipe (configs/spectral_*.toml)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SpectralDataConfig:
    corpus: list[str] = field(default_factory=lambda: ["chorales"])  # rendered; audio_corpus.py
    sample_rate: int = 16000               # Hz, the model's rate
    frame_size: int = 4000                 # samples per frame (N; 0.25 s at 16 kHz)
    hop: int = 4000                        # frame_size = no overlap; frame_size // 2 = overlap-add
    spectrum: str = "full"                 # "full" (2N values, the document) or "half" (rfft)
    form: str = "fft"                      # "fft" (real + imaginary, the document) or "logmag"
    calibrate: bool = True                 # measure motion and pick a sampling temperature
    calibrate_seconds: float = 30.0        # free-running seconds per calibration run
    render_pieces: int = 24                # pieces rendered for chorales / essen:… entries
    render_max_seconds: float = 30.0       # seconds rendered per piece
    render_tempo_bpm: float = 100.0
    render_program: int = 0                # General MIDI program (0 = acoustic grand piano)
    val_fraction: float = 0.2              # share of clips held out (at least one clip)
    cache_dir: str = ".cache/riffd"


@dataclass
class SpectralTrainConfig:
    sequence_length: int = 40              # frames per training window (T; 10 s at 0.25 s)
    stride: int = 10                       # frames between window starts
    batch_size: int = 16
    learning_rate: float = 1e-4            # the document: RMSprop, lr 1e-4
    epochs: int = 200
    grad_clip: float = 0.0                 # 0 = no clipping (the document does not clip)
    early_stop_patience: int = 20          # epochs without validation gain before stopping
    max_batches_per_epoch: int = 0         # 0 = all
    seed: int = 0
    device: str = "auto"
    threads: int = 0                       # torch CPU threads, 0 = torch's choice
    output_dir: str = "runs/spectral"
