"""``riffd doctor``: check this machine for what riffd uses, and say what to install or start.

Each check prints one line, ``OK``, ``MISSING`` (with the fix on the next line) or ``N/A`` (not
on this platform):

- MIDI: the ALSA sequencer (``/dev/snd/seq``, Linux), a JACK server (``jack_lsp`` against
  ``$JACK_DEFAULT_SERVER``, never starting one), CoreMIDI (macOS), Windows MIDI, and which of
  these python-rtmidi was built with;
- audio: the output devices PortAudio (sounddevice) sees, for ``--audio``;
- synth: the FluidSynth program and library and a General MIDI soundfont (riffd renders with
  the TimGM6mb.sf2 that ships inside pretty_midi);
- GPU: whether torch sees CUDA, and the device's name;
- control: the private runtime folder of the control sockets (mode 0700) and whether a riffd
  already answers at the default endpoint.

Exit status: 0 when ``riffd serve`` can run here (a MIDI system riffd can open, the bundled
model, torch, a private runtime folder), 1 otherwise. Audio, FluidSynth and CUDA are optional.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from riffd.engine.fluidsynth_render import (SOUNDFONT_NAME, FluidSynthError,
                                             pretty_midi_soundfont)

OK, MISSING, NA = "OK", "MISSING", "N/A"
ALSA_SEQUENCER = "/dev/snd/seq"
PROBE_TIMEOUT_S = 10.0       # longest one probe (a subprocess) may take, seconds
WIDTH = 100                  # report lines are wrapped at this many characters


@dataclass
class Check:
    """One line of the report: ``area`` (MIDI, audio, ...), ``name``, ``state`` (OK, MISSING,
    N/A), what was found (``detail``) and, when MISSING, how to fix it (``fix``)."""

    area: str
    name: str
    state: str
    detail: str
    fix: str = ""


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                          env={**os.environ, **(env or {})}, check=False)


# --- MIDI ---------------------------------------------------------------------------------------

def check_alsa() -> Check:
    if not sys.platform.startswith("linux"):
        return Check("MIDI", "ALSA sequencer", NA, "Linux only")
    if not os.path.exists(ALSA_SEQUENCER):
        return Check("MIDI", "ALSA sequencer", MISSING, f"{ALSA_SEQUENCER} does not exist",
                     "load the sequencer: `sudo modprobe snd-seq` (a desktop Linux has it; "
                     "containers and servers often do not), or use a JACK server instead")
    if not os.access(ALSA_SEQUENCER, os.R_OK | os.W_OK):
        return Check("MIDI", "ALSA sequencer", MISSING, f"{ALSA_SEQUENCER} is not open to you",
                     "add yourself to the audio group: `sudo usermod -aG audio $USER`, then "
                     "log in again")
    return Check("MIDI", "ALSA sequencer", OK, f"{ALSA_SEQUENCER} (PipeWire and ALSA programs "
                                              "see riffd:out / riffd:in)")


def check_jack() -> Check:
    """A JACK server answers (``jack_lsp``, with JACK_NO_START_SERVER so none is started)."""
    name = os.environ.get("JACK_DEFAULT_SERVER", "default")
    if shutil.which("jack_lsp") is None:
        return Check("MIDI", "JACK server", MISSING, "the JACK tools are not installed",
                     "install JACK: `sudo apt-get install jackd2` (macOS: `brew install jack`), "
                     "then start a server, e.g. `jackd -d alsa` or, without a sound card, "
                     "`jackd -d dummy -r 48000 -p 256`")
    try:
        done = _run(["jack_lsp"], {"JACK_NO_START_SERVER": "1"})
    except subprocess.TimeoutExpired:
        return Check("MIDI", "JACK server", MISSING, f"server {name!r} did not answer within "
                                                     f"{PROBE_TIMEOUT_S:g} s",
                     "the server seems stuck: stop it and start it again")
    if done.returncode != 0:
        return Check("MIDI", "JACK server", MISSING, f"no JACK server {name!r} is running",
                     "start one: `jackd -d alsa` (a sound card) or `jackd -d dummy -r 48000 "
                     "-p 256` (none), or QjackCtl; with PipeWire, run riffd as `pw-jack riffd "
                     "serve`" + (f"; this shell asks for the server named {name!r} "
                                 "(JACK_DEFAULT_SERVER)" if name != "default" else ""))
    ports = [p for p in done.stdout.split("\n") if p.strip()]
    return Check("MIDI", "JACK server", OK, f"server {name!r} runs ({len(ports)} ports)")


def check_coremidi() -> Check:
    if sys.platform != "darwin":
        return Check("MIDI", "CoreMIDI", NA, "macOS only")
    return Check("MIDI", "CoreMIDI", OK, "built into macOS: riffd makes virtual ports that "
                                         "Logic and Ableton see")


def check_windows_midi() -> Check:
    if not sys.platform.startswith("win"):
        return Check("MIDI", "Windows MIDI", NA, "Windows only")
    return Check("MIDI", "Windows MIDI", MISSING, "Windows has no virtual MIDI ports",
                 "install loopMIDI (Tobias Erichsen) and make two ports for riffd")


def check_rtmidi() -> Check:
    try:
        import rtmidi
    except ImportError as exc:
        return Check("MIDI", "python-rtmidi", MISSING, f"cannot import rtmidi ({exc})",
                     "reinstall riffd: `pip install .` pulls python-rtmidi")
    apis = [rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()]
    return Check("MIDI", "python-rtmidi", OK, f"built with {', '.join(apis) or 'no API'}")


def _rtmidi_apis() -> set[str]:
    """The MIDI systems python-rtmidi was built with: "ALSA", "JACK", "CoreMIDI"."""
    try:
        import rtmidi
        compiled = set(rtmidi.get_compiled_api())
    except Exception:
        return set()
    return {label for label, api in (("ALSA", rtmidi.API_LINUX_ALSA),
                                     ("JACK", rtmidi.API_UNIX_JACK),
                                     ("CoreMIDI", rtmidi.API_MACOSX_CORE)) if api in compiled}


def midi_system(checks: list[Check]) -> str | None:
    """The MIDI system ``riffd serve --midi-api auto`` would open (found here, and built into
    python-rtmidi), or None."""
    by_name = {c.name: c.state for c in checks}
    apis = _rtmidi_apis()
    for name, label in (("ALSA sequencer", "ALSA"), ("CoreMIDI", "CoreMIDI"),
                        ("JACK server", "JACK")):
        if by_name.get(name) == OK and label in apis:
            return label
    return None


# --- audio, synth, GPU --------------------------------------------------------------------------

_AUDIO_PROBE = """
import json, sounddevice as sd
out = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
try:
    default = sd.query_devices(kind="output")["name"]
except Exception:
    default = None
print(json.dumps({"outputs": out, "default": default}))
"""


def check_audio() -> Check:
    """Output devices as PortAudio sees them, probed in a child process (PortAudio prints its
    ALSA complaints on stderr, and must not start a JACK server)."""
    if importlib.util.find_spec("sounddevice") is None:
        return Check("audio", "audio devices", MISSING, "sounddevice is not installed",
                     "`pip install sounddevice` (only the --audio voice needs it)")
    try:
        done = _run([sys.executable, "-c", _AUDIO_PROBE], {"JACK_NO_START_SERVER": "1"})
    except subprocess.TimeoutExpired:
        return Check("audio", "audio devices", MISSING, "PortAudio did not answer in time",
                     "check the sound system (pactl info / jack_lsp), then run doctor again")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        fix = ("install PortAudio: `sudo apt-get install libportaudio2`" if "PortAudio library"
               in done.stderr else "check the sound system; `python -m sounddevice` lists the "
                                   "devices")
        return Check("audio", "audio devices", MISSING, f"PortAudio failed: {last}", fix)
    found = json.loads(done.stdout)
    if not found["outputs"]:
        return Check("audio", "audio devices", MISSING, "PortAudio sees no output device",
                     "connect a sound card, or start a JACK server (the dummy driver gives a "
                     "device without hardware); only the --audio voice needs one")
    return Check("audio", "audio devices", OK, f"{len(found['outputs'])} output(s), default "
                                               f"{found['default']!r}")


def check_fluidsynth() -> list[Check]:
    checks = []
    program = shutil.which("fluidsynth")
    library = importlib.util.find_spec("fluidsynth") is not None
    if program and library:
        checks.append(Check("synth", "FluidSynth", OK, f"{program}, pyfluidsynth installed"))
    else:
        missing = " and ".join(w for w, have in (("the fluidsynth program", program),
                                                  ("pyfluidsynth", library)) if not have)
        checks.append(Check("synth", "FluidSynth", MISSING, f"{missing} not found",
                            "`sudo apt-get install fluidsynth` (macOS: `brew install "
                            "fluid-synth`) and `pip install pyfluidsynth`; the demo's WAV and "
                            "the audio corpora need it"))
    try:
        font = pretty_midi_soundfont()          # the soundfont riffd renders with
        problem = None if font.is_file() else f"{font} is missing"
    except FluidSynthError as exc:
        font, problem = None, str(exc)
    if problem is None:
        checks.append(Check("synth", "soundfont", OK, str(font)))
    else:
        checks.append(Check("synth", "soundfont", MISSING, problem,
                            f"`pip install --force-reinstall pretty_midi` (it ships "
                            f"{SOUNDFONT_NAME}, the General MIDI soundfont riffd renders with)"))
    return checks


def check_cuda() -> list[Check]:
    try:
        import torch
    except Exception as exc:              # ImportError, or a broken CUDA build's OSError
        return [Check("GPU", "torch", MISSING, f"cannot import torch ({exc})",
                      "reinstall riffd: `pip install .`; on a CPU-only machine first "
                      "`pip install torch --index-url https://download.pytorch.org/whl/cpu`")]
    checks = [Check("GPU", "torch", OK, f"torch {torch.__version__}")]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        checks.append(Check("GPU", "CUDA", OK, f"{name} (CUDA {torch.version.cuda}); riffd "
                                               f"serves on it with --device auto"))
    elif torch.version.cuda is None:
        checks.append(Check("GPU", "CUDA", MISSING, "this torch is a CPU-only build",
                            "optional: riffd runs on the CPU. For a GPU install a CUDA build "
                            "of torch (pytorch.org lists the command)"))
    else:
        checks.append(Check("GPU", "CUDA", MISSING, f"torch has CUDA {torch.version.cuda} but "
                                                    "sees no GPU",
                            "optional: riffd runs on the CPU. Check the driver with "
                            "`nvidia-smi`"))
    return checks


def check_model() -> Check:
    from riffd.engine.loading import BUNDLED_MODEL
    if BUNDLED_MODEL.is_file():
        return Check("models", "bundled model", OK, f"{BUNDLED_MODEL.name} "
                                                    f"({BUNDLED_MODEL.stat().st_size // 1024} KB)")
    return Check("models", "bundled model", MISSING, f"{BUNDLED_MODEL} is missing",
                 "reinstall riffd (`pip install .`): the melody model ships with it")


# --- control ------------------------------------------------------------------------------------

def check_control() -> list[Check]:
    """The runtime folder (without creating it) and a daemon answering ``ping`` there."""
    from riffd.daemon.auth import SecurityError, private_dir
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "riffd" if base else Path("/tmp") / f"riffd-{os.geteuid()}"
    if not folder.exists():
        return [Check("control", "runtime folder", OK, f"{folder} will be made (mode 0700) by "
                                                       f"the first `riffd serve`")]
    try:
        private_dir(folder, "socket folder", create=False)
    except SecurityError as exc:
        return [Check("control", "runtime folder", MISSING, str(exc).split(";")[0],
                      str(exc).split(";", 1)[-1].strip())]
    checks = [Check("control", "runtime folder", OK, f"{folder} (mode 0700, yours)")]
    endpoint = f"ipc://{folder / 'control'}"
    if not (folder / "control").exists():
        checks.append(Check("control", "daemon", OK, f"none answers at {endpoint}; "
                                                     f"`riffd serve` starts one"))
        return checks
    from riffd.daemon.client import RiffdClient, RiffdUnavailable
    try:
        with RiffdClient(endpoint, timeout_s=1.0) as client:
            status = client.status()
        voices = ", ".join(v["name"] for v in status.get("voices", []))
        checks.append(Check("control", "daemon", OK, f"riffd answers at {endpoint} (voices "
                                                     f"{voices}; a second `riffd serve` needs "
                                                     f"its own --control)"))
    except RiffdUnavailable:
        checks.append(Check("control", "daemon", OK, f"none answers at {endpoint} (a socket "
                                                     f"file left by a riffd that ended; "
                                                     f"`riffd serve` takes it over)"))
    except Exception as exc:   # an answer riffd cannot read: another program on the socket
        checks.append(Check("control", "daemon", MISSING, f"something at {endpoint} answers "
                                                          f"but not as riffd ({exc})",
                            "stop that program, or start riffd with --control elsewhere"))
    return checks


# --- report -------------------------------------------------------------------------------------

def run_checks() -> list[Check]:
    checks = [check_alsa(), check_jack(), check_coremidi(), check_windows_midi(),
              check_rtmidi(), check_audio(), *check_fluidsynth(), *check_cuda()]
    try:
        checks.append(check_model())
    except Exception as exc:               # engine needs torch: reported above
        checks.append(Check("models", "bundled model", MISSING, f"cannot load riffd's engine "
                                                                f"({exc})",
                            "reinstall riffd: `pip install .`"))
    return checks + check_control()


def verdict(checks: list[Check]) -> tuple[bool, str]:
    """Whether ``riffd serve`` can run here, and why (one sentence)."""
    midi = midi_system(checks)
    needed = {"python-rtmidi", "torch", "bundled model", "runtime folder"}
    broken = [c.name for c in checks if c.name in needed and c.state != OK]
    if midi is None:
        broken.insert(0, "a MIDI system (ALSA sequencer, JACK server or CoreMIDI)")
    if broken:
        return False, f"riffd serve cannot run here: fix {', '.join(broken)} (MISSING above)"
    return True, f"riffd serve can run here, with MIDI through {midi}"


def report(checks: list[Check]) -> str:
    lines = ["riffd doctor: what riffd finds on this machine", ""]
    area = None
    indent = " " * 28
    for c in checks:
        if c.area != area:
            area = c.area
            lines.append(area)
        lines.append(textwrap.fill(f"  {c.state:<8} {c.name:<16} {c.detail}", WIDTH,
                                   subsequent_indent=indent))
        if c.fix and c.state == MISSING:
            lines.append(textwrap.fill(f"fix: {c.fix}", WIDTH, initial_indent=indent,
                                       subsequent_indent=indent + "     "))
    ok, why = verdict(checks)
    lines += ["", textwrap.fill(f"{why}. Exit status {0 if ok else 1}.", WIDTH)]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Check the MIDI systems, audio devices, FluidSynth and a soundfont, CUDA "
                     "and the control endpoint, and say what to install or start. Exit status "
                     "0 when `riffd serve` can run here, 1 when it cannot.")
    p.add_argument("--json", action="store_true",
                   help="print the checks as JSON ({checks: [...], can_serve, summary})")


def run(args: argparse.Namespace) -> int:
    checks = run_checks()
    ok, why = verdict(checks)
    if args.json:
        print(json.dumps({"checks": [asdict(c) for c in checks], "can_serve": ok,
                          "summary": why}, indent=2))
    else:
        print(report(checks))
    return 0 if ok else 1
