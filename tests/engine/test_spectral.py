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


@pytest.mark.parametrize("architecture", ["fc", "conv2d"])
def test_laplace_head_steps_equal_forward_and_samples_its_distribution(architecture):
    from riffd.engine.spectral_lstm import laplace_nll, laplace_parts
    torch.manual_seed(0)
    model = SpectralLSTM(SpectralLSTMConfig(input_dim=40, architecture=architecture,
                                            hidden_size=16, head="laplace")).eval()
    x = torch.randn(2, 9, 40)                                            # (B, T, D)
    with torch.no_grad():
        full = model(x)                                                  # (B, T, 2D)
        state, steps = model.init_state(2, "cpu"), []
        for t in range(x.shape[1]):
            y, state = model.step(x[:, t], state)
            steps.append(y)
    assert full.shape == (2, 9, 80)
    assert torch.allclose(full, torch.stack(steps, 1), atol=1e-5)
    assert torch.equal(model.point(full), full[..., :40])
    # draws follow the predicted Laplace: median at the location, mean |x - loc| = scale
    prediction = full[0, -1].expand(20000, 80)
    draws = model.sample(prediction, 1.0, torch.Generator().manual_seed(1))
    loc, log_scale = laplace_parts(prediction[:1])
    assert torch.allclose(draws.median(0).values, loc[0], atol=0.1 * float(log_scale.exp().max()) + 0.05)
    ratio = (draws - loc).abs().mean(0) / log_scale.exp()[0]
    assert float(ratio.min()) > 0.9 and float(ratio.max()) < 1.1
    assert torch.equal(model.sample(prediction[:1], 0.0), loc)           # temperature 0: the point
    # the loss is lowest at the true scale
    target = torch.zeros(1000, 1)
    noise = torch.distributions.Laplace(0.0, 0.5).sample((1000, 1))
    losses = {s: float(laplace_nll(torch.cat([torch.zeros(1000, 1),
                                              torch.full((1000, 1), float(np.log(s)))], 1),
                                   target + noise)) for s in (0.25, 0.5, 1.0)}
    assert losses[0.5] < losses[0.25] and losses[0.5] < losses[1.0]


def test_log_magnitude_frames_keep_the_spectrum(chorale_clip):
    """logmag vectors decode through the phase vocoder to audio with the clip's spectra."""
    from riffd.training.spectral_motion import motion
    settings = SpectralSettings(16000, 4000, 2000, "half", form="logmag")
    codec = SpectralCodec(settings)
    codec.fit(codec.raw_vectors(chorale_clip))
    vectors = codec.encode(chorale_clip)
    assert vectors.shape[1] == 2001 == settings.dim
    exact = np.abs(np.fft.rfft(codec.frames(chorale_clip), axis=1))
    np.testing.assert_allclose(codec.magnitudes(vectors), exact, rtol=1e-3, atol=1e-3)
    decoded = codec.decode(vectors, len(chorale_clip))
    assert decoded.shape == chorale_clip.shape
    again = codec.magnitudes(codec.encode(decoded))                      # re-analysed
    lsd = np.sqrt(np.mean((20 * np.log10((again + 1e-3) / (exact + 1e-3))) ** 2, axis=1))
    assert float(np.median(lsd)) < 12.0, np.median(lsd)                  # dB, phases are made up
    a, b = motion(chorale_clip, 16000, 2000), motion(decoded, 16000, 2000)
    assert abs(a["rms_dbfs"] - b["rms_dbfs"]) < 3.0, (a, b)
    with pytest.raises(ValueError, match="half"):
        SpectralSettings(16000, 4000, 2000, "full", form="logmag")
    assert SpectralCodec.from_metadata(codec.to_metadata()).settings == settings


def test_bundled_model_moves_like_its_training_audio(chorale_clip):
    """20 s of free-running output from the bundled model, primed with a chorale: its spectral
    flux and level changes stay above half the training audio's (checkpoint metadata), its
    level within 10 dB, and the last 5 s are no quieter drone than the first."""
    from riffd.engine.loading import load_generator
    from riffd.training.spectral_motion import motion
    torch.set_num_threads(1)
    generator = load_generator("engine/models/spectral_default.safetensors", "cpu")
    reference = generator.metadata["motion"]["training_audio"]
    generator.prime(chorale_clip)
    audio = np.concatenate([generator.next_frame() for _ in range(160)])   # 20 s
    assert np.isfinite(audio).all()
    rate, hop = generator.sample_rate, generator.hop
    whole, tail = motion(audio, rate, hop), motion(audio[-5 * rate:], rate, hop)
    for figs in (whole, tail):
        assert figs["spectral_flux"] > 0.5 * reference["spectral_flux"], (figs, reference)
        assert figs["rms_variation_db"] > 0.5 * reference["rms_variation_db"], (figs, reference)
        assert abs(figs["rms_dbfs"] - reference["rms_dbfs"]) < 10.0, (figs, reference)


@pytest.mark.parametrize("temperature", [1.0, 5.0])
def test_a_high_temperature_is_noisier_not_louder(chorale_clip, temperature):
    """The bundled model at a hand-set temperature (the daemon allows up to 5) keeps its
    level: 20 s free-running stay within 6 dB of the default temperature's and below 0 dBFS.
    Uncapped Laplace noise of a nat or more fed ever louder frames back (at temperature 1:
    +26 dBFS after 20 s)."""
    from riffd.engine.loading import load_generator
    torch.set_num_threads(1)
    generator = load_generator("engine/models/spectral_default.safetensors", "cpu")

    def level_db(temperature: float | None) -> tuple[float, float]:
        if temperature is not None:
            generator.temperature = temperature
        generator.prime(chorale_clip)
        audio = np.concatenate([generator.next_frame() for _ in range(160)])     # 20 s
        tail = audio[-5 * generator.sample_rate:]
        return 20 * np.log10(np.sqrt(np.mean(tail ** 2))), float(np.abs(audio).max())

    default_db, _ = level_db(None)
    hot_db, peak = level_db(temperature)
    assert abs(hot_db - default_db) < 6.0, (hot_db, default_db)
    assert peak < 1.0, peak
