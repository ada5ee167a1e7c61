"""docs/osc.md is the OSC contract: every protocol command has its documented address (and voice
address exactly when it takes a voice), every documented address and example is one the code
accepts, and the events and OSC-only addresses are the code's."""
import shlex
from pathlib import Path

import pytest

from riffd.daemon import osc_map
from riffd.daemon.protocol import COMMANDS, ERROR_CODES, EVENTS, ProtocolError
from tests.daemon.test_protocol_doc import section, table

DOC = (Path(__file__).resolve().parents[2] / "docs" / "osc.md").read_text(encoding="utf-8")


def words(example: str) -> tuple[str, list]:
    """``/riffd/set tempo 100 key 'Eb'`` → address and OSC values (ints, floats, strings)."""
    address, *tokens = shlex.split(example)
    values = []
    for t in tokens:
        try:
            values.append(int(t))
        except ValueError:
            try:
                values.append(float(t))
            except ValueError:
                values.append(t)
    return address, values


def command_rows() -> list[list[str]]:
    header, rows = table(section(DOC, "##", "Commands"))
    assert header == ["command", "address", "voice address", "example"]
    return rows


def test_every_command_has_its_address_and_no_other():
    rows = command_rows()
    assert [r[0] for r in rows] == list(COMMANDS)
    for name, address, voice_address, _ in rows:
        assert address == f"/riffd/{name}"
        takes_voice = COMMANDS[name].arg("voice") is not None
        assert voice_address == (f"/riffd/voice/NAME/{name}" if takes_voice else "—"), name


@pytest.mark.parametrize("row", command_rows(), ids=lambda r: r[0])
def test_documented_addresses_and_examples_are_accepted(row):
    name, address, voice_address, example = row
    ex_address, values = words(example)
    assert ex_address == address
    parsed = osc_map.to_request(ex_address, values)          # raises if the example is wrong
    assert parsed.cmd == name and parsed.request.cmd == name
    if voice_address != "—":
        voiced = osc_map.to_request(voice_address.replace("NAME", "bass"), values)
        assert voiced.request.args["voice"] == "bass"


def test_undocumented_addresses_are_refused():
    for address in ("/riffd/bogus", "/riffd/voice/bass/status", "/other/set", "/riffd"):
        with pytest.raises(ProtocolError) as err:
            osc_map.to_request(address, [])
        assert err.value.code == "unknown_command"


def test_osc_only_addresses_match_the_code():
    header, rows = table(section(DOC, "##", "OSC-only addresses"))
    assert header == ["address", "meaning"]
    assert [r[0] for r in rows] == [osc_map.SUBSCRIBE, osc_map.UNSUBSCRIBE]
    for address, _ in rows:
        assert osc_map.to_request(address, []).request is None


def test_events_match_the_code():
    header, rows = table(section(DOC, "##", "Events"))
    assert header == ["event", "address", "arguments"]
    assert [r[0] for r in rows] == list(EVENTS)
    for name, address, arguments in rows:
        assert address == osc_map.EVENT_PREFIX + name
        if name in osc_map.NOTE_EVENTS:
            assert arguments.split() == [*osc_map.NOTE_EVENTS[name], "voice"]
        else:
            assert arguments == "JSON"


def test_replies_and_the_osc_error_code_are_documented():
    header, rows = table(section(DOC, "##", "Replies"))
    assert [r[0] for r in rows] == [osc_map.REPLY, osc_map.ERROR]
    assert "not_osc" in ERROR_CODES and "not_osc" in DOC
