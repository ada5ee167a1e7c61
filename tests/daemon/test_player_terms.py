"""Answers in the player's terms, through the real ports: riffd as a child process on the
dummy-driver JACK server, a separate JACK client (MidiPeer) plays a phrase into riffd:in and
hears the answer on riffd:out.

A high, soft phrase on white keys around D gets a high, soft answer in D dorian; a low,
loud phrase gets a low, loud answer. Greedy sampling makes the answers the same every run;
they are judged with margins (median pitch within 5 semitones of the phrase's, velocities
on the phrase's side of the default 90), never on timing.
"""
import statistics
import time

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from riffd.engine.key_finding import Key
from tests.reliability.event_log import EventLog
from tests.waiting import ANSWER_WAIT_S, wait_until

ARGS = ["--midi-api", "jack", "--client-name", "riffd-terms", "--tempo", "150", "--silence",
        "0.3", "--length", "2", "--log-level", "WARNING"]
D_DORIAN = Key(2, "dorian")


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("riffd-terms") / "serve.log"
    with DaemonProcess(ARGS, log_path=log) as daemon:
        with daemon.client() as c:
            c.set(greedy=True)                     # the same answer every run
        yield daemon
    assert daemon.proc.returncode == 0, log.read_text()


@pytest.fixture
def peer(riffd):
    with MidiPeer(f"terms-peer-{time.monotonic_ns()}") as p:
        p.connect("riffd-terms:out", "riffd-terms:in")
        yield p


def play_and_hear(riffd, peer, phrase) -> tuple[list[int], list[int]]:
    """Play ``phrase`` [(pitch, velocity, start beats, length beats)] into riffd:in from the
    next beat; wait for the answer to end; return its (pitches, velocities) as heard."""
    with riffd.client() as c:
        clock = c.status()["clock"]
    beat0, spb = clock["beat0_s"], 60.0 / clock["tempo"]
    t0 = beat0 + (int((time.monotonic() + 0.3 - beat0) / spb) + 1) * spb
    for pitch, velocity, start, length in phrase:
        peer.send([0x90, pitch, velocity], t0 + start * spb)
        peer.send([0x80, pitch, 0], t0 + (start + length) * spb)
    end = t0 + max(s + n for _, _, s, n in phrase) * spb + 0.3
    answered = peer.wait_for(lambda rs: any(r.monotonic > end and r.message[0] & 0xF0 == 0x90
                                            for r in rs), ANSWER_WAIT_S)
    if not answered:                               # say which side lost what
        with riffd.client() as c:
            counters = c.status()["counters"]
        seen = {k: counters[k] for k in ("phrases", "stuck_keys_released", "missed_cycles",
                                         "xruns", "notes_sent")}
        pytest.fail(f"no answer; riffd's counters {seen}, the peer missed "
                    f"{peer.missed_cycles} JACK cycles")
    with riffd.client() as c:
        assert wait_until(lambda: not c.status()["playing"], 15)
        assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3)
    time.sleep(0.3)                                # the last messages reach the listener
    ons = [r.message for r in peer.received() if r.monotonic > end
           and r.message[0] & 0xF0 == 0x90 and r.message[2] > 0]
    return [m[1] for m in ons], [m[2] for m in ons]


def test_high_soft_phrase_gets_a_high_soft_answer_in_its_mode_then_low_loud(riffd, peer):
    # D dorian, white keys, around 84-93 (the register), soft and swelling a little
    line = [86, 88, 89, 91, 93, 91, 89, 88, 86, 84, 86, 89, 88, 86]
    soft = [(p, 30 + 2 * i, 0.5 * i, 0.45) for i, p in enumerate(line[:-1])]
    soft.append((line[-1], 40, 0.5 * (len(line) - 1), 1.5))
    pitches, velocities = play_and_hear(riffd, peer, soft)
    seed_median = statistics.median(line)
    print(f"soft high: seed median {seed_median}, answer median {statistics.median(pitches)}, "
          f"{len(pitches)} notes, velocities {min(velocities)}-{max(velocities)}")
    assert len(pitches) >= 4
    assert abs(statistics.median(pitches) - seed_median) <= 5, pitches
    assert max(velocities) <= 60, velocities           # played 30-56: soft, not the default 90
    outside = [p for p in pitches if not D_DORIAN.contains(p)]
    assert len(outside) <= 0.05 * len(pitches), outside

    peer.clear()
    # a low phrase (G2-D3 region), loud
    low = [43, 47, 50, 48, 47, 45, 43, 50, 55, 50]
    loud = [(p, 110 + (i % 3) * 5, 0.5 * i, 0.45) for i, p in enumerate(low[:-1])]
    loud.append((low[-1], 120, 0.5 * (len(low) - 1), 1.5))
    pitches, velocities = play_and_hear(riffd, peer, loud)
    print(f"loud low: seed median {statistics.median(low)}, answer median "
          f"{statistics.median(pitches)}, {len(pitches)} notes, velocities "
          f"{min(velocities)}-{max(velocities)}")
    assert len(pitches) >= 4
    assert abs(statistics.median(pitches) - statistics.median(low)) <= 5, pitches
    assert min(velocities) >= 100, velocities          # played 110-120


def test_following_can_be_switched_off(riffd, peer):
    with riffd.client() as c:
        c.set(follow_dynamics=False, follow_register=False, velocity=90)
    try:
        line = [86, 88, 89, 91, 93, 91, 89, 88, 86]
        soft = [(p, 35, 0.5 * i, 0.45) for i, p in enumerate(line)]
        pitches, velocities = play_and_hear(riffd, peer, soft)
        assert set(velocities) == {90}                  # the voice's own velocity
    finally:
        with riffd.client() as c:
            c.set(follow_dynamics=True, follow_register=True)


def test_a_sparse_phrase_gets_a_sparse_answer(riffd, peer):
    """Two whole notes (one per bar) allow 2 note starts per bar, at least half a bar apart,
    however wild the sampling (temperature 3 makes the model restless: without the limit it
    started 10-11 notes a bar). riffd's own record of the notes it sent is counted (a
    listener may miss a cycle)."""
    with riffd.client() as c:
        clock = c.status()["clock"]
        c.set(greedy=False, temperature=3.0)
    beat0, spb, bar = clock["beat0_s"], 60.0 / clock["tempo"], clock["beats_per_bar"]
    try:
        with EventLog(riffd.control, riffd.events, ["note_on"]) as sent:
            started = time.monotonic()
            play_and_hear(riffd, peer, [(72, 70, 0, 3.9), (76, 70, 4, 3.9)])
            answer = [e for e in sent.where("note_on", started, 1e18, key="at")
                      if e.get("voice", "main") == "main"]
    finally:
        with riffd.client() as c:
            c.set(greedy=True, temperature=1.0)
    beats = sorted(round((e["at"] - beat0) / spb * 4) / 4 for e in answer)   # 16th grid
    per_bar = {}
    for beat in beats:
        per_bar[int(beat // bar)] = per_bar.get(int(beat // bar), 0) + 1
    print("sparse seed: note starts per bar of the answer", per_bar)
    assert answer
    assert all(b - a >= bar / 2 for a, b in zip(beats, beats[1:])), beats     # evenly spaced
    assert max(per_bar.values()) <= 2, (per_bar, [(e["pitch"], (e["at"] - beat0) / spb)
                                                  for e in answer])
