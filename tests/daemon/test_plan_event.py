"""The ``plan`` event: what a voice has generated ahead. The bookkeeping on its own (daemon/plan.py),
then a running daemon's plan events read at a real ZeroMQ SUB socket and held against the notes
it then sends."""
import json
import time

import zmq

from riffd.daemon.plan import Plan
from riffd.daemon.process import DaemonProcess
from riffd.daemon.protocol import EVENTS

SERVE = ["--midi-api", "jack", "--tempo", "120", "--log-level", "WARNING"]


# -- the bookkeeping ---------------------------------------------------------------------------
def test_plan_lists_notes_ahead_only_on_change_and_at_most_every_interval():
    plan = Plan(every_s=0.25)
    assert plan.due(10.0, 20.0, 20.0) is None                # nothing placed: nothing to say
    plan.started(64, 90, beat=21.0, at_s=10.5)
    plan.ended(64, end_beat=21.5)
    plan.started(67, 80, beat=21.5, at_s=10.75)              # still held at the cursor
    data = plan.due(10.0, 20.0, 22.0)
    assert data == {"beat": 20.0, "until": 22.0, "notes": [
        {"pitch": 64, "velocity": 90, "beat": 21.0, "duration": 0.5, "held": False, "in_s": 0.5},
        {"pitch": 67, "velocity": 80, "beat": 21.5, "duration": 0.5, "held": True, "in_s": 0.75}]}
    assert plan.due(10.1, 20.2, 22.0) is None                # unchanged
    plan.ended(67, end_beat=22.0)
    assert plan.due(10.1, 20.2, 22.0) is None                # changed, but too soon
    later = plan.due(10.3, 20.6, 22.0)
    assert [(n["pitch"], n["duration"], n["held"]) for n in later["notes"]] == [
        (64, 0.5, False), (67, 0.5, False)]
    # once a note has started it is no longer planned; then nothing is, and that is said once
    assert [n["pitch"] for n in plan.due(10.6, 21.2, 22.0)["notes"]] == [67]
    assert plan.due(10.9, 21.8, 22.0)["notes"] == []
    assert plan.due(11.5, 23.0, 23.0) is None
    assert plan.events == 4


def test_cancel_forgets_notes_not_sent_yet():
    plan = Plan(every_s=0.0)
    plan.started(60, 90, beat=1.0, at_s=1.0)
    plan.started(62, 90, beat=2.0, at_s=2.0)
    plan.cancel(1.5)                                         # the voice stopped at 1.5 s
    plan.ended(62, end_beat=3.0)                             # its cut sends offs: ignored
    assert [n["pitch"] for n in plan.due(0.5, 0.5, 2.5)["notes"]] == [60]
    assert plan.due(0.6, 0.6, 2.5) is None                   # unchanged: no event


def test_plan_is_a_documented_event():
    assert EVENTS["plan"].fields == ("voice", "beat", "until", "notes")


# -- a running daemon ----------------------------------------------------------------------------
def test_plan_events_announce_the_notes_the_voice_then_sends(jack_server, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text("[serve]\nlookahead_s = 1.0\n")      # plan about two beats ahead
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    events = []

    def collect(seconds: float, until=lambda: False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            if sub.poll(50, zmq.POLLIN):
                topic, body = sub.recv_multipart()
                events.append(json.loads(body))

    def plans():
        return [e for e in events if e["event"] == "plan"]

    try:
        with DaemonProcess([*SERVE, "--config", str(config)],
                           log_path=tmp_path / "serve.log") as daemon:
            for name in ("plan", "note_on"):
                sub.setsockopt_string(zmq.SUBSCRIBE, name)
            sub.connect(daemon.events)
            with daemon.client() as c:
                clock = c.status()["clock"]
                c.start()
                # six plans with notes, and six notes played: a plan looks about two beats
                # ahead, so the notes checked below must have been due well before the stop
                collect(20, until=lambda: sum(bool(p["notes"]) for p in plans()) >= 6
                        and sum(e["event"] == "note_on" for e in events) >= 6)
                stopped_at = c.status()["clock"]["beat"]
                c.stop()
                collect(1.5)
                assert c.status()["clock"]["tempo"] == clock["tempo"]   # one tempo throughout
    finally:
        sub.close()
        ctx.term()

    planned = plans()
    assert sum(bool(p["notes"]) for p in planned) >= 6, events[-5:]
    for before, after in zip(planned, planned[1:]):
        assert after["t"] - before["t"] >= 0.2               # at most ~4 a second
        assert after["notes"] != before["notes"]             # only on change
    for p in planned:
        assert p["voice"] == "main" and p["until"] >= p["beat"]
        starts = [n["beat"] for n in p["notes"]]
        assert starts == sorted(starts) and all(b >= p["beat"] for b in starts), p
        assert all(n["in_s"] >= 0 and n["duration"] > 0 for n in p["notes"]), p
    assert planned[-1]["notes"] == []                         # stopped: nothing planned

    # every planned note that was due before the stop went out as planned: pitch, velocity, beat
    spb = 60.0 / clock["tempo"]
    sent = {(e["pitch"], e["velocity"], round((e["at"] - clock["beat0_s"]) / spb, 3))
            for e in events if e["event"] == "note_on" and e["voice"] == "main"}
    due = {(n["pitch"], n["velocity"], round(n["beat"], 3))
           for p in planned for n in p["notes"] if n["beat"] < stopped_at - 0.5}
    assert len(due) >= 3
    assert due <= sent, sorted(due - sent)
