"""A tiny GAN trained on chorales, served by `riffd serve` on a dummy JACK server: a separate
JACK client hears chords on the daemon's out port, and nothing hangs after `stop`."""
import time
from collections import Counter

import pytest

from riffd.daemon.midi_peer import MidiPeer
from tests.daemon.serve_helpers import FAST, note_ons, serving, sounding, wait_quiet
from tests.training.test_train_gan import train_tiny_gan


@pytest.fixture(scope="module")
def gan_daemon(jack_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_gan")
    checkpoint = train_tiny_gan(root, "gan_cnn")
    name = f"riffd-gan-{time.monotonic_ns()}"
    with serving(FAST + ["--model", str(checkpoint), "--client-name", name],
                 root / "serve.log") as daemon:
        yield daemon, name


def test_a_served_gan_plays_chords_and_leaves_nothing_hanging(gan_daemon):
    daemon, name = gan_daemon
    with MidiPeer(f"peer-{time.monotonic_ns()}") as peer:
        peer.connect(f"{name}:out", f"{name}:in")
        with daemon.client() as c:
            status = c.status()
            assert status["model"]["family"] == "gan_cnn"
            c.start()
            assert peer.wait_for(lambda rs: len(note_ons(rs)) >= 12, 30)
            c.stop()
        wait_quiet(peer)
        ons = note_ons(peer.received())
        onset_times = Counter(round(r.seconds, 3) for r in ons)
        assert max(onset_times.values()) >= 2, "no two notes began together: no chord"
        assert all(60 <= r.message[1] <= 83 for r in ons)
    # every note ended, by riffd's own record
    assert sounding(daemon) == 0
