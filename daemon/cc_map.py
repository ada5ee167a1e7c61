"""MIDI CC → voice controls: a configurable map, and "learn" (bind the next CC that moves).

A binding maps (channel, CC number) to a control of ``set`` (``riffd.daemon.protocol.VOICE_CONTROLS``)
on one voice or on every voice (``voice=None``). A CC value 0–127 is scaled linearly onto the
control's range: ``min + value / 127 * (max - min)``, rounded for whole-number controls; a
``bool`` control is on from 64; a ``str`` control with choices picks one of them by value.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from riffd.daemon.protocol import VOICE_CONTROLS

CONTROLS = {a.name: a for a in VOICE_CONTROLS}


@dataclass(frozen=True)
class Binding:
    """CC ``cc`` on ``channel`` (1–16, 0 = any) drives ``control`` of ``voice`` (None = all)."""

    cc: int
    control: str
    voice: str | None = None
    channel: int = 0


def check_control(control: str) -> None:
    if control not in CONTROLS:
        raise ValueError(f"no control {control!r}; controls: {', '.join(CONTROLS)}")


def cc_value(control: str, value: int):
    """The control's value for CC ``value`` (0–127)."""
    spec = CONTROLS[control]
    if spec.type == "bool":
        return value >= 64
    if spec.type == "str":
        choices = spec.choices or ("",)
        return choices[min(len(choices) - 1, value * len(choices) // 128)]
    x = spec.min + value / 127.0 * (spec.max - spec.min)
    return int(round(x)) if spec.type == "int" else round(x, 4)


class CCMap:
    """Bindings plus a pending "learn". ``handle(message)`` returns ``[(voice, control, value)]``
    for a CC message (any thread; one lock)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._bindings: dict[tuple[int, int], Binding] = {}    # (channel, cc) → binding
        self._learning: tuple[str, str | None] | None = None
        self.received = 0

    def bind(self, cc: int, control: str, voice: str | None = None, channel: int = 0) -> Binding:
        check_control(control)
        if not 0 <= cc <= 119:
            raise ValueError(f"CC number must be 0..119 (120-127 are channel mode messages), "
                             f"not {cc}")
        binding = Binding(cc, control, voice, channel)
        with self._lock:
            self._bindings[(channel, cc)] = binding
        return binding

    def learn(self, control: str, voice: str | None = None) -> None:
        """Bind the next CC that arrives (on its channel) to ``control``."""
        check_control(control)
        with self._lock:
            self._learning = (control, voice)

    def handle(self, message: list) -> tuple[list[tuple[str | None, str, object]], Binding | None]:
        """For one CC message: the control changes it makes, and the binding it was learned
        into (or None)."""
        if len(message) < 3 or message[0] & 0xF0 != 0xB0 or message[1] > 119:
            return [], None
        channel, cc, value = (message[0] & 0x0F) + 1, message[1], message[2]
        learned = None
        with self._lock:
            self.received += 1
            if self._learning is not None:
                control, voice = self._learning
                self._learning = None
                learned = Binding(cc, control, voice, channel)
                self._bindings[(channel, cc)] = learned
            binding = self._bindings.get((channel, cc)) or self._bindings.get((0, cc))
        if binding is None:
            return [], learned
        return [(binding.voice, binding.control, cc_value(binding.control, value))], learned

    def status(self) -> dict:
        with self._lock:
            return {"bindings": [vars(b) for b in self._bindings.values()],
                    "learning": None if self._learning is None else self._learning[0],
                    "received": self.received}
