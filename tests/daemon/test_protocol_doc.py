"""docs/protocol.md is the contract: parse it and hold it to daemon/protocol.py."""

import json
import re
from pathlib import Path

import pytest

from riffd.daemon.protocol import COMMANDS, ERROR_CODES, EVENTS, NOTE_FIELDS, PROTOCOL_VERSION

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def section(text: str, level: str, title: str) -> str:
    """The body of the heading ``level title`` up to the next heading of that level or above."""
    m = re.search(rf"^{level} {re.escape(title)}\s*$(.*?)(?=^#{{1,{len(level)}}} |\Z)", text,
                  re.M | re.S)
    assert m, f"docs/protocol.md has no heading {level} {title}"
    return m.group(1)


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table in ``text``: header cells and rows of cells (backticks removed)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if not lines:
        return [], []
    cells = [[c.strip().replace("`", "") for c in ln.strip("|").split("|")] for ln in lines]
    assert set(lines[1].replace("|", "").replace(" ", "")) <= {"-", ":"}, "no header rule"
    return cells[0], cells[2:]


def parse_range(text: str) -> tuple:
    """``20–300`` / ``≥ 0`` / ``> 0, ≤ 64`` / ``—`` → (min, max, min_exclusive)."""
    text = text.strip()
    if text == "—":
        return None, None, False
    if m := re.fullmatch(r"(-?[\d.]+)–(-?[\d.]+)", text):
        return float(m[1]), float(m[2]), False
    if m := re.fullmatch(r"([≥>]) (-?[\d.]+)(?:, ≤ (-?[\d.]+))?", text):
        return float(m[2]), (float(m[3]) if m[3] else None), m[1] == ">"
    if m := re.fullmatch(r"≤ (-?[\d.]+)", text):
        return None, float(m[1]), False
    raise AssertionError(f"unreadable range {text!r} in docs/protocol.md")


def spec_range(a) -> tuple:
    f = (lambda x: None if x is None else float(x))
    return f(a.min), f(a.max), a.min_exclusive


def documented_commands() -> dict[str, str]:
    body = section(DOC, "##", "Commands")
    parts = re.split(r"^### `([a-z_]+)`\s*$", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_version_line_matches_the_code():
    versions = re.findall(r"^Protocol version: (\d+)\s*$", DOC, re.M)
    assert versions == [str(PROTOCOL_VERSION)]


def test_documented_commands_are_the_code_commands():
    assert list(documented_commands()) == list(COMMANDS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_arguments_match_the_spec(name):
    spec = COMMANDS[name]
    text = documented_commands()[name]
    header, rows = table(text)
    if not spec.args:
        assert rows == [] and "Takes no arguments" in " ".join(text.split())
        return
    assert header == ["argument", "type", "range", "default", "meaning"]
    assert [r[0] for r in rows] == [a.name for a in spec.args]
    for row, a in zip(rows, spec.args):
        _, type_, range_, default, meaning = row
        assert type_ == a.type, f"{name}.{a.name} type"
        assert parse_range(range_) == spec_range(a), f"{name}.{a.name} range"
        if a.required:
            assert default == "required", f"{name}.{a.name} is required"
        elif a.default is None:
            assert default == "—", f"{name}.{a.name} has no default"
        else:
            assert json.loads(default) == a.default, f"{name}.{a.name} default"
        assert meaning, f"{name}.{a.name} has no meaning"
    if spec.at_least_one:
        assert "at least one" in text


def test_note_fields_match_the_spec():
    header, rows = table(section(DOC, "##", "Note objects"))
    assert header == ["field", "type", "range", "meaning"]
    assert [r[0] for r in rows] == [f.name for f in NOTE_FIELDS]
    for (_, type_, range_, meaning), f in zip(rows, NOTE_FIELDS):
        assert f.required or "optional" in meaning, f"{f.name}: say that it is optional"
        assert type_ == f.type and parse_range(range_) == spec_range(f), f.name


def test_error_codes_match_the_code():
    header, rows = table(section(DOC, "##", "Error codes"))
    assert header == ["code", "meaning"]
    assert [r[0] for r in rows] == list(ERROR_CODES)


def test_events_match_the_code():
    header, rows = table(section(DOC, "##", "Events"))
    assert header == ["event", "fields", "meaning"]
    assert [r[0] for r in rows] == list(EVENTS)
    for event, fields, _ in rows:
        assert tuple(f.strip() for f in fields.split(",")) == EVENTS[event].fields, event


def test_table_parser_reads_what_it_should():
    # The checks above are only as good as the parser: make sure it is not vacuous.
    assert parse_range("20–300") == (20.0, 300.0, False)
    assert parse_range("> 0, ≤ 64") == (0.0, 64.0, True)
    assert parse_range("≥ 0") == (0.0, None, False)
    _, rows = table(documented_commands()["set"])
    assert len(rows) == len(COMMANDS["set"].args) > 0
