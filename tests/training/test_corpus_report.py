"""Files a training run skips or drops are named, with the reason, in its log and in
``corpus_report.json`` beside the checkpoint: a real (tiny) melody training on a folder with
two good MIDI files, a corrupt one and an ABC tune with chords."""
from __future__ import annotations

import json
import logging

import mido
import pytest

from riffd.engine.checkpoint import read_metadata
from riffd.training.recipe import load_recipe
from riffd.training.train_melody import train

TPB = 480
CHORDY_ABC = "X:1\nT:Chordy\nM:4/4\nL:1/4\nK:C\n[CEG] D E F | G2 A2 | [FAc]4 |]\n"


def melody_midi(path, pitches):
    """A one-track MIDI file of eighth notes."""
    midi = mido.MidiFile(ticks_per_beat=TPB)
    track = mido.MidiTrack([mido.MetaMessage("track_name", name="lead")])
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=80, time=0))
        track.append(mido.Message("note_off", note=p, time=TPB // 2))
    midi.tracks.append(track)
    midi.save(path)


@pytest.fixture
def folder(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    melody_midi(songs / "good1.mid", [60, 62, 64, 65, 67, 69, 71, 72] * 4)
    melody_midi(songs / "good2.mid", [67, 65, 64, 62, 60, 62, 64, 67] * 4)
    (songs / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage, not a MIDI file")
    (songs / "chordy.abc").write_text(CHORDY_ABC)
    return songs


def run(folder, tmp_path, name):
    recipe = load_recipe("configs/melody_erk.toml", [
        f'data.corpus=["{folder}"]', "data.transpose=false", f'data.cache_dir="{tmp_path}/cache"',
        "model.hidden_size=16", "model.embed_dim=8", "train.epochs=1", "train.batch_size=4",
        "train.sequence_length=16", "train.stride=8", "train.threads=1",
        f'train.output_dir="{tmp_path / name}"'])
    return train(recipe)


def test_skipped_and_dropped_files_are_named_in_the_log_and_a_json_report(folder, tmp_path,
                                                                           caplog):
    caplog.set_level(logging.INFO)
    best = run(folder, tmp_path, "run")
    report = json.loads((tmp_path / "run" / "corpus_report.json").read_text())
    assert report["files"] == 4 and report["songs"] == 2
    assert [e["file"] for e in report["skipped"]] == [str(folder / "corrupt.mid")]
    assert "cannot be read as a MIDI file" in report["skipped"][0]["reason"]
    assert [(e["file"], e["reason"]) for e in report["dropped"]] == [
        (str(folder / "chordy.abc"), "chords")]
    assert report["dropped_by_reason"] == {"chords": 1}
    log = caplog.text
    assert "corpus: 4 files, 2 songs used; 1 files skipped, 1 pieces dropped" in log
    assert f"skipped {folder / 'corrupt.mid'}" in log and "chordy.abc" in log
    summary = read_metadata(best)["training"]
    assert summary["corpus_report"] == "corpus_report.json"
    assert summary["skipped_files"] == [str(folder / "corrupt.mid")]
    assert summary["dropped_songs"] == {"chords": 1}

    # a second run reads the encoding from the cache: the report still names the files
    caplog.clear()
    run(folder, tmp_path, "again")
    again = json.loads((tmp_path / "again" / "corpus_report.json").read_text())
    assert "using cached encoding" in caplog.text
    assert again == report


def test_the_gan_corpus_report_names_the_chorales_it_leaves_out(tmp_path, capfd):
    """A real tiny GAN run on 12 chorales, its recipe using the old corpus name: chorales
    in 3/4 give no 4/4 bars, and the report beside the checkpoint names each one."""
    from riffd.training.chorales import ChoraleSettings, load_chorale_corpus
    from riffd.training.train_gan import train as train_gan
    recipe = load_recipe("configs/gan_cnn_chorales.toml", [
        'data.corpus="bach_chorales"', "data.max_pieces=12", f'data.cache_dir="{tmp_path}/c"',
        "model.channels=8", "model.disc_hidden_size=8", "model.disc_dense1=8",
        "model.disc_dense2=8", "train.epochs=1", "train.batch_size=32", "train.eval_bars=8",
        "train.max_batches_per_epoch=2", "train.threads=1", f'train.output_dir="{tmp_path}/gan"'])
    best = train_gan(recipe)
    assert "parsing chorales" in capfd.readouterr().err             # the progress bar
    report = json.loads((tmp_path / "gan" / "corpus_report.json").read_text())
    pieces, _ = load_chorale_corpus(ChoraleSettings(12, False, f"{tmp_path}/c"))
    other_metre = [p for p in pieces if p.bar_beats != 4.0]
    assert other_metre and report["files"] == 12
    assert report["songs"] == 12 - len(other_metre)
    assert len(report["dropped"]) == len(other_metre)
    assert {(e["file"], e["piece"]) for e in report["dropped"]} == {(p.file, p.name)
                                                                   for p in other_metre}
    assert all(e["file"].startswith("bach/") and "no 16-frame bars" in e["reason"]
               for e in report["dropped"])
    assert read_metadata(best)["training"]["corpus_report"] == "corpus_report.json"


def test_old_corpus_names_are_read_with_a_note(caplog):
    from riffd.training.corpora import canonical_corpus
    caplog.set_level(logging.INFO)
    assert canonical_corpus("bach_chorales") == ["chorales"]
    assert canonical_corpus(["render:chorales", "render:essen:erk", "songs/"]) == [
        "chorales", "essen:erk", "songs/"]
    assert caplog.text.count("(the old name still works)") == 3
    recipe = load_recipe("configs/spectral_default.toml", ['data.corpus=["render:chorales"]'])
    assert canonical_corpus(recipe.data.corpus) == ["chorales"]
    from riffd.training.corpus import CorpusError, resolve_corpus
    with pytest.raises(CorpusError, match="--list-corpora"):
        resolve_corpus(["chorales"])                       # a four-part corpus for melodies


def test_the_folk_tune_collections_of_music21_are_corpora_by_name():
    """``oneills`` and ``ryans`` name music21's O'Neill's and Ryan's ABC collections, for the
    symbolic families and the spectral family's own rendering alike."""
    from riffd.training.audio_corpus import _score_paths
    from riffd.training.corpus import iter_scores, resolve_corpus
    ryans, oneills = resolve_corpus(["ryans"]), resolve_corpus(["oneills"])
    assert len(ryans) > 1000 and {p.parent.name for p in ryans} == {"ryansMammoth"}
    assert len(oneills) > 30 and {p.parent.name for p in oneills} == {"oneills1850"}
    assert {p.suffix for p in ryans + oneills} == {".abc"}
    assert _score_paths("ryans") == ryans
    tunes = list(iter_scores(oneills[0]))                # an ABC file of O'Neill's holds many
    assert len(tunes) > 20 and all(s.flatten().notes for _, s in tunes[:3])
