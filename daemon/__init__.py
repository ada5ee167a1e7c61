"""riffd daemon: the long-running process (scheduler, MIDI ports, audio, control)."""
