"""Tiny checkpoints of every symbolic family for the render tests: random weights of a small
config, with the metadata the trainers write, saved by the real checkpoint writer. They
test what render does with a model's output (files, lengths, ranges, errors), not music."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from riffd.engine.checkpoint import save_checkpoint
from riffd.engine.gan_bilstm import BiLSTMGAN, BiLSTMGANConfig
from riffd.engine.gan_cnn import CNNGAN, CNNGANConfig
from riffd.engine.melody_representation import Note
from riffd.engine.multilabel_lstm import MultilabelLSTM, MultilabelLSTMConfig
from riffd.engine.notewise_lstm import NotewiseLSTM, NotewiseLSTMConfig
from riffd.engine.notewise_representation import NotewiseVocabulary, encode_events
from riffd.engine.pianoroll import PitchRange

PITCH_RANGE = PitchRange(48, 83, fold=True)


def _save(path: Path, model: torch.nn.Module, metadata: dict) -> Path:
    return save_checkpoint(path, model.state_dict(), metadata)


def notewise(path: Path) -> Path:
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    songs = [encode_events([Note(p, i * d, d) for i, p in enumerate(scale)], "chords")
             for d in (0.25, 0.5, 1.0)]
    songs.append(encode_events([Note(p, 0.0, 2.0) for p in (60, 64, 67)], "chords"))
    vocab = NotewiseVocabulary.from_songs(songs, "chords")
    torch.manual_seed(0)
    cfg = NotewiseLSTMConfig(vocab_size=len(vocab.pitch_tokens),
                             num_durations=len(vocab.duration_tokens), pitch_embed_dim=8,
                             duration_embed_dim=4, hidden_size=16, num_layers=1, dense_size=16)
    return _save(path, NotewiseLSTM(cfg), {
        "family": "notewise_lstm", "name": "tiny", "config": asdict(cfg),
        "representation": {"name": "notewise", "vocabulary": vocab.to_metadata(),
                           "step_beats": 0.25, "transpose": True}})


def multilabel(path: Path) -> Path:
    torch.manual_seed(0)
    cfg = MultilabelLSTMConfig(num_pitches=PITCH_RANGE.size, hidden_size=16, num_layers=1,
                               dense_size=16, dropout=0.0, lstm_dropout=0.0)
    return _save(path, MultilabelLSTM(cfg), {
        "family": "multilabel_lstm", "name": "tiny", "config": asdict(cfg),
        "representation": {"name": "pianoroll", "step_beats": 0.25,
                           "pitch_range": PITCH_RANGE.to_dict(), "transpose": True},
        "inference": {"mode": "bernoulli", "threshold": 0.3}})


def gan(path: Path, family: str) -> Path:
    torch.manual_seed(0)
    if family == "gan_cnn":
        cfg = CNNGANConfig(num_pitches=PITCH_RANGE.size, latent_dim=8, channels=8,
                           disc_hidden_size=8, disc_dense1=8, disc_dense2=8)
        model = CNNGAN(cfg)
    else:
        cfg = BiLSTMGANConfig(num_pitches=PITCH_RANGE.size, latent_dim=8, frame_embed_dim=4,
                              hidden_size=8, dense_size=16, disc_hidden_size=8,
                              disc_dense1=8, disc_dense2=8)
        model = BiLSTMGAN(cfg)
    return _save(path, model, {
        "family": family, "name": "tiny", "config": asdict(cfg),
        "representation": {"name": "pianoroll_bar", "pitch_range": PITCH_RANGE.to_dict(),
                           "bar_steps": 16, "step_beats": 0.25, "threshold": 0.5,
                           "restrike_gap": 0, "key_normalisation": "C major / A minor"}})


def tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """Family name → a tiny random checkpoint of it in ``folder``."""
    return {"notewise_lstm": notewise(folder / "notewise.safetensors"),
            "multilabel_lstm": multilabel(folder / "multilabel.safetensors"),
            "gan_cnn": gan(folder / "gan_cnn.safetensors", "gan_cnn"),
            "gan_bilstm": gan(folder / "gan_bilstm.safetensors", "gan_bilstm")}
