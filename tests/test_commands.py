"""Command parsing: what each command topic accepts, and the errors for what it does not."""

from __future__ import annotations

import pytest

from edge.adapters.commands import MAX_PAYLOAD_BYTES, Command, CommandError, parse_command
from edge.names import MAX_NAME_CHARS, InvalidNameError, validate_name


@pytest.mark.parametrize(
    ("subtopic", "payload", "expected"),
    [
        ("enroll", b'{"name": "alice"}', Command("enroll_start", "alice")),
        ("enroll", b'{"name": "  Zo\xc3\xab Martin \\t"}', Command("enroll_start", "Zoë Martin")),
        ("enroll", b"", Command("enroll_start", None)),
        ("enroll", b"{}", Command("enroll_start", None)),
        ("enroll", b"PRESS", Command("enroll_start", None)),
        ("enroll", b'{"name": null}', Command("enroll_start", None)),
        ("enroll_cancel", b"", Command("enroll_cancel")),
        ("enroll_cancel", b"PRESS", Command("enroll_cancel")),
        ("remove", b'{"name": "bob"}', Command("remove", "bob")),
        ("reload", b"", Command("reload")),
        ("reload", b" {} ", Command("reload")),
        ("set_name", b"carol", Command("set_name", "carol")),
        ("set_name", b"  carol\n", Command("set_name", "carol")),
        ("set_name", "名前".encode(), Command("set_name", "名前")),
        ("set_name", b"", Command("set_name", None)),  # clears the name
        ("set_name", b"  ", Command("set_name", None)),
    ],
)
def test_valid_commands(subtopic: str, payload: bytes, expected: Command) -> None:
    assert parse_command(subtopic, payload) == expected


@pytest.mark.parametrize(
    ("subtopic", "payload", "message"),
    [
        ("explode", b"", "unknown command 'explode'"),
        ("", b"", "unknown command ''"),
        ("remove", b"not json", "not valid JSON"),
        ("remove", b"", "not valid JSON"),
        ("remove", b"{}", 'missing "name"'),
        ("remove", b'["bob"]', "must be a JSON object, got list"),
        ("remove", b'{"name": 7}', '"name" must be a string, got int'),
        ("remove", b'{"name": "bob", "why": "moved"}', "unknown field(s) ['why']"),
        ("enroll", b"alice", "not valid JSON"),
        ("enroll", b'{"name": ""}', "name is empty"),
        ("enroll", b'{"name": "   "}', "name is empty"),
        ("enroll", b'{"name": "../etc"}', "'/'"),
        ("enroll", b'{"name": ".hidden"}', "start with '.'"),
        ("enroll", b'{"name": "a\\u0000b"}', "control characters (found U+0000)"),
        ("enroll", b'{"name": "a\\u007fb"}', "control characters (found U+007F)"),
        ("set_name", b"line\nbreak", "control characters (found U+000A)"),
        ("set_name", b"\xff\xfe", "not UTF-8"),
        ("reload", b'{"force": true}', "expected no fields"),
        ("enroll_cancel", b"now", "not valid JSON"),
        ("enroll_cancel", b"[]", "must be a JSON object"),
    ],
)
def test_malformed_commands(subtopic: str, payload: bytes, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_command(subtopic, payload)
    assert message in str(caught.value)


def test_command_error_is_a_value_error() -> None:
    assert issubclass(CommandError, ValueError)


def test_name_length_limit() -> None:
    assert validate_name("x" * MAX_NAME_CHARS) == "x" * MAX_NAME_CHARS
    with pytest.raises(InvalidNameError, match="at most 64"):
        validate_name("x" * (MAX_NAME_CHARS + 1))
    # The limit applies after stripping.
    assert validate_name(" " + "x" * MAX_NAME_CHARS + " ") == "x" * MAX_NAME_CHARS


def test_payload_size_limit() -> None:
    with pytest.raises(CommandError, match="exceeds"):
        parse_command("set_name", b"x" * (MAX_PAYLOAD_BYTES + 1))


def test_command_is_frozen() -> None:
    command = Command("remove", "bob")
    with pytest.raises(AttributeError):
        command.name = "eve"  # type: ignore[misc]
