"""Learning from the session: fine-tune a melody model on the phrases a player recorded.

``riffd train --from-recordings FOLDER --base MODEL [-o OUT]``. The daemon's ``record``
command writes type-1 MIDI files (daemon/recorder.py) with one track per voice (what riffd
played) and a track ``input``: what the player played into ``riffd:in``. Only that track is
learnt from; riffd's own output is left out.

The input is cut into phrases at silences of ``GAP_BEATS`` beats or more; each phrase is
put on the 16th grid, chords keep their top note, and it is moved into C major / A minor
the way the generator moves a seed (riffd.engine.key_finding: its mode stays on the white
keys), pitches the model does not know are moved by octaves into its range. The base model
is then trained on those phrases (Adam, a few hundred steps: minutes on a CPU) and written
with the base's vocabulary and config, so ``load_model`` swaps it in live.

Melody models (melody_lstm) only; other families are refused with a message.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from riffd.engine.checkpoint import save_checkpoint
from riffd.engine.key_finding import estimate_key
from riffd.engine.loading import load_model, resolve_model_path
from riffd.engine.melody_generator import quantize_notes
from riffd.engine.melody_representation import DELIMITER, Note, Vocabulary, encode_notes

log = logging.getLogger(__name__)

INPUT_TRACK = "input"      # the recorder's track of what the player played
GAP_BEATS = 2.0            # a silence this long (beats) ends a phrase
MIN_NOTES = 3              # shorter phrases are left out
MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class FinetuneResult:
    path: Path
    phrases: int
    files: int
    steps: int
    loss_bits_before: float       # mean bits per token on the phrases, base model
    loss_bits_after: float
    seconds: float


def read_input_notes(path: Path) -> list[Note]:
    """The notes of a recording's ``input`` track, in beats from the file's start ([] when the
    file has no such track)."""
    import mido
    mid = mido.MidiFile(str(path))
    notes: list[Note] = []
    for track in mid.tracks:
        if not any(m.is_meta and m.type == "track_name" and m.name == INPUT_TRACK
                   for m in track):
            continue
        tick, open_at = 0, {}
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                open_at.setdefault(m.note, tick)
            elif m.type in ("note_off", "note_on") and m.note in open_at:
                start = open_at.pop(m.note)
                notes.append(Note(m.note, start / mid.ticks_per_beat,
                                  max(tick - start, 1) / mid.ticks_per_beat))
    return sorted(notes, key=lambda n: (n.start, -n.pitch))


def split_phrases(notes: list[Note], gap_beats: float = GAP_BEATS) -> list[list[Note]]:
    """Cut notes (beats) into phrases at silences of ``gap_beats`` or more; each phrase starts
    at 0, is on the 16th grid, and keeps the top note of notes starting together."""
    phrases, current, end = [], [], -math.inf
    for n in notes:
        if current and n.start - end >= gap_beats:
            phrases.append(current)
            current = []
        current.append(n)
        end = max(end, n.start + n.duration)
    if current:
        phrases.append(current)
    out = []
    for phrase in phrases:
        grid = quantize_notes(phrase)
        top: dict[float, Note] = {}
        for n in grid:                                   # skyline: top note per onset
            if n.start not in top or n.pitch > top[n.start].pitch:
                top[n.start] = n
        line = sorted(top.values(), key=lambda n: n.start)
        if len(line) >= MIN_NOTES:
            origin = line[0].start
            out.append([Note(n.pitch, n.start - origin, n.duration) for n in line])
    return out


def phrase_tokens(phrase: list[Note], vocab: Vocabulary) -> list[str]:
    """A phrase (beats) as the model's tokens: moved into C major / A minor as a seed is
    (its key from riffd.engine.key_finding), pitches fitted into the vocabulary."""
    shift = estimate_key(phrase).shift_to_reference()
    return encode_notes([Note(vocab.fit_pitch(n.pitch + shift), n.start, n.duration)
                         for n in phrase])


def recorded_phrases(folder: str | Path) -> tuple[list[list[Note]], int]:
    """Every played phrase in the recordings under ``folder``; returns (phrases, files read).
    Raises ValueError (naming the folder and what to do) when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the folder riffd records into "
                         f"(riffd serve --record-dir, 'recordings' by default)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)
    phrases = []
    for path in files:
        try:
            found = split_phrases(read_input_notes(path))
        except (OSError, ValueError, EOFError) as exc:
            log.warning("skipping %s: cannot be read (%s)", path, exc)
            continue
        if not found:
            log.info("%s holds no played phrase (no %r track with %d+ notes)", path,
                     INPUT_TRACK, MIN_NOTES)
        phrases.extend(found)
    if not phrases:
        raise ValueError(f"no played phrases in the {len(files)} MIDI file(s) under {folder}: "
                         f"record a session with `riffd ctl record action=start` while you "
                         f"play into riffd:in (phrases of {MIN_NOTES} notes or more), then "
                         f"`riffd ctl record action=stop`")
    return phrases, len(files)


def _stream(token_phrases: list[list[str]], vocab: Vocabulary) -> torch.Tensor:
    """(P, T) ids: each phrase after a delimiter, padded at the end with delimiters; the
    mask (P, T-1) marks the targets that belong to a phrase."""
    length = max(len(t) for t in token_phrases) + 1
    ids = torch.full((len(token_phrases), length), vocab.id(DELIMITER), dtype=torch.long)
    mask = torch.zeros(len(token_phrases), length - 1, dtype=torch.bool)
    for i, tokens in enumerate(token_phrases):
        ids[i, 1:len(tokens) + 1] = torch.tensor(vocab.encode(tokens))
        mask[i, :len(tokens)] = True
    return ids, mask


def loss_bits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean negative log-likelihood of the phrases' tokens, bits per token."""
    model.eval()
    with torch.no_grad():
        logits = model(ids[:, :-1])                                    # (P, T-1, V)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:],
                                          reduction="none")            # (P, T-1)
    return float(nll[mask].mean()) / math.log(2)


def log_likelihood(model: nn.Module, vocab: Vocabulary, phrase: list[Note]) -> float:
    """Log-likelihood (nats) of a phrase (beats) under a melody model, from a song's start."""
    ids, mask = _stream([phrase_tokens(phrase, vocab)], vocab)
    return -loss_bits(model, ids, mask) * math.log(2) * int(mask.sum())


def default_output(folder: str | Path) -> Path:
    """runs/finetuned/<the recordings folder's name>.safetensors: inside ``runs``, one of the
    folders the daemon's ``load_model`` reads (model_dirs)."""
    return Path("runs") / "finetuned" / f"{Path(folder).resolve().name}.safetensors"


def finetune(folder: str | Path, base: str | Path | None, output: str | Path | None = None,
             steps: int = 300, learning_rate: float = 3e-4, seed: int = 0,
             threads: int = 1) -> FinetuneResult:
    """Fine-tune melody model ``base`` (None: the bundled one) on the phrases recorded under
    ``folder``; writes ``output`` (default :func:`default_output`). ``steps``: Adam
    steps over all phrases at once (one batch). ``threads``: torch CPU threads while it
    trains (the batch is small: one is fastest here; 0 = torch's choice)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _finetune(folder, base, output, steps, learning_rate, seed)
    finally:
        torch.set_num_threads(previous)


def _finetune(folder: str | Path, base: str | Path | None, output: str | Path | None,
              steps: int, learning_rate: float, seed: int) -> FinetuneResult:
    started = time.perf_counter()
    torch.manual_seed(seed)
    base_path = resolve_model_path(base)
    model, metadata = load_model(base_path)
    if metadata.get("family") != "melody_lstm":
        raise ValueError(f"{base_path} is a {metadata.get('family')} model; learning from "
                         "recordings fine-tunes melody models (melody_lstm) only: give "
                         "--base a melody checkpoint (e.g. the bundled one, by leaving --base out)")
    vocab = Vocabulary(metadata["representation"]["vocabulary"])
    phrases, files = recorded_phrases(folder)
    ids, mask = _stream([phrase_tokens(p, vocab) for p in phrases], vocab)
    before = loss_bits(model, ids, mask)
    log.info("%d phrases from %d files; base model %.3f bits/token on them", len(phrases),
             files, before)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for step in range(steps):
        model.train()
        logits = model(ids[:, :-1])                                    # (P, T-1, V)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:],
                                          reduction="none")
        loss = nll[mask].mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % 50 == 0:
            log.info("step %d/%d: %.3f bits/token", step + 1, steps,
                     float(loss) / math.log(2))
    after = loss_bits(model, ids, mask)
    out = Path(output) if output else default_output(folder)
    if out.suffix != ".safetensors":
        raise ValueError(f"the output is a checkpoint: give a path ending in .safetensors, "
                         f"not {out}")
    seconds = time.perf_counter() - started
    meta = {k: v for k, v in metadata.items() if k not in ("storage", "format_version")}
    meta["name"] = f"{metadata.get('name', base_path.stem)}+{Path(folder).name}"
    meta["finetune"] = {"base": str(base_path), "recordings": str(folder), "files": files,
                        "phrases": len(phrases), "steps": steps,
                        "learning_rate": learning_rate, "loss_bits_before": before,
                        "loss_bits_after": after, "seconds": round(seconds, 1)}
    save_checkpoint(out, model.state_dict(), meta)
    log.info("fine-tuned in %.0f s: %.3f → %.3f bits/token on the phrases; wrote %s",
             seconds, before, after, out)
    return FinetuneResult(out, len(phrases), files, steps, before, after, seconds)
