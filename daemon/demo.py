"""``riffd demo``: play a phrase into riffd through real MIDI ports and record its answer.

Starts a private JACK server with the dummy driver when none is running, starts
``riffd serve`` with the bundled model, plays ``data/seed_phrase_eb.mid`` into
``riffd:in`` from a separate JACK client, records ``riffd:out`` for about 20 seconds,
writes ``out/demo.mid``, ``out/demo.wav`` and ``out/demo.png``, prints a summary and
shuts everything down.

``riffd demo --trio`` serves ``configs/trio.toml`` instead (melody, chords and bass from the
bundled models, one MIDI channel each) and writes ``out/trio.mid``, ``out/trio.wav`` and
``out/trio.png``, one track per voice.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

SEED = Path(__file__).parent / "data" / "seed_phrase_eb.mid"
TRIO_CONFIG = "trio"                 # the shipped serve config configs/trio.toml, by name
TRIO_VOICES = {1: "melody", 2: "chords", 3: "bass"}      # MIDI channel → voice of trio.toml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Play a bundled phrase (E-flat major) into riffd through real MIDI "
                          "ports, record its answer, and write demo.mid, demo.wav and demo.png "
                          "into the --out folder (./out by default).")
    parser.epilog = ("Needs JACK (apt-get install jackd2). A private JACK server with the dummy "
                     "driver is started and stopped when none runs.")
    parser.add_argument("--out", default="out", metavar="DIR",
                        help="folder for demo.mid, demo.wav, demo.png and demo-daemon.log, "
                             "created if missing (default: ./out, in the current folder)")
    parser.add_argument("--seconds", type=float, default=21.0,
                        help="how long to record from the first seed note (default 21)")
    parser.add_argument("--model", help="checkpoint to serve (default: the bundled model)")
    parser.add_argument("--seed", type=Path, default=SEED, help="MIDI file to play as the phrase")
    parser.add_argument("--bars", type=int, default=8, help="answer length in bars (default 8)")
    parser.add_argument("--tempo", type=float, default=None,
                        help="tempo in BPM (default 120; with --trio the config's 100)")
    parser.add_argument("--trio", action="store_true",
                        help="serve configs/trio.toml: melody, chords and bass from the bundled "
                             "models answer together; writes out/trio.mid, .wav and .png")


def _seed_messages(path: Path) -> list[tuple[float, list[int]]]:
    """(seconds, message) pairs of a MIDI file's notes."""
    import mido
    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError) as exc:
        raise SystemExit(f"riffd demo: cannot read the seed phrase {path}: {exc}")
    out, t = [], 0.0
    for message in midi:
        t += message.time
        if message.type in ("note_on", "note_off"):
            out.append((t, message.bytes()))
    return out


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"median {1000 * statistics.median(ordered):.2f} ms, p99 {1000 * p99:.2f} ms, "
            f"max {1000 * ordered[-1]:.2f} ms")


def grid_deviation(onsets_s: list[float], step_s: float) -> tuple[list[float], float]:
    """How far onsets (seconds) sit from a grid of ``step_s`` fitted through them.

    The grid's origin and step are fitted by least squares, so a constant rate difference
    between the clock riffd schedules on and the clock the onsets were read from shows up
    as drift (parts per million) rather than as error. Returns (|deviation| per onset, drift).
    """
    import numpy as np
    if len(onsets_s) < 3:
        return [], 0.0
    t = np.asarray(onsets_s) - onsets_s[0]
    k = np.round(t / step_s)
    slope, intercept = np.polyfit(k, t, 1)
    return list(np.abs(t - (intercept + slope * k))), (slope / step_s - 1) * 1e6


def run(args: argparse.Namespace) -> int:
    from riffd.daemon.jack_server import JackServer, JackUnavailable, jack_server_running
    from riffd.daemon.midi_peer import MidiPeer
    from riffd.daemon.process import DaemonProcess
    from riffd.daemon.recording import pair_notes, plot_piano_roll, render_wav, write_midi
    from riffd.engine.key_finding import estimate_key
    from riffd.engine.melody_representation import Note

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed = _seed_messages(args.seed)
    stem = "trio" if args.trio else "demo"
    if args.tempo is None:
        args.tempo = 100.0 if args.trio else 120.0
    with ExitStack() as stack:
        env: dict[str, str] = {}
        if jack_server_running():
            print("using the running JACK server")
        else:
            try:
                server = stack.enter_context(JackServer(f"riffd-demo-{os.getpid()}"))
            except JackUnavailable as exc:
                print(f"riffd demo: {exc}", file=sys.stderr)
                return 1
            env = server.env
            os.environ.update(env)
            print(f"started a private JACK server '{server.name}' (dummy driver, "
                  f"{server.rate} Hz, {server.period} frames)")
        serve_args = ["--midi-api", "jack", "--length", str(args.bars),
                      "--tempo", str(args.tempo), "--log-level", "WARNING"]
        if args.trio:
            serve_args += ["--config", TRIO_CONFIG]
            print("starting riffd serve --config trio (melody, chords and bass)…")
        else:
            if args.model:
                serve_args += ["--model", args.model]
            print("starting riffd serve (bundled model)…" if not args.model else
                  f"starting riffd serve ({args.model})…")
        daemon = DaemonProcess(serve_args, env=env, log_path=out / f"{stem}-daemon.log")
        stack.enter_context(daemon)
        peer = stack.enter_context(MidiPeer("riffd-demo-player"))
        peer.connect("riffd:out", "riffd:in")
        with daemon.client() as client:
            status = client.status()
        print(f"riffd is up: model {status['model']['name']} on {status['device']}, "
              f"ports {status['ports']['out']} / {status['ports']['in']}")
        time.sleep(0.2)
        t0 = peer.play(seed)
        seed_end = t0 + max(t for t, _ in seed)
        print(f"playing {sum(1 for _, m in seed if m[0] & 0xF0 == 0x90 and m[2])} seed notes "
              f"into riffd:in, recording riffd:out for {args.seconds:.0f} s…")
        deadline = t0 + args.seconds
        while time.monotonic() < deadline:
            time.sleep(0.25)
        with daemon.client() as client:
            client.stop()                       # the answer ends here if it is still going
            time.sleep(0.3)
            final = client.status()
        code = daemon.shutdown()
        received = [(r.monotonic - t0, r.message) for r in peer.received()]
        frames = [r for r in peer.received() if r.message[0] & 0xF0 == 0x90 and r.message[2] > 0]

    seed_notes, _ = pair_notes(seed)
    if args.trio:
        return _trio_report(args, out, seed_notes, received, frames, final, code)
    answer, hanging = pair_notes(received)
    seed_key = estimate_key([Note(n.pitch, n.start_s, n.end_s - n.start_s) for n in seed_notes])
    answer_key = estimate_key([Note(n.pitch, n.start_s, n.end_s - n.start_s) for n in answer])
    tracks = {"seed (played into riffd:in)": seed_notes, "riffd's answer (from riffd:out)": answer}
    write_midi(out / "demo.mid", tracks, args.tempo)
    try:
        rendered = render_wav(out / "demo.mid", out / "demo.wav")
    except Exception as exc:   # FluidSynth missing or broken: say so, keep the other outputs
        rendered = f"not rendered ({exc}); install fluidsynth (apt-get install fluidsynth)"
    plot_piano_roll(out / "demo.png", tracks,
                    f"riffd demo: seed in {seed_key.name}, answer in {answer_key.name}")

    grid_error, drift_ppm = grid_deviation([r.seconds for r in frames], 60.0 / args.tempo / 4)
    first_delay = (frames[0].monotonic - seed_end) if frames else float("nan")
    print()
    print(f"seed:     {len(seed_notes)} notes, key {seed_key.name}")
    print(f"answer:   {len(answer)} notes received on {peer.in_port_name}, key {answer_key.name}, "
          f"{hanging} left hanging")
    print(f"timing:   first answer note {first_delay:.2f} s after the last seed note "
          f"(1 s of silence ends a phrase)")
    print(f"          onsets against the 16th-note grid, in JACK frame time: {_ms(grid_error)}"
          f" (tempo drift {drift_ppm:+.0f} ppm between the system clock and JACK's)")
    print(f"daemon:   {final['counters']['notes_sent']} notes sent, "
          f"{final['counters']['late_notes']} late, model step p50 "
          f"{final['counters']['step_ms_p50']:.3f} ms, p99 {final['counters']['step_ms_p99']:.3f} ms; exit status {code}")
    print(f"wrote:    {out / 'demo.mid'}, {out / 'demo.wav'} ({rendered}), {out / 'demo.png'}")
    if code != 0 or not answer or hanging:
        print(f"riffd demo: FAILED (see {out / 'demo-daemon.log'})", file=sys.stderr)
        return 1
    return 0


def split_by_channel(received: list[tuple[float, list[int]]]
                     ) -> dict[int, list[tuple[float, list[int]]]]:
    """Note messages by MIDI channel (1-16); clock and other messages left out."""
    out: dict[int, list[tuple[float, list[int]]]] = {}
    for t, message in received:
        if len(message) == 3 and message[0] & 0xE0 == 0x80:       # note on / note off
            out.setdefault((message[0] & 0x0F) + 1, []).append((t, message))
    return out


def most_simultaneous(notes) -> int:
    """The most notes sounding at once (TimedNote list; a note ending as another starts does
    not overlap it)."""
    edges = sorted([(n.start_s, 1) for n in notes] + [(n.end_s, -1) for n in notes])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def _trio_report(args, out: Path, seed_notes, received, frames, final, code) -> int:
    from riffd.daemon.recording import pair_notes, plot_piano_roll, render_wav, write_midi
    from riffd.engine.key_finding import estimate_key
    from riffd.engine.melody_representation import Note

    def key_of(notes):
        return estimate_key([Note(n.pitch, n.start_s, n.end_s - n.start_s) for n in notes])

    channels = split_by_channel(received)
    parts, hanging = {}, 0
    for channel, name in TRIO_VOICES.items():
        notes, left = pair_notes(channels.get(channel, []))
        parts[name], hanging = notes, hanging + left
    seed_key = key_of(seed_notes)
    tracks = {"seed (played into riffd:in)": seed_notes,
              **{f"{name} (channel {ch})": parts[name] for ch, name in TRIO_VOICES.items()}}
    write_midi(out / "trio.mid", tracks, args.tempo)
    try:
        rendered = render_wav(out / "trio.mid", out / "trio.wav")
    except Exception as exc:   # FluidSynth missing or broken: say so, keep the other outputs
        rendered = f"not rendered ({exc}); install fluidsynth (apt-get install fluidsynth)"
    everything = [n for notes in parts.values() for n in notes]
    answer_key = key_of(everything) if everything else seed_key
    plot_piano_roll(out / "trio.png", tracks,
                    f"riffd trio: seed in {seed_key.name}, answer in {answer_key.name}")
    print()
    print(f"seed:     {len(seed_notes)} notes, key {seed_key.name}")
    for channel, name in TRIO_VOICES.items():
        notes = parts[name]
        pitches = sorted(n.pitch for n in notes)
        median = statistics.median(pitches) if pitches else float("nan")
        print(f"{name + ':':9} {len(notes)} notes on channel {channel}, median pitch "
              f"{median:.0f}, at most {most_simultaneous(notes)} at once")
    print(f"answer:   key {answer_key.name}, {hanging} notes left hanging")
    print(f"daemon:   {final['counters']['notes_sent']} notes sent, "
          f"{final['counters']['late_notes']} late; exit status {code}")
    print(f"wrote:    {out / 'trio.mid'}, {out / 'trio.wav'} ({rendered}), {out / 'trio.png'}")
    if code != 0 or not all(parts.values()) or hanging:
        print(f"riffd demo: FAILED (see {out / 'trio-daemon.log'})", file=sys.stderr)
        return 1
    return 0
