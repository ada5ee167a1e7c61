"""riffd with ``--output-latency-ms 20``: a separate JACK client receives every note 20 ms
(± one JACK period) before its grid time; offsets changed while notes sound never break the
note-on / note-off order.

riffd plays continuously in its own process; the receiver is another process
(``riffd.daemon.midi_peer``), as a synth would be. riffd's record is its ``note_on`` / ``note_off``
events: ``at`` (the grid time, monotonic seconds) and ``send_at``. The receiver stamps each
message with its JACK frame and the monotonic time that frame stands for.

Notes are not judged in windows where JACK skipped cycles (their timing is the server's, not
riffd's): within 0.3 s of an ``xrun`` event riffd published, or where the receiver's own frame
clock jumped against the monotonic clock by more than a millisecond (a skipped cycle). Nothing
else is left out, and the play goes on until enough notes were judged.
"""
from __future__ import annotations

import collections
import difflib
import statistics
import threading
import time

from riffd.daemon.client import RiffdClient
from riffd.daemon.midi_peer import PeerProcess
from riffd.daemon.process import DaemonProcess
from tests.reliability.test_notes_agree import is_subsequence, notes
from tests.waiting import wait_until

OFFSET_MS = 20.0
ARGS = ["--midi-api", "jack", "--client-name", "riffd-latency", "--tempo", "300",
        "--mode", "continuous", "--no-clock-out", "--output-latency-ms", str(OFFSET_MS),
        "--log-level", "WARNING"]
JUDGED_NOTES = 20        # note-ons judged at 20 ms before the run moves on
PLAY_LIMIT_S = 40.0      # longest it may take to play them, seconds
XRUN_WINDOW_S = 0.3      # notes this close to an xrun event are not judged, seconds
CLOCK_JUMP_S = 0.001     # a receiver frame-clock shift larger than this marks a skipped cycle


class Record:
    """riffd's published events over ONE subscription that lasts the whole run (a renewed
    subscription misses what is published while it connects); it ends ``quiet_s`` seconds
    after the last event."""

    def __init__(self, daemon, names: list[str], quiet_s: float = 2.0):
        self.items: list[dict] = []
        self._args = (daemon.control, daemon.events, names, quiet_s)
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record", daemon=True)

    def _run(self) -> None:
        control, events, names, quiet_s = self._args
        with RiffdClient(control) as client:
            stream = client.subscribe(events, names, timeout_s=quiet_s)
            self._subscribed.set()
            self.items.extend(stream)

    def where(self, name: str) -> list[dict]:
        return [e for e in list(self.items) if e["event"] == name]

    def __enter__(self) -> "Record":
        self._thread.start()
        assert self._subscribed.wait(10)
        time.sleep(0.5)                         # the subscription reaches the publisher
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(10)


def matched(sent: list[dict], got: list) -> list[tuple[dict, object]]:
    """Pairs (riffd's note_on event, the receiver's message) of the note-ons, in order. When
    notes were lost in skipped cycles, only the stretches where both sequences agree are
    paired, without their first and last notes (where a lost note could be mistaken for the
    next one of the same pitch)."""
    ons = [e for e in sent if e["event"] == "note_on"]
    received = [m for m in got if m.message[0] & 0xF0 == 0x90 and m.message[2] > 0]
    a = [(e["channel"], e["pitch"]) for e in ons]
    b = [((m.message[0] & 15) + 1, m.message[1]) for m in received]
    if a == b:
        return list(zip(ons, received))
    pairs = []
    for i, j, n in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        pairs += [(ons[i + k], received[j + k]) for k in range(1, n - 1)]
    return pairs


def judged(pairs, xruns: list[float], early_s: float) -> list[float]:
    """Errors (seconds) of the notes riffd sent ``early_s`` before their grid time: when the
    receiver got them, less when they should have arrived (``at - early_s``); notes in an xrun
    window or after a frame-clock jump at the receiver are left out."""
    if not pairs:
        return []
    origin = statistics.median(m.monotonic - m.seconds for _, m in pairs)
    errors = []
    for event, message in pairs:
        if abs((event["at"] - event["send_at"]) - early_s) > 1e-6:
            continue                                     # sent with another offset
        if any(abs(event["send_at"] - t) < XRUN_WINDOW_S for t in xruns):
            continue
        if abs(message.monotonic - message.seconds - origin) > CLOCK_JUMP_S:
            continue
        errors.append(message.monotonic - (event["at"] - early_s))
    return errors


def alternates(got) -> bool:
    """Per channel and pitch, the receiver got on, off, on, off, ... and nothing sounds."""
    last = collections.defaultdict(lambda: "off")
    for kind, channel, pitch in notes(m.message for m in got):
        if last[(channel, pitch)] == kind:
            return False
        last[(channel, pitch)] = kind
    return all(kind == "off" for kind in last.values())


def test_notes_arrive_their_offset_early(jack_server, tmp_path):
    period_s = jack_server.period / jack_server.rate
    log = tmp_path / "serve.log"
    with DaemonProcess(ARGS, log_path=log) as daemon, \
            PeerProcess("latency-peer", "riffd-latency:out") as peer:
        assert peer.wait_for(lambda r: peer.connections > 0, timeout=10)
        with Record(daemon, ["note_on", "note_off", "xrun"]) as events, \
                daemon.client() as c:
            status = c.status()
            assert status["output_latency_ms"] == OFFSET_MS
            assert status["voices"][0]["settings"]["output_latency_ms"] == OFFSET_MS

            def errors_so_far():
                xruns = [e["t"] for e in events.where("xrun")]
                return judged(matched(events.where("note_on"), peer.received()), xruns,
                              OFFSET_MS / 1000)

            c.start()
            ok = wait_until(lambda: len(errors_so_far()) >= JUDGED_NOTES, PLAY_LIMIT_S,
                            every=0.5)
            # offsets changed while notes sound: later, then earlier than the grid
            sent_before = c.status()["counters"]["notes_sent"]
            c.set(output_latency_ms=60.0)
            assert wait_until(lambda: c.status()["counters"]["notes_sent"] >= sent_before + 8,
                              20, every=0.2)
            c.set(output_latency_ms=-20.0)
            sent_before = c.status()["counters"]["notes_sent"]
            assert wait_until(lambda: c.status()["counters"]["notes_sent"] >= sent_before + 8,
                              20, every=0.2)
            c.stop()

            def settled():
                """Every note riffd sent is in the log, and the receiver has as many."""
                counters = c.status()["counters"]
                logged = events.where("note_on") + events.where("note_off")
                return (counters["sounding"] == 0
                        and len(events.where("note_on")) == counters["notes_sent"]
                        and len(notes(m.message for m in peer.received())) >= len(logged))
            wait_until(settled, 5, every=0.1)   # with cycles lost in JACK it never is: go on
            counters = c.status()["counters"]
            sent = [e for e in events.items if e["event"] in ("note_on", "note_off")]
            xruns = [e["t"] for e in events.where("xrun")]
        got = peer.received()
    assert daemon.proc.returncode == 0, log.read_text()
    pairs = matched(sent, got)
    errors = judged(pairs, xruns, OFFSET_MS / 1000)
    ms = sorted(1000 * e for e in errors)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))] if ms else 0.0
    report = (f"{len(ms)} notes judged; error ms median {statistics.median(ms or [0]):.3f}, "
              f"p99 {p99:.3f}, min {min(ms or [0]):.3f}, max {max(ms or [0]):.3f}; "
              f"counters {counters}")
    print("latency compensation:", report)
    assert ok and len(errors) >= JUDGED_NOTES, report
    # every note 20 ms (± one period) before its grid time
    assert all(abs(e) <= period_s for e in errors), report

    # the offset changes reached the notes: some left 60 ms early, some 20 ms late
    offsets = collections.Counter(round(1000 * (e["at"] - e["send_at"]), 3)
                                  for e in sent if e["event"] == "note_on")
    assert offsets[OFFSET_MS] >= JUDGED_NOTES and offsets[60.0] >= 1 and offsets[-20.0] >= 1
    # what arrived is riffd's record (with whole notes lost only in skipped cycles), in order,
    # every note-on got its note-off after it and nothing sounds
    record = [("on" if e["event"] == "note_on" else "off", e["channel"], e["pitch"])
              for e in sent]
    arrived = notes(m.message for m in got)
    missed = counters["xruns"] + counters["missed_cycles"]
    if not missed:
        assert arrived == record, report
    else:
        assert is_subsequence(arrived, record), report
    assert alternates(got), report
    assert counters["sounding"] == 0 and counters["events_dropped"] == 0, report
    assert counters["notes_sent"] == sum(1 for e in sent if e["event"] == "note_on")
