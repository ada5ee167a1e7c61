"""OSC beside ZeroMQ: a real ``riffd serve --osc`` child process on the test JACK server, driven
over real UDP sockets on 127.0.0.1, its state read back over both OSC and ZeroMQ."""
import json
import random
import socket
import struct
import subprocess
import sys

import pytest

from riffd.daemon.client import RiffdError
from riffd.daemon.osc import OscEndpointError, OscServer, check_endpoint
from riffd.daemon.osc_client import OscClient, OscError, build
from riffd.daemon.process import DaemonProcess
from riffd.daemon.serve_config import load_serve_config
from tests.waiting import wait_until

FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--silence", "0.4",
        "--log-level", "WARNING"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("riffd-osc") / "serve.log"
    url = f"udp://127.0.0.1:{free_udp_port()}"
    with DaemonProcess(FAST + ["--osc", url], log_path=log) as daemon:
        daemon.osc_url = url
        yield daemon
    assert daemon.proc.returncode == 0, log.read_text()


@pytest.fixture
def osc(riffd):
    with OscClient(riffd.osc_url) as client:
        yield client
    with riffd.client() as c:                   # put back what a test changed
        c.stop()
        c.set(tempo=240, temperature=1.0)


def zmq_error(riffd, cmd, **args) -> tuple[str, str]:
    with riffd.client() as c:
        with pytest.raises(RiffdError) as err:
            c.request(cmd, **args)
    return err.value.code, err.value.message


def test_commands_change_the_daemons_state(riffd, osc):
    assert osc.call("ping")["pong"] is True
    assert osc.call("set", "tempo", 100.0) == {"changed": ["tempo"]}
    assert osc.call("status")["tempo"] == 100.0
    with riffd.client() as c:                   # the same daemon, seen over ZeroMQ
        status = c.status()
    assert status["tempo"] == 100.0
    assert status["osc"]["on"] is True and status["osc"]["address"] == riffd.osc_url
    # Pd sends every number as a 32-bit float: 96.0 for an int argument, 0.8 arrives as 0.8
    assert osc.call("clock", "beats_per_bar", 3.0)["clock"]["beats_per_bar"] == 3
    osc.call("clock", "beats_per_bar", 4)


def test_a_voice_address_sets_that_voice(riffd, osc):
    assert osc.call("set", "temperature", 0.8, "velocity", 70, voice="main")["changed"] == [
        "temperature", "velocity"]
    with riffd.client() as c:
        settings = c.status()["voices"][0]["settings"]
    assert settings["temperature"] == 0.8 and settings["velocity"] == 70
    osc.call("set", '{"velocity": 90}', voice="main")      # the JSON form
    assert osc.call("status")["voices"][0]["settings"]["velocity"] == 90


def test_bad_messages_get_the_zeromq_errors_and_the_server_keeps_answering(riffd, osc):
    cases = [(("set", "tempo", 900), "set", {"tempo": 900}),
             (("set", "tmpo", 100), "set", {"tmpo": 100}),
             (("set",), "set", {}),
             (("seed", "notes", 60, 0, 0), "seed", {"notes": [{"pitch": 60, "start": 0,
                                                                "duration": 0}]})]
    for osc_args, cmd, zmq_args in cases:
        with pytest.raises(OscError) as err:
            osc.call(*osc_args)
        assert (err.value.code, err.value.message) == zmq_error(riffd, cmd, **zmq_args)
    with pytest.raises(OscError) as err:
        osc.call("start", voice="nobody")
    assert (err.value.code, err.value.message) == zmq_error(riffd, "start", voice="nobody")
    with pytest.raises(OscError) as err:
        osc.call("seed", "notes", 60, 0)                   # not whole pitch/start/duration
    assert err.value.code == "bad_args" and "3 numbers a note" in err.value.message
    osc.send("/riffd/nope")
    address, params = osc.reply()
    assert address == "/riffd/error" and params[2] == "unknown_command"
    osc.send("/riffd/status", "id", 42)                    # the id comes back
    address, params = osc.reply()
    assert address == "/riffd/reply" and params[:2] == ["status", 42]
    assert osc.call("ping")["pong"] is True


def test_a_seed_is_answered_with_note_events_over_osc(riffd, osc):
    assert osc.call("subscribe") == {"subscribed": True, "subscribers": 1}
    try:
        result = osc.call("seed", "notes", 60, 0, 0.5, 62, 0.5, 0.5, 64, 1, 0.5, 65, 1.5, 0.5,
                          67, 2, 1, "play", True)
        assert result["notes"] == 5 and result["playing"] is True
        note_ons = []

        def heard():
            got = osc.receive(0.5)
            if got is not None:
                osc.events.append(got)
            note_ons[:] = [p for a, p in osc.events if a == "/riffd/event/note_on"]
            return len(note_ons) >= 3
        assert wait_until(heard, 15), osc.events[:5]
        phrase = next(json.loads(p[0]) for a, p in osc.events if a == "/riffd/event/phrase")
        assert [n["pitch"] for n in phrase["notes"]] == [60, 62, 64, 65, 67]
        for pitch, velocity, channel, voice in note_ons:
            assert 0 <= pitch <= 127 and 1 <= velocity <= 127 and channel == 1
            assert voice == "main"
    finally:
        osc.call("stop")
        assert osc.call("unsubscribe")["subscribed"] is False


def test_slow_commands_answer_from_the_worker(riffd, osc):
    osc.send("/riffd/list_models", "id", "lm")
    osc.send("/riffd/ping", "id", "p")          # served while list_models may still run
    replies = {}
    while len(replies) < 2:
        address, params = osc.reply(10)
        replies[params[1]] = (address, params)
    assert replies["p"][0] == "/riffd/reply"
    assert replies["lm"][0] == "/riffd/reply"
    assert isinstance(json.loads(replies["lm"][1][2])["models"], list)


def fuzz_packets(rng: random.Random) -> list[bytes]:
    """Malformed OSC: random bytes, valid messages cut short or with bytes flipped, unknown type
    tags, bundles with lying sizes or nested past the limit, a huge packet, deep arrays."""
    good = [build("/riffd/set", "tempo", 120.0), build("/riffd/seed", "notes", 60, 0.0, 1.0),
            build("/riffd/voice/main/set", "temperature", 0.5), build("/riffd/status")]
    packets = [b"", b"\x00" * 8, b"/riffd/set\x00\x00,x\x00\x00", b"/riffd/set\x00\x00,iii\x00",
               b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", 4000) + good[0],
               b"#bundle\x00" * 2,
               build("/riffd/set", *(["tempo", 1.0] * 4000)),            # ~64 KB
               b"/riffd/set\x00\x00," + b"[" * 3000 + b"\x00" * (4 - (3002 % 4)),
               ]
    inner = good[3]
    for _ in range(12):                                                  # 12 bundles deep
        inner = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", len(inner)) + inner
    packets.append(inner)
    for _ in range(150):
        base = bytearray(rng.choice(good))
        kind = rng.randrange(3)
        if kind == 0:
            base = base[:rng.randrange(1, len(base))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                base[rng.randrange(len(base))] = rng.randrange(256)
        else:
            base = bytearray(rng.randbytes(rng.randrange(1, 200)))
        packets.append(bytes(base))
    return packets


def test_malformed_packets_are_answered_and_counted_and_never_stop_the_server(riffd, osc):
    with riffd.client() as c:
        before = c.status()["osc"]
    packets = fuzz_packets(random.Random(10))
    errors = 0
    for i, packet in enumerate(packets):
        osc.send_raw(packet)
        osc.send("/riffd/ping", "id", i)        # every packet is followed by a ping...
        while True:                             # ...that is answered after its replies
            address, params = osc.reply(5)
            if address == "/riffd/reply" and params[:2] == ["ping", i]:
                break
            if address == "/riffd/error":
                errors += 1
                assert params[2] in ("not_osc", "bad_args", "unknown_command",
                                     "bad_version", "unavailable"), params
    osc.call("set", "tempo", 240)
    with riffd.client() as c:
        after = c.status()["osc"]
    assert after["malformed"] - before["malformed"] >= 10      # the hand-made bad ones at least
    assert after["errors"] - before["errors"] == errors
    assert after["internal_errors"] == 0 and riffd.proc.poll() is None


def test_a_non_loopback_osc_address_is_refused_without_the_flag():
    result = subprocess.run([sys.executable, "-m", "riffd.daemon", "serve", "--osc",
                             "udp://0.0.0.0:9000", "--midi-api", "jack"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no authentication" in result.stderr and "--osc-allow-remote" in result.stderr


def test_replies_and_events_go_to_the_configured_targets():
    """--osc-reply and --osc-events: real UDP sockets, the daemon's router replaced by a
    recorder of what reached it."""
    seen = []
    with OscClient("udp://127.0.0.1:9") as replies, OscClient("udp://127.0.0.1:9") as events:
        reply_url = "udp://127.0.0.1:%d" % replies.sock.getsockname()[1]
        events_url = "udp://127.0.0.1:%d" % events.sock.getsockname()[1]
        server = OscServer(lambda cmd, args: seen.append((cmd, args)) or {"ok": 1},
                           "udp://127.0.0.1:0", reply_to=reply_url, events_to=events_url)
        with server, OscClient(server.address) as sender:
            sender.send("/riffd/voice/bass/start")
            assert replies.reply(5) == ("/riffd/reply", ["start", "", '{"ok":1}'])
            assert sender.receive(0.2) is None              # nothing back to the sender
            server.publish("note_on", {"pitch": 61, "velocity": 80, "channel": 2,
                                       "voice": "bass", "at": 0.0})
            server.publish("state", {"state": "playing"})
            assert events.receive(5) == ("/riffd/event/note_on", [61, 80, 2, "bass"])
            address, (text,) = events.receive(5)
            assert address == "/riffd/event/state"
            assert json.loads(text)["state"] == "playing"
            assert server.status()["events_sent"] == 2
    assert seen == [("start", {"voice": "bass"})]


def test_exposure_rules():
    for url in ("udp://127.0.0.1:9000", "udp://localhost:9000", "udp://[::1]:9000"):
        assert check_endpoint(url)[1] == 9000
    with pytest.raises(OscEndpointError, match="no authentication"):
        check_endpoint("udp://0.0.0.0:9000")
    assert check_endpoint("udp://0.0.0.0:9000", allow_remote=True) == ("0.0.0.0", 9000)
    for bad in ("tcp://127.0.0.1:9000", "udp://127.0.0.1", "127.0.0.1:9000", "udp://:9000"):
        with pytest.raises(OscEndpointError, match="udp://127.0.0.1:PORT"):
            check_endpoint(bad)


def test_serve_config_keys(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text('[serve]\nosc = "udp://127.0.0.1:9000"\nosc_events = "udp://127.0.0.1:9001"\n'
                    'osc_reply = ""\nosc_allow_remote = false\n')
    cfg = load_serve_config(path)
    assert (cfg.osc, cfg.osc_events, cfg.osc_allow_remote) == (
        "udp://127.0.0.1:9000", "udp://127.0.0.1:9001", False)
