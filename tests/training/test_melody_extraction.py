"""Melody extraction on a real multi-track MIDI file: drums, bass, block chords and a melody."""
import mido
import pytest

from riffd.engine.melody_representation import Note
from riffd.training.corpus import iter_scores
from riffd.training.melody_config import MelodyDataConfig
from riffd.training.melody_data import load_melody_corpus
from riffd.training.melody_extraction import (extract_melody, melody_scores, pick_melody,
                                        read_midi_tracks)
from riffd.training.notewise_config import NotewiseDataConfig
from riffd.training.notewise_data import load_notewise_corpus, score_notes

TPB = 480
MELODY = [60, 64, 67, 72, 76, 79, 84, 79, 76, 72, 67, 64, 62, 65, 69, 74, 77, 81, 77, 74,
          69, 65, 62, 60] * 2                                   # eighth notes, 12 beats a pass
# close-position comping (a pianist's left hand): one chord per 2 beats
CHORDS = [(60, 64, 67), (60, 65, 69), (59, 62, 67), (60, 64, 67)] * 3


def _track(name, channel, notes):
    """notes: (pitch, start_beats, length_beats) → a mido track with delta times."""
    events = []
    for pitch, start, length in notes:
        events += [(start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=80)),
                   (start + length, 0, mido.Message("note_off", channel=channel, note=pitch))]
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    now = 0
    for beats, _, msg in events:
        ticks = round(beats * TPB)
        track.append(msg.copy(time=ticks - now))
        now = ticks
    return track


@pytest.fixture(scope="module")
def band(tmp_path_factory):
    path = tmp_path_factory.mktemp("midi") / "band.mid"
    midi = mido.MidiFile(ticks_per_beat=TPB)
    melody = [(p, i * 0.5, 0.5) for i, p in enumerate(MELODY)]
    drums = [(36 + (i % 12), i * 0.25, 0.25) for i in range(96)]       # busy, varied, loud
    bass = [(36 if i % 2 == 0 else 43, i * 1.0, 1.0) for i in range(24)]
    chords = [(p, i * 2.0, 2.0) for i, chord in enumerate(CHORDS) for p in chord]
    for name, channel, notes in (("drums", 9, drums), ("bass", 1, bass),
                                 ("chords", 2, chords), ("lead", 0, melody)):
        midi.tracks.append(_track(name, channel, notes))
    midi.save(path)
    return path


def test_the_melody_track_is_picked(band):
    tracks = read_midi_tracks(band)
    assert [t.name for t in tracks] == ["drums", "bass", "chords", "lead"]
    assert tracks[0].notes == []                                # channel 10 is never melody
    scores = melody_scores(tracks)
    assert max(scores, key=scores.get) == 3 and pick_melody(tracks).name == "lead"
    assert scores[3] > scores[2] > scores[1]
    notes = extract_melody(band)
    assert [n.pitch for n in notes] == MELODY
    assert notes[1] == Note(64, 0.5, 0.5)


def test_the_heuristics_are_weighted_as_the_document_says(band):
    from riffd.training.melody_extraction import WEIGHTS, TrackNotes, track_features
    assert WEIGHTS == {"pitch_variance": 0.4, "distinct_pitches": 0.25, "length_beats": 0.25,
                       "mean_pitch": 0.1}
    tracks = read_midi_tracks(band)
    # the lead wins every feature here, so it scores the sum of the weights
    lead = track_features(tracks[3].notes)
    assert all(lead[k] >= track_features(t.notes)[k] for t in tracks[1:3] for k in WEIGHTS)
    assert melody_scores(tracks)[3] == pytest.approx(1.0)
    # a short, high, static line loses to a long varied one although its mean pitch is higher
    high = TrackNotes(7, "whistle", [Note(96, 0, 1), Note(96, 1, 1)])
    assert pick_melody(tracks + [high]).name == "lead"


def test_midi_corpora_feed_the_melody_and_notewise_families(band, tmp_path):
    (name, score), = list(iter_scores(band, melody_only=True))
    assert name.endswith("#melody")
    assert [n.pitch for n in score_notes(score)] == MELODY
    folder = tmp_path / "songs"
    folder.mkdir()
    for i in range(3):
        (folder / f"band{i}.mid").write_bytes(band.read_bytes())
    melody = load_melody_corpus(MelodyDataConfig(corpus=[str(folder)], transpose=False,
                                                 cache_dir=str(tmp_path / "cache")), 0)
    songs = melody.train + melody.val
    assert len(songs) == 3 and songs[0][:3] == ["60", "_", "64"]
    notewise = load_notewise_corpus(NotewiseDataConfig(corpus=[str(folder)], transpose=False,
                                                       cache_dir=str(tmp_path / "cache")), 0)
    song = (notewise.train + notewise.val)[0]
    assert [p for p, _ in song] == [str(p) for p in MELODY]
    assert {d for _, d in song} == {"0.5"}


def test_a_file_that_is_not_midi_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(ValueError, match="cannot be read as a MIDI file"):
        read_midi_tracks(bad)


def test_drum_banks_percussive_programs_and_drum_names_are_never_the_melody(tmp_path):
    busy = [(36 + (i % 24), i * 0.25, 0.25) for i in range(96)]      # would win the heuristic
    midi = mido.MidiFile(ticks_per_beat=TPB)
    xg_kit = _track("Strings", 3, busy)
    xg_kit.insert(1, mido.Message("control_change", channel=3, control=0, value=127))
    agogo = _track("Ensemble", 4, busy)
    agogo.insert(1, mido.Message("program_change", channel=4, program=113))
    for track in (xg_kit, agogo, _track("Perc 2", 5, busy),
                  _track("Keys", 0, [(p, i * 0.5, 0.5) for i, p in enumerate(MELODY)])):
        midi.tracks.append(track)
    midi.save(tmp_path / "kit.mid")
    tracks = read_midi_tracks(tmp_path / "kit.mid")
    assert [bool(t.drums) for t in tracks] == [True, True, True, False]
    assert all(t.drum_hits == 96 and not t.notes for t in tracks[:3])
    assert pick_melody(tracks).name == "Keys"
    assert [n.pitch for n in extract_melody(tmp_path / "kit.mid")] == MELODY


def test_track_names_that_mean_drums_or_melody():
    from riffd.training.melody_extraction import DRUM_NAME, MELODY_NAME
    drums = ["Drums", "Drum Kit", "Perc 2", "Percussion", "Snare", "Toms", "Hi-Hat", "Kit"]
    pitched = ["Steel Drums", "Percussive Organ", "Tomorrow", "Piano", "Bass", "Strings"]
    assert [n for n in drums + pitched if DRUM_NAME.search(n)] == drums
    melody = ["Melody 1", "Lead", "Lead Vox", "Vocal", "Singer", "Solo Flute", "Soprano",
              "Right Hand", "Piano RH", "Theme"]
    other = ["Single", "Piano", "Bass", "Left Hand", "Pad", "Alto"]
    assert [n for n in melody + other if MELODY_NAME.search(n)] == melody
