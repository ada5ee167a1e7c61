"""JackServer: starts a real jackd (dummy driver), reports it, stops it."""

import os

import pytest

from daemon.jack_server import JackServer, JackUnavailable, jack_server_running, period_seconds


def test_start_answer_stop():
    server = JackServer(f"riffd-js-{os.getpid()}", period=128)
    assert not jack_server_running(server.env)
    with server:
        assert server.env == {"JACK_DEFAULT_SERVER": server.name}
        assert jack_server_running(server.env)
        assert server.pid is not None
    assert server.pid is None
    assert not jack_server_running(server.env)
    server.stop()  # second stop is harmless


def test_period_seconds():
    assert period_seconds(256, 48000) == pytest.approx(0.0053333, rel=1e-4)
    assert JackServer("x", rate=44100, period=64).period_s == pytest.approx(64 / 44100)


def test_missing_jackd_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JackUnavailable, match="apt-get install jackd2"):
        JackServer("riffd-nowhere").start()


def test_session_fixture_points_clients_at_its_server(jack_server):
    assert os.environ["JACK_DEFAULT_SERVER"] == jack_server.name
    assert jack_server_running()


def test_same_name_twice_is_refused(jack_server):
    with pytest.raises(JackUnavailable, match="already running"):
        JackServer(jack_server.name).start()
