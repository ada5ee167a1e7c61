"""`riffd render` for every family: real checkpoints (the bundled melody and spectral models,
tiny random ones of the other families written by the real checkpoint writer), real seed
files, real MIDI, WAV and PNG output read back."""
import os
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from riffd.engine.loading import BUNDLED_MODEL
from tests.training.render_models import tiny_checkpoints
from riffd.training.cli import main as cli_main
from riffd.training.render_seed import read_seed_midi

SEED = Path("daemon/data/seed_phrase_eb.mid")            # E-flat major, 11 notes
SPECTRAL = Path("engine/models/spectral_default.safetensors")
EB_MAJOR = {3, 5, 7, 8, 10, 0, 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    paths = tiny_checkpoints(tmp_path_factory.mktemp("models"))
    paths["melody_lstm"] = BUNDLED_MODEL
    return paths


def tracks(path: Path) -> dict[str, list[tuple[int, float, float, int]]]:
    """Track name → (pitch, start s, end s, velocity) of each note, read with mido."""
    out = {}
    for track in mido.MidiFile(path).tracks:
        t, tempo, sounding, notes = 0, 500000, {}, []
        for msg in track:
            t += msg.time
            if msg.type == "note_on" and msg.velocity:
                sounding.setdefault(msg.note, []).append((t, msg.velocity))
            elif msg.type in ("note_on", "note_off") and sounding.get(msg.note):
                start, velocity = sounding[msg.note].pop(0)
                notes.append((msg.note, start, t, velocity))
        if track.name:
            per_beat = mido.MidiFile(path).ticks_per_beat
            out[track.name] = [(p, s / per_beat * 0.5, e / per_beat * 0.5, v)
                               for p, s, e, v in notes]      # 120 BPM: 0.5 s per beat
    return out


def render(*argv) -> int:
    return cli_main(["render", *map(str, argv), "--quiet"])


@pytest.mark.parametrize("family", ["melody_lstm", "notewise_lstm", "multilabel_lstm",
                                    "gan_cnn", "gan_bilstm"])
def test_every_symbolic_family_renders_midi_within_its_bars_and_range(models, family,
                                                                      tmp_path):
    out = tmp_path / "out.mid"
    assert render(models[family], "-o", out, "--bars", 2, "--low", 60, "--high", 72,
                  "--velocity", 70, "--rng-seed", 5) == 0
    notes = tracks(out)["riffd"]
    assert notes, f"{family} rendered no notes"
    assert all(60 <= p <= 72 and v == 70 for p, _, _, v in notes)
    assert max(end for _, _, end, _ in notes) <= 2 * 4 * 0.5 + 1e-6       # 2 bars at 120 BPM
    again = tmp_path / "again.mid"
    assert render(models[family], "-o", again, "--bars", 2, "--low", 60, "--high", 72,
                  "--velocity", 70, "--rng-seed", 5) == 0
    assert tracks(again)["riffd"] == notes                 # the same rng seed, the same notes


def test_density_and_seed_value_change_the_melody(models, tmp_path):
    a, b, thin = tmp_path / "a.mid", tmp_path / "b.mid", tmp_path / "thin.mid"
    assert render(models["melody_lstm"], "-o", a, "--bars", 4, "--rng-seed", 1) == 0
    assert render(models["melody_lstm"], "-o", b, "--bars", 4, "--seed-value", 2) == 0
    assert tracks(a)["riffd"] != tracks(b)["riffd"]
    assert render(models["melody_lstm"], "-o", thin, "--bars", 4, "--density", 2,
                  "--rng-seed", 1) == 0
    starts = [s for _, s, _, _ in tracks(thin)["riffd"]]
    assert starts and all(sum(1 for s in starts if bar * 2 <= s < bar * 2 + 2) <= 2
                          for bar in range(4))
    assert len(tracks(a)["riffd"]) > len(starts)         # the same draws, thinned


def test_seeded_render_keeps_the_seed_and_answers_in_its_key(models, tmp_path):
    seed_notes, _ = read_seed_midi(SEED)
    up = tmp_path / "seed_ab.mid"                         # the same phrase a fourth higher
    midi = mido.MidiFile(SEED)
    for track in midi.tracks:
        for msg in track:
            if msg.type in ("note_on", "note_off"):
                msg.note += 5
    midi.save(up)
    for seed, scale in ((SEED, EB_MAJOR), (up, {(pc + 5) % 12 for pc in EB_MAJOR})):
        out = tmp_path / f"{seed.stem}.out.mid"
        assert render(models["melody_lstm"], "-o", out, "--seed", seed, "--bars", 8,
                      "--rng-seed", 3) == 0
        got = tracks(out)
        shift = 5 if seed == up else 0
        assert [p for p, *_ in got["seed"]] == [n.pitch + shift for n in seed_notes]
        answer = got["riffd"]
        seed_end = max(e for _, _, e, _ in got["seed"])
        assert len(answer) >= 8 and min(s for _, s, _, _ in answer) >= seed_end - 1e-6
        in_scale = sum(1 for p, *_ in answer if p % 12 in scale) / len(answer)
        assert in_scale >= 0.8, f"only {in_scale:.0%} of the answer to {seed.name} in its key"


def test_wav_and_piano_roll_on_request(models, tmp_path):
    out = tmp_path / "gan.mid"
    assert render(models["gan_cnn"], "-o", out, "--bars", 2, "--wav", "--png",
                  "--tempo", 90, "--rng-seed", 1) == 0
    audio, rate = sf.read(out.with_suffix(".wav"))
    assert rate == 44100 and len(audio) >= 2 * 4 * (60 / 90) * rate * 0.95
    assert np.sqrt(np.mean(np.square(audio))) > 1e-3
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "plain.wav").exists()
    assert render(models["gan_cnn"], "-o", tmp_path / "plain.mid", "--bars", 1) == 0
    assert sorted(p.name for p in tmp_path.glob("plain.*")) == ["plain.mid"]


def test_spectral_render_takes_a_midi_seed_rendered_to_audio(tmp_path):
    out = tmp_path / "out.wav"
    assert render(SPECTRAL, out, "--seed", SEED, "--seconds", 1, "--rng-seed", 1) == 0
    info = sf.info(out)
    assert info.frames == info.samplerate                  # 1 s at the model's rate
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_spectral_render_takes_a_temperature_and_an_rng_seed(tmp_path):
    """--temperature replaces the checkpoint's own; the same --rng-seed renders the same
    samples, another temperature other ones."""
    takes = {}
    for name, temperature, rng in (("a", "1.5", 3), ("b", "1.5", 3), ("c", "0.1", 3)):
        out = tmp_path / f"{name}.wav"
        assert render(SPECTRAL, out, "--seed", SEED, "--seconds", 1, "--temperature",
                      temperature, "--rng-seed", rng) == 0
        takes[name], _ = sf.read(out)
    assert np.array_equal(takes["a"], takes["b"])
    assert not np.allclose(takes["a"], takes["c"])
    assert np.abs(takes["a"]).max() <= 1.0


def write_phrase(path: Path, pitches: list[int], beats: float) -> None:
    """A one-track MIDI file at 120 BPM: ``pitches`` one after another, ``beats`` each."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    ticks = round(beats * 480)
    for pitch in pitches:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks))
    midi.save(path)


def test_a_seeded_render_follows_the_seeds_mode_register_and_density(tmp_path):
    """A high D dorian phrase (white keys, 84-93), then a sparse one (a whole note a bar): by
    default the continuation keeps to the seed's scale, its register and 2 x its notes per
    bar, as the daemon's voices do; --no-follow lets the model play where it likes."""
    high = [86, 88, 89, 91, 93, 95, 93, 91, 89, 88, 86, 84, 86, 89, 88, 86]
    seed = tmp_path / "dorian.mid"
    write_phrase(seed, high, 0.5)
    common = ["--seed", seed, "--bars", 8, "--temperature", 1.5, "--rng-seed", 4]
    followed, free = tmp_path / "followed.mid", tmp_path / "free.mid"
    assert render(BUNDLED_MODEL, "-o", followed, *common) == 0
    assert render(BUNDLED_MODEL, "-o", free, *common, "--no-follow") == 0
    answer = [p for p, *_ in tracks(followed)["riffd"]]
    alone = [p for p, *_ in tracks(free)["riffd"]]
    outside = [p for p in answer if p % 12 not in (0, 2, 4, 5, 7, 9, 11)]
    print(f"followed: median {np.median(answer)}, {len(outside)} of {len(answer)} outside; "
          f"--no-follow: median {np.median(alone)}")
    assert len(answer) >= 8 and len(outside) <= 0.05 * len(answer), outside
    assert abs(np.median(answer) - np.median(high)) <= 5, answer
    assert abs(np.median(alone) - np.median(high)) > 5, alone     # the model's own register

    sparse = tmp_path / "sparse.mid"
    write_phrase(sparse, [74, 77, 76, 74], 4.0)                     # 1 note a bar
    thin = tmp_path / "thin.mid"
    assert render(BUNDLED_MODEL, "-o", thin, "--seed", sparse, "--bars", 4,
                  "--temperature", 3, "--rng-seed", 4) == 0
    got = tracks(thin)
    origin = max(e for _, _, e, _ in got["seed"])                   # seconds, 2 s a bar
    starts = [s - origin for _, s, _, _ in got["riffd"]]
    per_bar = [sum(1 for s in starts if bar * 2 <= s < bar * 2 + 2) for bar in range(4)]
    assert starts and max(per_bar) <= 2, per_bar


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01garbage")
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("C D E F G\n")
    sf.write(tmp_path / "clip.wav", np.zeros(800, dtype=np.float32), 8000)
    os.mkfifo(tmp_path / "pipe.mid")
    return tmp_path


@pytest.mark.parametrize("model, args, message", [
    ("melody", ["--seed", "{d}/clip.wav"], "is an audio file"),
    ("melody", ["--seconds", "5"], "use --bars N"),
    ("melody", ["--seed", "{d}/missing.mid"], "no such file"),
    ("melody", ["--seed", "{d}/broken.mid"], "is not a readable MIDI file"),
    ("melody", ["--seed", "{d}/empty.mid"], "is not a readable MIDI file"),
    ("melody", ["--seed", "{d}/pipe.mid"], "FIFO"),
    ("melody", ["--seed", "{d}/notes.txt"], "is not a readable MIDI file"),
    ("melody", ["--temperature", "9"], "--temperature must be 0.05..5"),
    ("melody", ["-o", "{d}/out.wav"], "give an output ending in .mid"),
    ("spectral", ["--bars", "4"], "give its length with --seconds"),
    ("spectral", ["--top-k", "5"], "apply to symbolic (MIDI) models"),
    ("spectral", ["--no-follow"], "--no-follow apply to symbolic (MIDI) models"),
    ("spectral", ["--temperature", "9", "--seconds", "1"], "--temperature must be 0.05..5"),
    ("spectral", ["--seed", "{d}/notes.txt", "--seconds", "1"], "cannot read audio"),
    ("missing", [], "no such checkpoint file"),
])
def test_wrong_family_seed_or_option_exits_2_naming_the_fix(bad_files, capsys, model, args,
                                                            message):
    checkpoint = {"melody": BUNDLED_MODEL, "spectral": SPECTRAL,
                  "missing": bad_files / "nothing.safetensors"}[model]
    argv = [a.format(d=bad_files) for a in args]
    if "-o" not in argv:
        argv = ["-o", str(bad_files / ("out.wav" if model == "spectral" else "out.mid"))] + argv
    assert render(checkpoint, *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("riffd render: ") and message in err
    assert not (bad_files / "out.mid").exists() and not (bad_files / "out.wav").exists()


def test_help_describes_every_argument(capsys):
    for command in ("render", "eval"):
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        text = capsys.readouterr().out
        lines = text.splitlines()
        options = [ln for ln in lines if ln.startswith("  -") or ln.startswith("  checkpoint")]
        assert options
        for line in options:
            flag_only = line.strip().split("  ")[0] == line.strip()
            index = lines.index(line)
            described = not flag_only or (index + 1 < len(lines)
                                          and lines[index + 1].startswith(" " * 10))
            assert described, f"riffd {command}: {line.strip()} has no description"
        assert "examples:" in text
