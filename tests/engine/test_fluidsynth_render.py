"""FluidSynth rendering (``riffd.engine.fluidsynth_render``): a real render with pretty_midi's
TimGM6mb soundfont, and the errors that name the fix when FluidSynth or the soundfont is missing."""
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

from riffd.engine.fluidsynth_render import (FluidSynthError, pretty_midi_soundfont,
                                            render_pretty_midi, scale_to_peak)

RATE = 22050                       # Hz
C4, E4 = 60, 64                    # MIDI pitches, 261.6 Hz and 329.6 Hz


def two_notes() -> pretty_midi.PrettyMIDI:
    """C4 for 0..0.5 s, then E4 for 0.5..1.0 s, on a piano."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    piano.notes += [pretty_midi.Note(velocity=90, pitch=C4, start=0.0, end=0.5),
                    pretty_midi.Note(velocity=90, pitch=E4, start=0.5, end=1.0)]
    pm.instruments.append(piano)
    return pm


def strongest_partial_hz(audio: np.ndarray, start_s: float, end_s: float) -> float:
    segment = audio[int(start_s * RATE):int(end_s * RATE)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))     # 2.5 Hz bins
    return float(np.fft.rfftfreq(len(segment), 1 / RATE)[spectrum.argmax()])


def rms(audio: np.ndarray, start_s: float, end_s: float) -> float:
    return float(np.sqrt(np.mean(audio[int(start_s * RATE):int(end_s * RATE)] ** 2)))


def test_two_notes_render_at_their_pitches_for_their_length():
    audio = render_pretty_midi(two_notes(), RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 2 * RATE          # 1.0 s of notes + the 1 s release pretty_midi adds
    assert float(np.max(np.abs(audio))) == pytest.approx(1.0, abs=1e-6)
    # each half sounds, and its strongest partial is a harmonic of its own note
    for (start, end), pitch in (((0.05, 0.45), C4), ((0.55, 0.95), E4)):
        assert rms(audio, start, end) > 0.05
        ratio = strongest_partial_hz(audio, start, end) / pretty_midi.note_number_to_hz(pitch)
        assert abs(ratio - round(ratio)) < 0.02 and round(ratio) >= 1, (pitch, ratio)
    assert rms(audio, 1.5, 1.9) < rms(audio, 0.55, 0.95) / 20      # the release fades out


def test_the_default_soundfont_is_the_one_inside_pretty_midi():
    soundfont = pretty_midi_soundfont()
    assert soundfont.name == "TimGM6mb.sf2" and soundfont.is_file()
    assert soundfont.parent.name == "pretty_midi"


def test_a_missing_soundfont_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "nothing.sf2"
    with pytest.raises(FluidSynthError, match=r"nothing\.sf2 not found.*pip install"):
        render_pretty_midi(two_notes(), RATE, soundfont=missing)


def test_a_missing_fluidsynth_names_the_install_commands(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)       # `import fluidsynth` now fails
    with pytest.raises(FluidSynthError, match=r"apt-get install fluidsynth.*brew install "
                                              r"fluid-synth"):
        render_pretty_midi(two_notes(), RATE)


def test_scale_to_peak_keeps_silence_silent():
    assert np.max(np.abs(scale_to_peak(np.array([0.1, -0.5], np.float32), 0.9))) == \
        pytest.approx(0.9)
    assert not scale_to_peak(np.zeros(4, np.float32), 0.9).any()
    assert scale_to_peak(np.zeros(0, np.float32), 0.9).size == 0


def test_importing_it_loads_neither_pretty_midi_nor_fluidsynth():
    code = ("import sys, riffd.engine.fluidsynth_render; "
            "print(sorted(m for m in ('pretty_midi', 'fluidsynth', 'mido') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
