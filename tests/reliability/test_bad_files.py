"""Model files that used to hang or crash the daemon: a FIFO, configs that claim huge models,
NaN weights, paths outside the model folders, an audio model for a MIDI voice.

riffd runs as a child process on the dummy-driver JACK server; a second thread pings it on a
socket of its own all along, so a control thread that blocks shows up as slow or missed pings:
a ping sent while it works waits for the whole work (a FIFO would hold it for ever, the 2 s
timeout counts it as missed). Single pings on a loaded machine can wait for the scheduler too
(one took 127 ms with a busy loop on the other core), so the typical ping is held to 100 ms
(95th percentile) and the slowest only to a bound that blocking would exceed.
"""
from __future__ import annotations

import os
import shutil
import time

import pytest

from riffd.daemon.client import RiffdError
from riffd.daemon.process import DaemonProcess
from riffd.engine.loading import BUNDLED_MODEL
from tests.reliability.model_files import Pinger, large_melody, with_config, with_nan

ARGS = ["--midi-api", "jack", "--tempo", "240", "--log-level", "WARNING"]
SECRET = b"TOPSECRET-0123456789" * 61          # 1220 bytes nobody should see in a reply
PING_LIMIT_MS = 100.0       # 95 % of pings are answered this fast (ms)
BLOCKED_MS = 1000.0         # a ping that waits this long met a blocked control thread (ms)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-files")
    models, outside = root / "models", root / "outside"
    models.mkdir()
    outside.mkdir()
    (outside / "secret.safetensors").write_bytes(SECRET)
    os.mkfifo(models / "fifo.safetensors")
    shutil.copy(BUNDLED_MODEL, models / "good.safetensors")
    shutil.copy(BUNDLED_MODEL.parent / "spectral_default.safetensors",
                models / "spectral.safetensors")
    with_config(models / "wide.safetensors", hidden_size=8000)
    with_config(models / "deep.safetensors", num_layers=10**6)
    with_config(models / "units.safetensors", hidden_size=10**9)
    with_nan(models / "nan.safetensors")
    large_melody(models / "big.safetensors", hidden_size=1600)     # 32 M parameters
    os.symlink(outside / "secret.safetensors", models / "link.safetensors")
    return root


@pytest.fixture(scope="module")
def riffd(jack_server, files):
    log = files / "serve.log"
    with DaemonProcess(ARGS + ["--client-name", "riffd-files", "--model-dir",
                               str(files / "models")], log_path=log) as daemon:
        yield daemon
    assert daemon.proc.returncode == 0, log.read_text()


def refusal(client, cmd, **args) -> tuple[RiffdError, float]:
    """The error reply to a request that must fail, and how long it took (seconds)."""
    asked = time.monotonic()
    with pytest.raises(RiffdError) as info:
        client.request(cmd, **args)
    return info.value, time.monotonic() - asked


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def assert_pings_fast(pinger: Pinger, longest_ms: float = BLOCKED_MS) -> dict:
    """No ping missed, 95 % within PING_LIMIT_MS, none as long as ``longest_ms``."""
    s = pinger.summary()
    assert s["missed"] == 0 and s["pings"] >= 5, s
    assert s["p95_ms"] < PING_LIMIT_MS, s
    assert s["max_ms"] < longest_ms, s
    return s


def test_a_fifo_is_refused_at_once_and_listed_without_being_opened(riffd, files):
    fifo = files / "models" / "fifo.safetensors"
    with Pinger(riffd.control) as pinger, riffd.client(timeout_s=10) as c:
        err, took = refusal(c, "load_model", path=str(fifo))
        assert err.code == "bad_args" and "FIFO" in err.message and str(fifo) in err.message
        assert "keeps playing" in err.message
        assert took < 2.0
        err, _ = refusal(c, "add_voice", name="piped", model=str(fifo))
        assert err.code == "bad_args" and "FIFO" in err.message
        asked = time.monotonic()
        listed = {m["path"]: m for m in c.request("list_models")["models"]}
        assert time.monotonic() - asked < 5.0
        assert "FIFO" in listed[str(fifo)]["error"] and "skipped" in listed[str(fifo)]["error"]
        assert listed[str(files / "models" / "good.safetensors")]["family"] == "melody_lstm"
        assert listed[str(BUNDLED_MODEL)]["family"] == "melody_lstm"
        time.sleep(0.2)
    assert_pings_fast(pinger)


def test_configs_that_claim_huge_models_are_refused_before_anything_is_built(riffd, files):
    models = files / "models"
    before = peak_rss_mb(riffd.proc.pid)
    with Pinger(riffd.control) as pinger, riffd.client(timeout_s=10) as c:
        err, took = refusal(c, "load_model", path=str(models / "wide.safetensors"))
        assert err.code == "bad_args" and "parameters, over the limit of 50,000,000" in err.message
        assert "--max-model-params" in err.message and took < 2.0
        err, took = refusal(c, "load_model", path=str(models / "deep.safetensors"))
        assert err.code == "bad_args" and "'num_layers'" in err.message and took < 2.0
        err, took = refusal(c, "load_model", path=str(models / "units.safetensors"))
        assert err.code == "bad_args" and "'hidden_size'" in err.message and took < 2.0
        time.sleep(0.2)
    # a hidden size of 8000 is 1 GB of weights: none of it may be allocated
    assert peak_rss_mb(riffd.proc.pid) - before < 150
    assert_pings_fast(pinger)


def test_nan_weights_are_refused(riffd, files):
    with riffd.client(timeout_s=10) as c:
        err, _ = refusal(c, "load_model", path=str(files / "models" / "nan.safetensors"))
        assert err.code == "bad_args" and "NaN" in err.message
        assert c.status()["voices"][0]["swaps"] == 0


def test_paths_outside_the_model_folders_are_refused_without_reading_them(riffd, files):
    secret = files / "outside" / "secret.safetensors"
    paths = [str(secret), str(files / "models" / ".." / "outside" / "secret.safetensors"),
             str(files / "models" / "link.safetensors"), "/etc/shadow"]
    with riffd.client(timeout_s=10) as c:
        for path in paths:
            err, _ = refusal(c, "load_model", path=path)
            assert err.code == "bad_args", path
            assert "outside the model folders" in err.message and "--model-dir" in err.message
            assert str(files / "models") in err.message
            assert "TOPSECRET" not in err.message and str(len(SECRET)) not in err.message
        err, _ = refusal(c, "add_voice", name="x", model=str(secret))
        assert "outside the model folders" in err.message
        listed = {m["path"]: m for m in c.request("list_models")["models"]}
    link = listed[str(files / "models" / "link.safetensors")]
    assert "outside the model folders" in link["error"] and "TOPSECRET" not in str(listed)


def test_bundled_models_are_loaded_by_name_and_an_unknown_name_lists_them(riffd):
    with riffd.client(timeout_s=30) as c:
        reply = c.request("load_model", path="notewise_n2_folk")
        assert reply["family"] == "notewise_lstm"
        assert reply["model"].endswith("notewise_n2_folk.safetensors")
        added = c.request("add_voice", name="bass", model="bundled:melody_erk")
        assert added["name"] == "bass"
        err, _ = refusal(c, "load_model", path="nonesuch")
        assert err.code == "bad_args" and "no bundled model called 'nonesuch'" in err.message
        assert "gan_cnn_chorales" in err.message
        err, _ = refusal(c, "add_voice", name="x", model="nonesuch")
        assert err.code == "bad_args" and "melody_erk" in err.message
        c.request("remove_voice", name="bass")
        c.request("load_model", path="melody_erk")          # leave the voice as it was


def test_an_audio_model_for_a_midi_voice_says_where_it_belongs(riffd, files):
    with riffd.client(timeout_s=10) as c:
        err, _ = refusal(c, "load_model", path=str(files / "models" / "spectral.safetensors"))
    assert err.code == "bad_args"
    assert "audio model" in err.message and "--audio-model" in err.message
    assert "audio_" in err.message


def test_ping_answers_fast_while_a_large_model_loads(riffd, files):
    with Pinger(riffd.control, interval_s=0.005) as pinger, riffd.client(timeout_s=30) as c:
        time.sleep(0.1)
        asked = time.monotonic()
        reply = c.request("load_model", path=str(files / "models" / "big.safetensors"))
        took = time.monotonic() - asked
        during = len(pinger.times)
        assert reply["family"] == "melody_lstm"
        c.request("load_model", path=str(files / "models" / "good.safetensors"))
        counters = c.status()["counters"]
    # loaded on the control thread, the ping sent first would wait for the whole load
    s = assert_pings_fast(pinger, longest_ms=min(BLOCKED_MS, took * 1000 / 2))
    print(f"\nload of a 32 M-parameter model: {took:.2f} s; pings {s}")
    assert during >= 10         # the pinger really ran while the load did
    assert counters["internal_errors"] == 0


@pytest.mark.parametrize("name, words", [
    ("fifo.safetensors", "FIFO"),
    ("wide.safetensors", "--max-model-params"),
    ("units.safetensors", "'hidden_size'"),
    ("nan.safetensors", "NaN"),
])
def test_serve_with_a_bad_model_prints_one_line_and_exits(jack_server, files, name, words):
    log = files / f"serve-{name}.log"
    daemon = DaemonProcess(ARGS + ["--model", str(files / "models" / name), "--client-name",
                                   "riffd-bad"], log_path=log)
    try:
        with pytest.raises(RuntimeError, match="exited with status 1 before it was ready"):
            daemon.start(timeout_s=60)
    finally:
        daemon.kill()
    output = log.read_text()
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert "Traceback" not in output
    assert len(lines) == 1 and lines[0].startswith("riffd serve: ") and words in lines[0], lines
