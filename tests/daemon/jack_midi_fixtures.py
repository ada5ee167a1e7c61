"""Fixtures for the tests of riffd's own JACK MIDI ports: ``ports``, riffd's client (riffd:out,
riffd:in) on the session's JACK server, and ``peer``, a separate JACK client wired to both
(its out port to riffd:in, riffd:out to its in port).

A test module takes them by importing them: ``from tests.daemon.jack_midi_fixtures import
peer, ports``.
"""
import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.midi_ports import JackMidiPorts


@pytest.fixture
def ports(jack_server):
    with JackMidiPorts().open("riffd") as p:
        yield p


@pytest.fixture
def peer(ports):
    with MidiPeer() as p:
        p.connect(ports.out_port_name, ports.in_port_name)
        yield p
