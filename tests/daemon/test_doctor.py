"""``riffd doctor`` on this machine, for real: with the test JACK server running and with a JACK
server name that nothing runs under, a private and an open runtime folder, and a real ZeroMQ
control server answering at the default endpoint."""
import argparse
import json
import os
import re
import subprocess
import sys

from riffd.daemon import doctor
from riffd.daemon.control import ControlServer
from riffd.daemon.jack_server import jack_server_running

# riffd serve can open MIDI here without JACK only through these
OTHER_MIDI = os.path.exists(doctor.ALSA_SEQUENCER) or sys.platform == "darwin"


def line(report: str, name: str) -> str:
    """The report's line for the check ``name`` (``  OK       JACK server      ...``)."""
    return next(ln for ln in report.splitlines()
                if re.match(rf"  (OK|MISSING|N/A) +{re.escape(name)}  ", ln))


def by_name(checks) -> dict:
    return {c["name"] if isinstance(c, dict) else c.name: c for c in checks}


def test_with_the_jack_server_running_riffd_can_serve(jack_server, tmp_path):
    env = {**os.environ, "JACK_DEFAULT_SERVER": jack_server.name,
           "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "riffd.daemon", "doctor"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    jack = line(done.stdout, "JACK server")
    assert jack.split()[0] == "OK" and jack_server.name in jack
    # the dummy driver's server gives PortAudio its JACK device
    audio = line(done.stdout, "audio devices")
    assert audio.split()[0] == "OK", audio
    assert "riffd serve can run here" in done.stdout
    assert not (tmp_path / "riffd").exists()        # doctor looks; it makes nothing


def test_without_a_jack_server_it_says_what_to_start(jack_server, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"riffd-doctor-none-{os.getpid()}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    status = doctor.run(argparse.Namespace(json=True))
    report = json.loads(capsys.readouterr().out)
    jack = by_name(report["checks"])["JACK server"]
    assert jack["state"] == "MISSING" and "jackd -d dummy" in jack["fix"]
    # another server runs meanwhile (the test's): doctor asks for the one the env names
    assert jack_server_running({"JACK_DEFAULT_SERVER": jack_server.name})
    assert report["can_serve"] is OTHER_MIDI and status == (0 if OTHER_MIDI else 1)
    if not OTHER_MIDI:
        assert "a MIDI system" in report["summary"]


def test_an_open_runtime_folder_is_missing_with_its_fix(tmp_path, monkeypatch):
    folder = tmp_path / "riffd"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    check = by_name(doctor.check_control())["runtime folder"]
    assert check.state == "MISSING" and f"chmod 700 {folder}" in check.fix
    checks = [doctor.Check("MIDI", "JACK server", "OK", ""),
              doctor.Check("MIDI", "python-rtmidi", "OK", ""), check]
    assert doctor.verdict(checks)[0] is False
    folder.chmod(0o700)
    assert by_name(doctor.check_control())["runtime folder"].state == "OK"


def test_a_daemon_answering_at_the_default_endpoint_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    status = {"voices": [{"name": "main"}, {"name": "bass"}]}
    with ControlServer(lambda cmd, args: status):       # the default ipc endpoint, for real
        checks = by_name(doctor.check_control())
    assert checks["runtime folder"].state == "OK"
    assert checks["daemon"].state == "OK" and "riffd answers" in checks["daemon"].detail
    assert "main, bass" in checks["daemon"].detail
    after = by_name(doctor.check_control())["daemon"]   # the socket file stays, nobody answers
    assert after.state == "OK" and "none answers" in after.detail
