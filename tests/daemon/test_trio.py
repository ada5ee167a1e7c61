"""The trio out of the box (configs/trio.toml): a phrase played into riffd:in is answered by
melody, chords and bass from the bundled models, heard at a separate JACK client.

riffd runs as a child process on the dummy-driver JACK server; the phrase (D major) is played
and the answer recorded by a MidiPeer. Checked on the wire: the chords voice sounds at least 3
notes at once, the bass plays below the melody, the answer keeps to the phrase's scale and
no note is left hanging (riffd's own record, and the wire unless JACK skipped cycles: then
as many notes as it skipped may be lost inside JACK).
"""
import statistics
import time
from pathlib import Path

from riffd.daemon.demo import most_simultaneous, split_by_channel
from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.process import DaemonProcess
from riffd.daemon.recording import pair_notes
from tests.waiting import ANSWER_WAIT_S, wait_until

TRIO = Path(__file__).parents[2] / "configs" / "trio.toml"
NAME = "riffd-trio"
ARGS = ["--midi-api", "jack", "--config", str(TRIO), "--client-name", NAME, "--tempo", "160",
        "--silence", "0.4", "--no-clock-out", "--rng-seed", "3",             # 4 bars: 6 s
        "--log-level", "WARNING"]           # (the same draws each run: judged on the models)
D_MAJOR = {2, 4, 6, 7, 9, 11, 1}                            # pitch classes of D major
PHRASE = [(62, 0.0), (64, 0.5), (66, 1.0), (67, 1.5), (69, 2.0), (71, 2.5), (73, 3.0),
          (74, 3.5), (69, 4.0), (66, 5.0), (62, 6.0)]      # (pitch, beat), each 0.45 beats


def test_the_trio_answers_a_phrase_with_melody_chords_and_bass_in_its_key(jack_server,
                                                                          tmp_path):
    log = tmp_path / "serve.log"
    with DaemonProcess(ARGS, log_path=log) as riffd, MidiPeer("trio-listener") as peer:
        peer.connect(f"{NAME}:out", f"{NAME}:in")
        with riffd.client() as c:
            voices = [v["name"] for v in c.status()["voices"]]
            spb = 60.0 / c.status()["clock"]["tempo"]
        assert voices == ["melody", "chords", "bass"], voices
        played = [(start * spb, [0x90, pitch, 90]) for pitch, start in PHRASE]
        played += [((start + 0.45) * spb, [0x80, pitch, 0]) for pitch, start in PHRASE]
        t0 = peer.play(sorted(played, key=lambda m: m[0]))
        with riffd.client() as c:
            assert wait_until(lambda: c.status()["playing"], ANSWER_WAIT_S), \
                "the trio never answered"
            assert wait_until(lambda: not c.status()["playing"], 20), "the answer never ended"
            assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 3)
            time.sleep(0.3)                        # the last note-offs reach the listener
            status = c.status()
            keys = {v["name"]: v["key"] for v in status["voices"]}
        received = [(r.seconds, r.message) for r in peer.received() if r.monotonic > t0]
    assert riffd.proc.returncode == 0, log.read_text()

    counters = status["counters"]
    assert counters["sounding"] == 0                                 # riffd's own record
    missed = counters["xruns"] + counters["missed_cycles"]
    parts, wire_hanging = {}, 0
    for channel, notes in split_by_channel(received).items():
        parts[channel], left = pair_notes(notes)
        wire_hanging += left
    assert wire_hanging <= missed, (wire_hanging, counters)
    melody, chords, bass = (parts.get(ch, []) for ch in (1, 2, 3))
    why = {ch: sorted(n.pitch for n in notes) for ch, notes in parts.items()}
    assert len(melody) >= 4 and len(bass) >= 2 and len(chords) >= 3, why

    assert most_simultaneous(chords) >= 3, why                 # chords, not single notes
    assert statistics.median(n.pitch for n in bass) + 12 <= statistics.median(
        n.pitch for n in melody), why                          # a bass line under the melody
    assert max(n.pitch for n in bass) <= 52, why               # trio.toml: E1-E3

    assert set(keys.values()) == {"D major"}, keys          # every voice read the phrase's key
    answer = melody + chords + bass
    in_key = sum(n.pitch % 12 in D_MAJOR for n in answer) / len(answer)
    assert in_key >= 0.95, (in_key, why)                    # ... and answers in it
