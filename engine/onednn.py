"""Switching PyTorch's oneDNN (mkldnn) CPU kernels on or off around a model pass.

At batch 1 (one stream's single step) oneDNN makes LSTM calls slower on the CPU; at a
batch of several bars (a GAN's lookahead) it makes them faster. ``benchmarks/step_latency.py``
and ``benchmarks/symbolic_latency.py`` measure both. The switch is process-wide, so it is
set for one pass and put back afterwards.
"""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def onednn(device: torch.device, enabled: bool):
    """oneDNN on (``enabled``) or off for one CPU pass, as it was afterwards; other devices
    are left alone."""
    if device.type != "cpu" or torch.backends.mkldnn.enabled == enabled:
        yield
        return
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def cpu_fast_path(device: torch.device, use_onednn: bool = False):
    """The context for single steps: oneDNN off on the CPU unless ``use_onednn`` asks to
    leave it as it is."""
    return contextlib.nullcontext() if use_onednn else onednn(device, enabled=False)
