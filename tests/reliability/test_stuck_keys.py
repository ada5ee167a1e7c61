"""MIDI input that cannot wedge the phrase captor: lost note-offs, endless phrases, running
status, velocity-0 note-offs and doubled note-ons.

The logic is tested by driving the captor's ``handle``/``tick`` with chosen times (no thread,
no clock); the whole path by a separate JACK client playing into ``riffd:in`` of a running
daemon.
"""
from __future__ import annotations

import threading
import time

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.phrase_capture import PhraseCaptor, RunningStatus
from riffd.daemon.process import DaemonProcess


class Phrases:
    """Collects what a captor hands over."""

    def __init__(self):
        self.got: list[tuple[list, float]] = []

    def __call__(self, notes, end_s):
        self.got.append((notes, end_s))

    def pitches(self, i):
        return [n.pitch for n in self.got[i][0]]


def captor(**kw) -> tuple[PhraseCaptor, Phrases]:
    phrases = Phrases()
    return PhraseCaptor(phrases, silence_s=kw.pop("silence_s", 1.0), **kw), phrases


def play(c: PhraseCaptor, events):
    """Feed (time, message) pairs in order, ticking at each time."""
    for t, message in events:
        c.tick(t)
        c.handle(message, t)
        c.tick(t)


# -- logic ---------------------------------------------------------------------------------------

def test_a_lost_note_off_is_released_after_max_hold_and_the_phrase_is_answered():
    c, phrases = captor(max_hold_s=4.0)
    play(c, [(0.0, [0x90, 60, 90]), (0.5, [0x90, 62, 90]), (0.9, [0x80, 62, 0])])
    c.tick(3.9)                               # 60 still "held": no phrase, however long the silence
    assert phrases.got == [] and c.stuck_keys_released == 0
    c.tick(4.0)
    assert c.stuck_keys_released == 1
    assert len(phrases.got) == 1 and sorted(phrases.pitches(0)) == [60, 62]
    stuck = next(n for n in phrases.got[0][0] if n.pitch == 60)
    assert stuck.off_s == pytest.approx(0.9)  # it ends where the playing last moved
    # the next phrase is separate, and the late off of key 60 does not disturb it
    play(c, [(5.0, [0x90, 64, 90]), (5.2, [0x80, 60, 0]), (5.4, [0x80, 64, 0])])
    c.tick(6.4)
    assert len(phrases.got) == 2 and phrases.pitches(1) == [64]


def test_a_phrase_ends_at_max_notes_and_the_next_note_starts_another():
    c, phrases = captor(max_notes=8)
    events = []
    for i in range(20):                       # legato: always a key down, never a silence
        events += [(i * 0.2, [0x90, 60 + i % 12, 80]), (i * 0.2 + 0.25, [0x80, 60 + i % 12, 0])]
    play(c, sorted(events, key=lambda e: e[0]))
    assert len(phrases.got) == 2 and c.phrases_cut == 2
    assert [len(p) for p, _ in phrases.got] == [8, 8]
    c.tick(10.0)                              # the rest ends on silence
    assert len(phrases.got) == 3 and len(phrases.got[2][0]) == 4
    assert sum(len(p) for p, _ in phrases.got) == 20


def test_a_phrase_ends_after_max_phrase_seconds_even_with_a_key_held():
    c, phrases = captor(max_phrase_s=8.0, max_hold_s=100.0)
    play(c, [(0.0, [0x90, 48, 80])])          # a drone held on
    for i in range(30):
        play(c, [(0.5 + i * 0.5, [0x90, 72, 80]), (0.7 + i * 0.5, [0x80, 72, 0])])
    assert len(phrases.got) >= 1 and c.phrases_cut >= 1
    notes, end = phrases.got[0]
    assert end == pytest.approx(8.0, abs=0.5)
    assert notes[0].pitch == 48 and notes[0].off_s == pytest.approx(end)


def test_velocity_zero_is_a_note_off_and_a_doubled_note_on_restarts_the_key():
    c, phrases = captor()
    play(c, [(0.0, [0x90, 60, 90]), (0.4, [0x90, 60, 0]),          # on, off as velocity 0
             (0.5, [0x91, 62, 70]), (0.7, [0x91, 62, 100]),        # struck twice, channel 2
             (0.9, [0x81, 62, 0])])
    c.tick(1.8)
    assert phrases.got == []                                         # 0.9 + 1.0 s not reached
    c.tick(1.9)
    notes = phrases.got[0][0]
    assert [(n.pitch, n.velocity, n.on_s, n.off_s) for n in notes] == [
        (60, 90, 0.0, 0.4), (62, 70, 0.5, 0.7), (62, 100, 0.7, 0.9)]


def test_keys_on_different_channels_are_different_keys():
    c, phrases = captor()
    play(c, [(0.0, [0x90, 60, 90]), (0.1, [0x92, 60, 90]), (0.3, [0x80, 60, 0])])
    c.tick(5.0)
    assert phrases.got == []                  # the key on channel 3 is still down
    play(c, [(5.1, [0x82, 60, 0])])
    c.tick(6.1)
    assert len(phrases.got[0][0]) == 2


def test_running_status_is_completed():
    rs = RunningStatus()
    assert rs.expand([0x90, 60, 90]) == [[0x90, 60, 90]]
    assert rs.expand([62, 90]) == [[0x90, 62, 90]]                   # data only
    assert rs.expand([60, 0, 62, 0]) == [[0x90, 60, 0], [0x90, 62, 0]]
    assert rs.expand([0xF8]) == [[0xF8]]                              # real time keeps it
    assert rs.expand([64, 80]) == [[0x90, 64, 80]]
    assert rs.expand([0xC1, 5]) == [[0xC1, 5]]
    assert rs.expand([7]) == [[0xC1, 7]]                              # one data byte
    assert rs.expand([0xF2, 0, 0]) == [[0xF2, 0, 0]]                  # system common ends it
    assert rs.expand([60, 90]) == [] and rs.dropped == 2


def test_the_thread_wakes_for_a_stuck_key_without_new_input():
    phrases = Phrases()
    done = threading.Event()

    def on_phrase(notes, end):
        phrases(notes, end)
        done.set()

    c = PhraseCaptor(on_phrase, silence_s=0.1, max_hold_s=0.3).start()
    try:
        c.feed([0x90, 60, 90], time.monotonic())
        assert done.wait(3.0), "the stuck key was never released"
    finally:
        c.stop()
    assert c.stuck_keys_released == 1 and phrases.pitches(0) == [60]


# -- through real JACK ports ---------------------------------------------------------------------

def test_a_lost_note_off_on_riffd_in_still_gets_an_answer_and_the_next_phrase_is_separate(
        jack_server, tmp_path):
    log = tmp_path / "serve.log"
    args = ["--midi-api", "jack", "--client-name", "riffd-stuck", "--tempo", "240",
            "--length", "1", "--silence", "0.3", "--max-hold", "1.5", "--log-level", "INFO"]
    with DaemonProcess(args, log_path=log) as daemon, MidiPeer("stuck-peer") as peer:
        peer.connect("riffd-stuck:out", "riffd-stuck:in")
        with daemon.client() as c:
            phrases: list[dict] = []
            listening = threading.Event()

            def listen():
                listening.set()
                for event in c.subscribe(daemon.events, ["phrase"], timeout_s=20):
                    phrases.append(event)
                    if len(phrases) >= 2:
                        return
            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            listening.wait(2)
            time.sleep(0.3)                   # the subscription connects
            before = c.status()["counters"]
            # phrase 1: 60 62 64, the note-off of 60 never comes
            peer.play([(0.0, [0x90, 60, 90]), (0.2, [0x90, 62, 90]), (0.35, [0x80, 62, 0]),
                       (0.4, [0x90, 64, 90]), (0.55, [0x80, 64, 0])])
            played = time.monotonic()
            assert peer.wait_for(lambda rs: any(r.message[0] & 0xF0 == 0x90 and r.message[2]
                                                for r in rs), 10), log.read_text()
            answered = time.monotonic()
            # phrase 2, after the answer: 67 and 69, played properly
            peer.play([(0.0, [0x90, 67, 110]), (0.2, [0x80, 67, 0]),
                       (0.3, [0x90, 69, 35]), (0.5, [0x90, 69, 0])])     # velocity-0 off
            listener.join(15)
            after = c.status()["counters"]
    assert daemon.proc.returncode == 0, log.read_text()
    assert answered - played >= 1.0           # not before the hold limit released key 60
    assert after["stuck_keys_released"] == before["stuck_keys_released"] + 1
    assert after["phrases"] == before["phrases"] + 2
    assert len(phrases) == 2, phrases
    assert sorted(n["pitch"] for n in phrases[0]["notes"]) == [60, 62, 64]
    assert [n["pitch"] for n in phrases[1]["notes"]] == [67, 69]
    assert [n["velocity"] for n in phrases[1]["notes"]] == [110, 35]   # as played
    assert "held" in log.read_text() and "released" in log.read_text()
