"""OSC round trip against ZeroMQ's, in the same run: a request sent, its reply read back.

Starts a private JACK server (dummy driver) and `riffd serve --osc udp://127.0.0.1:PORT` as a
child process with the bundled model, then times, alternating OSC and ZeroMQ request by request:
``ping`` (answered by each server's own thread) and ``set tempo`` (validated, routed through the
daemon's command handler). Once with riffd idle, once while it plays (a voice generating and
notes going out). Prints p50 / p99 / max in milliseconds and the load average.

    .venv/bin/python benchmarks/osc_roundtrip.py [--requests 2000]
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from riffd.daemon.jack_server import JackServer  # noqa: E402
from riffd.daemon.osc_client import OscClient  # noqa: E402
from riffd.daemon.process import DaemonProcess  # noqa: E402


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(osc: OscClient, zmq, requests: int) -> dict[str, list[float]]:
    """Round trips in ms, keyed "osc ping", "zmq ping", "osc set", "zmq set"."""
    times: dict[str, list[float]] = {k: [] for k in ("osc ping", "zmq ping", "osc set",
                                                     "zmq set")}
    for i in range(requests):
        tempo = 120.0 + (i % 2)
        for key, call in (("osc ping", lambda: osc.call("ping")),
                          ("zmq ping", zmq.ping),
                          ("osc set", lambda: osc.call("set", "tempo", tempo)),
                          ("zmq set", lambda: zmq.set(tempo=tempo))):
            t0 = time.perf_counter()
            call()
            times[key].append((time.perf_counter() - t0) * 1000)
    return times


def show(title: str, times: dict[str, list[float]]) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{title} (load average {load}; {len(next(iter(times.values())))} of each)")
    print(f"  {'request':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for key, values in times.items():
        print(f"  {key:<10} {pct(values, 0.5):8.3f} {pct(values, 0.99):8.3f} {max(values):8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="round trips of each kind per phase (default 2000)")
    args = parser.parse_args()
    url = f"udp://127.0.0.1:{free_udp_port()}"
    with JackServer(f"riffd-bench-{os.getpid()}") as server:
        os.environ.update(server.env)
        daemon = DaemonProcess(["--midi-api", "jack", "--osc", url, "--mode", "continuous",
                                "--log-level", "WARNING"], env=server.env)
        with daemon, OscClient(url) as osc, daemon.client() as zmq:
            measure(osc, zmq, 50)                                   # warm up both paths
            show("riffd idle", measure(osc, zmq, args.requests))
            zmq.start()
            try:
                show("riffd playing", measure(osc, zmq, args.requests))
            finally:
                zmq.stop()
            status = zmq.status()
            print(f"\nosc counters: {status['osc']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
