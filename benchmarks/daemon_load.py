"""The whole daemon while it plays: CPU use, resident memory, and note-on timing seen by a
separate JACK client against the times riffd intended (from its note_on events).

Starts a private JACK server (dummy driver), `riffd serve` as a child process with the
bundled model, and a peer client on riffd:out; plays continuously for --seconds.

    .venv/bin/python benchmarks/daemon_load.py --seconds 30 [--period 256] [--tempo 120]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from riffd.daemon.client import RiffdClient  # noqa: E402
from riffd.daemon.jack_server import JackServer  # noqa: E402
from riffd.daemon.midi_peer import MidiPeer  # noqa: E402
from riffd.daemon.process import DaemonProcess  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS        # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--period", type=int, default=256)
    parser.add_argument("--tempo", type=float, default=120.0)
    args = parser.parse_args()

    with JackServer(f"riffd-bench-{os.getpid()}", period=args.period) as server:
        os.environ.update(server.env)
        daemon = DaemonProcess(["--midi-api", "jack", "--tempo", str(args.tempo),
                                "--log-level", "WARNING"], env=server.env)
        with daemon, MidiPeer("bench-listener") as peer:
            peer.connect("riffd:out", None)
            intended: list[float] = []
            done = threading.Event()

            def collect():
                # no timeout: a rest longer than any timeout must not end the subscription;
                # the thread is a daemon thread and ends with the benchmark
                client = RiffdClient(daemon.control)
                for event in client.subscribe(daemon.events, ["note_on"], timeout_s=None):
                    intended.append(event["at"])
                    if done.is_set():
                        break

            listener = threading.Thread(target=collect, daemon=True)
            listener.start()
            time.sleep(0.5)
            pid = daemon.proc.pid
            with daemon.client() as c:
                c.start()
                cpu0, t0 = cpu_seconds(pid), time.monotonic()
                rss = []
                while time.monotonic() - t0 < args.seconds:
                    time.sleep(1.0)
                    rss.append(rss_mb(pid))
                cpu1, t1 = cpu_seconds(pid), time.monotonic()
                status = c.status()
                c.stop()
            done.set()
            time.sleep(0.5)
            received = [r.monotonic for r in peer.received()
                        if r.message[0] & 0xF0 == 0x90 and r.message[2] > 0]

    # pair each note-on the peer saw with the intended time nearest to it
    errors = []
    for t in received:
        nearest = min(intended, key=lambda at: abs(at - t), default=None)
        if nearest is not None and abs(nearest - t) < 0.05:
            errors.append(abs(t - nearest) * 1000)
    n = len(errors)
    period_ms = 1000 * args.period / 48000
    print(f"riffd serve, bundled model, {args.tempo:.0f} BPM, {args.seconds:.0f} s of continuous play, "
          f"JACK dummy driver 48 kHz / {args.period} frames ({period_ms:.2f} ms)")
    print(f"CPU: {100 * (cpu1 - cpu0) / (t1 - t0):.1f} % of one core; resident memory: "
          f"median {statistics.median(rss):.0f} MB, max {max(rss):.0f} MB")
    print(f"notes: {status['counters']['notes_sent']} sent, {status['counters']['late_notes']} late, "
          f"model step p50 {status['counters']['step_ms_p50']:.3f} ms, "
          f"p99 {status['counters']['step_ms_p99']:.3f} ms")
    if errors:
        print(f"note-on error, peer's time vs riffd's intended time ({n} notes): "
              f"p50 {statistics.median(errors):.2f} ms, p99 {pct(errors, 0.99):.2f} ms, "
              f"max {max(errors):.2f} ms (target: p99 within one period + 1 ms = "
              f"{period_ms + 1:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
