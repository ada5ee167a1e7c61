"""Note-on timing of riffd's Scheduler + JACK MIDI port, as seen by another JACK client.

Starts a private JACK server (dummy driver), opens riffd's ports and a MidiPeer connected to
them, schedules N notes on a 16th-note grid and compares the peer's frame times with the
intended times. Frame times count samples on the server's clock, so they are free of Python
jitter on the receiving side.

Caveat, measured here: the dummy driver's frame clock loses time against the system clock at
every xrun (``JackTimedDriver::Process XRun`` in the jackd log: a late wake-up is not caught up).
So the absolute frame-time error drifts in steps over a long run, while riffd still places each
event at the frame that matches its monotonic time. The report therefore gives three figures:
frame time vs intended time (constant offset removed; includes those clock slips), the
inter-onset intervals in frames vs the grid (local timing, insensitive to slips except across
one), and the peer's monotonic stamp vs intended time.

    .venv/bin/python benchmarks/midi_timing.py --period 256
    .venv/bin/python benchmarks/midi_timing.py --period 64 --notes 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from riffd.daemon.jack_server import JackServer  # noqa: E402
from riffd.daemon.midi_peer import MidiPeer  # noqa: E402
from riffd.daemon.midi_ports import JackMidiPorts  # noqa: E402
from riffd.daemon.scheduler import Scheduler  # noqa: E402


def run(notes: int, bpm: float, rate: int, period: int) -> dict:
    step = 60.0 / bpm / 4          # one 16th note, seconds
    gate = step / 2                # note length, seconds
    log_path = os.path.join(tempfile.gettempdir(), f"riffd-bench-jackd-{os.getpid()}.log")
    server = JackServer(f"riffd-bench-{os.getpid()}", rate=rate, period=period, log_path=log_path)
    with server:
        os.environ.update(server.env)
        with JackMidiPorts().open("riffd") as ports, MidiPeer() as peer:
            peer.connect(ports.out_port_name, ports.in_port_name)
            sched = Scheduler(ports).start()
            try:
                t0 = time.monotonic() + 0.1
                intended = t0 + step * np.arange(notes)       # monotonic seconds
                for i, at in enumerate(intended):
                    pitch = 48 + (i * 7) % 36
                    sched.schedule_on(at, 1, pitch, 100)
                    sched.schedule_off(at + gate, 1, pitch)
                ok = peer.wait_for(lambda r: len(r) >= 2 * notes, timeout=notes * step + 5.0)
            finally:
                sched.stop()
            received = peer.received()
    with open(log_path, errors="replace") as log:
        xruns = sum("XRun" in line for line in log)
    os.remove(log_path)
    ons = [m for m in received if m.message[0] & 0xF0 == 0x90]
    if not ok:
        print(f"warning: peer received {len(received)} of {2 * notes} messages (ons + offs); "
              "JACK drops a client's input in a cycle it overruns (xrun)", file=sys.stderr)
    # Match each received note-on to its grid slot by its monotonic stamp (accurate to ~0.1 ms,
    # far inside half a 16th), so a note lost in an xrun does not shift the others.
    matched = [int(round((m.monotonic - intended[0]) / step)) for m in ons]
    if len(set(matched)) != len(matched) or min(matched) < 0 or max(matched) >= notes:
        raise SystemExit("received note-ons do not map one-to-one onto the grid")
    want = intended[matched]
    frames = np.array([m.frame for m in ons], dtype=np.int64)
    seconds = (frames - frames[0]) / rate                # peer's frame clock, seconds
    error = seconds - (want - want[0])
    offset = np.median([m.monotonic for m in ons] - want)  # riffd -> peer, monotonic clock
    error -= np.median(error)                            # remove the constant offset
    consecutive = np.diff(matched) == 1
    ioi_error = (np.diff(frames) / rate - step)[consecutive]
    mono_error = np.array([m.monotonic for m in ons]) - want - offset

    def stats(x):
        a = np.abs(x) * 1e3
        return (float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max()))

    return {
        "notes": notes, "received": len(ons), "bpm": bpm, "rate": rate, "period": period,
        "period_ms": period / rate * 1e3, "lookahead_ms": sched.lookahead_s * 1e3,
        "offset_ms": offset * 1e3, "frame": stats(error), "ioi": stats(ioi_error),
        "mono": stats(mono_error), "late": sched.late_notes, "errors": sched.errors,
        "dropped": ports.dropped, "xruns": xruns,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=int, default=256, help="JACK period in frames (64 or 256)")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate, Hz")
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--bpm", type=float, default=120.0)
    args = parser.parse_args(argv)
    r = run(args.notes, args.bpm, args.rate, args.period)
    print(f"JACK dummy driver: {r['rate']} Hz, period {r['period']} frames = {r['period_ms']:.2f} ms; "
          f"scheduler lookahead {r['lookahead_ms']:.2f} ms")
    print(f"{r['received']}/{r['notes']} note-ons received, 16ths at {r['bpm']:g} BPM; "
          f"constant offset riffd->peer {r['offset_ms']:+.3f} ms (removed)")
    for label, key in (("frame time vs intended      ", "frame"),
                       ("inter-onset interval (frames)", "ioi"),
                       ("peer monotonic vs intended  ", "mono")):
        p50, p99, worst = r[key]
        print(f"  {label}: |error| p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.3f} ms")
    print(f"late hand-overs {r['late']}, send errors {r['errors']}, dropped by JACK {r['dropped']}, "
          f"jackd xrun lines {r['xruns']}")

if __name__ == "__main__":
    main()
