"""A second Ableton Link peer for the Link tests: a small process that joins the session.

Run: ``python tests/daemon/link_peer.py --tempo 100 --quantum 4`` (inside the test's private
network namespace). It reads one command per line on stdin and answers each with one JSON line
on stdout (the first line, ``{"ready": true}``, says it has joined):

- ``state``: the session as this peer sees it;
- ``tempo BPM``: set the session's tempo, then ``state``;
- ``play`` / ``stop``: start or stop the session (start/stop sync is on), then ``state``.

``state`` is ``{"tempo", "peers", "playing", "quantum", "t", "beat"}``: ``beat`` is the
session's beat (this peer's count) at ``t``, monotonic seconds of this process's
``time.monotonic()``, the same clock as every process's on this machine. Link's own clock
(microseconds) is mapped onto it from the narrowest of 20 (monotonic, micros, monotonic)
brackets, so the beat → time line it reports is good to a few microseconds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import link


def monotonic_offset(clock) -> float:
    """monotonic seconds - Link seconds (narrowest bracket of 20 readings)."""
    best = None
    for _ in range(20):
        before = time.monotonic()
        micros = clock.micros()
        after = time.monotonic()
        if best is None or after - before < best[0]:
            best = (after - before, (before + after) / 2 - micros / 1e6)
    return best[1]


def state(peer, quantum: float) -> dict:
    clock = peer.clock()
    offset = monotonic_offset(clock)
    session = peer.captureAppSessionState()
    now = clock.micros()
    return {"tempo": session.tempo(), "peers": peer.numPeers(), "playing": session.isPlaying(),
            "quantum": quantum, "t": now / 1e6 + offset,
            "beat": session.beatAtTime(now, quantum)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tempo", type=float, default=120.0, help="BPM when it starts alone")
    parser.add_argument("--quantum", type=float, default=4.0, help="beats per bar")
    args = parser.parse_args()
    peer = link.Link(args.tempo)
    peer.startStopSyncEnabled = True
    peer.enabled = True
    try:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "tempo":
                session = peer.captureAppSessionState()
                session.setTempo(float(words[1]), peer.clock().micros())
                peer.commitAppSessionState(session)
            elif words[0] in ("play", "stop"):
                session = peer.captureAppSessionState()
                session.setIsPlaying(words[0] == "play", peer.clock().micros())
                peer.commitAppSessionState(session)
            elif words[0] != "state":
                print(json.dumps({"error": f"unknown command {words[0]!r}"}), flush=True)
                continue
            print(json.dumps(state(peer, args.quantum)), flush=True)
    finally:
        peer.enabled = False
    return 0


if __name__ == "__main__":
    sys.exit(main())
