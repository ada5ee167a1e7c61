"""Repeatable answers through a running daemon: with ``rng_seed`` the same phrase gets the same
answer, note for note and velocity for velocity; another seed gets another answer.

riffd runs as a child process on the dummy-driver JACK server (``--rng-seed 11``), at a
temperature (1.5) and velocity spread (±20) where every draw matters. A separate JACK client
listens on ``riffd-repeat:out``; the answers are compared on riffd's own record (its published
``note_on`` events), which a listener missing a cycle cannot thin. A cycle riffd itself misses
can only end an answer early (its cursor jumps to the present), never change its order, so
answers are compared over their common length. Timing is not judged here.
"""
import time

import pytest

from riffd.daemon.midi_peer import MidiPeer
from tests.daemon.serve_helpers import note_ons, serving, wait_quiet
from tests.reliability.event_log import EventLog
from tests.waiting import wait_until

NAME = "riffd-repeat"
ARGS = ["--midi-api", "jack", "--client-name", NAME, "--tempo", "240", "--length", "2",
        "--temperature", "1.5", "--rng-seed", "11", "--log-level", "WARNING"]
PHRASE = [(62, 0.0, 0.5), (64, 0.5, 0.5), (65, 1.0, 0.5), (67, 1.5, 0.5), (69, 2.0, 1.0),
          (65, 3.0, 1.0)]                                           # D minor, beats


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    with serving(ARGS, tmp_path_factory.mktemp("riffd-repeat") / "serve.log") as daemon:
        with daemon.client() as c:
            # what the seed decides, not the timing: no thinning by the seed's density, and
            # velocities from the voice's own spread (its random draws), not the seed's contour
            c.set(follow_density=False, follow_dynamics=False, velocity_spread=20)
        yield daemon


def answer(daemon) -> list[tuple[int, int]]:
    """Seed PHRASE, wait for the answer to end; (pitch, velocity) of each note riffd sent."""
    with EventLog(daemon.control, daemon.events, ["note_on"]) as sent, daemon.client() as c:
        c.seed(PHRASE)
        assert wait_until(lambda: sent.items and not c.status()["playing"], 15), \
            "no answer, or it never ended"
        assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3)
        time.sleep(0.2)                                   # the last events reach the log
        return [(e["pitch"], e["velocity"]) for e in sent.where("note_on")]


def test_the_same_phrase_and_seed_get_the_same_answer_and_another_seed_another(riffd):
    with MidiPeer(f"repeat-peer-{time.monotonic_ns()}") as peer:
        peer.connect(f"{NAME}:out", None)
        with riffd.client() as c:
            assert c.status()["voices"][0]["settings"]["rng_seed"] == 11
        first = answer(riffd)
        second = answer(riffd)
        with riffd.client() as c:
            c.set(rng_seed=12)
        try:
            other = answer(riffd)
        finally:
            with riffd.client() as c:
                c.set(rng_seed=11)
        wait_quiet(peer)
        heard = len(note_ons(peer.received()))
    print(f"rng_seed 11: {first}\nagain: {second}\nrng_seed 12: {other}")
    n = min(len(first), len(second))
    assert n >= 4, (first, second)
    assert first[:n] == second[:n]
    assert len({v for _p, v in first}) > 1, "velocity_spread drew nothing"
    m = min(len(first), len(other))
    assert other[:m] != first[:m]
    assert heard >= (len(first) + len(second) + len(other)) // 2, "the notes did not go out"
