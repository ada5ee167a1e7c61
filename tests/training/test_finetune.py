"""Learning from the session: `riffd train --from-recordings` on a recording as riffd writes it.

The recording is written by the daemon's own writer (daemon/recorder.py: a tempo track, a
voice track, the ``input`` track): the player plays one lick three times; riffd's voice
plays something else, which must not be learnt. Fine-tuning the bundled melody model for a
few deterministic steps must raise the lick's log-likelihood under the model.
"""
import torch

from riffd.daemon.recorder import write_midi_file
from riffd.engine.loading import BUNDLED_MODEL, load_model
from riffd.engine.melody_representation import Note, Vocabulary
from riffd.training.cli import main as train_main
from riffd.training.finetune import log_likelihood, recorded_phrases, split_phrases

BPM = 120.0
SPB = 60.0 / BPM
# a lick in D dorian with a leap and a syncopation (beats)
LICK = [Note(62, 0, 0.5), Note(65, 0.5, 0.25), Note(69, 0.75, 0.75), Note(72, 1.5, 0.5),
        Note(71, 2, 0.25), Note(69, 2.25, 0.25), Note(65, 2.5, 0.5), Note(62, 3, 1)]
OTHER = [Note(48 + (i * 5) % 12, i * 1.0, 1.0) for i in range(12)]   # riffd's own voice


def write_session(path, takes=3):
    """A recording: the lick played ``takes`` times with 4 beats' rest in between (input),
    slightly off the grid as a player plays, and a voice track; times in seconds from 10."""
    events = []
    for take in range(takes):
        origin = 10.0 + take * 8 * SPB
        for i, n in enumerate(LICK):
            late = 0.012 * ((i % 3) - 1)                     # ± 12 ms
            events.append((origin + n.start * SPB + late, "input", [0x90, n.pitch, 80]))
            events.append((origin + (n.start + n.duration) * SPB - 0.02, "input",
                           [0x80, n.pitch, 0]))
    for n in OTHER:
        events.append((10.0 + n.start * SPB, "main", [0x90, n.pitch, 90]))
        events.append((10.0 + (n.start + n.duration) * SPB, "main", [0x80, n.pitch, 0]))
    write_midi_file(path, sorted(events, key=lambda e: e[0]), [(10.0, BPM)], 10.0)


def test_the_input_track_gives_the_played_phrases_on_the_grid(tmp_path):
    write_session(tmp_path / "take1.mid")
    phrases, files = recorded_phrases(tmp_path)
    assert files == 1 and len(phrases) == 3
    for phrase in phrases:
        assert [(n.pitch, n.start, n.duration) for n in phrase] == \
            [(n.pitch, n.start, n.duration) for n in LICK]
    # a chord keeps its top note; a long silence cuts a phrase
    chord = [Note(60, 0, 1), Note(64, 0, 1), Note(67, 0.01, 1), Note(65, 1, 1), Note(67, 2, 1),
             Note(60, 9, 1), Note(62, 10, 1), Note(64, 11, 1)]
    cut = split_phrases(chord)
    assert [[n.pitch for n in p] for p in cut] == [[67, 65, 67], [60, 62, 64]]


def test_finetuning_on_a_recorded_lick_raises_its_likelihood(tmp_path):
    recordings = tmp_path / "session"
    recordings.mkdir()
    write_session(recordings / "take1.mid")
    out = tmp_path / "mine.safetensors"
    torch.manual_seed(0)
    assert train_main(["train", "--from-recordings", str(recordings), "--steps", "12",
                       "-o", str(out), "--quiet"]) == 0

    base, meta = load_model(BUNDLED_MODEL)
    tuned, tuned_meta = load_model(out)
    vocab = Vocabulary(meta["representation"]["vocabulary"])
    assert tuned_meta["representation"]["vocabulary"] == vocab.tokens
    assert tuned_meta["finetune"]["phrases"] == 3
    before, after = log_likelihood(base, vocab, LICK), log_likelihood(tuned, vocab, LICK)
    print(f"lick log-likelihood: {before:.2f} nats before, {after:.2f} after")
    assert after > before + 1.0
    # riffd's own voice was not learnt from: its line gains far less than the lick
    other_gain = log_likelihood(tuned, vocab, OTHER) - log_likelihood(base, vocab, OTHER)
    assert other_gain < after - before


def test_a_folder_without_played_phrases_is_refused_with_what_to_do(tmp_path, capsys):
    write_midi_file(tmp_path / "only_riffd.mid",
                    [(1.0, "main", [0x90, 60, 90]), (1.5, "main", [0x80, 60, 0])],
                    [(1.0, BPM)], 1.0)
    assert train_main(["train", "--from-recordings", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no played phrases" in err and "record action=start" in err
    assert train_main(["train", "--from-recordings", str(tmp_path), "--base",
                       "spectral_default", "--quiet"]) == 2
    assert "melody" in capsys.readouterr().err
