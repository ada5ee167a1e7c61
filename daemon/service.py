"""The daemon: model, MIDI ports, scheduler, voice, phrase captor and control server.

``Riffd.run()`` starts every role's thread, waits for SIGINT, SIGTERM or ``shutdown``,
then stops them in reverse order: voice, scheduler (every sounding note off), ports
(closed and deleted), control sockets.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, replace

import torch

from daemon.control import ControlServer
from daemon.midi_ports import MidiPortError, open_midi_ports
from daemon.phrase_capture import PhraseCaptor, PlayedNote
from daemon.protocol import PROTOCOL_VERSION, ProtocolError
from daemon.scheduler import Scheduler
from daemon.serve_config import ServeConfig
from daemon.voice import ANSWERING, IDLE, MelodyVoice, VoiceSettings
from engine.key_finding import estimate_key
from engine.loading import load_generator
from engine.melody_representation import Note

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "greedy")
VOICE_KEYS = {"tempo": "tempo", "velocity": "velocity", "channel": "channel",
              "length": "length_bars"}


class Riffd:
    """One daemon process. Build it with a config, then call ``run()``."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self._shutdown = threading.Event()
        self.started_at = time.monotonic()
        self.generator = None
        self.ports = None
        self.scheduler: Scheduler | None = None
        self.voice: MelodyVoice | None = None
        self.captor: PhraseCaptor | None = None
        self.control: ControlServer | None = None
        self.port_errors = 0

    # -- lifecycle --------------------------------------------------------------------
    def request_shutdown(self, *_args) -> None:
        self._shutdown.set()

    def run(self, ready: threading.Event | None = None) -> int:
        """Serve until shutdown; returns the exit status (0 after a clean stop)."""
        cfg = self.cfg
        torch.set_num_threads(max(1, cfg.threads))
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.request_shutdown)
            signal.signal(signal.SIGTERM, self.request_shutdown)
        with ExitStack() as stack:
            self.generator = load_generator(cfg.model or None, cfg.device)
            if self.generator.device.type == "cpu":
                # oneDNN slows single-step LSTM inference several times at batch 1
                torch.backends.mkldnn.enabled = False
            self.generator.settings = replace(self.generator.settings,
                                              **{k: getattr(cfg, k) for k in SAMPLING_KEYS})
            self.ports = open_midi_ports(cfg.midi_api, cfg.client_name)
            stack.callback(self.ports.close)
            self.scheduler = Scheduler(self.ports, on_event=self._on_midi_event)
            self.scheduler.start()
            stack.callback(self.scheduler.stop)          # every sounding note off
            self.voice = MelodyVoice(
                self.generator, self.scheduler,
                VoiceSettings(channel=cfg.channel, velocity=cfg.velocity, tempo=cfg.tempo,
                              length_bars=cfg.length_bars),
                on_state=lambda data: self._publish("state", data),
                lookahead_s=cfg.lookahead_s)
            self.voice.start()
            stack.callback(self.voice.stop)
            self.captor = PhraseCaptor(self._on_phrase, cfg.silence_s, on_note=self._on_played_note)
            self.captor.start()
            stack.callback(self.captor.stop)
            self.ports.set_input_callback(self.captor.feed)
            stack.callback(self.ports.set_input_callback, None)
            self.control = ControlServer(self.handle, cfg.control, cfg.events)
            self.control.start()
            stack.callback(self.control.stop)
            log.info("riffd ready: model %s on %s; MIDI %s / %s (%s); control %s; events %s",
                     self.model_name(), self.generator.device, self.ports.out_port_name,
                     self.ports.in_port_name, self.ports.api, self.control.router_address,
                     self.control.pub_address)
            if ready is not None:
                ready.set()
            while not self._shutdown.wait(0.25):
                self._watch_ports()
            log.info("riffd stopping")
        log.info("riffd stopped cleanly")
        return 0

    def _watch_ports(self) -> None:
        """Say once, clearly, when the MIDI system went away; keep serving control."""
        if self.ports is not None and not self.ports.alive and self.port_errors == 0:
            self.port_errors += 1
            message = ("the MIDI ports are gone (the JACK server stopped?): restart the "
                       "MIDI/JACK server, then restart riffd; control commands still work")
            log.error(message)
            self._publish("error", {"message": message})

    # -- callbacks from other threads --------------------------------------------------
    def _publish(self, event: str, data: dict) -> None:
        if self.control is not None:
            self.control.publish(event, data)

    def _on_midi_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind in ("note_on", "note_off"):
            self._publish(kind, {k: v for k, v in event.items() if k not in ("type", "tag")})

    def _on_played_note(self, pitch: int, velocity: int, time_s: float) -> None:
        # the musician takes over: an answer in progress stops
        if self.voice is not None and self.voice.mode == ANSWERING:
            self.voice.halt()

    def _on_phrase(self, played: list[PlayedNote]) -> None:
        seconds_per_beat = 60.0 / self.voice.settings.tempo
        origin = played[0].on_s
        notes = [Note(n.pitch, (n.on_s - origin) / seconds_per_beat,
                      max(n.off_s - n.on_s, 0.01) / seconds_per_beat) for n in played]
        key = estimate_key(notes)
        self._publish("phrase", {"notes": [_note_dict(n) for n in notes], "key": key.name,
                                 "source": "midi"})
        log.info("phrase of %d notes in %s: answering", len(notes), key.name)
        self.voice.answer(notes)

    # -- control ---------------------------------------------------------------------------
    def handle(self, cmd: str, args: dict) -> dict:
        """Map one validated control command to the daemon (runs on the control thread)."""
        voice = self.voice
        if cmd == "ping":
            return {"pong": True, "time": time.monotonic()}
        if cmd == "status":
            return self.status()
        if cmd == "start":
            voice.play()
            return {"playing": True}
        if cmd == "stop":
            voice.halt()
            return {"playing": False}
        if cmd == "panic":
            voice.halt()
            self.scheduler.all_notes_off()
            return {"sounding": 0}
        if cmd == "set":
            changes = {VOICE_KEYS.get(k, k): v for k, v in args.items()}
            voice.configure(**changes)
            return {"changed": sorted(args)}
        if cmd == "seed":
            notes = [Note(n["pitch"], n["start"], n["duration"]) for n in args["notes"]]
            key = estimate_key(notes)
            (voice.answer if args["play"] else voice.prime)(notes)
            self._publish("phrase", {"notes": args["notes"], "key": key.name, "source": "control"})
            return {"notes": len(notes), "key": key.name, "playing": args["play"]}
        if cmd == "shutdown":
            self.request_shutdown()
            return {"stopping": True}
        raise ProtocolError("unknown_command", f"command {cmd!r} is not handled by this daemon")

    def model_name(self) -> str:
        return self.generator.metadata.get("name", str(self.generator.path))

    def status(self) -> dict:
        """The daemon's state for the ``status`` command."""
        g, v, s = self.generator, self.voice, self.scheduler
        step_ms = sorted(1000 * t for t in list(v.step_seconds)) or [0.0]
        return {
            "protocol": PROTOCOL_VERSION,
            "model": {"name": self.model_name(), "path": str(g.path), "family": g.family,
                      "metrics": g.metadata.get("metrics", {})},
            "device": str(g.device),
            "tempo": v.settings.tempo,
            "playing": v.mode != IDLE,
            "mode": v.mode,
            "key": v.last_key,
            "settings": {**asdict(v.settings), **asdict(g.settings)},
            "ports": {"api": self.ports.api, "out": self.ports.out_port_name,
                      "in": self.ports.in_port_name, "alive": self.ports.alive},
            "counters": {"notes_sent": s.notes_sent, "late_notes": s.late_notes,
                         "errors": s.errors + self.port_errors,
                         "sounding": sum(s.sounding().values()),
                         "phrases": self.captor.phrases,
                         "steps_generated": v.steps_generated,
                         "step_ms_p50": step_ms[len(step_ms) // 2],
                         "step_ms_p99": step_ms[min(len(step_ms) - 1, round(0.99 * (len(step_ms) - 1)))],
                         "requests": self.control.requests,
                         "request_errors": self.control.errors},
            "uptime_s": time.monotonic() - self.started_at,
        }


def _note_dict(n: Note) -> dict:
    return {"pitch": n.pitch, "start": round(n.start, 4), "duration": round(n.duration, 4)}
