"""Real training of a small spectral model on chorales rendered with FluidSynth."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from riffd.engine.checkpoint import load_checkpoint, read_metadata
from riffd.engine.loading import load_generator, load_model
from riffd.training.audio_corpus import AudioCorpusError, load_audio_corpus, read_audio
from riffd.training.cli import main as training_main
from riffd.training.recipe import load_recipe
from riffd.training.spectral_eval import evaluate
from riffd.training.spectral_render import render
from riffd.training.train_spectral import train

# 8 kHz, 400-sample frames (50 ms) every 200 samples, half spectrum, log magnitudes: D = 201,
# the Laplace head (the bundled model's form and head)
SMALL = ["data.sample_rate=8000", "data.frame_size=400", "data.hop=200", 'data.spectrum="half"',
         'data.form="logmag"', 'model.head="laplace"', "data.calibrate_seconds=3.0",
         "data.render_pieces=3", "data.render_max_seconds=4.0", "data.val_fraction=0.34",
         "model.hidden_size=32", "model.lstm_dropout=0.0", "train.sequence_length=16",
         "train.stride=4", "train.batch_size=8", "train.learning_rate=0.003", "train.epochs=4",
         "train.threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectral_train")
    recipe = load_recipe("configs/spectral_fc_lstm.toml",
                         SMALL + [f'data.cache_dir="{root / "cache"}"',
                                  f'train.output_dir="{root / "run"}"'])
    return recipe, train(recipe), root


def test_training_lowers_the_loss(trained):
    _, best, root = trained
    history = read_metadata(root / "run" / "last.safetensors")["training"]["history"]
    assert len(history) == 4
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert min(h["val_loss"] for h in history) < history[0]["val_loss"]
    assert all(h["val_mse"] > 0 for h in history)
    assert (root / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_round_trip(trained):
    _, best, _ = trained
    meta = read_metadata(best)
    assert meta["family"] == "spectral_lstm"
    assert meta["config"]["architecture"] == "fc" and meta["config"]["input_dim"] == 201
    assert meta["config"]["head"] == "laplace"
    rep = meta["representation"]
    assert (rep["sample_rate"], rep["frame_size"], rep["hop"], rep["spectrum"], rep["form"]) == (
        8000, 400, 200, "half", "logmag")
    assert len(rep["mean"]) == len(rep["std"]) == 201
    # calibration: the training audio's motion and the temperature closest to it
    motion = meta["motion"]
    assert motion["training_audio"]["spectral_flux"] > 0
    assert motion["training_audio"]["rms_variation_db"] > 0
    tried = {row["temperature"]: row["distance"] for row in motion["calibration"]}
    assert meta["generation"]["temperature"] in tried
    assert tried[meta["generation"]["temperature"]] == min(tried.values())
    assert len(meta["training"]["train_clips"]) == 2 and len(meta["training"]["val_clips"]) == 1
    model, _ = load_model(best)
    tensors, _ = load_checkpoint(best)
    for name, value in model.state_dict().items():
        assert torch.equal(value, tensors[name])
    generator = load_generator(best, "cpu")
    assert generator.family == "spectral_lstm" and generator.sample_rate == 8000
    generator.prime(np.zeros(800, dtype=np.float32))
    frame = generator.next_frame()
    assert frame.shape == (200,) and np.isfinite(frame).all()


def test_render_writes_a_non_silent_wav_and_a_spectrogram(trained, tmp_path):
    _, best, root = trained
    seed = tmp_path / "seed.flac"
    clip = read_audio(next((root / "cache").glob("rendered-*/0000.wav")), 8000)
    sf.write(seed, clip, 8000)
    out = render(best, tmp_path / "out.wav", seconds=2.0, seed=str(seed))
    audio, rate = sf.read(out)
    assert rate == 8000 and len(audio) == 16000
    assert np.sqrt(np.mean(audio ** 2)) > 1e-4
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # the riffd render entry point, without a seed: a held-out clip of its corpus
    code = training_main(["render", str(best), str(tmp_path / "cli.wav"), "--seconds", "1",
                          "--quiet"])
    assert code == 0 and sf.info(tmp_path / "cli.wav").frames == 8000
    assert training_main(["render", str(best), str(tmp_path / "x.mid"), "--quiet"]) == 2


def test_eval_reports_error_distance_and_speed(trained, tmp_path):
    _, best, _ = trained
    report = evaluate(best, tmp_path, seconds=1.0)
    assert report["frame_mse"] > 0 and report["frame_mse_repeat_last"] > 0
    assert report["log_spectral_distance_db"] > 0
    assert report["stateful"]["real_time_factor"] > 1
    assert report["sliding_window_T40"]["frames"] == report["stateful"]["frames"] == 40
    assert json.loads((tmp_path / "eval.json").read_text())["frames"] == report["frames"]
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_audio_corpus_skips_and_counts_bad_files(tmp_path):
    rate = 8000
    t = np.arange(rate) / rate
    sf.write(tmp_path / "tone.wav", np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.5, rate)
    sf.write(tmp_path / "tone.ogg", np.sin(2 * np.pi * 220 * t) * 0.5, rate)
    sf.write(tmp_path / "quiet.flac", np.zeros(rate), rate)
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all")
    corpus = load_audio_corpus([str(tmp_path)], 16000)
    assert sorted(c.name for c in corpus.clips) == ["tone.ogg", "tone.wav"]
    assert corpus.skipped_silent == 1 and corpus.skipped_unreadable == 1
    wav = next(c for c in corpus.clips if c.name == "tone.wav").samples
    assert len(wav) == 16000 and 0.45 < np.max(np.abs(wav)) < 0.55        # mono, resampled
    with pytest.raises(AudioCorpusError, match="no WAV"):
        load_audio_corpus([str(tmp_path / "*.txt")], 16000)
    with pytest.raises(AudioCorpusError, match="neither"):
        load_audio_corpus(["no/such/folder"], 16000)
