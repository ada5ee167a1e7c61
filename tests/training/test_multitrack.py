"""Training data from real multi-track MIDI files: tests/data/multitrack holds ten files that
tests/data/multitrack/make_multitrack.py wrote from music21's Bach chorales the way people's
MIDI files look (a melody track with chords and played timing, a block-chord piano, a bass,
drums on channel 10 plus a "Drums" track on channel 6 or a synth-drum program, tempo and
time-signature changes, different resolutions). Its manifest.json records, per file, the
melody track's name and the soprano's pitches it was made from."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from riffd.engine.melody_representation import STEP_BEATS, Note
from riffd.training.corpus import REPORT_NAME
from riffd.training.melody_config import MelodyDataConfig
from riffd.training.melody_data import encode_corpus as encode_melody, fit_duration
from riffd.engine.pianoroll import notes_to_roll
from riffd.training.melody_extraction import (DRUM_CHANNEL, GRID_TOLERANCE_BEATS, all_pitched_notes,
                                        extract_melody, melody_choice, quantize, read_midi,
                                        skyline)
from riffd.training.multilabel_config import MultilabelDataConfig
from riffd.training.multilabel_data import load_roll_corpus

FOLDER = Path(__file__).resolve().parents[1] / "data" / "multitrack"
MANIFEST = json.loads((FOLDER / "manifest.json").read_text())
ROOT = Path(__file__).resolve().parents[2]


def test_the_folder_is_real_multitrack_midi():
    files = sorted(FOLDER.glob("*.mid"))
    assert len(files) == len(MANIFEST) == 10
    for path in files:
        midi = mido.MidiFile(str(path))
        channels = {m.channel for t in midi.tracks for m in t if m.type == "note_on"}
        assert DRUM_CHANNEL in channels and len(midi.tracks) >= 5
        assert sum(m.type == "set_tempo" for t in midi.tracks for m in t) == 3


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_the_melody_track_is_chosen_and_drums_never(name):
    expected = MANIFEST[name]
    document = read_midi(FOLDER / name)
    track, how = melody_choice(document.tracks)
    assert track.name == expected["melody_track"]
    assert how == ("name" if expected["named"] else "heuristic")
    by_name = {t.name: t for t in document.tracks}
    # the kit on channel 10, "Drums" on channel 6, a synth-drum program on channel 8
    drums = [t for t in document.tracks if t.drum_hits]
    assert drums and all(t.drums and not t.notes for t in drums)
    for label in ("Drums", "FX"):
        if label in by_name:
            assert by_name[label].drums and by_name[label].drum_hits > 50
    # the extracted line is the soprano: chords resolved to their top note (skyline)
    line = extract_melody(FOLDER / name)
    assert [n.pitch for n in line] == expected["melody_pitches"]
    assert all(a.start + a.duration <= b.start for a, b in zip(line, line[1:]))


def test_the_melody_track_has_chords_and_played_timing_that_no_longer_drop_it():
    document = read_midi(FOLDER / "song00.mid")
    raw = melody_choice(document.tracks)[0].notes
    onsets = [n.start for n in raw]
    assert len(onsets) > len(set(onsets))                      # chords in the melody track
    off_grid = [n for n in raw if abs(n.start / STEP_BEATS - round(n.start / STEP_BEATS)) > 1e-6]
    assert len(off_grid) > len(raw) // 2                       # played, not quantized
    grid = quantize(raw)
    for before, after in zip(raw, grid):
        assert abs(after.start - before.start) <= GRID_TOLERANCE_BEATS + 1e-9
        end_before, end_after = before.start + before.duration, after.start + after.duration
        assert abs(end_after - end_before) <= GRID_TOLERANCE_BEATS + 1e-9 or after.duration == STEP_BEATS
        assert (after.start / STEP_BEATS).is_integer() and (after.duration / STEP_BEATS).is_integer()


def test_skyline_keeps_the_top_note():
    notes = [Note(60, 0, 1), Note(64, 0, 1), Note(67, 0, 1),      # a chord: 67 is kept
             Note(72, 1, 2), Note(55, 1.5, 0.5),                   # under a held note: out
             Note(71, 2.75, 1),                                     # legato: cuts 72 at 2.75
             Note(69, 4, 1)]
    assert skyline(notes) == [Note(67, 0, 1), Note(72, 1, 1.75), Note(71, 2.75, 1),
                              Note(69, 4, 1)]


def test_lengths_the_recipe_lacks_are_fitted():
    acceptable = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]
    assert fit_duration(1.0, acceptable) == 1.0
    assert fit_duration(1.25, acceptable) == 1.0         # within 0.25 beats: the nearer one
    assert fit_duration(1.75, acceptable) == 1.5         # a tie goes to the shorter
    assert fit_duration(2.5, acceptable) == 2.0          # further: cut, a rest follows
    assert fit_duration(6.0, acceptable) == 4.0


def test_tempo_changes_and_time_signatures_are_read_in_beats(tmp_path):
    document = read_midi(FOLDER / "song01.mid")
    assert [(b, round(bpm)) for b, bpm in document.tempos] == [(0.0, 100), (16.0, 72),
                                                               (32.0, 140)]
    assert document.time_signatures == [(0.0, 4, 4), (40.0, 2, 4), (42.0, 4, 4)]
    # the same notes without any tempo change give the same melody, beat for beat
    midi = mido.MidiFile(str(FOLDER / "song01.mid"))
    for track in midi.tracks:
        for i, msg in enumerate(track):
            if msg.type == "set_tempo":
                track[i] = mido.MetaMessage("text", text="no tempo", time=msg.time)
    flat = tmp_path / "flat.mid"
    midi.save(str(flat))
    assert read_midi(flat).tempos == [(0.0, 120.0)]
    assert extract_melody(flat) == extract_melody(FOLDER / "song01.mid")


def test_melody_and_multilabel_corpora_keep_the_folder_and_name_what_they_leave(tmp_path,
                                                                                capfd):
    songs = tmp_path / "songs"
    shutil.copytree(FOLDER, songs, ignore=shutil.ignore_patterns("*.py", "*.json"))
    (songs / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06not really a MIDI file")
    only_drums = mido.MidiFile(ticks_per_beat=96)
    only_drums.tracks.append(mido.MidiTrack(
        [mido.Message("note_on", channel=9, note=36, velocity=100, time=0),
         mido.Message("note_off", channel=9, note=36, time=96)] * 8))
    only_drums.save(str(songs / "drums_only.mid"))

    songs_encoded, report = encode_melody(MelodyDataConfig(
        corpus=[str(songs)], cache_dir=str(tmp_path / "cache")))
    assert report.files == 12
    kept = len(songs_encoded)
    assert kept >= 8 and report.songs == kept
    assert all(any(t.isdigit() for t in song) for song in songs_encoded)
    left_out = {Path(e["file"]).name: e["reason"] for e in report.skipped + report.dropped}
    assert set(left_out) >= {"broken.mid", "drums_only.mid"}
    assert len(left_out) == 12 - kept                      # every file left out is named
    assert "cannot be read as a MIDI file" in left_out["broken.mid"]
    assert "only drums" in left_out["drums_only.mid"]
    err = capfd.readouterr().err
    assert "parsing corpus" in err and "12/12" in err           # the progress bar

    rolls = load_roll_corpus(MultilabelDataConfig(corpus=[str(songs)]), 0)
    assert rolls.report.songs == 10 and len(rolls.train) + len(rolls.val) == 10
    assert {Path(e["file"]).name for e in rolls.report.skipped} == {"broken.mid",
                                                                     "drums_only.mid"}
    err = capfd.readouterr().err
    assert "parsing corpus" in err and "12/12" in err
    # no drum hit reaches a roll: the rolls hold exactly the pitched tracks' notes
    expected = sum(int(notes_to_roll(all_pitched_notes(read_midi(p).tracks), rolls.pitch_range,
                                     restrike_gap=True).sum())
                   for p in sorted(FOLDER.glob("*.mid")))
    assert sum(int(r.sum()) for r in rolls.train + rolls.val) == expected


def test_riffd_train_on_the_folder_writes_the_report_beside_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "riffd.training", "train", "configs/melody_erk.toml",
         "--set", f'data.corpus=["{FOLDER}"]', "--set", f'data.cache_dir="{tmp_path}/cache"',
         "--set", "model.hidden_size=16", "--set", "model.embed_dim=8",
         "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.threads=1",
         "--set", "train.sequence_length=16", "--set", "train.stride=16",
         "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["files"] == 10 and report["songs"] >= 8
    assert report["skipped"] == [] or all(e["reason"] for e in report["skipped"])
    assert f"corpus: 10 files, {report['songs']} songs used" in result.stderr
    assert "parsing corpus" in result.stderr


def test_list_corpora_names_every_corpus_and_its_families():
    result = subprocess.run([sys.executable, "-m", "riffd.training", "train", "--list-corpora"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    from riffd.training.corpora import CORPUS_KINDS
    from riffd.training.families import TRAINING_FAMILIES
    assert {f for kind in CORPUS_KINDS for f in kind.families} == set(TRAINING_FAMILIES)
    for kind in CORPUS_KINDS:
        block = text.split(kind.spelling, 1)[1].split("\n\n", 1)[0]
        assert f"families: {', '.join(kind.families)}" in block
    assert "bach_chorales = chorales" in text and "render:chorales = chorales" in text
    help_text = subprocess.run([sys.executable, "-m", "riffd.training", "train", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120).stdout
    assert "--list-corpora" in help_text and "essen:NAME" in help_text
