"""``riffd view``: the terminal UI (Textual) that watches and drives a running daemon.

``app`` (the window and its keys), ``feed`` (the network thread), ``state`` (what is known,
in beats), ``roll`` (the piano roll as text). This module only holds the command line, so
that ``riffd`` starts without importing Textual.
"""
from __future__ import annotations

import argparse

DEFAULT_CONTROL = "ipc://$XDG_RUNTIME_DIR/riffd/control"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``riffd view``."""
    parser.description = ("Watch a running `riffd serve` live: the clock, every voice, a piano "
                          "roll of the notes played in and sent out with each voice's plan "
                          "ahead of the playhead, and the counters. Keys drive the selected "
                          "voice (the footer lists them); q quits.")
    parser.add_argument("--endpoint", metavar="URL",
                        help=f"the daemon's control endpoint (default {DEFAULT_CONTROL})")
    parser.add_argument("--events-endpoint", dest="events_endpoint", metavar="URL",
                        help="the daemon's event endpoint (default: the one beside --endpoint)")


def run(args: argparse.Namespace) -> int:
    """Open the view until the musician quits; returns the exit status."""
    from riffd.daemon.view.app import RiffdView
    RiffdView(args.endpoint, args.events_endpoint).run()
    return 0
