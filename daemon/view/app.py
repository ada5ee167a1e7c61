"""``riffd view``: a terminal window onto a running ``riffd serve``.

Shows the clock (tempo, bar.beat, source), every voice (mode, model, controls, state), a
scrolling piano roll per voice (notes played in, notes riffd sent, and the plan ahead of the
playhead) and the counters (late notes, xruns, errors). Keys drive the selected voice.

The UI thread only draws: the daemon is reached from :class:`riffd.daemon.view.feed.DaemonFeed`'s
thread, which posts what it learns as :class:`FeedUpdate` messages.
"""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Static

from riffd.daemon.protocol import MODE_CHOICES
from riffd.daemon.view.feed import DaemonFeed
from riffd.daemon.view.roll import LABEL_WIDTH, LEGEND, plan_summary, render_roll
from riffd.daemon.view.state import KEEP_BEATS, ViewState

REDRAW_EVERY_S = 0.1
TEMPERATURE_STEP = 0.1
TEMPERATURE_RANGE = (0.05, 5.0)          # as the protocol allows
DENSITY_MAX = 16                         # notes per bar the keys step through (0 = no limit)


class FeedUpdate(Message):
    """Something the network thread learned: ``kind`` and ``payload`` (see feed.py)."""

    def __init__(self, kind: str, payload: Any):
        super().__init__()
        self.kind = kind
        self.payload = payload


class RiffdView(App):
    """The live view. ``endpoint``: the daemon's control endpoint (None: the default)."""

    TITLE = "riffd view"
    CSS = """
    #top { height: 1; background: $boost; }
    #voices { height: auto; max-height: 10; }
    #roll { height: 1fr; }
    #counters { height: 1; background: $boost; }
    #message { height: 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("up", "select(-1)", "prev voice"),
        Binding("down", "select(1)", "next voice"),
        Binding("s", "command('start')", "start"),
        Binding("x", "command('stop')", "stop"),
        Binding("p", "command('panic')", "panic"),
        Binding("P", "panic", "panic (all)"),
        Binding("t", "temperature(-1)", "temp −"),
        Binding("T", "temperature(1)", "temp +"),
        Binding("d", "density(-1)", "density −"),
        Binding("D", "density(1)", "density +"),
        Binding("m", "mode", "mode"),
        Binding("q", "quit", "quit"),
        *[Binding(str(n), f"pick({n})", show=False) for n in range(1, 10)],
    ]

    def __init__(self, endpoint: str | None = None, events_endpoint: str | None = None):
        super().__init__()
        self.state = ViewState()
        self.selected = 0
        self.feed = DaemonFeed(lambda kind, payload: self.post_message(FeedUpdate(kind, payload)),
                               endpoint, events_endpoint)
        self.state.endpoint = self.feed.endpoint

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield Static(id="voices")
        yield Static(id="roll")
        yield Static(id="counters")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.feed.start()
        self.set_interval(REDRAW_EVERY_S, self.redraw)
        self.redraw()

    def on_unmount(self) -> None:
        self.feed.stop()

    # -- from the network thread ---------------------------------------------------------------
    def on_feed_update(self, update: FeedUpdate) -> None:
        s = self.state
        if update.kind == "connected":
            s.connected, s.problem, s.offset_s = True, "", float(update.payload)
        elif update.kind == "disconnected":
            s.connected, s.problem = False, str(update.payload)
        elif update.kind == "status":
            s.apply_status(update.payload)
        elif update.kind == "events":
            for event in update.payload:
                s.apply_event(event)
        elif update.kind == "reply":
            cmd, result = update.payload
            s.message = f"{cmd}: ok {_short(result)}"
        elif update.kind == "error":
            cmd, message = update.payload
            s.message = f"{cmd}: {message}"

    # -- drawing -------------------------------------------------------------------------------
    def redraw(self) -> None:
        s = self.state
        now = s.now_beat()
        s.forget_before(now - KEEP_BEATS)
        self.query_one("#top", Static).update(self._top(now))
        self.query_one("#voices", Static).update(self._voices())
        self.query_one("#roll", Static).update(self._roll(now))
        self.query_one("#counters", Static).update(self._counters())
        self.query_one("#message", Static).update(Text(s.message))

    def _top(self, now: float) -> Text:
        s = self.state
        if not s.connected:
            return Text(f" not connected — is riffd serve running? ({s.endpoint}; trying again "
                        f"every second) {s.problem}", style="bold red")
        source = s.source
        if s.source == "link" and s.link:
            source += f" ({s.link.get('peers', 0)} peers)"
        running = "" if s.running else "  (clock stopped)"
        return Text(f" riffd  {s.tempo:6.1f} BPM   bar {s.bar_beat(now):<7} "
                    f"{s.beats_per_bar}/4   clock {source}{running}   {s.endpoint}")

    def _voices(self) -> Text:
        s = self.state
        out = Text()
        for i, v in enumerate(s.voices.values()):
            st = v.settings
            mark = "▶" if i == self.selected else " "
            line = (f"{mark}{i + 1} {v.name:<10} {st.get('mode', '?'):<10} {v.state:<10} "
                    f"{v.model[:24]:<24} temp {float(st.get('temperature', 0)):.2f}  "
                    f"density {st.get('density', 0)}  vel {st.get('velocity', '?')}  "
                    f"ch {st.get('channel', '?')}  key {st.get('key') or 'seed'} "
                    f"{st.get('scale') or ''}")
            out.append(line + "\n", style="reverse" if i == self.selected else "")
        if not s.voices:
            out.append(" (no voices)" if s.connected else "")
        return out

    def _roll(self, now: float) -> Text:
        s = self.state
        widget = self.query_one("#roll", Static)
        width, height = max(20, widget.size.width), max(4, widget.size.height)
        voices = list(s.voices.values())
        out = Text(" " * LABEL_WIDTH + LEGEND + "\n", style="dim", no_wrap=True,
                   overflow="crop")                       # a roll row never wraps
        if not voices:
            return out
        band = max(3, (height - 1) // len(voices))
        for v in voices:
            out.append(f" {v.name}: {plan_summary(v, now, s.beats_per_bar, s.tempo)}\n",
                       style="bold")
            for line in render_roll(v, now, width, band - 1, s.beats_per_bar):
                out.append_text(line)
                out.append("\n")
        return out

    def _counters(self) -> Text:
        c = self.state.counters
        return Text(f" notes sent {c.get('notes_sent', 0)}   late notes {c.get('late_notes', 0)}"
                    f"   xruns {c.get('xruns', 0)}   errors {c.get('errors', 0)}   dropped "
                    f"{c.get('events_dropped', 0)}   sounding {c.get('sounding', 0)}")

    # -- keys ------------------------------------------------------------------------------------
    def _voice(self):
        voices = list(self.state.voices.values())
        if not voices:
            self.state.message = "no voice to drive (not connected?)"
            return None
        self.selected = min(self.selected, len(voices) - 1)
        return voices[self.selected]

    def action_select(self, step: int) -> None:
        count = len(self.state.voices)
        if count:
            self.selected = (self.selected + step) % count

    def action_pick(self, number: int) -> None:
        if number <= len(self.state.voices):
            self.selected = number - 1

    def action_command(self, cmd: str) -> None:
        v = self._voice()
        if v is not None:
            self.feed.send(cmd, voice=v.name)

    def action_panic(self) -> None:
        """Every voice: notes off, CC 123/120 on all 16 channels."""
        self.feed.send("panic")

    def action_temperature(self, direction: int) -> None:
        v = self._voice()
        if v is None:
            return
        now = float(v.settings.get("temperature", 1.0))
        low, high = TEMPERATURE_RANGE
        value = round(min(high, max(low, now + direction * TEMPERATURE_STEP)), 2)
        v.settings["temperature"] = value          # shown at once; the next status confirms
        self.feed.send("set", voice=v.name, temperature=value)

    def action_density(self, direction: int) -> None:
        v = self._voice()
        if v is None:
            return
        now = int(v.settings.get("density", 0)) or DENSITY_MAX + 1    # 0 = no limit: the top
        value = min(DENSITY_MAX + 1, max(1, now + direction))
        value = 0 if value > DENSITY_MAX else value
        v.settings["density"] = value
        self.feed.send("set", voice=v.name, density=value)

    def action_mode(self) -> None:
        v = self._voice()
        if v is None:
            return
        mode = v.settings.get("mode", MODE_CHOICES[0])
        value = MODE_CHOICES[(MODE_CHOICES.index(mode) + 1) % len(MODE_CHOICES)
                             if mode in MODE_CHOICES else 0]
        v.settings["mode"] = value
        self.feed.send("set", voice=v.name, mode=value)


def _short(result: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in list(result.items())[:4])
    return text[:100]
