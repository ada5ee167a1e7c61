"""MIDI seeds for ``riffd render`` (``riffd.training.render_seed``): read as training reads a
MIDI file, so drum tracks are left out whatever their channel; a seed of drums alone is
refused naming the fix."""
import mido
import pytest

from riffd.training.render_seed import SeedError, read_seed_midi


def write_seed(path, tracks: dict[str, tuple[int, int | None, list[int]]], tempo_bpm=None):
    """One track per entry: name → (channel, program or None, pitches one beat each, from
    beat 1)."""
    midi = mido.MidiFile(ticks_per_beat=480)
    for index, (name, (channel, program, pitches)) in enumerate(tracks.items()):
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
        if index == 0 and tempo_bpm:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))
        if program is not None:
            track.append(mido.Message("program_change", channel=channel, program=program))
        wait = 480                                        # the first note starts on beat 1
        for pitch in pitches:
            track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=90,
                                      time=wait))
            track.append(mido.Message("note_off", channel=channel, note=pitch, time=480))
            wait = 0
        midi.tracks.append(track)
    midi.save(path)
    return path


def test_a_seed_leaves_out_every_kind_of_drum_track(tmp_path):
    seed = write_seed(tmp_path / "band.mid", {
        "Piano": (0, 0, [60, 62, 64]),
        "Drums": (1, None, [36, 38]),                 # named like drums, on channel 2
        "Toms": (2, 117, [45, 47]),                   # melodic tom: a percussive program
        "Channel ten": (9, None, [42, 42])})          # the General MIDI drum channel
    notes, tempo = read_seed_midi(seed)
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(60, 0.0, 1.0), (62, 1.0, 1.0),
                                                               (64, 2.0, 1.0)]
    assert tempo == 120.0                             # MIDI's default: the file sets none


def test_a_seed_keeps_its_tempo_and_every_pitched_track(tmp_path):
    seed = write_seed(tmp_path / "duo.mid", {"Lead": (0, 0, [72, 74]),
                                             "Bass": (1, 32, [36, 38])}, tempo_bpm=90)
    notes, tempo = read_seed_midi(seed)
    assert [(n.pitch, n.start) for n in notes] == [(36, 0.0), (72, 0.0), (38, 1.0), (74, 1.0)]
    assert tempo == pytest.approx(90.0)


def test_a_seed_of_drums_alone_is_refused_naming_the_fix(tmp_path):
    seed = write_seed(tmp_path / "beat.mid", {"Kit": (3, None, [36, 38, 42])})
    with pytest.raises(SeedError, match=r"beat\.mid holds no notes \(drums do not count.*"
                                        r"give a MIDI file with a melody or chords"):
        read_seed_midi(seed)


def test_a_seed_that_is_not_midi_is_refused_naming_the_fix(tmp_path):
    seed = tmp_path / "notes.mid"
    seed.write_bytes(b"MThd this is not a MIDI file")
    with pytest.raises(SeedError, match=r"not a readable MIDI file.*Standard MIDI File"):
        read_seed_midi(seed)
