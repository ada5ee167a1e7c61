"""The ``riffd`` command: ``serve``, ``ctl``, ``demo``, and the offline ``train``, ``eval``,
``render``.

The offline commands belong to the training package; the daemon never imports it, so
``riffd train …`` runs ``python -m riffd.training train …`` in its place.
"""
from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import subprocess
import sys

DESCRIPTION = """riffd: a real-time music generation daemon.

It plays an LSTM melody model through virtual MIDI ports (riffd:out, riffd:in):
play a phrase into riffd:in and it answers in your key; scripts control it over
ZeroMQ (riffd ctl, or daemon.client.RiffdClient)."""

EPILOG = """commands:
  serve   run the daemon (MIDI ports + ZeroMQ control)
  ctl     send a command to a running daemon: riffd ctl status
  keys    show or create the keys that tcp:// endpoints need (see README "Security")
  doctor  check MIDI, audio, FluidSynth, CUDA and the control endpoint; say what to fix
  view    watch and drive a running daemon live: voices, piano roll, plan, clock, counters
  demo    set everything up, play a phrase into riffd, record its answer to out/
  calibrate  measure a synth's MIDI loop and suggest --output-latency-ms
  train   train a model from a recipe: riffd train melody_erk (riffd train --list)
  eval    evaluate a checkpoint on held-out data
  render  generate offline from a checkpoint

Run `riffd COMMAND --help` for the options of each command."""

SERVE_EPILOG = """examples:
  riffd serve                                  # bundled melody model, MIDI on riffd:out / riffd:in
  riffd serve --model runs/melody_erk/best.safetensors --tempo 96 --length 8
  riffd serve --config serve --midi-api jack    # a shipped config by name, or a .toml path
  riffd serve --mode follow --monitor          # play along note by note; hear it at once
  riffd serve --clock-source midi              # follow the DAW's MIDI clock on riffd:in
  riffd serve --link --link-start-stop         # join an Ableton Link session (LAN multicast)
  riffd ctl status                             # from another terminal

Connect your DAW or keyboard to riffd:in and riffd:out, play a phrase and stop:
after --silence seconds riffd answers in the phrase's key. On Linux without ALSA MIDI
start a JACK server first: jackd -d dummy -r 48000 -p 256 (or -d alsa with a sound card).
SIGINT/SIGTERM or `riffd ctl shutdown` stop it with every note off."""


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the daemon", description="Run the riffd daemon.",
                       epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file with a [serve] table, or the name of one that "
                                    "ships with riffd (serve: every key, commented)")
    p.add_argument("--model", help="checkpoint (.safetensors); default: the bundled melody model")
    p.add_argument("--device", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--midi-api", dest="midi_api",
                   choices=["auto", "alsa", "jack", "coremidi", "windows"],
                   help="MIDI system; auto tries the platform's own, then JACK")
    p.add_argument("--client-name", dest="client_name", help="MIDI client name (default riffd)")
    p.add_argument("--connect-out", dest="connect_out", metavar="PORT",
                   help="send to this existing MIDI port (its name or a unique part): on "
                        "Windows a loopMIDI port, which riffd opens in place of a virtual port; "
                        "on JACK riffd:out is connected to it (again after a server restart)")
    p.add_argument("--connect-in", dest="connect_in", metavar="PORT",
                   help="listen to this existing MIDI port (as --connect-out)")
    p.add_argument("--control", help="ZeroMQ endpoint for commands (default: a socket only you "
                                     "can reach, ipc://$XDG_RUNTIME_DIR/riffd/control); "
                                     "tcp:// endpoints use CURVE keys, see `riffd keys`")
    p.add_argument("--events", help="ZeroMQ endpoint for events (default: "
                                    "ipc://$XDG_RUNTIME_DIR/riffd/events)")
    p.add_argument("--tempo", type=float, help="tempo in BPM (default 120)")
    p.add_argument("--channel", type=int, help="MIDI channel 1-16 of generated notes")
    p.add_argument("--velocity", type=int, help="velocity 1-127 of generated notes")
    p.add_argument("--length", dest="length_bars", type=int, help="answer length in bars (default 4)")
    p.add_argument("--silence", dest="silence_s", type=float,
                   help="seconds of silence that end a played phrase (default 1.0)")
    p.add_argument("--max-hold", dest="max_hold_s", type=float,
                   help="seconds a key may stay down without its note-off before riffd "
                        "releases it (a lost note-off; default 10)")
    p.add_argument("--max-phrase-notes", dest="max_phrase_notes", type=int,
                   help="a played phrase ends and is answered at this many notes (default 256)")
    p.add_argument("--max-phrase", dest="max_phrase_s", type=float,
                   help="a played phrase ends and is answered this many seconds after its "
                        "first note (default 60)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", dest="top_k", type=int, help="top-k sampling, 0 = off")
    p.add_argument("--top-p", dest="top_p", type=float, help="nucleus sampling, 1.0 = off")
    p.add_argument("--rng-seed", dest="rng_seed", type=int,
                   help="repeatable answers: every voice draws from this seed at each seed "
                        "phrase and continuous start, so the same phrase gets the same answer "
                        "(default -1: fresh draws; per voice: set rng_seed)")
    p.add_argument("--mode", choices=["answer", "continuous", "follow"],
                   help="what the default voice does with played notes (default answer)")
    p.add_argument("--answer-on", dest="answer_on", choices=["beat", "bar"],
                   help="an answer starts on the next beat (default) or bar of the clock")
    p.add_argument("--phrase-end", dest="phrase_end", choices=["silence", "bar"],
                   help="a played phrase ends after --silence seconds (default) or at a bar line")
    p.add_argument("--beats-per-bar", dest="beats_per_bar", type=int, help="meter (default 4)")
    p.add_argument("--clock-source", dest="clock_source", choices=["internal", "midi", "link"],
                   help="keep time internally (default), follow MIDI clock on riffd:in, or "
                        "follow an Ableton Link session (as --link)")
    p.add_argument("--link", dest="clock_source", action="store_const", const="link",
                   default=None,
                   help="join an Ableton Link session: tempo and bar phase follow the session "
                        "and `set tempo` changes it for every peer. Off by default: Link "
                        "discovery multicasts on your local network")
    p.add_argument("--link-start-stop", dest="link_start_stop", action="store_true",
                   default=None,
                   help="with --link: follow the session's start and stop (Link start/stop "
                        "sync), and share riffd's start and stop with it")
    p.add_argument("--no-clock-out", dest="clock_out", action="store_false", default=None,
                   help="do not send MIDI clock and transport on riffd:out")
    p.add_argument("--model-dir", dest="model_dirs", action="append",
                   help="folder of checkpoints that load_model, add_voice and list_models may "
                        "read (repeatable; default runs/ and models/; the bundled models always)")
    p.add_argument("--max-model-mb", dest="max_model_mb", type=float,
                   help="largest checkpoint file riffd loads, in MB (default 512)")
    p.add_argument("--max-model-params", dest="max_model_params", type=int,
                   help="largest model riffd loads, in parameters (default 50000000)")
    p.add_argument("--record-dir", dest="record_dir",
                   help="folder for `record start` without a path (default recordings/)")
    p.add_argument("--monitor", action="store_true", default=None,
                   help="hear the notes through a pyo synth on the JACK audio device")
    audio = p.add_argument_group("spectral audio voice (raw audio from an FFT-frame LSTM)")
    audio.add_argument("--audio", action="store_true", default=None,
                       help="also run the audio voice; start it with `riffd ctl audio_start`")
    audio.add_argument("--audio-model", dest="audio_model",
                       help="spectral checkpoint (default: the bundled spectral model)")
    audio.add_argument("--audio-device", dest="audio_device",
                       help="output device name or index (`python -m sounddevice` lists them)")
    audio.add_argument("--audio-blocksize", dest="audio_blocksize", type=int,
                       help="frames per audio callback (default 256; 0 = PortAudio's choice)")
    audio.add_argument("--audio-latency", dest="audio_latency",
                       help="output latency: low, high or seconds (default low)")
    p.add_argument("--output-latency-ms", dest="output_latency_ms", type=float,
                   help="send notes this many ms before their beat, so that they sound on it "
                        "at a synth this slow (-500..500, negative delays; default 0; "
                        "measure it with `riffd calibrate`; per voice: set output_latency_ms)")
    p.add_argument("--realtime", choices=["auto", "on", "off"],
                   help="SCHED_FIFO for the scheduler and MIDI-in threads and locked memory: "
                        "auto (default) uses them where the system allows and says when not, "
                        "on refuses to start without them, off never asks")
    osc = p.add_argument_group("OSC control (Max, Pd, SuperCollider, TouchOSC; docs/osc.md)")
    osc.add_argument("--osc", help="also take commands as OSC on udp://127.0.0.1:PORT "
                                   "(/riffd/start, /riffd/set tempo 100, ...; loopback only)")
    osc.add_argument("--osc-reply", dest="osc_reply",
                     help="send every OSC reply to udp://HOST:PORT (default: to the sender)")
    osc.add_argument("--osc-events", dest="osc_events",
                     help="send every event to udp://HOST:PORT (clients may also send "
                          "/riffd/subscribe)")
    osc.add_argument("--osc-allow-remote", dest="osc_allow_remote", action="store_true",
                     default=None,
                     help="let --osc listen on an address other machines can reach. OSC has "
                          "no authentication: anyone who can send to it controls riffd")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="riffd: %(message)s")
    # `kill -USR1 PID` prints every thread's stack to stderr: what a stuck daemon is doing
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from riffd.daemon.midi_ports import MidiPortError
    from riffd.daemon.serve_config import ServeConfigError, load_serve_config
    from riffd.daemon.service import Riffd, StartupInterrupted
    from riffd.engine.checkpoint import CheckpointError
    try:
        cfg = load_serve_config(args.config)
    except ServeConfigError as exc:
        print(f"riffd serve: {exc}", file=sys.stderr)
        return 2
    for key, value in vars(args).items():
        if value is not None and hasattr(cfg, key) and key != "config":
            setattr(cfg, key, value)
    daemon = None
    try:
        _check_endpoints(cfg)   # before models and ports: a refused endpoint fails at once
        daemon = Riffd(cfg)
        return daemon.run()
    except StartupInterrupted:
        logging.getLogger("riffd").info("riffd stopped during start-up (signal)")
        if daemon is not None and daemon.abandoned_work:
            # a model still loading on its thread: leave it, rather than let the interpreter
            # shut down around it (torch's C++ teardown beneath a running thread can crash)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0
    except (MidiPortError, CheckpointError, ValueError, OSError) as exc:
        print(f"riffd serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:   # a bug: one clear line here, the traceback in the debug log
        logging.getLogger("riffd").debug("serve failed", exc_info=True)
        print(f"riffd serve: stopped by an unexpected error: {type(exc).__name__}: {exc} "
              "(run with --log-level DEBUG for the details)", file=sys.stderr)
        return 1


def _check_endpoints(cfg) -> None:
    """Refuse control/event endpoints that would let other users or machines in
    (:class:`riffd.daemon.auth.SecurityError`, an OSError, says how to set them up)."""
    import zmq

    from riffd.daemon.auth import ServerSecurity, default_endpoint
    security = ServerSecurity(zmq.Context.instance())
    security.check(cfg.control or default_endpoint("control"), "--control")
    security.check(cfg.events or default_endpoint("events"), "--events")
    if cfg.osc:     # an OscEndpointError (a ValueError) says why and what to write instead
        from riffd.daemon.osc import check_endpoint
        check_endpoint(cfg.osc, cfg.osc_allow_remote)


OFFLINE_COMMANDS = ("train", "eval", "render")


def _offline(argv: list[str]) -> int:
    """Hand ``riffd train|eval|render …`` to the training package in a fresh interpreter."""
    command = [sys.executable, "-m", "riffd.training", *argv]
    if os.name == "posix":
        os.execv(sys.executable, command)
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    """The ``riffd`` command; returns its exit status (130 after Ctrl-C before the command's own
    handling of it is in place, e.g. while torch is still being imported)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("riffd: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in OFFLINE_COMMANDS:
        return _offline(argv)
    parser = argparse.ArgumentParser(prog="riffd", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _serve_parser(sub)
    from riffd.daemon import ctl, demo, keys
    ctl.add_arguments(sub.add_parser("ctl", help="send a command to a running daemon"))
    keys.add_arguments(sub.add_parser("keys", help="show or create keys for tcp:// endpoints"))
    from riffd.daemon import doctor
    doctor.add_arguments(sub.add_parser("doctor", help="check this machine for what riffd "
                                                       "needs and say what to fix"))
    from riffd.daemon import view
    view.add_arguments(sub.add_parser("view", help="watch and drive a running daemon live"))
    demo.add_arguments(sub.add_parser("demo", help="play a phrase into riffd and record the answer"))
    from riffd.daemon import calibrate
    calibrate.add_arguments(sub.add_parser(
        "calibrate", help="measure a MIDI loop's round trip and suggest --output-latency-ms"))
    sub.add_parser("train", help="train a model: riffd train melody_erk; riffd train --list "
                                 "(see --help)")
    sub.add_parser("eval", help="evaluate a checkpoint on held-out data (see --help)")
    sub.add_parser("render", help="generate offline from a checkpoint (see --help)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "ctl":
        return ctl.run(args)
    if args.command == "doctor":
        return doctor.run(args)
    if args.command == "keys":
        return keys.run(args)
    if args.command == "view":
        return view.run(args)
    if args.command == "calibrate":
        return calibrate.run(args)
    return demo.run(args)
