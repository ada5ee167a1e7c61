"""Notes to audio with FluidSynth and a General MIDI soundfont.

The soundfont is TimGM6mb.sf2, the small General MIDI set that ships inside the pretty_midi
package (so nothing else needs downloading). pretty_midi and pyfluidsynth are imported inside
the functions: importing this module costs nothing optional. A missing FluidSynth or
soundfont is a :class:`FluidSynthError` whose message names the fix.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

RENDER_RATE = 44100                  # Hz, FluidSynth's usual rate
SOUNDFONT_NAME = "TimGM6mb.sf2"      # the General MIDI soundfont inside pretty_midi
INSTALL_FLUIDSYNTH = ("install it with `apt-get install fluidsynth` (macOS: "
                      "`brew install fluid-synth`) and `pip install pyfluidsynth`")


class FluidSynthError(RuntimeError):
    """FluidSynth or its soundfont cannot be found; the message says what to install."""


def pretty_midi_soundfont() -> Path:
    """The path of TimGM6mb.sf2 inside the installed pretty_midi package (found without
    importing it); raises FluidSynthError when pretty_midi is not installed."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.origin:
        raise FluidSynthError(f"pretty_midi is not installed, so its soundfont {SOUNDFONT_NAME} "
                              "is missing; install it with `pip install pretty_midi`")
    return Path(spec.origin).parent / SOUNDFONT_NAME


def _require_fluidsynth() -> None:
    """Raise FluidSynthError unless pyfluidsynth and the FluidSynth library load."""
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; loads libfluidsynth)
    except Exception as exc:       # ImportError, or OSError/AttributeError from a broken library
        raise FluidSynthError(f"FluidSynth cannot render ({exc}); {INSTALL_FLUIDSYNTH}") from None


def render_pretty_midi(pm, sample_rate: int = RENDER_RATE,
                       soundfont: str | Path | None = None) -> np.ndarray:
    """Render a ``pretty_midi.PrettyMIDI`` with FluidSynth → (S,) float32 mono at
    ``sample_rate`` Hz, S = ceil((last note-off in s + 1 s of release) × ``sample_rate``)
    (no samples for a MIDI without notes); pretty_midi scales it to a peak of 1.

    ``soundfont`` is a General MIDI .sf2 file (default: pretty_midi's TimGM6mb.sf2).
    """
    path = Path(soundfont) if soundfont is not None else pretty_midi_soundfont()
    if not path.is_file():
        raise FluidSynthError(f"soundfont {path} not found; give the path of a General MIDI "
                              ".sf2 file, or reinstall pretty_midi (`pip install "
                              f"--force-reinstall pretty_midi`), which ships {SOUNDFONT_NAME}")
    _require_fluidsynth()
    try:
        audio = pm.fluidsynth(fs=sample_rate, synthesizer=str(path))
    except (ImportError, OSError) as exc:      # the library failed as it started
        raise FluidSynthError(f"FluidSynth cannot render ({exc}); {INSTALL_FLUIDSYNTH}") from None
    return np.asarray(audio, dtype=np.float32)


def scale_to_peak(audio: np.ndarray, peak: float) -> np.ndarray:
    """``audio`` scaled so its largest magnitude is ``peak`` (silence stays silence)."""
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / top * peak if top > 0 else audio
