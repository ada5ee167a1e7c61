"""A model step that raises while a voice plays: counted, published, the notes end.

The daemon runs in this process (real JACK ports, real ZeroMQ sockets) so that the test can
make the voice's generator fail at a moment it chooses.
"""
from __future__ import annotations

import gc
import sys
import threading

import pytest

from riffd.daemon.client import RiffdClient
from riffd.daemon.process import free_tcp_port
from riffd.daemon.serve_config import ServeConfig
from riffd.daemon.service import Riffd
from tests.reliability.event_log import EventLog
from tests.waiting import wait_until


@pytest.fixture
def riffd(jack_server):
    cfg = ServeConfig(midi_api="jack", client_name="riffd-fail", tempo=240, mode="continuous",
                      control=f"tcp://127.0.0.1:{free_tcp_port()}",
                      events=f"tcp://127.0.0.1:{free_tcp_port()}", clock_out=False)
    daemon = Riffd(cfg)
    ready = threading.Event()
    switch = sys.getswitchinterval()
    thread = threading.Thread(target=daemon.run, args=(ready,), name="riffd-under-test")
    thread.start()
    try:
        assert ready.wait(60), "the in-process daemon did not start"
        yield daemon
    finally:
        daemon.request_shutdown()
        thread.join(15)
        gc.unfreeze()
        sys.setswitchinterval(switch)
    assert not thread.is_alive()


def test_a_generator_that_raises_mid_play_is_counted_published_and_its_notes_end(riffd):
    voice = riffd.voices.get(None)
    real_step = voice.generator.next_step
    failing = threading.Event()

    def next_step():
        if failing.is_set():
            raise RuntimeError("injected: the model step broke")
        return real_step()

    voice.generator.next_step = next_step              # the voice thread calls it
    with EventLog(riffd.cfg.control, riffd.cfg.events, ["error"]) as errors, \
            RiffdClient(riffd.cfg.control, timeout_s=5) as c:
        before = c.status()["counters"]
        c.start()
        assert wait_until(lambda: c.status()["counters"]["notes_sent"]
                          >= before["notes_sent"] + 4, 10)
        failing.set()
        assert wait_until(lambda: errors.items, 5), "no error event was published"
        event = errors.items[0]
        assert wait_until(lambda: c.status()["voices"][0]["state"] == "idle", 5)
        assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 5)
        status = c.status()
        failing.clear()
        c.start()                                  # the voice is not broken for good
        assert wait_until(lambda: c.status()["counters"]["notes_sent"]
                          >= status["counters"]["notes_sent"] + 4, 10)
        c.stop()
        assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 5)
    assert event["voice"] == "main"
    assert "main" in event["message"] and "injected: the model step broke" in event["message"]
    assert "RuntimeError" in event["cause"]
    counters = status["counters"]
    assert counters["generator_errors"] == before["generator_errors"] + 1
    assert counters["errors"] == before["errors"] + 1
    assert counters["sounding"] == 0                   # the voice's notes ended
    assert status["playing"] is False
    assert "injected" in status["voices"][0]["last_error"]
