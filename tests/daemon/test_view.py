"""``riffd view`` as a musician meets it: the real Textual app in a tmux pane, against a real
daemon on the test JACK server, with a separate JACK client playing a phrase into riffd:in.
What the pane shows is read back with ``capture-pane``; what the keys did is checked with the
protocol's ``status``."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from riffd.daemon.view.roll import PLAN, PLAYED, SENT
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# a 1 s lookahead: the voice generates (and plans) about two beats ahead at 120 BPM
SERVE = ["--midi-api", "jack", "--tempo", "120", "--length", "2", "--silence", "0.3",
         "--log-level", "WARNING"]
ROLL_ROW = re.compile(r"^\s*[A-G]#?-?\d+ ")      # a piano-roll row: its pitch label first


def roll_rows(pane: str) -> list[str]:
    return [line for line in pane.splitlines() if ROLL_ROW.match(line)]


class Tmux:
    """A private tmux server (its own socket), killed at the end."""

    def __init__(self):
        self.socket = f"riffd-test-{os.getpid()}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", "view")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)
        folder = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}")
        try:                                   # tmux leaves its socket file behind
            os.unlink(os.path.join(folder, self.socket))
        except FileNotFoundError:
            pass


@pytest.fixture
def daemon(jack_server, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text("[serve]\nlookahead_s = 1.0\n")
    with DaemonProcess([*SERVE, "--config", str(config)],
                       log_path=tmp_path / "serve.log") as d:
        yield d


@pytest.fixture
def tmux():
    assert shutil.which("tmux"), "tmux is missing: apt-get install tmux"
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def voice_status(daemon) -> dict:
    with daemon.client() as c:
        return c.status()["voices"][0]


def test_view_shows_notes_and_plan_and_keys_drive_the_daemon(daemon, tmux):
    command = (f"cd {ROOT} && exec {sys.executable} -m riffd.daemon.view "
               f"--endpoint {daemon.control} --events-endpoint {daemon.events}")
    tmux("new-session", "-d", "-x", "160", "-y", "48", "-s", "view", command)
    seen: dict[str, str] = {}

    def shows(name: str, test) -> bool:
        pane = tmux.pane()
        if test(pane):
            seen[name] = pane
            return True
        return False

    assert wait_until(lambda: shows("connected", lambda p: "BPM" in p and " main " in p), 20), \
        tmux.pane()

    # a phrase played into riffd:in: the view draws it, and riffd's answer
    with MidiPeer(f"view-peer-{time.monotonic_ns()}") as peer:
        peer.connect("riffd:out", "riffd:in")
        messages = []
        for i, pitch in enumerate((62, 66, 69, 74)):
            messages += [(i * 0.2, [0x90, pitch, 90]), (i * 0.2 + 0.18, [0x80, pitch, 0])]
        peer.play(messages)
        assert wait_until(lambda: shows("played", lambda p: any(
            PLAYED in row for row in roll_rows(p))), 15), tmux.pane()
        assert wait_until(lambda: shows("sent", lambda p: any(
            SENT in row for row in roll_rows(p))), 15), tmux.pane()

    # `s` starts the selected voice: the daemon says so
    tmux("send-keys", "-t", "view", "s")
    assert wait_until(lambda: voice_status(daemon)["state"] == "playing", 10, every=0.1)
    # the plan: drawn ahead of the playhead, and named in words
    assert wait_until(lambda: shows("plan", lambda p: any(
        PLAN in row.split("│", 1)[-1] for row in roll_rows(p) if "│" in row)
        and re.search(r"main: next: [A-G]#?-?\d+ at \d+\.\d\.\d", p)), 15), tmux.pane()
    # `T` raises the temperature by 0.1, `x` stops the voice
    tmux("send-keys", "-t", "view", "T")
    assert wait_until(lambda: voice_status(daemon)["settings"]["temperature"] == 1.1, 10,
                      every=0.1), voice_status(daemon)
    tmux("send-keys", "-t", "view", "x")
    assert wait_until(lambda: voice_status(daemon)["state"] == "idle", 10, every=0.1)
    assert wait_until(lambda: "temp 1.10" in tmux.pane(), 10), tmux.pane()

    # the daemon goes away: the view says so plainly, and keeps running
    assert daemon.shutdown() == 0
    assert wait_until(lambda: shows("gone", lambda p: "not connected — is riffd serve running?"
                                    in p), 15), tmux.pane()
    tmux("send-keys", "-t", "view", "q")
    assert wait_until(lambda: "view" not in subprocess.run(
        ["tmux", "-L", tmux.socket, "list-sessions"], capture_output=True, text=True).stdout,
        10), "q did not quit the view"


def test_roll_draws_the_past_left_of_the_playhead_and_the_plan_right_of_it():
    from riffd.daemon.view.roll import LABEL_WIDTH, render_roll
    from riffd.daemon.view.state import RollNote, VoiceView

    voice = VoiceView("main", sent=[RollNote(60, 8.0, 9.0)], played=[RollNote(64, 6.0, 7.0)],
                      plan=[RollNote(67, 10.5, 11.0)])
    lines = [line.plain for line in render_roll(voice, now_beat=10.0, width=45, height=12)]
    rows = {line[:LABEL_WIDTH].strip(): line[LABEL_WIDTH:] for line in lines}
    assert len(rows) == 12 and set(rows) >= {"C4", "E4", "G4"}   # an octave C4..B4
    playhead = rows["D4"].index("│")                 # 4 columns a beat: beat 10 is column 30
    assert playhead == 30
    assert rows["C4"].index(SENT) == playhead - 8 and rows["C4"].count(SENT) == 4
    assert rows["E4"].index(PLAYED) == playhead - 16 and rows["E4"].count(PLAYED) == 4
    assert rows["G4"].index(PLAN) == playhead + 2 and rows["G4"].count(PLAN) == 2
