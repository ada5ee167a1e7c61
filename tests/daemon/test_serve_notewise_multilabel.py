"""The notewise and multilabel families served by the daemon through a real JACK MIDI port.

Each family gets a tiny model trained on real data in a fixture (seconds); the daemon runs as
a child process on the dummy-driver JACK server, and a separate JACK client records its output.
"""
import importlib
import time
from collections import Counter

import pytest

from riffd.daemon.midi_peer import MidiPeer
from tests.daemon.serve_helpers import FAST, note_ons, serving, sounding, wait_quiet
from tests.training.small_runs import train_small

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
    train = importlib.import_module(module).train
    _, best, root = train_small(tmp_path_factory.mktemp(family), recipe_path, overrides + [
        "train.epochs=2", "train.batch_size=16", "train.learning_rate=0.005"], train)
    name = f"riffd-{family.split('_')[0]}-{time.monotonic_ns() % 100000}"
    with serving(FAST + ["--model", str(best), "--client-name", name],
                 root / "serve.log") as daemon:
        yield family, name, daemon


def test_the_family_plays_through_the_port_and_stop_ends_every_note(served):
    family, name, daemon = served
    with daemon.client() as c:
        assert c.status()["model"]["family"] == family
    with MidiPeer(f"peer-{name}") as peer:
        peer.connect(f"{name}:out", f"{name}:in")
        with daemon.client() as c:
            c.start()
            assert peer.wait_for(lambda rs: sum(r.message[0] & 0xF0 == 0x90 for r in rs) >= 12,
                                 30), c.status()
            time.sleep(0.5)
            c.stop()
        wait_quiet(peer)
        ons = note_ons(peer.received())
        assert sounding(daemon) == 0            # every note ended, by riffd's own record
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
        assert sounding(daemon) == 0            # every note ended, by riffd's own record
