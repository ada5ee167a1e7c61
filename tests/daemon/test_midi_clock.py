"""ClockIn's tempo and pulse counting from timed pulses (logic only; the JACK path is covered in
test_interaction.py)."""
import pytest

from riffd.daemon.clock import Clock
from riffd.daemon.midi_clock import CLOCK, START, ClockIn


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


def feed_with_stall(clock_in, t, bpm, count, stall_at, stall_s):
    """Pulses at ``bpm``; those due in ``[stall_at, stall_at + stall_s)`` seconds after ``t`` are
    delivered together at the end of the stall (a JACK cycle skipped at the sender)."""
    spp = 60.0 / (bpm * 24)
    for k in range(count):
        due = t + k * spp
        if stall_at <= k * spp < stall_at + stall_s:
            due = t + stall_at + stall_s
        clock_in.feed([CLOCK], due)
    return t + count * spp


@pytest.mark.parametrize("stall_s", [0.011, 0.05, 0.075, 0.1, 0.137, 0.3])
def test_bunched_pulses_after_a_stall_move_neither_the_tempo_nor_the_count(stall_s):
    clock = Clock(120, source="midi")
    clock_in = ClockIn(clock)
    t0 = 50.0
    clock_in.feed([START], t0)
    t, spp = t0, 60.0 / (100 * 24)
    tempos = []
    for k in range(24 * 8):                      # 8 beats, a stall in every beat
        in_beat = k % 24
        due = t0 + k * spp
        stall_at = 0.2                           # seconds into each beat
        offset = in_beat * spp
        if stall_at <= offset < stall_at + stall_s:
            due = t0 + (k - in_beat) * spp + stall_at + stall_s
        clock_in.feed([CLOCK], due)
        if k >= 48:
            tempos.append(clock.tempo)
        t = t0 + (k + 1) * spp
    assert min(tempos) == pytest.approx(100, abs=0.5) and max(tempos) == pytest.approx(100, abs=0.5)
    assert clock_in.lost == 0 and (clock_in.late > 0 or stall_s < spp)
    # the count is right: pulse n of the song is beat n / 24
    assert (clock.beat_at(t) - clock.beat_at(t0)) * 24 == pytest.approx(24 * 8, abs=0.5)


def test_a_stall_then_lost_pulses_then_a_tempo_jump():
    clock = Clock(120, source="midi")
    clock_in = ClockIn(clock)
    t = 10.0
    clock_in.feed([START], t)
    t = feed(clock_in, t, 100, 48)
    origin = clock.beat_at(10.0)
    t = feed_with_stall(clock_in, t, 100, 48, stall_at=0.3, stall_s=0.1)
    t = feed(clock_in, t, 100, 48, skip=(10, 11, 12))     # really lost
    assert clock.tempo == pytest.approx(100, abs=0.01) and clock_in.lost == 3
    t = feed(clock_in, t, 140, 24)                         # a real jump is taken up in a beat
    assert clock.tempo == pytest.approx(140, abs=0.01)
    assert (clock.beat_at(t) - origin) * 24 == pytest.approx(48 * 3 + 24, abs=0.5)
