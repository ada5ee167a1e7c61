"""Shared fixtures. Tests that need MIDI/audio run against a real JACK server (dummy driver)."""

import os

import pytest

from riffd.daemon.jack_server import INSTALL_HINT, JackServer, JackUnavailable


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server (dummy driver, 48 kHz, 256-frame period) for the whole session,
    realtime (``-R -P 70``) where this process may use realtime scheduling. Stale riffd servers
    that killed test runs left behind are cleaned up first (JackServer.start).

    Sets ``JACK_DEFAULT_SERVER`` so every JACK client in the tests reaches it. Fails (never skips)
    when jackd is missing.
    """
    server = JackServer(f"riffd-test-{os.getpid()}", rate=48000, period=256)
    try:
        server.start()
    except JackUnavailable as exc:
        pytest.fail(f"JACK server could not start: {exc} ({INSTALL_HINT})")
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    try:
        yield server
    finally:
        if previous is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = previous
        server.stop()
