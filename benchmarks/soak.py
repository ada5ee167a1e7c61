"""Soak: riffd playing continuously for an hour; does its memory grow, does it lose notes?

Starts a private dummy-driver JACK server (realtime when permitted, unless ``--no-realtime``),
``riffd serve`` (a child process; the bundled melody model, a continuous voice) and a separate
receiving JACK client, then every ``--every`` seconds (30) samples:

- the daemon's resident memory (VmRSS in /proc/PID/status, KiB),
- note-ons sent (riffd's ``notes_sent`` counter; its ``note_on`` events as a fall-back) and
  received at the other client, riffd's late notes, xruns and missed cycles (status counters,
  "n/a" where riffd has none), xruns seen by the receiver's JACK client, the load average.

The report gives the RSS growth in % from the first sample after ``--warmup`` seconds (120) to
the end (target: under 2 %), notes lost (sent minus received, after a final drain), and writes
JSON and a small PNG plot (matplotlib).

    .venv/bin/python benchmarks/soak.py                             # 60 min
    .venv/bin/python benchmarks/soak.py --minutes 0.5 --every 5     # a quick check of the rig
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _playback_rig import (  # noqa: E402
    BASELINE_CHANNEL, Burner, ClientProcess, EventLog, NoteReceiver, XrunWatch, counters, delta,
    fmt, loadavg, log_xruns, rss_kib, rt_threads, server_mode, serve_option, start_jack)
from riffd.daemon.jack_server import realtime_permitted  # noqa: E402
from riffd.daemon.process import DaemonProcess  # noqa: E402

CLIENT = "riffd-soak"
TARGET_GROWTH_PCT = 2.0
DRAIN_S = 1.0   # after stopping: riffd's last note-offs reach the receiver


def received(rx: ClientProcess) -> tuple[int, int]:
    """(note-ons, note-offs) the receiver has seen from riffd so far."""
    ons, offs, _other = rx.call("counts")
    return (sum(n for ch, n in ons.items() if ch != BASELINE_CHANNEL),
            sum(n for ch, n in offs.items() if ch != BASELINE_CHANNEL))


def sample(t: float, daemon, client, rx: ClientProcess, events: EventLog, watch: XrunWatch,
           start: dict) -> dict:
    """One row of the soak log; ``t`` in seconds since playing started. Counts run from
    ``start``: riffd's counters and the receiver's xrun count (``"rx_xruns"``) then."""
    now = counters(client.status())
    sent = delta(now["notes_sent"], start["notes_sent"])
    return {"t_s": round(t, 1), "rss_kib": rss_kib(daemon.proc.pid),
            "notes_sent": sent if sent is not None else events.on_count,
            "notes_received": received(rx)[0],
            **{key: delta(now[key], start[key]) for key in
               ("late_notes", "notes_late", "xruns", "events_dropped", "missed_cycles")},
            "xruns_at_receiver": watch.count - start["rx_xruns"], "loadavg1": loadavg()[0]}


def growth(samples: list[dict], warmup_s: float) -> dict:
    """RSS growth from the first sample at or after ``warmup_s`` to the last one."""
    rows = [s for s in samples if s["rss_kib"] is not None]
    after = [s for s in rows if s["t_s"] >= warmup_s]
    reached = len(after) >= 2
    first = after[0] if reached else (rows[0] if rows else None)
    last = rows[-1] if rows else None
    if first is None or last is None or not first["rss_kib"]:
        return {"from_t_s": None, "rss_from_kib": None, "rss_end_kib": None, "growth_pct": None,
                "warmup_reached": False, "target_pct": TARGET_GROWTH_PCT, "within_target": None}
    pct = 100.0 * (last["rss_kib"] - first["rss_kib"]) / first["rss_kib"]
    return {"from_t_s": first["t_s"], "rss_from_kib": first["rss_kib"],
            "rss_end_kib": last["rss_kib"], "growth_pct": round(pct, 2),
            "warmup_reached": reached, "target_pct": TARGET_GROWTH_PCT,
            "within_target": pct < TARGET_GROWTH_PCT}


def plot(samples: list[dict], warmup_s: float, growth_pct: float | None, path: str) -> None:
    """RSS (MiB) over time above the cumulative late notes and xruns; a small PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    minutes = [s["t_s"] / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 4), sharex=True, dpi=100)
    top.plot(minutes, [(s["rss_kib"] or 0) / 1024 for s in samples], marker=".")
    top.axvline(warmup_s / 60, color="grey", linestyle=":", label="end of warm-up")
    top.set_ylabel("riffd RSS, MiB")
    top.set_title(f"RSS growth after warm-up: {fmt(growth_pct, '+.2f')} %", fontsize=9)
    top.legend(loc="lower right", fontsize=8)
    for key, label in (("notes_late", "written late (riffd)"),
                       ("late_notes", "handed over late (riffd)"), ("xruns", "xruns (riffd)"),
                       ("xruns_at_receiver", "xruns (receiver)")):
        values = [s[key] for s in samples]
        if all(v is not None for v in values):
            bottom.plot(minutes, values, label=label)
    bottom.set_xlabel("minutes playing")
    bottom.set_ylabel("count")
    bottom.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="how long riffd plays, minutes")
    ap.add_argument("--every", type=float, default=30.0, help="sampling interval, seconds")
    ap.add_argument("--warmup", type=float, default=120.0,
                    help="RSS growth is measured from the first sample after this, seconds")
    ap.add_argument("--no-realtime", dest="realtime", action="store_false",
                    help="run jackd --no-realtime (default: realtime when permitted)")
    ap.add_argument("--burn", type=int, default=0, help="CPU burner processes during the soak")
    ap.add_argument("--period", type=int, default=256, help="JACK period, frames")
    ap.add_argument("--rate", type=int, default=48000, help="JACK sample rate, Hz")
    ap.add_argument("--bpm", type=float, default=120.0, help="tempo, BPM")
    ap.add_argument("--json", default="out/soak.json", help="JSON report path")
    ap.add_argument("--plot", default="out/soak.png", help="PNG plot path")
    ap.add_argument("--keep-logs", action="store_true", help="keep jackd's and riffd's logs")
    args = ap.parse_args(argv)
    realtime = args.realtime and realtime_permitted()
    if args.realtime and not realtime:
        print("realtime scheduling is not permitted for this user: soaking on a non-realtime "
              "server", file=sys.stderr)
    seconds = args.minutes * 60
    tmp = tempfile.mkdtemp(prefix="riffd-soak-")
    jack_log = os.path.join(tmp, "jackd.log")
    samples: list[dict] = []
    server = start_jack(f"riffd-soak-{os.getpid()}", args.rate, args.period, realtime, jack_log)
    try:
        os.environ.update(server.env)
        serve = ["--midi-api", "jack", "--client-name", CLIENT, "--tempo", str(args.bpm),
                 "--mode", "continuous", "--log-level", "WARNING"]
        if serve_option("--realtime"):
            serve += ["--realtime", "auto" if realtime else "off"]
        with XrunWatch("soak-xruns") as watch, \
                ClientProcess(NoteReceiver, "soak-rx", False) as rx, \
                DaemonProcess(serve, log_path=os.path.join(tmp, "serve.log")) as daemon:
            rx.call("connect", f"{CLIENT}:out", None)
            events = EventLog(daemon.events, keep=False)
            try:
                with daemon.client() as c, Burner(args.burn) as burners:
                    start = {**counters(c.status()), "rx_xruns": watch.count,
                             "log_xruns": log_xruns(jack_log)}
                    c.start()
                    started = time.monotonic()
                    samples.append(sample(0.0, daemon, c, rx, events, watch, start))
                    next_at = args.every
                    while next_at < seconds + args.every:
                        time.sleep(max(0.0, started + min(next_at, seconds) - time.monotonic()))
                        row = sample(time.monotonic() - started, daemon, c, rx, events, watch,
                                     start)
                        samples.append(row)
                        print(f"  {row['t_s']:7.0f} s  RSS {row['rss_kib']} KiB  sent "
                              f"{row['notes_sent']} received {row['notes_received']}  late "
                              f"{fmt(row['notes_late'])}/{fmt(row['late_notes'])}  "
                              f"load {row['loadavg1']}",
                              file=sys.stderr)
                        next_at += args.every
                    c.stop()
                    burner_kind = burners.kind
                    rt = {"riffd": rt_threads(daemon.proc.pid), "receiver": rt_threads(rx.pid)}
                time.sleep(DRAIN_S)
                with daemon.client() as c:
                    end = counters(c.status())
                ons_sent = delta(end["notes_sent"], start["notes_sent"])
                if ons_sent is None:
                    ons_sent = events.on_count
                ons_received, offs_received = received(rx)
                final = {"note_ons_sent": ons_sent, "note_ons_received": ons_received,
                         "lost_note_ons": ons_sent - ons_received,
                         "note_offs_sent": events.off_count,
                         "note_offs_received": offs_received,
                         **{key: delta(end[key], start[key]) for key in
                            ("late_notes", "notes_late", "xruns", "events_dropped",
                             "missed_cycles")},
                         "xruns_at_receiver": watch.count - start["rx_xruns"],
                         "sounding_at_end": end["sounding"], "realtime_status": end["realtime"]}
                final["lost_note_offs"] = final["note_offs_sent"] - final["note_offs_received"]
            finally:
                events.close()
    except BaseException:
        print(f"logs kept in {tmp}", file=sys.stderr)
        raise
    finally:
        server.stop()
    report = {"minutes": args.minutes, "every_s": args.every, "warmup_s": args.warmup,
              "server_mode": server_mode(jack_log),
              "xrun_lines_in_jackd_log": log_xruns(jack_log) - start["log_xruns"],
              "burn": args.burn, "burner": burner_kind, "realtime_threads": rt, "rate": args.rate,
              "period": args.period, "bpm": args.bpm, "loadavg_end": loadavg(),
              "rss_growth": growth(samples, args.warmup), "totals": final, "samples": samples}
    g = report["rss_growth"]
    print(f"soak: {args.minutes:g} min on a {report['server_mode']} JACK server, "
          f"{args.burn} burner(s), load {report['loadavg_end']}")
    print(f"  RSS {fmt(g['rss_from_kib'])} KiB at {fmt(g['from_t_s'])} s -> "
          f"{fmt(g['rss_end_kib'])} KiB at the end: {fmt(g['growth_pct'], '+.2f')} % "
          f"(target < {TARGET_GROWTH_PCT:g} %"
          f"{'' if g['warmup_reached'] else '; warm-up not reached, measured from the start'})")
    print(f"  note-ons sent {final['note_ons_sent']}, received {final['note_ons_received']} "
          f"(lost {final['lost_note_ons']}); note-offs lost {final['lost_note_offs']}; late "
          f"(written/handed over) {fmt(final['notes_late'])}/{fmt(final['late_notes'])}; "
          f"xruns riffd {fmt(final['xruns'])} / receiver {final['xruns_at_receiver']} / "
          f"jackd log {report['xrun_lines_in_jackd_log']}")
    for path in (args.json, args.plot):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    plot(samples, args.warmup, g["growth_pct"], args.plot)
    print(f"wrote {args.json} and {args.plot}")
    if args.keep_logs:
        print(f"logs in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
