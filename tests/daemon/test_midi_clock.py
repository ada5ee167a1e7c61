"""ClockIn's tempo and pulse counting from timed pulses (logic only; the JACK path is covered in
test_interaction.py)."""
import pytest

from daemon.clock import Clock
from daemon.midi_clock import CLOCK, START, ClockIn


def feed(clock_in, t, bpm, count, skip=()):
    spp = 60.0 / (bpm * 24)
    for k in range(count):
        if k not in skip:
            clock_in.feed([CLOCK], t)
        t += spp
    return t


def test_tempo_follows_jumps_and_missing_pulses_keep_the_count():
    clock = Clock(120, source="midi")
    clock_in = ClockIn(clock)
    t = 100.0
    clock_in.feed([START], t)
    t = feed(clock_in, t, 100, 10)
    origin = clock.beat_at(100.0)                              # the song's first pulse
    t = feed(clock_in, t, 100, 110, skip=(40, 41))             # two pulses lost on the way
    assert clock.tempo == pytest.approx(100) and clock_in.lost == 2
    assert clock.beat_at(t) - origin == pytest.approx(120 / 24, abs=1e-6)
    t = feed(clock_in, t, 50, 60)                              # a tempo halving is not lost pulses
    assert clock.tempo == pytest.approx(50) and clock_in.lost == 2
    t = feed(clock_in, t, 140, 30)
    assert clock.tempo == pytest.approx(140)
    # the clock's beats stay on the sender's grid: pulse n of the song is beat n / 24
    assert (clock.beat_at(t) - origin) * 24 == pytest.approx(120 + 60 + 30, abs=0.5)


def test_internal_source_only_measures():
    clock = Clock(120, source="internal")
    clock_in = ClockIn(clock)
    feed(clock_in, 10.0, 90, 48)
    assert clock_in.tempo == pytest.approx(90) and clock.tempo == 120
