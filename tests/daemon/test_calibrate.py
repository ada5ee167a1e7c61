"""``riffd calibrate`` against a real echo client with a known delay on the test JACK server.

The echo (``python -m riffd.daemon.calibrate echo``) runs in its own process, as a synth would, and
sends every message back exactly 20 ms (960 frames at 48 kHz) later. The round trip riffd
measures must be that plus the one period JACK adds to a loop, and the suggested offset 20 ms,
each within one JACK period.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from riffd.daemon.calibrate import Calibration, percentile
from riffd.daemon.midi_peer import MidiPeer

DELAY_MS = 20.0


@pytest.fixture
def echo(jack_server):
    proc = subprocess.Popen([sys.executable, "-m", "riffd.daemon.calibrate", "echo", "--delay-ms",
                             str(DELAY_MS), "--name", "cal-echo"], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line, f"the echo client did not start (exit status {proc.poll()})"
        ready = json.loads(line)
        assert ready["delay_frames"] == round(DELAY_MS * jack_server.rate / 1000)
        yield ready
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riffd.daemon", "calibrate", *args],
                          capture_output=True, text=True, timeout=60)


def test_calibrate_measures_the_echo_delay(jack_server, echo):
    period_ms = 1000 * jack_server.period / jack_server.rate
    done = calibrate("--to", echo["ready"], "--from", echo["out"], "--count", "20",
                     "--interval-ms", "20", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print("calibrate:", {k: v for k, v in result.items() if k != "round_trips_ms"})
    assert result["pings"] == 20 and result["lost"] == 0
    assert result["echoes"] + result["skipped"] == 20 and result["echoes"] >= 10
    expected = DELAY_MS + period_ms                   # the echo's delay + JACK's loop cycle
    assert abs(result["median_ms"] - expected) <= period_ms, result
    assert abs(result["suggested_output_latency_ms"] - DELAY_MS) <= period_ms, result
    assert result["min_ms"] <= result["median_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert len(result["round_trips_ms"]) == result["echoes"]


def test_calibrate_text_and_errors(jack_server, echo):
    done = calibrate("--to", echo["ready"], "--from", echo["out"], "--count", "3",
                     "--interval-ms", "10")
    assert done.returncode == 0, done.stderr
    assert "suggested output latency:" in done.stdout
    assert "riffd serve --output-latency-ms" in done.stdout
    # a port that is not there: one line naming the flag and the ports that exist
    done = calibrate("--to", "nowhere:in", "--from", echo["out"], "--count", "3")
    assert done.returncode == 1
    assert "--to nowhere:in: there is no such JACK MIDI port" in done.stderr
    assert "cal-echo:in" in done.stderr
    # ports the wrong way round: the message says which way they go
    done = calibrate("--to", echo["out"], "--from", echo["ready"], "--count", "2")
    assert done.returncode == 1 and "--to must name an input port" in done.stderr
    # a client that does not echo: every ping is lost
    with MidiPeer("cal-silent") as silent:
        done = calibrate("--to", silent.in_port_name, "--from", silent.out_port_name,
                         "--count", "2", "--timeout-ms", "100")
    assert done.returncode == 1
    assert "no echo came back" in done.stderr and "2 of 2 pings lost" in done.stderr


def test_summary_numbers():
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0] * 99 + [9.0], 0.99) == 1.0
    assert percentile([1.0] * 98 + [9.0, 9.0], 0.99) == 9.0
    text = Calibration(pings=5, echoes=4, lost=1, skipped=0, median_ms=25.3, p99_ms=26.0,
                       min_ms=25.0, max_ms=26.0, period_ms=5.33,
                       suggested_output_latency_ms=20.0, round_trips_ms=[]).text()
    assert "median 25.30 ms, p99 26.00 ms" in text and "--output-latency-ms 20" in text
