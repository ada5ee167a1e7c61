"""Writes the multi-track MIDI test folder (tests/data/multitrack/*.mid) from music21's Bach
chorales, laid out like the MIDI files people download (game and pop arrangements).

    .venv/bin/python tests/data/multitrack/make_multitrack.py

Each file takes the first 12 bars (48 beats) of one chorale and has:
  - a conductor track with tempo changes (beats 0, 16, 32) and time-signature changes;
  - the soprano as the melody track, named "Melody 1", "Lead", "Vocal"… (two files name no
    track), played by a person: onsets late or early by up to 1/20 beat, releases early
    (legato gaps), a third below added to every fifth note (chords in the melody track),
    and its last note held 2.5 beats (a length the melody recipe's list lacks);
  - alto and tenor as a block-chord accompaniment ("Piano"), the bass line ("Bass");
  - drums: a busy kit on channel 10, and in most files a second drum track on channel 6
    named "Drums", or a synth-drum track (GM program 118) on channel 8 named "FX".
Different files use different resolutions (96 … 960 ticks per beat).
``manifest.json`` records, per file, the melody track's name and the soprano's pitches.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import mido

HERE = Path(__file__).resolve().parent
BEATS = 48.0
MELODY_NAMES = ["Melody 1", "Lead", "Vocal", "Solo Flute", "Melody", "Lead Vox", "Voice",
                "Theme", None, None]
RESOLUTIONS = [480, 96, 384, 960, 480, 192, 480, 384, 960, 480]


def part_notes(part) -> list[tuple[int, float, float]]:
    """(pitch, start beats, length beats) of a chorale part, within the first BEATS."""
    out = []
    for n in part.stripTies().flatten().notes:
        start, length = float(n.offset), float(n.quarterLength)
        if length > 0 and start < BEATS:
            out.extend((p.midi, start, min(length, BEATS - start)) for p in n.pitches)
    return out


def track(name: str | None, channel: int, program: int | None,
          notes: list[tuple[int, float, float, int]], tpb: int) -> mido.MidiTrack:
    """notes: (pitch, start beats, length beats, velocity) → a track with delta times."""
    events = []
    for pitch, start, length, velocity in notes:
        on = round(start * tpb)
        off = max(on + 1, round((start + length) * tpb))
        events.append((on, 1, mido.Message("note_on", channel=channel, note=pitch,
                                           velocity=velocity)))
        events.append((off, 0, mido.Message("note_off", channel=channel, note=pitch)))
    events.sort(key=lambda e: (e[0], e[1]))
    msgs = [mido.MetaMessage("track_name", name=name)] if name else []
    if program is not None:
        msgs.append(mido.Message("program_change", channel=channel, program=program))
    now = 0
    for ticks, _, msg in events:
        msgs.append(msg.copy(time=ticks - now))
        now = ticks
    return mido.MidiTrack(msgs)


def conductor(tpb: int, i: int) -> mido.MidiTrack:
    changes = [(0.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(96 + 4 * i))),
               (0.0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
               (16.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(72))),
               (32.0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(140))),
               (40.0, mido.MetaMessage("time_signature", numerator=2, denominator=4)),
               (42.0, mido.MetaMessage("time_signature", numerator=4, denominator=4))]
    out, now = mido.MidiTrack([mido.MetaMessage("track_name", name="Conductor")]), 0
    for beat, msg in changes:
        ticks = round(beat * tpb)
        out.append(msg.copy(time=ticks - now))
        now = ticks
    return out


def drum_pattern(rng: random.Random, step: float) -> list[tuple[int, float, float, int]]:
    """A busy kit: kick, snare, hats, toms and crashes (GM drum keys 35–59)."""
    hits, beat = [], 0.0
    while beat < BEATS:
        hits.append((rng.choice([35, 36, 38, 40, 42, 44, 46, 45, 47, 48, 49, 50, 51, 57, 59]),
                     beat, step, rng.randint(60, 120)))
        beat += step
    return hits


def make_file(i: int, score, path: Path, rng: random.Random) -> dict:
    soprano, alto, tenor, bass = (part_notes(p) for p in score.parts[:4])
    tpb = RESOLUTIONS[i]
    melody = []
    for k, (pitch, start, length) in enumerate(soprano):
        late = rng.uniform(-0.05, 0.05) if start > 0 else 0.0
        short = rng.uniform(0.02, 0.1)
        velocity = rng.randint(70, 110)
        if k == len(soprano) - 1:
            length = 2.5                                   # held: not in the recipe's list
        melody.append((pitch, start + late, length - short, velocity))
        if k % 5 == 2:
            melody.append((pitch - 4, start + late, length - short, velocity - 20))
    chords = [(p, s, d, 64) for p, s, d in sorted(alto + tenor, key=lambda n: n[1])]
    low = [(p - 12 if p >= 48 else p, s, d, 90) for p, s, d in bass]
    names = ["Piano", "Bass"] if MELODY_NAMES[i] else ["Track 3", "Track 4"]
    tracks = [conductor(tpb, i),
              track(names[0], 1, 0, chords, tpb),
              track(MELODY_NAMES[i] or "Track 2", 0, 73, melody, tpb),
              track(names[1], 2, 33, low, tpb),
              track("Track 5" if i % 2 else None, 9, None, drum_pattern(rng, 0.25), tpb)]
    if i % 3 == 0:
        tracks.append(track("FX", 7, 118, drum_pattern(rng, 0.5), tpb))
    elif i != 4:
        tracks.append(track("Drums", 5, 0, drum_pattern(rng, 0.25), tpb))
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    midi.tracks.extend(tracks)
    midi.save(path)
    return {"melody_track": MELODY_NAMES[i] or "Track 2",
            "named": MELODY_NAMES[i] is not None,
            "chorale": score.metadata.corpusFilePath,
            "melody_pitches": [p for p, _, _ in soprano]}


def main() -> None:
    from music21 import corpus
    rng = random.Random(9)
    manifest = {}
    chorales = (s for s in corpus.chorales.Iterator() if len(s.parts) == 4
                and s.recurse().getElementsByClass("TimeSignature")[0].ratioString == "4/4")
    for i in range(10):
        score = next(chorales)
        name = f"song{i:02d}.mid"
        manifest[name] = make_file(i, score, HERE / name, rng)
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest)} files into {HERE}")


if __name__ == "__main__":
    main()
