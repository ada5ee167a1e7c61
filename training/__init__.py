"""Offline side of riffd: corpora, preprocessing cache, training loops and checkpoints."""
