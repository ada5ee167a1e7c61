"""Modes of real folk tunes (music21's corpus): the key finder names them, and answers to
them stay in their scale.

The ground truth is the key each ABC file declares (``K:Ador``, ``K:Dmix``...).
"""
import os
import re
from pathlib import Path

import pytest
import torch

from riffd.engine.key_finding import MODES, Key, estimate_key
from riffd.engine.loading import load_generator
from riffd.engine.melody_generator import Constraints
from riffd.engine.melody_representation import Note

ABC_MODES = {"dor": "dorian", "mix": "mixolydian"}
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@pytest.fixture(scope="module")
def music21_tmp(tmp_path_factory):
    os.environ.setdefault("TMPDIR", str(tmp_path_factory.mktemp("music21")))


def modal_tunes(collection: str, limit: int | None = None) -> list[tuple[str, Key, list[Note]]]:
    """(title, declared key, notes in beats) of the dorian and mixolydian tunes of a corpus
    collection, in file order."""
    import music21
    from music21 import converter
    root = Path(music21.__file__).parent / "corpus" / collection
    tunes = []
    for path in sorted(root.glob("*.abc")):
        for chunk in re.split(r"\n(?=X:)", path.read_text(encoding="latin-1")):
            m = re.search(r"^K:\s*([A-G][b#]?)\s*([A-Za-z]+)\s*$", chunk, re.M)
            if not m or m[1] not in NAMES or m[2].lower()[:3] not in ABC_MODES:
                continue
            score = converter.parse(chunk, format="abc")
            notes = [Note(int(n.pitch.midi), float(n.offset), float(n.quarterLength))
                     for n in score.flatten().notes if n.isNote]
            title = re.search(r"^T:\s*(.*)$", chunk, re.M)
            tunes.append((title[1] if title else path.name,
                          Key(NAMES.index(m[1]), ABC_MODES[m[2].lower()[:3]]), notes))
            if limit and len(tunes) >= limit:
                return tunes
    return tunes


@pytest.fixture(scope="module")
def ryans(music21_tmp):
    return modal_tunes("ryansMammoth")


def test_the_modes_are_real_scales():
    for mode, steps in MODES.items():
        assert len(steps) == 7 and steps[0] == 0 and list(steps) == sorted(steps), mode


def test_white_key_d_tune_is_d_dorian_not_d_major():
    # the tune of the issue: D, white keys only, minor third
    line = [62, 64, 65, 67, 69, 67, 65, 64, 62, 60, 62, 64, 65, 69, 71, 69, 67, 65, 64, 62]
    notes = [Note(p, i * 0.5, 0.5 if i < len(line) - 1 else 2.0) for i, p in enumerate(line)]
    key = estimate_key(notes)
    assert key == Key(2, "dorian"), key.name
    assert key.pitch_classes == {0, 2, 4, 5, 7, 9, 11}           # no F#, no Bb
    assert key.shift_to_reference() == 0                         # white keys stay white


@pytest.mark.parametrize("tonic,mode,shift", [(0, "major", 0), (9, "minor", 0), (4, "dorian", -2),
                                              (9, "mixolydian", -2), (7, "minor", 2),
                                              (11, "phrygian", 5)])
def test_every_mode_moves_onto_the_white_keys(tonic, mode, shift):
    key = Key(tonic, mode)
    assert key.shift_to_reference() == shift
    assert {(p + shift) % 12 for p in key.pitch_classes} == {0, 2, 4, 5, 7, 9, 11}


def test_a_chromatic_phrase_gets_a_scale_that_covers_it():
    line = [69, 71, 72, 74, 76, 77, 78, 80, 81, 80, 78, 77, 76, 74, 72, 71, 69]   # F# and G#
    key = estimate_key([Note(p, i * 0.5, 0.5) for i, p in enumerate(line)])
    assert {p % 12 for p in line} <= key.pitch_classes
    assert key.tonic == 9


def test_modal_folk_tunes_of_ryans_mammoth_are_named_by_their_mode(ryans):
    assert len(ryans) >= 30
    by_mode = {"dorian": [0, 0, 0], "mixolydian": [0, 0, 0]}       # tunes, scale, tonic+mode
    for title, truth, notes in ryans:
        key = estimate_key(notes)
        counts = by_mode[truth.mode]
        counts[0] += 1
        counts[1] += Key(key.tonic, key.mode).pitch_classes == truth.pitch_classes
        counts[2] += (key.tonic, key.mode) == (truth.tonic, truth.mode)
    print("tunes, right scale, right tonic and mode:", by_mode)
    for mode, (n, scale, named) in by_mode.items():
        # measured (dorian / mixolydian): scale 0.81 / 0.70, tonic and mode 0.42 / 0.55; a
        # major/minor finder names none of them (the rest: mostly the right scale on another
        # tonic, or tunes that wander out of their declared mode)
        assert scale / n >= 0.65, (mode, by_mode)
        assert named / n >= 0.35, (mode, by_mode)


def out_of_scale(pitches, key: Key) -> float:
    return sum(not key.contains(p) for p in pitches) / max(1, len(pitches))


def test_answers_to_diatonic_modal_seeds_stay_in_the_seeds_scale(ryans):
    """The bundled melody model answers the first bars of modal tunes (fixed RNG seed). With
    the seed's key as the constraint (what a voice does by default, ``follow_key``) at most
    5 % of the answer's notes leave the declared scale."""
    torch.manual_seed(0)
    gen = load_generator(None, "cpu")
    seeds = []
    for title, truth, notes in ryans:
        seed = notes[:24]
        if {n.pitch % 12 for n in seed} == truth.pitch_classes:   # diatonic, every degree
            seeds.append((title, truth, seed))
    assert len(seeds) >= 6
    shares = []
    for title, truth, seed in seeds[:8]:
        gen.prime(seed)
        gen.set_constraints(Constraints(scale=gen.key.scale))
        pitches = [p for _ in range(64) for p in gen.next_step().starts]       # 4 bars
        assert len(pitches) >= 8, title
        shares.append(out_of_scale(pitches, truth))
        gen.set_constraints(Constraints())
    print("out-of-scale share per seed:", [round(s, 3) for s in shares])
    assert max(shares) <= 0.05, shares
