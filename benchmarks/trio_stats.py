"""What the trio (configs/trio.toml) plays, measured like the GAN document measures bars.

Starts riffd with the trio on a JACK server (a private dummy-driver one when none runs),
plays a phrase into ``riffd:in`` from a separate JACK client, records ``--bars`` bars of the
answer from ``riffd:out`` (every voice answers for that many bars), and computes, for the
whole trio and for each voice: EB (empty bars, %), UPC (pitch classes per non-empty bar),
QN (notes of at least three 16ths, %) and pitch entropy (bits, pitch classes of onsets),
beside the same figures of the training data: the held-out Bach chorales (4-part harmony,
what the chords were trained on; also the trio's texture) and the held-out Essen folk songs
(what the melody and the bass were trained on). Rolls are cut into 4/4 bars of 16ths.

    .venv/bin/python benchmarks/trio_stats.py [--bars 64] [--tempo 200] [--json out.json]

Takes about (bars × 4 × 60 / tempo) seconds of playing plus a minute of start-up and corpus
loading (the corpora are cached by training).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack

import numpy as np

from riffd.daemon.demo import TRIO_VOICES, split_by_channel
from riffd.daemon.recording import pair_notes
from riffd.engine.melody_representation import Note
from riffd.engine.pianoroll import PitchRange, notes_to_roll

FULL = PitchRange(0, 127, fold=False)
BAR_STEPS = 16
D_MINOR_PHRASE = [(62, 0.0, 0.5), (64, 0.5, 0.5), (65, 1.0, 0.5), (67, 1.5, 0.5),
                  (69, 2.0, 1.0), (65, 3.0, 0.5), (62, 3.5, 0.5), (60, 4.0, 0.5),
                  (62, 4.5, 0.5), (64, 5.0, 0.5), (65, 5.5, 0.5), (62, 6.0, 2.0)]  # beats


def figures(rolls: list[np.ndarray]) -> dict:
    from riffd.training.metrics import (empty_bars, pitch_entropy, qualified_notes,
                                        used_pitch_classes)
    return {"EB": round(empty_bars(rolls, BAR_STEPS), 1),
            "UPC": round(used_pitch_classes(rolls, FULL, BAR_STEPS), 2),
            "QN": round(qualified_notes(rolls, FULL), 1),
            "entropy_bits": round(pitch_entropy(rolls, FULL), 2)}


def bars_of(notes: list[Note], n_bars: int) -> list[np.ndarray]:
    """Notes (beats from the answer's first bar line) → ``n_bars`` rolls of (16, 128)."""
    roll = notes_to_roll(notes, FULL, n_steps=n_bars * BAR_STEPS)
    return [roll[i * BAR_STEPS:(i + 1) * BAR_STEPS] for i in range(n_bars)]


def play_trio(bars: int, tempo: float) -> tuple[dict[str, list[Note]], dict]:
    """Serve the trio, play the phrase, record ``bars`` bars; notes per voice in beats from
    the answer's first note, and riffd's counters."""
    from riffd.daemon.jack_server import JackServer, jack_server_running
    from riffd.daemon.midi_peer import MidiPeer
    from riffd.daemon.process import DaemonProcess

    spb = 60.0 / tempo
    with ExitStack() as stack:
        env: dict[str, str] = {}
        if not jack_server_running():
            server = stack.enter_context(JackServer(f"riffd-trio-stats-{os.getpid()}"))
            env = server.env
            os.environ.update(env)
        daemon = stack.enter_context(DaemonProcess(
            ["--midi-api", "jack", "--config", "trio", "--client-name", "riffd-stats",
             "--tempo", str(tempo), "--silence", "0.4", "--no-clock-out",
             "--log-level", "WARNING"], env=env))
        peer = stack.enter_context(MidiPeer("trio-stats-listener"))
        peer.connect("riffd-stats:out", "riffd-stats:in")
        with daemon.client() as c:
            for name in TRIO_VOICES.values():
                c.set(voice=name, length=bars)
        phrase = [(s * spb, [0x90, p, 90]) for p, s, _ in D_MINOR_PHRASE]
        phrase += [((s + d * 0.9) * spb, [0x80, p, 0]) for p, s, d in D_MINOR_PHRASE]
        t0 = peer.play(sorted(phrase, key=lambda m: m[0]))
        with daemon.client() as c:
            deadline = time.monotonic() + 20 + bars * 4 * spb
            while not c.status()["playing"] and time.monotonic() < deadline:
                time.sleep(0.2)
            while c.status()["playing"] and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(0.5)
            counters = c.status()["counters"]
        received = [(r.seconds, r.message) for r in peer.received() if r.monotonic > t0]
    channels = split_by_channel(received)
    timed = {name: pair_notes(channels.get(ch, []))[0] for ch, name in TRIO_VOICES.items()}
    first = min((n.start_s for notes in timed.values() for n in notes), default=0.0)
    return ({name: [Note(n.pitch, (n.start_s - first) / spb, (n.end_s - n.start_s) / spb)
                    for n in notes] for name, notes in timed.items()}, counters)


def training_data() -> dict[str, list[np.ndarray]]:
    """Held-out bars of the chorales and of the melody voice's folk tunes, (16, 128) rolls."""
    from riffd.training.chorales import (ChoraleSettings, load_chorale_corpus, piece_bars,
                                         split_pieces)
    from riffd.training.notewise_config import NotewiseDataConfig
    from riffd.training.notewise_data import load_notewise_corpus
    from riffd.engine.notewise_representation import decode_events
    from riffd.engine.checkpoint import read_metadata
    from riffd.engine.loading import resolve_model_path

    pieces, _ = load_chorale_corpus(ChoraleSettings())
    _, held_out = split_pieces(pieces, 0.1, 0)             # the GANs' held-out chorales
    chorales = [bar for piece in held_out for bar in piece_bars(piece, FULL, BAR_STEPS)]
    # the melody voice's training tunes: the bundled notewise model's corpus and split
    recipe = read_metadata(resolve_model_path("notewise_n2_folk"))["recipe"]
    folk = load_notewise_corpus(NotewiseDataConfig(**recipe["data"]),
                                seed=int(recipe.get("train", {}).get("seed", 0)))
    songs = []
    for events in folk.val:
        roll = notes_to_roll(decode_events(events), FULL)
        songs += [roll[b:b + BAR_STEPS] for b in range(0, len(roll) - BAR_STEPS + 1, BAR_STEPS)]
    return {"chorales (held out)": chorales,
            f"{', '.join(recipe['data']['corpus'])} tunes (held out)": songs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--tempo", type=float, default=200.0, help="BPM (default 200)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    voices, counters = play_trio(args.bars, args.tempo)
    rows = {"trio (all voices)": figures(bars_of([n for v in voices.values() for n in v],
                                                 args.bars))}
    for name, notes in voices.items():
        rows[f"{name} ({len(notes)} notes)"] = figures(bars_of(notes, args.bars))
    for name, rolls in training_data().items():
        rows[f"{name}, {len(rolls)} bars"] = figures(rolls)
    print(f"{args.bars} bars at {args.tempo:g} BPM through the real ports "
          f"(riffd: {counters['notes_sent']} notes sent, {counters['late_notes']} late, "
          f"{counters['xruns'] + counters['missed_cycles']} JACK cycles missed)")
    print(f"{'':38} {'EB %':>6} {'UPC':>6} {'QN %':>6} {'entropy':>8}")
    for name, f in rows.items():
        print(f"{name:38} {f['EB']:6.1f} {f['UPC']:6.2f} {f['QN']:6.1f} {f['entropy_bits']:8.2f}")
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"bars": args.bars, "tempo": args.tempo, "rows": rows,
                       "counters": counters}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
