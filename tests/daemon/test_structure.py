"""Structure through the daemon: a continuous voice with ``repeat`` brings its bars back.

riffd runs as a child process on the dummy-driver JACK server, plays on by itself at 300 BPM
with ``repeat`` = 1 and ``motif_bars`` = 1 (every bar after the first one recalls a
remembered bar, sometimes moved a scale step or two), and records what it played with
``record``. The recording (riffd's own record: notes on the beats it placed them on) is cut
into bars from the first note; a bar "comes back" when an earlier bar has the same rhythm
and the same melodic contour (a move within the scale keeps both). With ``repeat`` = 0 the
same run is the model alone. Judged with margins, never on timing.
"""
import time

import mido
import pytest

from riffd.daemon.process import DaemonProcess

ARGS = ["--midi-api", "jack", "--client-name", "riffd-structure", "--tempo", "300",
        "--mode", "continuous", "--rng-seed", "2", "--log-level", "WARNING"]   # same draws
PLAY_BARS = 7          # 4/4 bars played per run (0.8 s each at 300 BPM)


@pytest.fixture(scope="module")
def riffd(jack_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("riffd-structure")
    with DaemonProcess(ARGS + ["--record-dir", str(folder)],
                       log_path=folder / "serve.log") as daemon:
        yield daemon, folder
    assert daemon.proc.returncode == 0, (folder / "serve.log").read_text()


def play_and_record(riffd, name: str, **controls) -> list[tuple[float, int]]:
    """Play on for PLAY_BARS bars with ``controls``; (start beat, pitch) of each note riffd
    recorded on its voice's track, beats from the file's start."""
    daemon, folder = riffd
    with daemon.client() as c:
        c.set(**controls)
        c.request("record", action="start", path=name)
        c.start()
        tempo = c.status()["clock"]["tempo"]
        time.sleep(PLAY_BARS * 4 * 60.0 / tempo + 0.5)
        c.stop()
        time.sleep(0.3)
        c.request("record", action="stop")
    mid = mido.MidiFile(str(folder / name))
    track = next(t for t in mid.tracks if any(m.is_meta and m.type == "track_name"
                                              and m.name == "main" for m in t))
    tick, notes = 0, []
    for m in track:
        tick += m.time
        if m.type == "note_on" and m.velocity > 0:
            notes.append((round(tick / mid.ticks_per_beat * 4) / 4, m.note))   # 16th grid
    return notes


def bar_shapes(notes: list[tuple[float, int]]) -> list[tuple]:
    """Per 4-beat bar from the first note: (onsets in the bar, contour: -1/0/1 per move)."""
    origin, bars = notes[0][0], {}
    for beat, pitch in notes:
        bars.setdefault(int((beat - origin) // 4), []).append((beat - origin, pitch))
    shapes = []
    for index in range(max(bars) + 1):
        bar = bars.get(index, [])
        onsets = tuple(b - 4 * index for b, _ in bar)
        contour = tuple((q > p) - (q < p) for (_, p), (_, q) in zip(bar, bar[1:]))
        shapes.append((onsets, contour))
    return shapes


def returning(shapes: list[tuple]) -> int:
    """Bars (after the first) whose shape an earlier bar had; non-empty bars only."""
    return sum(1 for i, s in enumerate(shapes) if i and s[0] and s in shapes[:i])


def test_repeat_brings_bars_back_and_zero_leaves_the_model_alone(riffd):
    notes = play_and_record(riffd, "repeat.mid", repeat=1.0, motif_bars=1)
    shapes = bar_shapes(notes)[:-1]                 # the last bar may be cut by the stop
    back = returning(shapes)
    print(f"repeat 1: {len(notes)} notes, {len(shapes)} bars, {back} came back")
    assert len(shapes) >= PLAY_BARS - 3
    assert back >= 0.6 * (len(shapes) - 1)

    plain = play_and_record(riffd, "plain.mid", repeat=0.0, motif_bars=4)
    plain_shapes = bar_shapes(plain)[:-1]
    plain_back = returning(plain_shapes)
    print(f"repeat 0: {len(plain)} notes, {len(plain_shapes)} bars, {plain_back} came back")
    assert len(plain_shapes) >= PLAY_BARS - 3
    assert plain_back < back
