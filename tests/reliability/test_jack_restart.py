"""The JACK server goes away and comes back while riffd plays.

The test runs its OWN JACK server (not the session's), riffd playing continuously on it, and a
separate JACK client (``riffd.daemon.midi_peer`` in its own process). The server is SIGKILLed: riffd's
``status`` says the ports are gone and why, ``playing`` is false, ``start`` answers
``unavailable`` with the reason, and a ``ports`` event goes out. A server is started again under
the same name: riffd re-registers ``riffd-rs:out`` / ``riffd-rs:in`` by itself, a new client
connected to ``riffd-rs:out`` receives notes again within 10 s, and after ``stop`` no note
hangs.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from riffd.daemon.client import RiffdClient, RiffdError
from riffd.daemon.jack_server import JackServer, clean_stale_servers
from riffd.daemon.midi_peer import PeerProcess
from riffd.daemon.process import DaemonProcess
from riffd.daemon.recording import pair_notes
from tests.waiting import wait_until

ARGS = ["--midi-api", "jack", "--client-name", "riffd-rs", "--tempo", "200",
        "--mode", "continuous", "--no-clock-out", "--log-level", "INFO"]


def note_ons(received):
    return [m for m in received if m.message[0] & 0xF0 == 0x90 and m.message[2] > 0]


def test_riffd_carries_on_when_the_jack_server_comes_back(tmp_path):
    server = JackServer(f"riffd-restart-{os.getpid()}")
    server.start()
    env = server.env
    log = tmp_path / "serve.log"
    daemon = DaemonProcess(ARGS, env=env, log_path=log)
    events: list[dict] = []
    peers = []
    try:
        daemon.start()
        peers.append(PeerProcess("restart-peer", "riffd-rs:out", env=env))
        assert peers[0].wait_for(lambda r: peers[0].connections > 0, timeout=10)

        def collect():
            with RiffdClient(daemon.control) as client:
                events.extend(client.subscribe(daemon.events, ["ports", "error"],
                                               timeout_s=30))
        threading.Thread(target=collect, daemon=True).start()
        time.sleep(0.5)                               # the subscription reaches the publisher
        with daemon.client() as c:
            c.start()
        assert peers[0].wait_for(lambda r: len(note_ons(r)) >= 4, timeout=20), log.read_text()

        server.kill()                                 # SIGKILL: the server just disappears
        peers[0].close()
        with daemon.client() as c:
            assert wait_until(lambda: not c.status()["ports"]["alive"], 10), log.read_text()
            status = c.status()
            assert status["playing"] is False
            assert "JACK server went away" in status["ports"]["reason"]
            with pytest.raises(RiffdError) as refused:
                c.start()
            assert refused.value.code == "unavailable"
            assert "MIDI ports are gone" in str(refused.value)
            assert "JACK server" in str(refused.value)
            time.sleep(1.2)                           # riffd keeps trying meanwhile
            status = c.status()
            assert not status["ports"]["alive"]
            assert "JACK server went away" in status["ports"]["reason"]
        assert wait_until(lambda: any(e["event"] == "ports" and e["alive"] is False
                                      for e in events), 5), events

        server.start()                                # the same name again
        back_at = time.monotonic()
        peers.append(PeerProcess("restart-peer-2", "riffd-rs:out", env=env))
        peer = peers[1]
        assert peer.wait_for(lambda r: len(note_ons(r)) >= 4, timeout=10), log.read_text()
        assert time.monotonic() - back_at < 10 + 5    # peer start-up allowance
        with daemon.client() as c:
            status = c.status()
            assert status["ports"] == {"api": "jack", "out": "riffd-rs:out", "in": "riffd-rs:in",
                                       "alive": True}
            assert status["playing"] is True
            assert status["counters"]["port_losses"] == 1
            assert status["counters"]["ports_opened"] == 2
            c.stop()
        deadline = time.monotonic() + 5
        count = -1
        while time.monotonic() < deadline and count != len(peer.received()):
            count = len(peer.received())
            time.sleep(0.5)                           # until nothing more arrives
        assert pair_notes([(m.seconds, m.message) for m in peer.received()])[1] == 0
        assert wait_until(lambda: any(e["event"] == "ports" and e["alive"] is True
                                      for e in events), 5), events
        with daemon.client() as c:
            assert c.status()["counters"]["sounding"] == 0
        assert daemon.shutdown() == 0, log.read_text()
    finally:
        for p in peers:
            p.close()
        daemon.kill()
        server.stop()
        clean_stale_servers()


def _jack_ports(env: dict) -> list[str]:
    return subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True,
                          timeout=5).stdout.split()


def test_the_audio_voice_comes_back_with_the_jack_server(tmp_path):
    """riffd's audio client ``riffd-rs-audio`` plays on the test's own server; the server is
    SIGKILLed: audio status says the output is down and why. A server of the same name comes
    back: within 10 s the same ports exist again and a separate JACK client (jack_rec) records
    sound from them; riffd still stops cleanly."""
    server = JackServer(f"riffd-audiorestart-{os.getpid()}")
    server.start()
    env = server.env
    log = tmp_path / "serve.log"
    daemon = DaemonProcess(ARGS + ["--audio"], env=env, log_path=log)
    recorder = None
    events: list[dict] = []
    try:
        daemon.start()
        ports = ["riffd-rs-audio:out_0", "riffd-rs-audio:out_1"]

        def collect():
            with RiffdClient(daemon.control) as client:
                events.extend(client.subscribe(daemon.events, ["ports"], timeout_s=40))
        threading.Thread(target=collect, daemon=True).start()
        time.sleep(0.5)                               # the subscription reaches the publisher
        with daemon.client() as c:
            audio = c.status()["audio"]
            assert audio["backend"] == "jack" and audio["ports"] == ports, audio
            c.request("audio_start")
            assert wait_until(lambda: c.status()["audio"]["seconds_played"] > 0.5, 20), \
                log.read_text()
            assert c.status()["audio"]["alive"] is True

            server.kill()                             # SIGKILL: the server just disappears
            assert wait_until(lambda: c.status()["audio"]["alive"] is False, 10), \
                log.read_text()
            time.sleep(1.2)                           # riffd keeps trying meanwhile
            audio = c.status()["audio"]
            assert audio["alive"] is False and audio["playing"] is False, audio
            assert "JACK server went away" in audio["error"], audio
            assert "start the JACK server again" in audio["error"], audio
            assert audio["running"] is True            # the voice still means to play
            played = audio["seconds_played"]

            server.start()                            # the same name again
            back_at = time.monotonic()
            assert wait_until(lambda: c.status()["audio"]["alive"], 10), log.read_text()
            assert time.monotonic() - back_at < 10
            assert set(ports) <= set(_jack_ports(env)), _jack_ports(env)
            wav = tmp_path / "back.wav"
            recorder = subprocess.Popen(["jack_rec", "-f", str(wav), "-d", "2", ports[0]],
                                        env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
            assert recorder.wait(timeout=20) == 0, recorder.stderr.read()
            audio = c.status()["audio"]
            assert audio["playing"] is True and audio["error"] is None, audio
            assert audio["ports"] == ports and audio["losses"] == 1, audio
            assert audio["seconds_played"] > played + 1.0, audio
            assert wait_until(lambda: c.status()["ports"]["alive"], 10)   # MIDI back too
            c.request("audio_stop")
        audio_events = lambda: [e["alive"] for e in events if e.get("output") == "audio"]
        assert wait_until(lambda: audio_events() == [False, True], 10), events
        recorded, rate = sf.read(wav)
        assert rate == 48000 and len(recorded) >= 48000, len(recorded)
        assert np.sqrt(np.mean(recorded ** 2)) > 1e-4, "the recording is silent"
        assert daemon.shutdown(timeout_s=20) == 0, log.read_text()
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        daemon.kill()
        server.stop()
        clean_stale_servers()
