"""The daemon: clock, MIDI ports, scheduler, voices, MIDI clock, phrase captor, CC map,
recorder, optional monitor synth, optional spectral audio voice, and the ZeroMQ control server.

``Riffd.run()`` starts every role, waits for SIGINT, SIGTERM or ``shutdown``, then stops them
in reverse order: control, MIDI input, captor, clock out (a Stop goes out), voices (their notes
end), scheduler (every sounding note off), audio voice (fades out), monitor, ports (closed
and deleted).

Commands are routed by name through ``self.routes`` (``name -> fn(cmd, args) -> dict``); the
``audio_*`` commands go to the audio controller when ``--audio`` opened one.

Threads: the control thread runs the command handlers; MIDI input arrives on the port's
dispatcher thread (:meth:`Riffd._on_input` only routes it); phrases and played notes come from
the captor thread; each voice generates on its own thread; pulses go out on the clock-out thread.
"""
from __future__ import annotations

import datetime
import gc
import logging
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import replace

import torch

from riffd.daemon.cc_map import CCMap
from riffd.daemon.clock import Clock
from riffd.daemon.control import ControlServer
from riffd.daemon.latency import check_output_latency_ms, lead_s
from riffd.daemon.link_clock import LinkClock
from riffd.daemon.midi_clock import ClockIn, ClockOut
from riffd.daemon.midi_ports import open_midi_ports
from riffd.daemon.phrase_capture import PhraseCaptor, PlayedNote, RunningStatus
from riffd.daemon.protocol import COMMANDS, PROTOCOL_VERSION, ProtocolError
from riffd.daemon.recorder import Recorder
from riffd.daemon.realtime import RealtimeState
from riffd.daemon.scheduler import Scheduler
from riffd.daemon.serve_config import ServeConfig
from riffd.daemon.slow_work import Deferred
from riffd.daemon.voice import ANSWERING, IDLE, PREPARE_S, Voice, VoiceSettings, check_settings
from riffd.daemon.voices import (VoiceSet, allowed_model_path, list_models, load_voice_generator,
                           make_voice, split_controls)
from riffd.engine.checkpoint import CheckpointError, ModelLimits
from riffd.engine.safe_files import MB, FileRefused
from riffd.engine.key_finding import estimate_key
from riffd.engine.melody_representation import Note

log = logging.getLogger(__name__)
AUDIO_COMMANDS = tuple(name for name in COMMANDS if name.startswith("audio_"))

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "greedy")
SWITCH_INTERVAL_S = 0.0005       # Python's GIL switch interval in the daemon, seconds
FOLLOW_NOTES = 16                 # played notes that condition a follow voice
PANIC_WAIT_S = 1.0                # panic waits this long for each voice to stop, seconds
CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF = 120, 123
REOPEN_EVERY_S = 0.5             # while the MIDI ports are gone, try to open them this often
CONFIGURE_WAIT_S = 1.0           # `set` replies once each voice applied it (at most this), s
START_UP_POLL_S = 0.05           # start-up notices a signal this soon while models load, s
RESET_AGAIN_S = 0.05             # a new receiver's reset is sent again this much later, s
BAR_END_EARLY_S = 0.04            # a bar-ended phrase is closed this early, so the answer
                                  # can start on the bar line itself


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived before the daemon had started; ``riffd serve`` exits 0.
    A BaseException, so that no ``except Exception`` on the way swallows it."""


class Riffd:
    """One daemon process. Build it with a config, then call ``run()``."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self._shutdown = threading.Event()
        self.abandoned_work = ""                   # start-up work a signal left running
        self.started_at = time.monotonic()
        self.clock = Clock(cfg.tempo, cfg.beats_per_bar, cfg.clock_source)
        self.voices = VoiceSet()
        self.cc_map = CCMap()
        self.recorder = Recorder(self.clock)
        self.clock_in = ClockIn(self.clock, on_transport=self._on_transport)
        self.link = LinkClock(self.clock, on_transport=self._on_link_transport,
                              start_stop=cfg.link_start_stop)
        self.ports = None
        self.scheduler: Scheduler | None = None
        self.clock_out: ClockOut | None = None
        self.captor: PhraseCaptor | None = None
        self.control: ControlServer | None = None
        self.osc = None                     # OscServer when --osc
        self.command_lock = threading.Lock()   # one command at a time (ZeroMQ and OSC threads)
        self.monitor = None
        self.audio = None                   # AudioController when --audio
        self.audio_error = "off: start riffd serve with --audio"
        self.port_errors = 0
        self.realtime = RealtimeState(cfg.realtime)
        # ms the voices' notes leave before their beat unless a voice has its own (latency.py)
        self.output_latency_ms = check_output_latency_ms(cfg.output_latency_ms,
                                                         "--output-latency-ms")
        self.ports_lost_at: float | None = None   # monotonic s when the MIDI ports went away
        self.port_losses = 0                      # times the MIDI ports went away
        self._next_reopen = 0.0                   # monotonic s of the next reconnection try
        self._xrun_published = 0.0                # monotonic s of the last xrun event
        self._notes_at_open = 0                   # notes_sent when the ports last opened
        self.running_status = RunningStatus()   # MIDI in (dispatcher thread only)
        self.routes = {
            "status": lambda cmd, args: self.status(), "start": self._start, "stop": self._stop,
            "panic": self._panic, "set": self._set, "seed": self._seed,
            "shutdown": self._shutdown_cmd, "clock": self._clock, "add_voice": self._add_voice,
            "remove_voice": self._remove_voice, "load_model": self._load_model,
            "list_models": self._list_models, "map_cc": self._map_cc, "learn": self._learn,
            "record": self._record,
            **{name: self._audio_command for name in AUDIO_COMMANDS},
        }

    # -- lifecycle --------------------------------------------------------------------------
    def request_shutdown(self, *_args) -> None:
        self._shutdown.set()

    def run(self, ready: threading.Event | None = None) -> int:
        """Serve until shutdown; returns the exit status (0 after a clean stop)."""
        cfg = self.cfg
        torch.set_num_threads(max(1, cfg.threads))
        # a thread waiting for the GIL gets it within ~0.5 ms rather than 5 ms: the clock and
        # scheduler threads hand events over on time while a voice runs its model
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        torch.backends.mkldnn.enabled = False   # oneDNN slows batch-1 steps on the CPU
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:   # until start-up is done a signal ends it (see _interrupt_start_up)
            signal.signal(signal.SIGINT, self._interrupt_start_up)
            signal.signal(signal.SIGTERM, self._interrupt_start_up)
        with ExitStack() as stack:
            specs = self._voice_specs()
            # models first: a bad checkpoint is reported before any port is opened
            generators = self._interruptible("loading the models",
                                             lambda: self._load_start_models(specs))
            self.realtime.lock_memory()          # models are in memory: keep them there
            # opening sends All Notes Off / All Sound Off on all 16 channels: the notes a
            # crashed riffd left sounding end
            self.ports = open_midi_ports(cfg.midi_api, cfg.client_name, realtime=self.realtime,
                                         connect_out=cfg.connect_out or None,
                                         connect_in=cfg.connect_in or None)
            stack.callback(self.ports.close)
            self._end_start_up_if_signalled()
            self.ports.on_xrun = self._on_xrun
            self.ports.on_connect = self._on_out_connected
            if self.ports.out_connections():
                # a receiver connected while the ports opened, before the hook above was set:
                # the reset sent at opening may have gone out before it was connected
                self.ports.send_reset()
            if cfg.monitor:
                from riffd.daemon.monitor import MonitorSynth
                rate = getattr(self.ports, "samplerate", 0) or 48000
                self.monitor = MonitorSynth(f"{cfg.client_name}-monitor", rate).start()
                stack.callback(self.monitor.stop)
            if cfg.audio or cfg.audio_model:
                self._open_audio(stack)
            self._end_start_up_if_signalled()
            if cfg.clock_source == "link":      # on the session's grid before voices start
                self.link.start()
            stack.callback(self.link.stop)
            self.scheduler = Scheduler(self.ports, on_event=self._on_midi_event,
                                       realtime=self.realtime)
            self.scheduler.start()
            stack.callback(self.scheduler.stop)          # every sounding note off
            for spec, generator in zip(specs, generators):
                self._add(spec, generator)
            stack.callback(self._stop_voices)
            if cfg.clock_out and cfg.clock_source != "midi":   # Link drives MIDI clock out too
                self._start_clock_out()
            stack.callback(self._stop_clock_out)
            for control, number in cfg.cc.items():
                voice, _, name = control.rpartition(".")
                self.cc_map.bind(number, name, voice or None)
            end_at = self._bar_end if cfg.phrase_end == "bar" else None
            self.captor = PhraseCaptor(self._on_phrase, cfg.silence_s,
                                       on_note=self._on_played_note, end_at=end_at,
                                       max_hold_s=cfg.max_hold_s,
                                       max_notes=cfg.max_phrase_notes,
                                       max_phrase_s=cfg.max_phrase_s)
            self.captor.start()
            stack.callback(self.captor.stop)
            self.ports.set_input_callback(self._on_input)
            stack.callback(self.ports.set_input_callback, None)
            self.control = ControlServer(self.handle, cfg.control, cfg.events)
            self.control.start()
            stack.callback(self.control.stop)
            if cfg.osc:     # OSC beside ZeroMQ: the same commands, checks and handlers
                from riffd.daemon.osc import OscServer
                self.osc = OscServer(self.handle, cfg.osc, cfg.osc_reply, cfg.osc_events,
                                     cfg.osc_allow_remote).start()
                stack.callback(self.osc.stop)
            self._end_start_up_if_signalled()
            self._report_realtime()
            log.info("riffd ready: voices %s; MIDI %s / %s (%s); clock %s at %.1f BPM; "
                     "control %s; events %s", ", ".join(self.voices.names()),
                     self.ports.out_port_name, self.ports.in_port_name, self.ports.api,
                     cfg.clock_source, self.clock.tempo, self.control.router_address,
                     self.control.pub_address)
            if on_main:   # started: from now on a signal asks for a clean stop
                signal.signal(signal.SIGINT, self.request_shutdown)
                signal.signal(signal.SIGTERM, self.request_shutdown)
            # everything loaded so far lives as long as the daemon: keep it out of the garbage
            # collector's full passes, which hold the GIL (and so every role's thread) for
            # tens of milliseconds over a heap with torch in it
            gc.collect()
            gc.freeze()
            if ready is not None:
                ready.set()
            while not self._shutdown.wait(0.25):
                self._watch_ports()
            log.info("riffd stopping")
            if self.recorder.recording:
                log.info("recording written: %s", self.recorder.stop()["path"])
        log.info("riffd stopped cleanly")
        return 0

    def _interrupt_start_up(self, *_args) -> None:
        """SIGINT/SIGTERM during start-up: start-up ends at its next step, or at once while
        models load (see _interruptible); the ExitStack closes what was opened.

        The handler only sets a flag. Raising from it would throw an exception into whatever
        line the main thread was running, e.g. between ``os.fdopen`` taking over a file
        descriptor and the ``except`` that closes it, which then closes it twice."""
        self._shutdown.set()

    def _end_start_up_if_signalled(self) -> None:
        """Raise StartupInterrupted if SIGINT/SIGTERM came during start-up."""
        if self._shutdown.is_set():
            raise StartupInterrupted()

    def _interruptible(self, what: str, work):
        """``work()`` (slow start-up work, e.g. loading models: seconds, in C code a signal
        handler cannot enter) on a thread of its own, while this thread waits for it and ends
        start-up within START_UP_POLL_S of a signal. Work left running then is abandoned
        (``abandoned_work`` names it): ``riffd serve`` ends the process without waiting for
        it, once the ExitStack has closed what start-up opened."""
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["value"] = work()
            except BaseException as exc:       # handed to the waiting thread, raised there
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"start-up: {what}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(START_UP_POLL_S)
            if self._shutdown.is_set() and worker.is_alive():
                self.abandoned_work = what
                raise StartupInterrupted()
        self._end_start_up_if_signalled()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _load_start_models(self, specs: list[dict]) -> list:
        """The voices' generators (their checkpoints checked against --max-model-mb and
        --max-model-params); a bad one raises before any port is opened."""
        generators = []
        for spec in specs:
            log.info("loading model %s for voice %s", spec.get("model") or "(bundled)",
                     spec.get("name"))
            generators.append(load_voice_generator(spec.get("model"), self.cfg.device,
                                                   limits=self._model_limits()))
        return generators

    def _model_limits(self) -> ModelLimits:
        """How large a checkpoint this daemon loads (serve options --max-model-mb and
        --max-model-params)."""
        return ModelLimits(
            max_bytes=int(self.cfg.max_model_mb * MB), max_params=self.cfg.max_model_params,
            bytes_hint="raise the limit with `riffd serve --max-model-mb N`",
            params_hint="raise the limit with `riffd serve --max-model-params N`")

    def _open_audio(self, stack: ExitStack) -> None:
        """Start the spectral audio voice's output; without a device say why and go on with
        the MIDI voices (audio commands then answer ``unavailable`` with the reason)."""
        from riffd.daemon.audio_control import AudioController, AudioUnavailable
        cfg = self.cfg
        latency = cfg.audio_latency
        try:
            latency = float(latency)
        except ValueError:
            pass
        device = cfg.audio_device or None
        if device is not None and device.isdigit():
            device = int(device)
        controller = AudioController(cfg.audio_model or None, device, cfg.audio_blocksize,
                                     latency, cfg.device, client_name=f"{cfg.client_name}-audio",
                                     limits=self._model_limits())
        try:
            self._interruptible("opening the audio voice", controller.open)
        except AudioUnavailable as exc:
            self.audio_error = str(exc)
            log.error("audio voice off: %s; the MIDI voices keep working", exc)
            return
        self.audio = controller
        stack.callback(controller.close)

    def _audio_command(self, cmd, args) -> dict:
        from riffd.daemon.audio_control import AudioCommandError
        if self.audio is None:
            raise ProtocolError("unavailable", f"{cmd}: the audio voice is {self.audio_error}")
        try:
            return self.audio.handle(cmd, args)
        except AudioCommandError as exc:
            raise ProtocolError("bad_args", f"{cmd}: {exc}") from None

    def _voice_specs(self) -> list[dict]:
        """[[voice]] tables, or one voice "main" from [serve]; ``--model`` sets the first one's."""
        cfg = self.cfg
        if cfg.voices:
            specs = [dict(v) for v in cfg.voices]
            if cfg.model:
                specs[0]["model"] = cfg.model
            return specs
        return [{"name": "main", "model": cfg.model, "channel": cfg.channel,
                 "velocity": cfg.velocity, "length": cfg.length_bars, "mode": cfg.mode,
                 "answer_on": cfg.answer_on, **{k: getattr(cfg, k) for k in SAMPLING_KEYS}}]

    def _add(self, spec: dict, generator=None) -> Voice:
        defaults = VoiceSettings(answer_on=self.cfg.answer_on,
                                 output_latency_ms=self.output_latency_ms,
                                 rng_seed=self.cfg.rng_seed)
        voice = make_voice(spec, self.scheduler, self.clock, self.cfg.device, self._publish,
                           self.cfg.lookahead_s, defaults, generator)
        self.voices.add(voice)
        voice.start()
        return voice

    def _stop_voices(self) -> None:
        for voice in self.voices.select(None):
            voice.stop()

    def _start_clock_out(self) -> None:
        if self.clock_out is None:
            self.clock_out = ClockOut(self.ports, self.clock).start()

    def _stop_clock_out(self) -> None:
        if self.clock_out is not None:
            self.clock_out.stop()
            self.clock_out = None

    def _report_realtime(self) -> None:
        """Log what realtime scheduling riffd got (the threads ask as they start);
        ``--realtime on`` stops here when something was refused."""
        deadline = time.monotonic() + 1.0
        while "scheduler" not in self.realtime.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        self.realtime.check()
        rt = self.realtime.status()
        if not self.realtime.wanted:
            log.info("realtime: off (--realtime off)")
        elif rt["reason"]:
            log.warning("realtime: scheduler %s, MIDI in %s, memory locked %s: %s",
                        rt["scheduler"], rt["input"], rt["memory_locked"], rt["reason"])
        else:
            log.info("realtime: scheduler and MIDI-in threads SCHED_FIFO, memory locked")

    def _watch_ports(self) -> None:
        """Main loop, every 0.25 s: notice when the MIDI ports went away (the JACK server
        stopped), say so once, and try to open them again every REOPEN_EVERY_S seconds under
        the same names. When they are back: forget the old server's sounding notes, send All
        Notes Off / All Sound Off, and carry on. The audio voice watches its own output the
        same way (AudioController.watch: its JACK client re-attaches every 0.5 s)."""
        ports = self.ports
        if self.audio is not None:
            try:   # a new JACK client only once the ports' dead one is closed (audio_jack.py)
                change = self.audio.watch(may_reopen=ports is None or ports.alive
                                          or not ports.is_open)
            except Exception:             # never let the audio side stop the main loop
                log.exception("audio voice: re-attaching the output failed")
                change = None
            if change is not None:
                self._publish("ports", {"output": "audio", "alive": change == "back",
                                        "reason": self.audio.unavailable or ""})
        if ports is None or ports.alive:
            return
        now = time.monotonic()
        if self.ports_lost_at is None:
            self.ports_lost_at = now
            self.port_losses += 1
            self.port_errors += 1
            reason = ports.reason
            message = (f"the MIDI ports are gone: {reason}. riffd tries to open them again every "
                       f"{REOPEN_EVERY_S:g} s; start the JACK server again (same name) and it "
                       "carries on; control commands still work")
            log.error(message)
            self._publish("ports", {"output": "midi", "alive": False, "reason": reason})
            self._publish("error", {"message": message})
            self._next_reopen = now + REOPEN_EVERY_S
        if now < self._next_reopen:
            return
        self._next_reopen = now + REOPEN_EVERY_S
        try:
            ports.reopen()
        except Exception as exc:          # MidiPortError: the server is still missing
            log.debug("MIDI ports not back yet: %s", exc)
            return
        self.scheduler.reset_sounding()   # the old server's notes died with it
        self.scheduler.send_reset()
        self._notes_at_open = self.scheduler.notes_sent
        down_s = now - self.ports_lost_at
        self.ports_lost_at = None
        log.info("MIDI ports back as %s / %s after %.1f s", ports.out_port_name,
                 ports.in_port_name, down_s)
        self._publish("ports", {"output": "midi", "alive": True, "reason": "",
                                "out": ports.out_port_name,
                                "in": ports.in_port_name, "down_s": round(down_s, 3)})

    def _on_xrun(self, delayed_usecs: float) -> None:
        """JACK notification thread: count (the port does) and publish, at most 10 a second."""
        now = time.monotonic()
        if now - self._xrun_published >= 0.1:
            self._xrun_published = now
            self._publish("xrun", {"xruns": self.ports.xruns,
                                   "delay_us": round(float(delayed_usecs), 1)})

    def _on_out_connected(self, other: str) -> None:
        """JACK notification thread: a receiver connected to riffd:out. Until riffd plays its
        first note on these ports, send it All Notes Off / All Sound Off: notes that a crashed
        riffd left on it end (once riffd plays, a connection resets nothing). JACK can tell
        of a connection a cycle before its graph carries it, so the reset goes out again
        RESET_AGAIN_S later (twice is harmless; lost, a crashed run's note would hang)."""
        self._reset_if_quiet()
        again = threading.Timer(RESET_AGAIN_S, self._reset_if_quiet)
        again.daemon = True
        again.start()

    def _reset_if_quiet(self) -> None:
        """All Notes Off / All Sound Off on every channel, unless riffd has played on these
        ports since they opened (then a reset would cut its own notes)."""
        try:
            scheduler = self.scheduler
            if scheduler is None:              # still starting: nothing can sound yet
                self.ports.send_reset()
            elif scheduler.notes_sent == self._notes_at_open and not scheduler.sounding():
                scheduler.send_reset()
        except Exception as exc:               # ports closing: nothing is left to reset
            log.debug("reset for a new receiver not sent: %r", exc)

    # -- callbacks from other threads ---------------------------------------------------------
    def _publish(self, event: str, data: dict) -> None:
        if self.control is not None:
            self.control.publish(event, data)
        if self.osc is not None:
            self.osc.publish(event, data)

    def _on_midi_event(self, event: dict) -> None:
        """Scheduler thread: a note went out."""
        kind = event.get("type")
        if kind not in ("note_on", "note_off"):
            return
        status = (0x90 if kind == "note_on" else 0x80) | (event["channel"] - 1)
        self.recorder.add(event.get("tag") or "riffd",
                          [status, event["pitch"], event["velocity"]], event["at"])
        if self.monitor is not None:
            self.monitor.on_event(event)
        data = {k: v for k, v in event.items() if k not in ("type", "tag")}
        data["voice"] = event.get("tag")
        self._publish(kind, data)

    def _on_input(self, message: list, time_s: float) -> None:
        """MIDI-in dispatcher thread: route one message (running status completed first);
        never blocks."""
        for complete in self.running_status.expand(message):
            self._route_input(complete, time_s)

    def _route_input(self, message: list, time_s: float) -> None:
        """Route one complete MIDI message from riffd:in (dispatcher thread)."""
        status = message[0]
        if status >= 0xF8 or status in (0xF2, 0xFA, 0xFB, 0xFC):
            self.clock_in.feed(message, time_s)
            return
        kind = status & 0xF0
        if kind in (0x80, 0x90, 0xB0):
            self.recorder.add("input", message, time_s)
        if kind == 0xB0:
            changes, learned = self.cc_map.handle(message)
            if learned is not None:
                self._publish("learned", {"cc": learned.cc, "control": learned.control,
                                          "voice": learned.voice, "channel": learned.channel})
            for voice_name, control, value in changes:
                try:
                    self._configure(voice_name, {control: value})
                except (KeyError, ValueError) as exc:
                    self._publish("error", {"message": f"CC {message[1]}: {exc}"})
        elif kind in (0x80, 0x90):
            self.captor.feed(message, time_s)

    def _on_transport(self, what: str) -> None:
        """MIDI start/stop/continue on riffd:in (followed when the clock source is midi)."""
        self._publish("transport", {"transport": what})
        if self.clock.source == "midi":
            self._follow_transport(what)

    def _on_link_transport(self, what: str) -> None:
        """Link thread: the session started or stopped (Link start/stop sync on)."""
        self._publish("transport", {"transport": what, "source": "link"})
        if self.clock.source == "link":
            self._follow_transport(what)

    def _follow_transport(self, what: str) -> None:
        """Start (continuous voices play) or stop (every voice) from the clock's source."""
        for voice in self.voices.select(None):
            if what == "stop":
                voice.halt()
            elif voice.settings.mode == "continuous":
                voice.play()

    def _beats(self, played: list[PlayedNote]) -> list[Note]:
        origin = self.clock.beat_at(played[0].on_s)
        return [Note(n.pitch, self.clock.beat_at(n.on_s) - origin,
                     max(self.clock.beat_at(n.off_s) - self.clock.beat_at(n.on_s), 0.01))
                for n in played]

    def _on_played_note(self, pitch: int, velocity: int, time_s: float) -> None:
        """Captor thread: a key went down."""
        for voice in self.voices.select(None):
            if voice.settings.mode == "follow":
                recent = self.captor.recent(FOLLOW_NOTES)
                voice.follow(self._beats(recent), [n.velocity for n in recent])
            elif voice.settings.mode == "answer" and voice.mode == ANSWERING:
                voice.halt()                       # the musician takes over

    def _bar_end(self, last_activity_s: float) -> float:
        # closed early enough for the voice that sends earliest (output_latency_ms)
        lead = max((lead_s(v.settings.output_latency_ms) for v in self.voices.select(None)),
                   default=0.0)
        return (self.clock.time_at(self.clock.next_bar(last_activity_s)) - BAR_END_EARLY_S
                - lead)

    def _on_phrase(self, played: list[PlayedNote], end_s: float) -> None:
        """Captor thread: a phrase ended at ``end_s``; answer voices answer on the next beat
        (or bar) of the clock."""
        notes = self._beats(played)
        key = estimate_key(notes)
        self._publish("phrase", {"notes": [dict(_note_dict(n), velocity=p.velocity)
                                           for n, p in zip(notes, played)], "key": key.name,
                                 "source": "midi", "end": end_s,
                                 "beat": round(self.clock.beat_at(played[0].on_s), 4)})
        earliest = max(end_s, time.monotonic() + PREPARE_S)
        for voice in self.voices.select(None):
            if voice.settings.mode != "answer":
                continue
            unit = self.clock.beats_per_bar if voice.settings.answer_on == "bar" else 1.0
            # a voice that sends early (output_latency_ms) needs that much more time
            start = self.clock.next_beat(max(earliest, time.monotonic() + voice.prepare_s),
                                         unit)
            log.info("phrase of %d notes in %s: %s answers from beat %.2f", len(notes),
                     key.name, voice.name, start)
            voice.answer(notes, start_beat=start, velocities=[n.velocity for n in played])

    # -- control ------------------------------------------------------------------------------
    def handle(self, cmd: str, args: dict) -> dict:
        """Route one validated control command (runs on the control thread or the OSC thread,
        one command at a time)."""
        route = self.routes.get(cmd)
        if route is None:
            raise ProtocolError("unknown_command", f"command {cmd!r} is not handled by this daemon")
        with self.command_lock:
            result = _as_bad_args(cmd, lambda: route(cmd, args))
        if isinstance(result, Deferred):            # slow work: runs on the control worker
            work = result.work
            return Deferred(lambda: _as_bad_args(cmd, work), result.what)
        return result

    def _start(self, cmd, args) -> dict:
        if self.ports is not None and not self.ports.alive:
            raise ProtocolError("unavailable", f"start: the MIDI ports are gone "
                                               f"({self.ports.reason}); riffd reconnects by "
                                               "itself when the JACK server is back")
        voices = self.voices.select(args.get("voice"))
        for voice in voices:
            voice.play()
        if self.clock.source == "link":
            self.link.set_playing(True)           # with Link start/stop sync: every peer starts
        if self.clock_out is not None and self.clock_out.transport != "playing":
            self.clock_out.send_transport("start")
        return {"playing": True, "voices": [v.name for v in voices]}

    def _stop(self, cmd, args) -> dict:
        for voice in self.voices.select(args.get("voice")):
            voice.halt()
        if args.get("voice") is None and self.clock_out is not None:
            self.clock_out.send_transport("stop")
        if args.get("voice") is None and self.clock.source == "link":
            self.link.set_playing(False)          # with Link start/stop sync: every peer stops
        return {"playing": False}

    def _panic(self, cmd, args) -> dict:
        """Silence now. Without ``voice``: every voice stops (``start`` or a new phrase plays
        again), every sounding note gets its note-off, then CC 123 (all notes off) and CC 120
        (all sound off) go out on all 16 channels. With ``voice``: that voice stops and its
        notes end; CC 123/120 go out on its channel unless another voice plays there. The clock
        and its MIDI clock out run on."""
        name = args.get("voice")
        voices = self.voices.select(name)
        for voice in voices:            # no voice schedules a note once panic has sent its offs
            if not voice.halt(wait_s=PANIC_WAIT_S):
                log.warning("panic: voice %s did not stop within %.1f s", voice.name,
                            PANIC_WAIT_S)
        if name is None:
            self.scheduler.all_notes_off()
            channels = range(16)
        else:                           # halt has ended this voice's notes
            others = {v.settings.channel for v in self.voices.select(None) if v.name != name}
            channels = [c - 1 for c in {voices[0].settings.channel} - others]
        at = self.scheduler.safe_time()           # after the note-offs just handed over
        for channel in channels:
            self.scheduler.send_message([0xB0 | channel, CC_ALL_NOTES_OFF, 0], at)
            self.scheduler.send_message([0xB0 | channel, CC_ALL_SOUND_OFF, 0], at)
        return {"sounding": sum(self.scheduler.sounding().values()),
                "stopped": [v.name for v in voices]}

    def _set(self, cmd, args) -> dict:
        args = dict(args)
        voice_name = args.pop("voice", None)
        changed = sorted(args)
        if "tempo" in args:
            tempo = args.pop("tempo")
            if self.clock.source == "midi":
                raise ProtocolError("unavailable", "the tempo follows MIDI clock in; switch to the "
                                                   "internal clock first: clock source=internal")
            if self.clock.source == "link":
                self.link.set_tempo(tempo)           # the session's tempo, for every peer
            else:
                self.clock.set_tempo(tempo)
        if args:
            self._configure(voice_name, args, wait_s=CONFIGURE_WAIT_S)
            if voice_name is None and "output_latency_ms" in args:
                self.output_latency_ms = args["output_latency_ms"]  # also for new voices
        return {"changed": changed}

    def _configure(self, voice_name: str | None, controls: dict, wait_s: float = 0.0) -> None:
        """Check then apply protocol-named controls to one voice or all (any thread); with
        ``wait_s`` > 0, return once each voice has applied them (at most that long each)."""
        voice_fields, sampling = split_controls(controls)
        voices = self.voices.select(voice_name)
        for voice in voices:
            check_settings(replace(voice.settings, **voice_fields))
        for voice in voices:
            voice.configure(wait_s, **voice_fields, **sampling)

    def _seed(self, cmd, args) -> dict:
        voice = self.voices.get(args.get("voice"))
        notes = [Note(n["pitch"], n["start"], n["duration"]) for n in args["notes"]]
        key = estimate_key(notes)
        # a continuous voice re-primes and plays on; others answer (play) or only take it
        velocities = [n.get("velocity") for n in args["notes"]]
        voice.seed(notes, args["play"], None if None in velocities else velocities)
        playing = args["play"] or (voice.settings.mode == "continuous" and voice.mode != IDLE)
        self._publish("phrase", {"notes": args["notes"], "key": key.name, "source": "control"})
        return {"notes": len(notes), "key": key.name, "playing": playing,
                "voice": voice.name}

    def _shutdown_cmd(self, cmd, args) -> dict:
        self.request_shutdown()
        return {"stopping": True}

    def _clock(self, cmd, args) -> dict:
        if "beats_per_bar" in args:
            self.clock.beats_per_bar = args["beats_per_bar"]
        if "start_stop" in args:
            self.link.set_start_stop(args["start_stop"])
        if "source" in args and args["source"] != self.clock.source:
            previous, self.clock.source = self.clock.source, args["source"]
            if args["source"] != "link":
                self.link.stop()                     # leave the session
            if args["source"] == "midi":
                self._stop_clock_out()
                self.clock.running = False
            else:
                self.clock.running = True
                if self.cfg.clock_out and args.get("out", True):
                    self._start_clock_out()
            if args["source"] == "link":
                try:   # join; with start/stop sync the session's state decides `running`
                    self.link.start()
                except OSError as exc:               # LinkPython-extern missing
                    self.clock.source = previous
                    raise ProtocolError("unavailable", f"clock: {exc}") from None
        if "out" in args:
            if args["out"] and self.clock.source != "midi":
                self._start_clock_out()
            elif not args["out"]:
                self._stop_clock_out()
        if "transport" in args:
            if self.clock_out is None:
                raise ProtocolError("unavailable", "MIDI clock out is off; turn it on with "
                                                   "clock out=true (internal source)")
            self.clock_out.send_transport(args["transport"])
        return self._clock_status()

    def _clock_status(self) -> dict:
        return {"clock": self.clock.status(),
                "clock_out": self.clock_out.status() if self.clock_out else {"enabled": False},
                "clock_in": self.clock_in.status(), "link": self.link.status()}

    def _add_voice(self, cmd, args) -> Deferred:
        """Check the name, controls and model path at once; load the model (slow) on the
        control worker, then add and start the voice."""
        spec = dict(args)
        if spec["name"] in self.voices.names():
            raise ValueError(f"there is already a voice called {spec['name']!r}")
        controls = {k: v for k, v in spec.items() if k not in ("name", "model")}
        voice_fields, _ = split_controls(controls)
        check_settings(replace(VoiceSettings(answer_on=self.cfg.answer_on), **voice_fields))
        model = spec.get("model") or None
        if model is not None:
            allowed_model_path(model, self.cfg.model_dirs)

        def work() -> dict:
            try:
                generator = load_voice_generator(model, self.cfg.device,
                                                 limits=self._model_limits())
            except (CheckpointError, OSError, RuntimeError) as exc:
                raise ProtocolError("bad_args", f"add_voice: cannot load the model: {exc}"
                                    ) from None
            return self._add(spec, generator).status()
        return Deferred(work, "add_voice")

    def _remove_voice(self, cmd, args) -> dict:
        voice = self.voices.remove(args["name"])
        voice.stop()
        return {"removed": voice.name, "voices": self.voices.names()}

    def _load_model(self, cmd, args) -> Deferred:
        """Check the voice and the path at once (only the model folders); read, check, build
        and warm up the model on the control worker; swap it in at the next bar line."""
        voice = self.voices.get(args.get("voice"))
        path = allowed_model_path(args["path"], self.cfg.model_dirs)

        def work() -> dict:
            old = voice.generator
            try:
                generator = load_voice_generator(str(path), self.cfg.device,
                                                 limits=self._model_limits())
            except (CheckpointError, OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ProtocolError("bad_args", f"load_model: cannot load the model: {exc}; "
                                                f"voice {voice.name} keeps playing {old.path}"
                                    ) from None
            voice.swap(generator)
            return {"voice": voice.name, "model": str(generator.path),
                    "family": generator.family,
                    "metrics": generator.metadata.get("metrics", {}),
                    "takes_effect": "now" if voice.mode == IDLE else "next bar",
                    "next_bar": self.clock.next_bar(time.monotonic() + voice.lookahead_s)}
        return Deferred(work, "load_model")

    def _list_models(self, cmd, args) -> Deferred:
        """The checkpoints in the model folders and the bundled ones (read on the worker:
        headers of many files take a while)."""
        folders, limits = list(self.cfg.model_dirs), self._model_limits()
        return Deferred(lambda: {"models": list_models(folders, limits)}, "list_models")

    def _map_cc(self, cmd, args) -> dict:
        if args.get("voice") is not None:
            self.voices.get(args["voice"])
        binding = self.cc_map.bind(args["cc"], args["control"], args.get("voice"),
                                   args.get("channel", 0))
        return {"binding": vars(binding)}

    def _learn(self, cmd, args) -> dict:
        if args.get("voice") is not None:
            self.voices.get(args["voice"])
        self.cc_map.learn(args["control"], args.get("voice"))
        return {"learning": args["control"]}

    def _record(self, cmd, args) -> dict:
        if args["action"] == "start":
            from riffd.daemon.recorder import record_path
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            # only inside the record folder: a ValueError naming it becomes bad_args
            path = record_path(self.cfg.record_dir, args.get("path"), f"riffd-{stamp}.mid")
            return {"recording": True, "path": str(self.recorder.start(path))}
        return {"recording": False, **self.recorder.stop()}

    def status(self) -> dict:
        """The daemon's state for the ``status`` command: the first voice's fields at the top
        (as with one voice), every voice under ``voices``."""
        voices = [v.status() for v in self.voices.select(None)]
        first = voices[0] if voices else {}
        s = self.scheduler
        return {
            "protocol": PROTOCOL_VERSION,
            "model": first.get("model"),
            "device": str(self.voices.get(None).generator.device) if voices else None,
            "tempo": self.clock.tempo,
            "output_latency_ms": self.output_latency_ms,
            "playing": self.ports.alive and any(v["state"] != IDLE for v in voices),
            "mode": first.get("state"),
            "key": first.get("key"),
            "settings": first.get("settings"),
            "voices": voices,
            **self._clock_status(),
            "cc": self.cc_map.status(),
            "recording": {"on": self.recorder.recording,
                          "path": str(self.recorder.path) if self.recorder.path else None},
            "audio": (self.audio.status() if self.audio is not None
                      else {"enabled": False, "error": self.audio_error}),
            "monitor": {"on": self.monitor is not None,
                        "notes": self.monitor.notes_played if self.monitor else 0},
            "ports": {"api": self.ports.api, "out": self.ports.out_port_name,
                      "in": self.ports.in_port_name, "alive": self.ports.alive,
                      **({} if self.ports.alive else {"reason": self.ports.reason})},
            "realtime": self.realtime.status(),
            "counters": {"notes_sent": s.notes_sent, "late_notes": s.late_notes,
                         "notes_late": self.ports.late_events,
                         "events_dropped": s.events_dropped + self.ports.dropped,
                         "xruns": self.ports.xruns,
                         "missed_cycles": self.ports.missed_cycles,
                         "port_losses": self.port_losses,
                         "ports_opened": self.ports.opened,
                         "errors": (s.errors + self.port_errors
                                    + sum(v["errors"] for v in voices)),
                         "sounding": sum(s.sounding().values()),
                         "phrases": self.captor.phrases,
                         "stuck_keys_released": self.captor.stuck_keys_released,
                         "phrases_cut": self.captor.phrases_cut,
                         "generator_errors": sum(v["errors"] for v in voices),
                         "steps_generated": sum(v["steps_generated"] for v in voices),
                         "step_ms_p50": first.get("step_ms_p50", 0.0),
                         "step_ms_p99": first.get("step_ms_p99", 0.0),
                         "requests": self.control.requests,
                         "request_errors": self.control.errors,
                         "internal_errors": self.control.internal_errors},
            "osc": self.osc.status() if self.osc is not None else {"on": False},
            "uptime_s": time.monotonic() - self.started_at,
        }


def _as_bad_args(cmd: str, fn):
    """Run ``fn()``; an unknown voice (KeyError), a value the spec tables cannot check
    (ValueError) or a refused model file becomes a ``bad_args`` reply that says why."""
    try:
        return fn()
    except KeyError as exc:                     # an unknown voice
        raise ProtocolError("bad_args", f"{cmd}: {exc.args[0] if exc.args else exc}") from None
    except (ValueError, CheckpointError, FileRefused) as exc:
        raise ProtocolError("bad_args", f"{cmd}: {exc}") from None


def _note_dict(n: Note) -> dict:
    return {"pitch": n.pitch, "start": round(n.start, 4), "duration": round(n.duration, 4)}
