"""riffd sends to and listens to existing MIDI ports it is told of (--connect-out/--connect-in):
on Windows these are loopMIDI ports, opened through rtmidi in place of virtual ports; on JACK
riffd's own ports are connected to them. Both paths run here on the test JACK server, with a
separate JACK client as the existing ports."""
from __future__ import annotations

import subprocess
import sys

import pytest

from riffd.daemon.midi_peer import MidiPeer
from riffd.daemon.midi_ports import MidiPortError, find_port
from riffd.daemon.process import DaemonProcess
from tests.waiting import wait_until

NOTE_ON, NOTE_OFF = 0x90, 0x80


def test_find_port_takes_the_exact_name_or_a_unique_part_and_names_what_is_there():
    names = ["loopMIDI Port 1", "riffd out 2", "riffd in 3"]
    assert find_port("riffd out", names, "input") == 1
    assert find_port("riffd in 3", names, "input") == 2
    with pytest.raises(MidiPortError, match="2 MIDI input ports match 'riffd'"):
        find_port("riffd", names, "input")
    with pytest.raises(MidiPortError, match="no MIDI input port called 'synth'.*'loopMIDI Port 1'"):
        find_port("synth", names, "input")


# rtmidi's open_port holds the GIL while JACK connects the port, and JACK waits for every client
# of the graph: riffd's rtmidi ports therefore run in a process of their own, as they would
# beside a DAW.
RTMIDI_SIDE = """
import sys, time
from riffd.daemon.midi_ports import RtMidiPorts
ports = RtMidiPorts("jack")
ports.connect_out, ports.connect_in = sys.argv[1], sys.argv[2]
heard = []
ports.set_input_callback(lambda message, t: heard.append(message))
ports.open("riffd-rt")
print("open", ports.out_port_name, ports.in_port_name, flush=True)
ports.send([0x90, 60, 100])
ports.send([0x80, 60, 0])
deadline = time.monotonic() + 10
while [0x90, 64, 90] not in heard and time.monotonic() < deadline:
    time.sleep(0.01)
print("heard", heard, flush=True)
ports.close()
"""


def test_rtmidi_opens_existing_ports_in_place_of_virtual_ones(jack_server):
    # the path Windows takes with loopMIDI ports, here through rtmidi's JACK API
    with MidiPeer("existing-ports") as peer:
        side = subprocess.Popen([sys.executable, "-c", RTMIDI_SIDE, peer.in_port_name,
                                 peer.out_port_name], stdout=subprocess.PIPE, text=True)
        try:
            opened = side.stdout.readline().split()
            assert opened == ["open", peer.in_port_name, peer.out_port_name]
            assert peer.wait_for(lambda rs: [r.message for r in rs]
                                 == [[NOTE_ON, 60, 100], [NOTE_OFF, 60, 0]], 10)
            peer.send([NOTE_ON, 64, 90])
            heard = side.stdout.readline()
            assert heard.startswith("heard") and "[144, 64, 90]" in heard, heard
            assert side.wait(10) == 0
        finally:
            side.kill()
            side.wait()


def test_rtmidi_names_the_ports_there_are_when_the_one_asked_for_is_missing(jack_server):
    code = ("from riffd.daemon.midi_ports import RtMidiPorts, MidiPortError\n"
            "ports = RtMidiPorts('jack'); ports.connect_out = 'no-such-synth'\n"
            "try:\n    ports.open('riffd-rt-missing')\n"
            "except MidiPortError as e:\n    print(e, ports.is_open)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "no MIDI input port called 'no-such-synth'" in done.stdout, done.stderr
    assert done.stdout.strip().endswith("False")


def test_serve_sends_to_and_listens_to_the_ports_it_is_told_of(jack_server, tmp_path):
    with MidiPeer("daw") as daw:
        args = ["--midi-api", "jack", "--client-name", "riffd-connected", "--tempo", "240",
                "--length", "2", "--silence", "0.4", "--log-level", "WARNING",
                "--connect-out", "daw:in", "--connect-in", "daw:out"]
        with DaemonProcess(args, log_path=tmp_path / "serve.log") as daemon:
            with daemon.client() as c:
                ports = c.status()["ports"]
            # nothing connected by hand: riffd's ports are linked to the DAW's ...
            client = daw._ports._client
            assert [p.name for p in client.get_all_connections(daw.in_port_name)] == \
                ["riffd-connected:out"], ports
            assert [p.name for p in client.get_all_connections(daw.out_port_name)] == \
                ["riffd-connected:in"], ports
            # ... so a phrase played at the DAW's port is answered there, note for note
            daw.play([(0.1 + 0.25 * k, [NOTE_ON, 60 + 2 * k, 90]) for k in range(4)]
                     + [(0.3 + 0.25 * k, [NOTE_OFF, 60 + 2 * k, 0]) for k in range(4)])
            with daemon.client() as c:
                assert wait_until(lambda: c.status()["counters"]["notes_sent"] >= 1, 30)
                assert wait_until(lambda: c.status()["counters"]["sounding"] == 0, 30)
                sent = c.status()["counters"]["notes_sent"]
            assert daw.wait_for(lambda rs: sum(r.message[0] == NOTE_ON and r.message[2] > 0
                                               for r in rs) >= sent, 10)


def test_serve_stops_with_the_ports_there_are_when_a_name_is_wrong(jack_server):
    result = subprocess.run([sys.executable, "-m", "riffd.daemon", "serve", "--midi-api", "jack",
                             "--client-name", "riffd-wrong", "--connect-out", "no-such-daw"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no MIDI input port called 'no-such-daw'" in result.stderr
