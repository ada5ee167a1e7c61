"""The notewise and multilabel families served by the daemon through a real JACK MIDI port.

Each family gets a tiny model trained on real data in a fixture (seconds); the daemon runs as
a child process on the dummy-driver JACK server, and a separate JACK client records its output.
"""
import time
from collections import Counter

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from riffd.training.recipe import load_recipe
from tests.waiting import wait_until

FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--silence", "0.4",
        "--log-level", "WARNING"]

FAMILIES = {
    "notewise_lstm": ("configs/notewise_n2_attention_folk.toml", "riffd.training.train_notewise",
                      ['data.corpus=["essen:erk5"]', "model.hidden_size=32",
                       "model.pitch_embed_dim=16", "model.dense_size=32",
                       "model.attention_window=8", "train.stride=4"]),
    "multilabel_lstm": ("configs/multilabel_m6_chorales.toml", "riffd.training.train_multilabel",
                        ["data.max_songs=4", "model.hidden_size=32", "model.dense_size=32",
                         "model.attention_window=16", 'train.inference_mode="bernoulli"']),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def served(request, jack_server, tmp_path_factory):
    family = request.param
    recipe_path, module, overrides = FAMILIES[family]
    root = tmp_path_factory.mktemp(family)
    recipe = load_recipe(recipe_path, overrides + [
        "train.epochs=2", "train.batch_size=16", "train.learning_rate=0.005",
        f'data.cache_dir="{root / "cache"}"', f'train.output_dir="{root / "run"}"'])
    best = __import__(module, fromlist=["train"]).train(recipe)
    name = f"riffd-{family.split('_')[0]}-{time.monotonic_ns() % 100000}"
    log = root / "serve.log"
    with DaemonProcess(FAST + ["--model", str(best), "--client-name", name],
                       log_path=log) as daemon:
        yield family, name, daemon
    assert daemon.proc.returncode == 0, log.read_text()


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


def test_the_family_plays_through_the_port_and_stop_ends_every_note(served):
    family, name, daemon = served
    with daemon.client() as c:
        assert c.status()["model"]["family"] == family
    with MidiPeer(f"peer-{name}") as peer:
        peer.connect(f"{name}:out", f"{name}:in")
        with daemon.client() as c:
            c.start()
            assert peer.wait_for(lambda rs: sum(r.message[0] & 0xF0 == 0x90 for r in rs) >= 12,
                                 20), c.status()
            time.sleep(0.5)
            c.stop()
        wait_quiet(peer)
        ons = note_ons(peer)
        # every note ended, by riffd's own record (a listening client may miss a JACK cycle
        # on a loaded machine, and with it a note-off)
        with daemon.client() as c:
            assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3), c.status()
        assert len(ons) >= 12
        if family == "multilabel_lstm":
            # polyphony: several note-ons at one instant (same 16th step, < 1 ms apart)
            chords = Counter(round(r.seconds * 1000) for r in ons)
            assert max(chords.values()) >= 2, sorted(chords.items())[:20]
        assert all(0 <= r.message[1] <= 127 for r in ons)


def test_a_seed_is_answered(served):
    family, name, daemon = served
    with MidiPeer(f"seed-{name}") as peer:
        peer.connect(f"{name}:out", None)
        notes = [{"pitch": p, "start": i * 0.5, "duration": 0.5}
                 for i, p in enumerate([62, 66, 69, 74, 73, 71])]
        with daemon.client() as c:
            reply = c.seed(notes)
            assert reply["key"] == "D major"
            assert peer.wait_for(lambda rs: any(r.message[0] & 0xF0 == 0x90 for r in rs), 10)
            c.panic()
        wait_quiet(peer)
        with daemon.client() as c:              # riffd's own record: every note ended
            assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3), c.status()
