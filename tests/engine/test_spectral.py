"""Spectral representation round trips on real rendered audio; streaming equals forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from riffd.engine.spectral_generator import SpectralGenerator, WindowedSpectralGenerator
from riffd.engine.spectral_lstm import ARCHITECTURES, SpectralLSTM, SpectralLSTMConfig
from riffd.engine.spectral_representation import (OverlapAdd, SpectralCodec, SpectralSettings,
                                            snr_db)


@pytest.fixture(scope="module")
def chorale_clip(tmp_path_factory) -> np.ndarray:
    """4 s of a Bach chorale rendered with FluidSynth at 16 kHz (real audio, not noise)."""
    import os
    from riffd.training.audio_corpus import load_audio_corpus
    tmp = tmp_path_factory.mktemp("spectral")
    os.environ.setdefault("TMPDIR", str(tmp))
    corpus = load_audio_corpus(["render:chorales"], 16000, render_pieces=1,
                               render_max_seconds=4.0, cache_dir=tmp / "cache")
    clip = corpus.clips[0].samples
    assert np.max(np.abs(clip)) > 0.1
    return clip


@pytest.mark.parametrize("spectrum", ["full", "half"])
@pytest.mark.parametrize("hop", [4000, 2000])
def test_round_trip_snr_above_60_db(chorale_clip, spectrum, hop):
    codec = SpectralCodec(SpectralSettings(16000, 4000, hop, spectrum))
    codec.fit(codec.raw_vectors(chorale_clip))
    vectors = codec.encode(chorale_clip)
    assert vectors.shape[1] == (8000 if spectrum == "full" else 4002)
    assert abs(float(vectors.mean())) < 0.1 and 0.5 < float(vectors.std()) < 1.5
    decoded = codec.decode(vectors, len(chorale_clip))
    assert decoded.shape == chorale_clip.shape
    assert snr_db(chorale_clip, decoded) > 60


def test_normalisation_survives_metadata(chorale_clip):
    codec = SpectralCodec(SpectralSettings(16000, 4000, 2000, "half"))
    codec.fit(codec.raw_vectors(chorale_clip))
    again = SpectralCodec.from_metadata(codec.to_metadata())
    assert again.settings == codec.settings
    decoded = again.decode(codec.encode(chorale_clip), len(chorale_clip))
    assert snr_db(chorale_clip, decoded) > 60


def test_overlap_add_removes_block_edge_jumps():
    """A frame that stops abruptly clicks without overlap; windowed frames cross-fade."""
    rate, n = 16000, 400
    t = np.arange(n) / rate
    frame = np.sin(2 * np.pi * 430 * t)                   # ends mid-cycle
    jumps = {}
    for hop in (n, n // 2):
        settings = SpectralSettings(rate, n, hop, "half")
        synth, window = OverlapAdd(settings), settings.window()
        out = np.concatenate([synth.push(frame * window) for _ in range(6)])
        jumps[hop] = float(np.max(np.abs(np.diff(out))[hop * 2:hop * 5]))   # steady part
    assert jumps[n // 2] < 0.5 * jumps[n]


def test_bad_settings_name_the_problem():
    with pytest.raises(ValueError, match="spectrum"):
        SpectralSettings(spectrum="mel")
    with pytest.raises(ValueError, match="hop"):
        SpectralSettings(hop=1000)
    with pytest.raises(ValueError, match="architecture"):
        SpectralLSTMConfig(input_dim=8, architecture="transformer")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_step_equals_forward(architecture):
    torch.manual_seed(0)
    model = SpectralLSTM(SpectralLSTMConfig(input_dim=40, architecture=architecture,
                                            hidden_size=16, context_frames=3)).eval()
    x = torch.randn(2, 9, 40)                                            # (B, T, D)
    with torch.no_grad():
        full = model(x)
        state, steps = model.init_state(2, "cpu"), []
        for t in range(x.shape[1]):
            y, state = model.step(x[:, t], state)
            steps.append(y)
        # priming with a prefix then stepping is the same too
        y_prefix, state2 = model.forward_with_state(x[:, :5], model.init_state(2, "cpu"))
        y_next, _ = model.step(x[:, 5], state2)
    assert full.shape == (2, 9, 40)
    assert torch.allclose(full, torch.stack(steps, 1), atol=1e-5)
    assert torch.allclose(full[:, 5], y_next, atol=1e-5)
    assert float(model.l2_penalty().detach()) > 0


def test_generators_stream_audio_and_agree_while_the_window_is_not_full(chorale_clip):
    torch.manual_seed(0)
    settings = SpectralSettings(16000, 4000, 2000, "half")
    codec = SpectralCodec(settings)
    codec.fit(codec.raw_vectors(chorale_clip))
    model = SpectralLSTM(SpectralLSTMConfig(input_dim=settings.dim, architecture="conv2d",
                                            hidden_size=16, conv_filters=2, pool=8)).eval()
    seed = chorale_clip[:16000]                                          # 1 s = 9 frames
    stateful = SpectralGenerator(model, codec, {})
    windowed = WindowedSpectralGenerator(model, codec, {}, window=40)
    stateful.prime(seed)
    windowed.prime(seed)
    a = np.concatenate([stateful.next_frame() for _ in range(4)])
    b = np.concatenate([windowed.next_frame() for _ in range(4)])
    assert a.shape == (8000,) and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) > 0
    np.testing.assert_allclose(a, b, atol=1e-4)          # same context: 13 frames < T = 40
    short = WindowedSpectralGenerator(model, codec, {}, window=3)
    short.prime(seed)
    c = np.concatenate([short.next_frame() for _ in range(4)])
    assert np.max(np.abs(c - a)) > 1e-4                  # a 3-frame window forgets the seed
