"""Note timing of riffd playing continuously while CPU burners keep every core busy.

Each run starts a private dummy-driver JACK server (realtime ``jackd -R`` or ``--no-realtime``),
``riffd serve`` (a child process; the bundled melody model, a continuous voice), a receiving
JACK client (daemon/midi_peer.py; its process thread is realtime when the server is), a
client that counts the server's xruns, and the baseline: a bare JACK client that sends a note
every 16th at exact frames to the same receiver, at the same time, on channel 16. Then
``--burn N`` busy processes run for ``--minutes`` while both play.

Reported per run, for riffd and for the bare client alike:

- note-on error: the receiver's time stamp of each note-on (its frame mapped onto the monotonic
  clock) against the time it was meant to sound (riffd: ``at`` of its own ``note_on`` events on
  the PUB socket; bare client: the frame it asked for): |error| p50, p99, max in ms, and the
  signed median;
- lost note-ons and note-offs (sent by its own record minus received), hanging notes at the end;
- riffd's late notes (written late at the port; handed to the port late), dropped events,
  xruns and missed cycles (status counters; "n/a" where riffd has none);
- xruns seen by the receiver's JACK client (xrun callback) and lines in jackd's log;
- the load average (os.getloadavg) at the end and the share of CPU time that was busy.

    .venv/bin/python benchmarks/stress_timing.py                     # 10 min realtime + 10 min not
    .venv/bin/python benchmarks/stress_timing.py --minutes 0.5 --burn 1 --mode rt
    .venv/bin/python benchmarks/stress_timing.py --quiet-too --json out/stress.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _playback_rig import (  # noqa: E402
    BASELINE_CHANNEL, BareClient, Burner, ClientProcess, EventLog, NoteReceiver, XrunWatch,
    busy_percent, counters, cpu_times, delta, fmt, hanging, loadavg, log_xruns, match_notes, pct,
    rt_threads, server_mode, serve_option, start_jack)
from riffd.daemon.jack_server import realtime_permitted  # noqa: E402
from riffd.daemon.process import DaemonProcess  # noqa: E402

CLIENT = "riffd-stress"
DRAIN_S = 1.5   # after stopping: the bare client's last notes (1 s ahead) and riffd's note-offs


def note_report(intended, received_ons, ons_sent, offs_sent, ons_received, offs_received,
                messages) -> dict:
    """Timing and counts for one sender.

    Args:
        intended: ``(at, channel, pitch)`` of the note-ons it sent, at in monotonic seconds.
        received_ons: ``(t, channel, pitch)`` of the note-ons the receiver saw.
        ons_sent, offs_sent: by the sender's own record (None: unknown).
        messages: the MIDI bytes the receiver saw from this sender, in order (hanging notes).
    """
    pairs = match_notes(intended, received_ons)
    error = np.array([t - at for at, t in pairs])
    return {"note_on_error_ms": pct(error, 1000.0),
            "median_signed_error_ms": (round(float(np.median(error)) * 1000, 3)
                                       if error.size else None),
            "note_ons_sent": ons_sent, "note_ons_received": ons_received,
            "note_ons_matched": len(pairs),
            # received but matching no intended note-on: JACK delivered it twice, or too late
            "note_ons_unmatched": ons_received - len(pairs),
            "lost_note_ons": delta(ons_sent, ons_received),
            "note_offs_sent": offs_sent, "note_offs_received": offs_received,
            "lost_note_offs": delta(offs_sent, offs_received),
            "hanging_notes": hanging(messages)}


def run_once(realtime: bool, burn: int, burner: str, seconds: float, rate: int, period: int,
             bpm: float, tmp: str) -> dict:
    """One measured run on a fresh JACK server and a fresh riffd."""
    label = f"{'rt' if realtime else 'nonrt'}-burn{burn}"
    jack_log = os.path.join(tmp, f"jackd-{label}.log")
    server = start_jack(f"riffd-stress-{os.getpid()}-{label}", rate, period, realtime, jack_log)
    try:
        os.environ.update(server.env)
        serve = ["--midi-api", "jack", "--client-name", CLIENT, "--tempo", str(bpm),
                 "--mode", "continuous", "--log-level", "WARNING"]
        if serve_option("--realtime"):
            serve += ["--realtime", "auto" if realtime else "off"]
        with XrunWatch("stress-xruns") as watch, \
                ClientProcess(NoteReceiver, "stress-rx") as rx, \
                ClientProcess(BareClient, "stress-bare", "stress-rx:in", bpm) as bare, \
                DaemonProcess(serve, log_path=os.path.join(tmp, f"serve-{label}.log")) as daemon:
            rx.call("connect", f"{CLIENT}:out", None)
            events = EventLog(daemon.events)
            try:
                with daemon.client() as c, Burner(burn, burner) as burners:
                    time.sleep(1.0 if burn else 0.0)          # let the burners get going
                    before = counters(c.status())
                    xruns0, log0 = watch.count, log_xruns(jack_log)
                    cpu0 = cpu_times()
                    c.start()
                    bare.call("start")
                    started = time.monotonic()
                    while time.monotonic() - started < seconds:
                        time.sleep(min(30.0, seconds - (time.monotonic() - started)))
                        print(f"  {label}: {time.monotonic() - started:5.0f} s of {seconds:.0f}, "
                              f"load {loadavg()[0]}", file=sys.stderr)
                    c.stop()
                    bare.call("stop")
                    cpu1, load = cpu_times(), loadavg()
                    rt = {"riffd": rt_threads(daemon.proc.pid), "receiver": rt_threads(rx.pid),
                          "bare_client": rt_threads(bare.pid)}
                    burner_kind = burners.kind
                time.sleep(DRAIN_S)
                with daemon.client() as c:
                    after = counters(c.status())
                xruns, log_lines = watch.count - xruns0, log_xruns(jack_log) - log0
            finally:
                events.close()
            received = rx.call("received")
            intended, bare_offs = bare.call("results")
    finally:
        server.stop()
        mode = server_mode(jack_log)

    def ch(m):
        return (m.message[0] & 0x0F) + 1

    def is_on(m):
        return m.message[0] & 0xF0 == 0x90 and m.message[2] > 0

    mine = [m for m in received if ch(m) != BASELINE_CHANNEL]
    base = [m for m in received if ch(m) == BASELINE_CHANNEL]

    def ons(ms):
        return [(m.monotonic, ch(m), m.message[1]) for m in ms if is_on(m)]

    ons_sent = delta(after["notes_sent"], before["notes_sent"])
    riffd = note_report(events.ons, ons(mine), ons_sent if ons_sent is not None else
                        events.on_count, events.off_count, sum(map(is_on, mine)),
                        sum(not is_on(m) for m in mine), [m.message for m in mine])
    riffd.update({"pub_note_on_events": events.on_count,
                  **{key: delta(after[key], before[key]) for key in
                     ("late_notes", "notes_late", "events_dropped", "xruns", "missed_cycles")},
                  "sounding_at_end": after["sounding"], "realtime_status": after["realtime"]})
    bare_report = note_report([(at, BASELINE_CHANNEL, p) for at, p in intended], ons(base),
                              len(intended), bare_offs, sum(map(is_on, base)),
                              sum(not is_on(m) for m in base), [m.message for m in base])
    return {"label": label, "server_realtime_asked": realtime, "server_mode": mode,
            "burn": burn, "burner": burner_kind, "seconds": seconds, "loadavg_end": load,
            "cpu_busy_percent": busy_percent(cpu0, cpu1), "realtime_threads": rt,
            "riffd": riffd, "bare_client": bare_report,
            "xruns_at_receiver": xruns, "xrun_lines_in_jackd_log": log_lines}


def print_table(report: dict) -> None:
    print(f"JACK dummy driver {report['rate']} Hz, period {report['period']} frames "
          f"({report['period_ms']:.2f} ms); 16ths at {report['bpm']:g} BPM; "
          f"{report['cpus']} CPUs")
    head = (f"{'run':<13}{'server':<13}{'load1':>6}{'busy%':>6}  {'sender':<6}{'n':>6}"
            f"{'p50ms':>8}{'p99ms':>8}{'maxms':>8}{'late p/h':>9}{'lost on/off':>13}{'hang':>5}"
            f"{'xruns r/rx/log':>16}")
    print(head)
    print("-" * len(head))
    for r in report["runs"]:
        for who, key in (("riffd", "riffd"), ("bare", "bare_client")):
            s = r[key]
            e = s["note_on_error_ms"]
            late = (f"{fmt(s.get('notes_late'))}/{fmt(s.get('late_notes'))}"
                    if who == "riffd" else "")
            xr = (f"{fmt(s.get('xruns'))}/{r['xruns_at_receiver']}/{r['xrun_lines_in_jackd_log']}"
                  if who == "riffd" else "")
            lost = f"{fmt(s['lost_note_ons'])}/{fmt(s['lost_note_offs'])}"
            first = who == "riffd"
            print(f"{r['label'] if first else '':<13}{r['server_mode'] if first else '':<13}"
                  f"{(fmt(r['loadavg_end'][0]) if first else ''):>6}"
                  f"{(fmt(r['cpu_busy_percent']) if first else ''):>6}  {who:<6}{e['n']:>6}"
                  f"{fmt(e['p50'], '.3f'):>8}{fmt(e['p99'], '.3f'):>8}{fmt(e['max'], '.3f'):>8}"
                  f"{late:>9}{lost:>13}"
                  f"{s['hanging_notes']:>5}{xr:>16}")
    print("error: the receiver's stamp of each note-on minus its intended time. late p/h: riffd's "
          "events written late at the port / handed to the port late. xruns r/rx/log: riffd's "
          "counter / the receiver side's xrun callback / xrun lines in jackd's log")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of each run, minutes")
    ap.add_argument("--burn", type=int, default=2, help="CPU burner processes (one core each)")
    ap.add_argument("--burner", choices=["auto", "python", "stress-ng"], default="auto",
                    help="auto: stress-ng when installed, else Python busy loops")
    ap.add_argument("--mode", choices=["rt", "nonrt", "both"], default="both",
                    help="rt: jackd -R (when permitted); nonrt: jackd --no-realtime")
    ap.add_argument("--quiet-too", action="store_true",
                    help="also run each mode without the burner (first, so the load settles)")
    ap.add_argument("--period", type=int, default=256, help="JACK period, frames")
    ap.add_argument("--rate", type=int, default=48000, help="JACK sample rate, Hz")
    ap.add_argument("--bpm", type=float, default=120.0, help="tempo of riffd and the bare client")
    ap.add_argument("--json", help="write the report to this file as JSON")
    ap.add_argument("--keep-logs", action="store_true", help="keep jackd's and riffd's logs")
    args = ap.parse_args(argv)
    modes = {"rt": [True], "nonrt": [False], "both": [True, False]}[args.mode]
    if True in modes and not realtime_permitted():
        print("realtime scheduling is not permitted for this user (not root, RLIMIT_RTPRIO 0): "
              "the realtime run is skipped; run as root or give the user an rtprio limit "
              "(/etc/security/limits.d) to measure it", file=sys.stderr)
        modes = [m for m in modes if not m]
    burns = ([0] if args.quiet_too else []) + [args.burn]
    tmp = tempfile.mkdtemp(prefix="riffd-stress-")
    report = {"rate": args.rate, "period": args.period,
              "period_ms": round(1000 * args.period / args.rate, 3), "bpm": args.bpm,
              "cpus": os.cpu_count(), "minutes": args.minutes, "loadavg_start": loadavg(),
              "runs": []}
    try:
        for burn in burns:
            for realtime in modes:
                print(f"run: {'realtime' if realtime else 'non-realtime'} server, {burn} burner(s),"
                      f" {args.minutes:g} min", file=sys.stderr)
                report["runs"].append(run_once(realtime, burn, args.burner, args.minutes * 60,
                                               args.rate, args.period, args.bpm, tmp))
    except BaseException:
        print(f"logs kept in {tmp}", file=sys.stderr)
        raise
    print_table(report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    if args.keep_logs:
        print(f"logs in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
