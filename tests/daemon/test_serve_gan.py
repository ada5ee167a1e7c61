"""A tiny GAN trained on chorales, served by `riffd serve` on a dummy JACK server: a separate
JACK client hears chords on the daemon's out port, and nothing hangs after `stop`."""
import time
from collections import Counter

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from tests.training.test_train_gan import train_tiny_gan
from tests.waiting import wait_until


def note_ons(peer):
    return [r for r in peer.received() if r.message[0] & 0xF0 == 0x90 and r.message[2] > 0]


def wait_quiet(peer, seconds=0.4, timeout=5.0):
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        now = len(peer.received())
        if now == count:
            return
        count = now
        time.sleep(seconds)


@pytest.fixture(scope="module")
def gan_daemon(jack_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_gan")
    checkpoint = train_tiny_gan(root, "gan_cnn")
    name = f"riffd-gan-{time.monotonic_ns()}"
    args = ["--model", str(checkpoint), "--midi-api", "jack", "--client-name", name,
            "--tempo", "240", "--length", "2", "--silence", "0.4", "--log-level", "WARNING"]
    with DaemonProcess(args, log_path=root / "serve.log") as daemon:
        yield daemon, name
    assert daemon.proc.returncode == 0, (root / "serve.log").read_text()


def test_a_served_gan_plays_chords_and_leaves_nothing_hanging(gan_daemon):
    daemon, name = gan_daemon
    with MidiPeer(f"peer-{time.monotonic_ns()}") as peer:
        peer.connect(f"{name}:out", f"{name}:in")
        with daemon.client() as c:
            status = c.status()
            assert status["model"]["family"] == "gan_cnn"
            c.start()
            assert peer.wait_for(lambda rs: len([r for r in rs if r.message[0] & 0xF0 == 0x90
                                                 and r.message[2] > 0]) >= 12, 15)
            c.stop()
        wait_quiet(peer)
        ons = note_ons(peer)
        onset_times = Counter(round(r.seconds, 3) for r in ons)
        assert max(onset_times.values()) >= 2, "no two notes began together: no chord"
        assert all(60 <= r.message[1] <= 83 for r in ons)
    # every note ended, by riffd's own record (a listening client may miss a JACK cycle on a
    # loaded machine, and with it a note-off)
    with daemon.client() as c:
        assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3), c.status()
