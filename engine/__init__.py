"""riffd's runtime core: representations, models, sampling, checkpoints and generators.

Imports only torch and numpy; nothing here touches MIDI, audio or music21.
"""
