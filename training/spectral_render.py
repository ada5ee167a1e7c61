"""``riffd render CHECKPOINT -o out.wav --seconds 30 --seed CLIP`` for spectral models.

Primes the model with a seed clip (the last 10 s of any audio file, or of a MIDI file
rendered to audio with FluidSynth first; without ``--seed``, the first 10 s of a held-out
clip of the checkpoint's own corpus), generates ``--seconds`` of audio frame by frame with
the stateful generator and writes a WAV at the model's rate plus a spectrogram PNG beside it.
Seed files are opened only when they are regular files (``riffd.engine.safe_files``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from riffd.engine.loading import load_model
from riffd.engine.safe_files import check_regular
from riffd.engine.spectral_generator import SpectralGenerator, WindowedSpectralGenerator
from riffd.training.audio_corpus import AudioClip, load_audio_corpus, read_audio
from riffd.training.spectral_config import SpectralDataConfig

log = logging.getLogger(__name__)
SEED_SECONDS = 10.0           # the last 10 s of a seed clip prime the model


def load_spectral(checkpoint: str | Path, windowed: bool = False, window: int = 40):
    """A spectral checkpoint as a (stateful or sliding-window) generator on the CPU."""
    model, metadata = load_model(checkpoint)
    if metadata.get("family") != SpectralGenerator.family:
        raise ValueError(f"{checkpoint} is a {metadata.get('family')} checkpoint, "
                         "not a spectral_lstm one")
    if windowed:
        from riffd.engine.spectral_representation import SpectralCodec
        codec = SpectralCodec.from_metadata(metadata["representation"])
        return WindowedSpectralGenerator(model, codec, metadata, "cpu", window)
    return SpectralGenerator.from_metadata(model, metadata, "cpu")


def data_config(metadata: dict) -> SpectralDataConfig:
    """The [data] section the checkpoint was trained with."""
    return SpectralDataConfig(**metadata["recipe"]["data"])


def checkpoint_clips(metadata: dict, split: str) -> list[AudioClip]:
    """The clips of the checkpoint's corpus (rendered, or read again from the cache) that its
    training summary lists under ``split``: ``"train_clips"`` or ``"val_clips"``."""
    cfg = data_config(metadata)
    corpus = load_audio_corpus(cfg.corpus, cfg.sample_rate, render_pieces=cfg.render_pieces,
                               render_max_seconds=cfg.render_max_seconds,
                               render_tempo_bpm=cfg.render_tempo_bpm,
                               render_program=cfg.render_program, cache_dir=cfg.cache_dir)
    names = set(metadata["training"][split])
    return [c for c in corpus.clips if c.name in names]


def held_out_clips(metadata: dict) -> list[AudioClip]:
    """The checkpoint's held-out clips."""
    return checkpoint_clips(metadata, "val_clips")


def training_clips(metadata: dict) -> list[AudioClip]:
    """The clips the checkpoint was trained on."""
    return checkpoint_clips(metadata, "train_clips")


def seed_samples(seed: str | None, metadata: dict, sample_rate: int) -> tuple[np.ndarray, str]:
    """The seed at ``sample_rate`` and where it came from: the last SEED_SECONDS of a given
    clip (generation continues it), or the first SEED_SECONDS of a held-out clip (rendered
    pieces end in a fading tail)."""
    if seed:
        from riffd.training.render_seed import MAX_SEED_BYTES, SeedError, midi_seed_audio, seed_kind
        if seed_kind(seed) == "midi":
            samples = midi_seed_audio(seed, sample_rate)
            source = f"{seed}, rendered with FluidSynth"
        else:
            check_regular(seed, MAX_SEED_BYTES, "cut the seed shorter")
            try:
                samples = read_audio(seed, sample_rate)
            except ValueError as exc:
                raise SeedError(f"seed {exc}; give a WAV, FLAC or OGG clip, or a MIDI file "
                                "(.mid)") from None
            source = seed
        if not samples.size:
            raise SeedError(f"seed {seed} holds no sound; give a clip (or MIDI file) with "
                            "some music in it")
        return samples[-int(SEED_SECONDS * sample_rate):], source
    clips = held_out_clips(metadata)
    if not clips:
        raise ValueError("no --seed given and the checkpoint's held-out clips cannot be "
                         "found; pass --seed CLIP.wav")
    return clips[0].samples[:int(SEED_SECONDS * sample_rate)], f"held-out clip {clips[0].name}"


def generate(generator, seconds: float) -> np.ndarray:
    """``seconds`` of audio from an already primed generator, float32."""
    frames = max(1, int(np.ceil(seconds * generator.sample_rate / generator.hop)))
    audio = np.concatenate([generator.next_frame() for _ in range(frames)])
    return audio[:int(seconds * generator.sample_rate)]


def plot_spectrogram(path: Path, parts: dict[str, np.ndarray], sample_rate: int,
                     title: str) -> None:
    """One spectrogram (dB) per entry, stacked, time in seconds, frequency in kHz."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(parts), 1, figsize=(10, 2.6 * len(parts)), squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], parts.items()):
        if len(audio) < 512:
            ax.set_title(f"{name}: too short to show")
            continue
        ax.specgram(audio, NFFT=512, Fs=sample_rate, noverlap=256, cmap="magma", vmin=-120)
        ax.set(ylabel="Hz", title=name)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> float:
    """16-bit WAV; audio louder than full scale is scaled down. Returns the peak written."""
    from scipy.io import wavfile
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:
        audio = audio / peak * 0.99
    wavfile.write(path, sample_rate, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    return min(peak, 0.99)


def render(checkpoint: str | Path, output: str | Path, seconds: float = 30.0,
           seed: str | None = None, rng_seed: int | None = None,
           temperature: float | None = None) -> Path:
    """Generate ``seconds`` of audio into ``output`` (.wav) and a spectrogram beside it;
    ``rng_seed`` seeds the sampling (models with a Laplace head), ``temperature`` (0.05–5)
    replaces the checkpoint's own (noisier above it, quieter motion below)."""
    output = Path(output)
    if output.suffix.lower() != ".wav":
        raise ValueError(f"spectral models render audio: give an output ending in .wav, "
                         f"not {output.name}")
    if not 0 < seconds <= 3600:
        raise ValueError(f"--seconds must be more than 0 and at most 3600, got {seconds:g}")
    if temperature is not None and not 0.05 <= temperature <= 5.0:
        raise ValueError(f"--temperature must be 0.05..5, not {temperature:g}")
    if rng_seed is not None:
        torch.manual_seed(rng_seed)
        np.random.seed(rng_seed % 2**32)
    generator = load_spectral(checkpoint)
    if rng_seed is not None:
        generator.rng_seed = rng_seed
    if temperature is not None:
        generator.temperature = temperature
    rate = generator.sample_rate
    seed_audio, source = seed_samples(seed, generator.metadata, rate)
    generator.prime(seed_audio)
    audio = generate(generator, seconds)
    output.parent.mkdir(parents=True, exist_ok=True)
    peak = write_wav(output, audio, rate)
    picture = output.with_suffix(".png")
    plot_spectrogram(picture, {f"seed ({source})": seed_audio, "generated": audio}, rate,
                     f"{Path(checkpoint).name}: {seconds:g} s")
    log.info("wrote %s (%.1f s at %d Hz, peak %.2f) and %s", output, len(audio) / rate, rate,
             peak, picture)
    return output


def render_command(checkpoint, args) -> Path:
    """The ``riffd render`` entry point (args.output, args.seconds, args.seed,
    args.rng_seed, args.temperature)."""
    try:
        return render(checkpoint, args.output, args.seconds if args.seconds is not None
                      else 30.0, args.seed, getattr(args, "rng_seed", None),
                      getattr(args, "temperature", None))
    except OSError as exc:
        raise ValueError(str(exc)) from exc
