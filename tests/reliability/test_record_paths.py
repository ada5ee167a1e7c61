"""`record` writes only inside the record folder, and with the mode the daemon's umask gives.

A real daemon (child process, dummy-driver JACK server) is asked to record to paths that leave
its --record-dir: an absolute path elsewhere, `..`, a link inside the folder pointing out, a
planted link at the file name itself. Each is refused with bad_args naming the folder and
nothing appears outside it. A path inside the folder writes a MIDI file whose mode is
0666 less the umask the daemon started with (0640 under the 027 used here).
"""
import os
import stat

import mido
import pytest

from riffd.daemon.client import RiffdError
from riffd.daemon.process import DaemonProcess
from riffd.daemon.recorder import record_path
from tests.waiting import wait_until

FAST = ["--midi-api", "jack", "--tempo", "240", "--length", "2", "--log-level", "WARNING"]
UMASK = 0o027   # not the usual 022: the file's mode must follow the daemon's umask


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("record-paths")
    record_dir, outside = root / "recordings", root / "outside"
    record_dir.mkdir()
    outside.mkdir()
    (record_dir / "escape").symlink_to(outside, target_is_directory=True)
    (record_dir / "planted.mid").symlink_to(outside / "planted.mid")      # dangling, points out
    return record_dir, outside


@pytest.fixture(scope="module")
def riffd(jack_server, folders, tmp_path_factory):
    record_dir, _ = folders
    log = tmp_path_factory.mktemp("record-paths-log") / "serve.log"
    previous = os.umask(UMASK)     # the child inherits it
    try:
        daemon = DaemonProcess(FAST + ["--client-name", "riffd-rec", "--record-dir",
                                       str(record_dir)], log_path=log).start()
    finally:
        os.umask(previous)
    try:
        yield daemon
    finally:
        code = daemon.shutdown()
        daemon.kill()
    assert code == 0, log.read_text()


@pytest.mark.parametrize("path", [
    "OUTSIDE/abs.mid",              # absolute, elsewhere
    "../outside/dotdot.mid",
    "sub/../../outside/dotdot2.mid",
    "escape/through-link.mid",      # a folder link inside the record folder pointing out
    "planted.mid",                  # a planted file link pointing out
    "/etc/riffd-should-not-exist.mid",
])
def test_a_path_outside_the_record_folder_is_bad_args_naming_the_folder(riffd, folders, path):
    record_dir, outside = folders
    path = path.replace("OUTSIDE", str(outside))
    with riffd.client() as c:
        with pytest.raises(RiffdError) as err:
            c.request("record", action="start", path=path)
        assert err.value.code == "bad_args"
        assert str(record_dir.resolve()) in err.value.message
        assert c.status()["recording"]["on"] is False
    assert sorted(os.listdir(outside)) == []
    assert not os.path.exists("/etc/riffd-should-not-exist.mid")


def test_a_path_inside_is_written_there_with_the_umask_mode(riffd, folders):
    record_dir, outside = folders
    with riffd.client() as c:
        started = c.request("record", action="start", path="session/take1.mid")
        assert started["path"] == str(record_dir.resolve() / "session" / "take1.mid")
        sent = c.status()["counters"]["notes_sent"]
        c.start()
        assert wait_until(lambda: c.status()["counters"]["notes_sent"] >= sent + 3, 20, 0.1)
        c.stop()
        result = c.request("record", action="stop")
        absolute = c.request("record", action="start", path=str(record_dir / "take2.mid"))
        c.request("record", action="stop")
    written = record_dir / "session" / "take1.mid"
    assert result["path"] == str(written.resolve()) and result["notes"] > 0
    mode = stat.S_IMODE(written.stat().st_mode)
    assert mode == 0o666 & ~UMASK == 0o640, oct(mode)
    assert written.stat().st_uid == os.geteuid()
    notes = sum(1 for m in mido.MidiFile(str(written)) if m.type == "note_on" and m.velocity)
    assert notes == result["notes"]                          # riffd's own count
    assert absolute["path"] == str(record_dir.resolve() / "take2.mid")
    assert stat.S_IMODE((record_dir / "take2.mid").stat().st_mode) == 0o640
    assert sorted(os.listdir(outside)) == []


def test_without_a_path_the_recording_goes_into_the_folder(riffd, folders):
    record_dir, _ = folders
    with riffd.client() as c:
        path = c.request("record", action="start")["path"]
        c.request("record", action="stop")
    assert os.path.dirname(path) == str(record_dir.resolve())
    assert os.path.basename(path).startswith("riffd-") and os.path.exists(path)


def test_record_path_resolves_relative_names_and_refuses_escapes(tmp_path):
    base = tmp_path / "rec"
    base.mkdir()
    assert record_path(base, "a/b.mid", "d.mid") == base.resolve() / "a" / "b.mid"
    assert record_path(base, None, "d.mid") == base.resolve() / "d.mid"
    assert record_path(base, str(base / "x.mid"), "d.mid") == base.resolve() / "x.mid"
    for bad in ("..", "../x.mid", str(tmp_path / "x.mid"), "/x.mid", "."):
        with pytest.raises(ValueError, match="outside the record folder"):
            record_path(base, bad, "d.mid")
