"""``riffd.daemon.recording``: notes written to a MIDI file and rendered to a WAV with FluidSynth."""
import numpy as np
from scipy.io import wavfile

from riffd.daemon.recording import TimedNote, render_wav, write_midi

RATE = 22050        # Hz


def test_a_recorded_phrase_renders_to_a_wav_of_its_length(tmp_path):
    notes = [TimedNote(60, 100, 0.0, 0.5), TimedNote(67, 100, 0.5, 1.5)]      # seconds
    midi, wav = tmp_path / "phrase.mid", tmp_path / "phrase.wav"
    write_midi(midi, {"riffd": notes}, tempo_bpm=120)
    note = render_wav(midi, wav, RATE)
    rate, audio = wavfile.read(wav)
    assert rate == RATE and audio.dtype == np.int16 and audio.ndim == 1
    assert len(audio) == int(np.ceil((1.5 + 1.0) * RATE))      # notes + 1 s of release
    assert np.max(np.abs(audio)) == int(0.9 * 32767)           # scaled to 90 % of full scale
    assert np.sqrt(np.mean((audio[:RATE].astype(float) / 32767) ** 2)) > 0.05
    assert "TimGM6mb.sf2" in note and f"{RATE} Hz" in note and "2.5 s" in note
