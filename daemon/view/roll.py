"""A scrolling piano roll drawn as text: pitch up the side, time across, the playhead fixed.

Each column is ``1 / cols_per_beat`` beats (a 16th note by default). The past scrolls off to the
left; right of the playhead (``│``) is what the voice has generated and placed ahead (its plan).
Cells are characters, so the roll reads the same in colour and without it:

- ``█`` a note riffd sent,
- ``▒`` a note played in (the phrase a voice answers or follows),
- ``░`` the plan: notes generated ahead of the playhead, not sounding yet.

When the pitches in view span more rows than there are, each row covers a few semitones
(labelled with its lowest).
"""
from __future__ import annotations

import math

from rich.text import Text

from riffd.daemon.view.state import RollNote, VoiceView

SENT, PLAYED, PLAN = "█", "▒", "░"
STYLES = {SENT: "bold green", PLAYED: "cyan", PLAN: "yellow"}
LEGEND = f"{SENT} riffd played   {PLAYED} played in   {PLAN} plan (generated ahead)   │ now"
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
LABEL_WIDTH = 5              # "C#4 " plus the separator
PLAYHEAD_AT = 0.75           # the playhead's place across the roll (0 left, 1 right)
MIN_SPAN = 12                # semitones shown at least


def pitch_name(pitch: int) -> str:
    """``60`` → ``"C4"`` (MIDI 60 is middle C, C4)."""
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def render_roll(voice: VoiceView, now_beat: float, width: int, height: int,
                beats_per_bar: int = 4, cols_per_beat: int = 4) -> list[Text]:
    """``height`` lines of ``width`` cells: the roll of ``voice`` around ``now_beat`` (beats)."""
    cols = max(1, width - LABEL_WIDTH)
    start = math.floor((now_beat - cols * PLAYHEAD_AT / cols_per_beat) * cols_per_beat)
    first_beat = start / cols_per_beat                     # beat at column 0
    playhead = int((now_beat - first_beat) * cols_per_beat)
    last_beat = first_beat + cols / cols_per_beat
    layers = [(SENT, [_ended(n, now_beat) for n in voice.sent]), (PLAYED, voice.played),
              (PLAN, voice.plan)]
    visible = [(mark, n) for mark, notes in layers for n in notes
               if n.start < last_beat and (n.end if n.end is not None else now_beat) >= first_beat]
    if height <= 0:
        return []
    pitches = [n.pitch for _, n in visible]
    low, high = (min(pitches), max(pitches)) if pitches else (60, 71)
    low = max(0, min(low, high - MIN_SPAN + 1))             # at least an octave tall
    span = high - low + 1
    rows = max(1, min(height, span))
    per_row = math.ceil(span / rows)
    rows = math.ceil(span / per_row)
    grid = [[" "] * cols for _ in range(rows)]
    for mark, note in visible:
        row = (note.pitch - low) // per_row
        a = max(0, math.floor((note.start - first_beat) * cols_per_beat + 1e-9))
        end = note.end if note.end is not None else now_beat
        b = min(cols - 1, max(a, math.ceil((end - first_beat) * cols_per_beat - 1e-9) - 1))
        if mark == PLAN:
            a = max(a, playhead + 1)                       # the plan lies ahead of the playhead
        for c in range(a, b + 1):
            if grid[row][c] == " " or _rank(mark) < _rank(grid[row][c]):
                grid[row][c] = mark
    lines = []
    for row in reversed(range(rows)):                      # high pitches on top
        line = Text(f"{pitch_name(low + row * per_row):>4} ", style="dim")
        for c, cell in enumerate(grid[row]):
            if cell != " ":
                line.append(cell, style=STYLES[cell])
            elif c == playhead:
                line.append("│", style="bold red")
            else:
                beat = (start + c) / cols_per_beat
                on_bar = (start + c) % (cols_per_beat * beats_per_bar) == 0
                on_beat = (start + c) % cols_per_beat == 0
                line.append("┊" if on_bar and beat >= 0 else "·" if on_beat else " ",
                            style="dim")
        lines.append(line)
    while len(lines) < height:
        lines.append(Text(""))
    return lines


def plan_summary(voice: VoiceView, now_beat: float, beats_per_bar: int, tempo: float,
                 most: int = 8) -> str:
    """The plan in words: ``next: E5 at 12.3 (+0.20 s), G5 at 12.4 (+0.45 s)``."""
    ahead = [n for n in voice.plan if n.start >= now_beat - 1e-9][:most]
    if not ahead:
        return "next: (nothing planned)"
    parts = []
    for n in ahead:
        whole = int(n.start // 1)
        where = f"{whole // beats_per_bar + 1}.{whole % beats_per_bar + 1}"
        sixteenth = int(round((n.start - whole) * 4)) + 1
        parts.append(f"{pitch_name(n.pitch)} at {where}.{sixteenth} "
                     f"(+{(n.start - now_beat) * 60 / tempo:.2f} s)")
    return "next: " + ", ".join(parts)


def _ended(note: RollNote, now_beat: float) -> RollNote:
    """A sounding note drawn up to the playhead."""
    return note if note.end is not None else RollNote(note.pitch, note.start, now_beat,
                                                      note.velocity)


def _rank(mark: str) -> int:
    return {SENT: 0, PLAN: 1, PLAYED: 2}[mark]
