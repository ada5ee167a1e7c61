"""Listening where other machines can reach riffd needs CURVE and an allow-list of client keys.

`riffd serve --control tcp://0.0.0.0:PORT` with no allowed key exits non-zero and says how to set
one up. With a key made by `riffd keys --new-client`, a client holding that key (its own config
folder, as on another machine) drives the daemon and hears its events; a client with any other
key gets nothing until `riffd keys --allow` admits it. The daemon binds 0.0.0.0 but every client
here connects through 127.0.0.1: no test traffic leaves the machine.
"""
import itertools
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import zmq

from riffd.daemon import auth
from riffd.daemon.client import RiffdClient, RiffdUnavailable
from riffd.daemon.process import DaemonProcess

FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--log-level", "WARNING"]


def free_port_pair() -> int:
    """A port P on all interfaces with P + 1 free too (control on P, events on P + 1)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("0.0.0.0", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("0.0.0.0", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two free neighbouring TCP ports")


def riffd(*argv, config_home, timeout=60):
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    return subprocess.run([sys.executable, "-m", "riffd.daemon", *argv], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("option", ["--control", "--events"])
def test_a_reachable_bind_without_allowed_keys_is_refused_with_the_fix(tmp_path, option):
    port = free_port_pair()
    endpoints = {"--control": f"tcp://127.0.0.1:{port}", "--events": f"tcp://127.0.0.1:{port + 1}"}
    endpoints[option] = endpoints[option].replace("127.0.0.1", "0.0.0.0")
    done = riffd("serve", "--midi-api", "jack", "--control", endpoints["--control"],
                 "--events", endpoints["--events"], config_home=tmp_path / "config")
    print(f"riffd serve {option} {endpoints[option]} with no allowed key: exit "
          f"{done.returncode}: {done.stderr.strip()}")
    assert done.returncode != 0
    assert f"refusing to listen on {endpoints[option]}" in done.stderr
    assert "riffd keys --new-client NAME" in done.stderr and "--allow" in done.stderr
    assert option in done.stderr


@pytest.fixture(scope="module")
def offhost(jack_server, tmp_path_factory):
    """A daemon bound to 0.0.0.0 that allows one client key, made for 'laptop'."""
    root = tmp_path_factory.mktemp("offhost")
    here, laptop = root / "here", root / "laptop"
    made = riffd("keys", "--new-client", "laptop", "--out", str(laptop / "riffd"),
                 config_home=here)
    assert made.returncode == 0, made.stderr
    port = free_port_pair()
    daemon = DaemonProcess(
        FAST + ["--client-name", "riffd-offhost", "--control", f"tcp://0.0.0.0:{port}",
                "--events", f"tcp://0.0.0.0:{port + 1}"],
        env={"XDG_CONFIG_HOME": str(here)}, log_path=root / "serve.log",
        control=f"tcp://127.0.0.1:{port}", events=f"tcp://127.0.0.1:{port + 1}",
        keys=auth.client_keys(laptop / "riffd"))
    daemon.start()
    daemon.here, daemon.laptop, daemon.made = here, laptop, made.stdout
    try:
        yield daemon
    finally:
        code = daemon.shutdown()
        daemon.kill()
    assert code == 0, (root / "serve.log").read_text()


def test_new_client_prints_the_pair_and_allows_it(offhost):
    keys = auth.client_keys(offhost.laptop / "riffd")
    assert keys.public.decode() in offhost.made and keys.secret.decode() in offhost.made
    assert auth.authorized_keys(offhost.here / "riffd") == {keys.public: "laptop"}
    assert keys.server_public == auth.public_key("server", offhost.here / "riffd")
    mode = os.stat(offhost.laptop / "riffd" / "client.key_secret").st_mode & 0o777
    assert mode == 0o600
    listed = riffd("keys", config_home=offhost.here)
    assert listed.returncode == 0 and f"{keys.public.decode()}  laptop" in listed.stdout


def test_the_allowed_client_drives_the_daemon_and_hears_its_events(offhost):
    with offhost.client() as c:
        assert c.ping()["pong"] is True
        c.start()
        try:   # the first 4 notes (the wait ends if none comes for 5 s)
            events = list(itertools.islice(c.subscribe(offhost.events, events=["note_on"],
                                                       timeout_s=5), 4))
        finally:
            c.stop()
    assert len(events) == 4 and all(e["event"] == "note_on" for e in events)
    # `riffd ctl` on "laptop" finds the endpoint's keys in its own config folder
    status = riffd("ctl", "--endpoint", offhost.control, "status", config_home=offhost.laptop)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["playing"] is False


def test_ctl_events_over_tcp_uses_the_next_port_and_the_keys(offhost):
    env = {**os.environ, "XDG_CONFIG_HOME": str(offhost.laptop)}
    watcher = subprocess.Popen([sys.executable, "-m", "riffd.daemon", "ctl", "--endpoint",
                                offhost.control, "events", "note_on", "--count", "2"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with offhost.client() as c:
            time.sleep(1.0)                 # the watcher connects and subscribes
            c.start()
            out, err = watcher.communicate(timeout=30)
            c.stop()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all(json.loads(ln)["event"] == "note_on" for ln in lines)


def test_any_other_key_gets_nothing_until_it_is_allowed(offhost):
    public, secret = zmq.curve_keypair()
    server = auth.public_key("server", offhost.here / "riffd")
    stranger = auth.ClientKeys(public, secret, server)
    with RiffdClient(offhost.control, timeout_s=1.0, keys=stranger) as c, \
            offhost.client() as owner:
        with pytest.raises(RiffdUnavailable) as err:
            c.ping()
        assert "authorized_keys" in str(err.value)
        owner.start()
        try:
            assert list(c.subscribe(offhost.events, timeout_s=1.5)) == []  # while notes play
            heard = list(itertools.islice(owner.subscribe(offhost.events, ["note_on"],
                                                          timeout_s=5), 2))
        finally:
            owner.stop()
        assert len(heard) == 2
        allowed = riffd("keys", "--allow", public.decode(), "--name", "tablet",
                        config_home=offhost.here)
        assert allowed.returncode == 0, allowed.stderr
        assert c.ping()["pong"] is True          # no restart: the allow-list is read per client
    log = (offhost.log_path).read_text()
    assert f"refused a client with key {public.decode()}" in log


def test_which_endpoints_count_as_reachable_and_where_events_are():
    assert auth.is_loopback("tcp://127.0.0.1:5555") and auth.is_loopback("tcp://[::1]:5555")
    assert auth.is_loopback("tcp://localhost:5555")
    for endpoint in ("tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.20:5555",
                     "tcp://studio.local:5555", "tcp://eth0:5555"):
        assert not auth.is_loopback(endpoint), endpoint
    assert auth.events_endpoint_for("tcp://studio.local:5555") == "tcp://studio.local:5556"
    assert auth.events_endpoint_for("ipc:///run/user/1000/riffd/control") == \
        "ipc:///run/user/1000/riffd/events"


def test_a_secret_key_others_can_read_is_refused(tmp_path):
    folder = tmp_path / "riffd"
    auth.key_pair("server", folder)
    os.chmod(folder / "server.key_secret", 0o644)
    with pytest.raises(auth.SecurityError) as err:
        auth.key_pair("server", folder)
    assert f"chmod 600 {folder / 'server.key_secret'}" in str(err.value)
