"""Commands sent to the door over MQTT: parsing and validation only (no I/O, no paho).

Every command is one message on ``<topic_prefix>/<device_id>/command/<subtopic>``;
the subtopic names the action, the payload carries its argument:

==================  ====================  =====================================================
subtopic            action                payload
==================  ====================  =====================================================
``enroll``          ``enroll_start``      ``{"name": "alice"}``: enroll that person; or empty,
                                          ``{}`` or ``PRESS`` (Home Assistant's button) to
                                          enroll under the name last set with ``set_name``;
                                          ``{"name": "alice", "append": true}`` adds samples
                                          to someone already enrolled
``enroll_cancel``   ``enroll_cancel``     empty, ``{}`` or ``PRESS``
``remove``          ``remove``            ``{"name": "alice"}`` (required)
``rename``          ``rename``            ``{"name": "person_1", "new_name": "alice"}``
``reload``          ``reload``            empty, ``{}`` or ``PRESS``: re-read the gallery
``set_name``        ``set_name``          the name as plain UTF-8 text (Home Assistant's text
                                          entity sends it so), not JSON
==================  ====================  =====================================================

Names follow edge.names (the one name rule). Payloads are UTF-8
and at most ``MAX_PAYLOAD_BYTES`` long; JSON payloads must be objects with no
fields other than the ones shown.

Parsing says nothing about permission: who may enroll, remove or rename is
decided by the door's command handler (edge.service.CommandHandler, with
``[mqtt] remote_admin``).

Anything else raises ``CommandError`` with a message meant for the person who
sent the command (the link publishes it on the ``error`` topic); a malformed
command never reaches the door's command handler.

Signed commands (``[mqtt] command_key_env``): the payload is then the JSON
envelope ``{"payload": "<the command's payload>", "time": <Unix seconds>,
"hmac": "<hex>"}`` where ``hmac`` is HMAC-SHA256 with the shared key over
``<topic>\n<time>\n<payload>``; ``sign_command`` makes one. The door
accepts it within ``SIGNATURE_WINDOW`` seconds of its clock, and each
signature once (``CommandVerifier``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from edge.messages import iso_time
from edge.names import InvalidNameError, validate_name

Action = Literal["enroll_start", "enroll_cancel", "remove", "rename", "reload", "set_name"]

SUBTOPICS: dict[str, Action] = {
    "enroll": "enroll_start",
    "enroll_cancel": "enroll_cancel",
    "remove": "remove",
    "rename": "rename",
    "reload": "reload",
    "set_name": "set_name",
}
"""Command subtopic (the last topic level) -> action."""

MAX_PAYLOAD_BYTES = 4096
BUTTON_PAYLOAD = "PRESS"
"""What Home Assistant's MQTT button sends by default; accepted wherever no argument is needed."""


class CommandError(ValueError):
    """A command message that cannot be carried out as sent; the message says why."""


@dataclass(frozen=True, slots=True)
class Command:
    """One valid command.

    ``name`` is the validated person name for ``remove``, ``rename`` (the
    old name), ``set_name`` (None: clear it) and an ``enroll_start`` that named someone;
    ``None`` otherwise (for ``enroll_start``: use the name last set with
    ``set_name``). ``new_name``: the new name of a ``rename``. ``append``: an
    ``enroll_start`` that may add samples to a person already enrolled.
    """

    action: Action
    name: str | None = None
    new_name: str | None = None
    append: bool = False


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """The answer to one command: done (``ok``, on the ``result`` topic) or not (on ``error``).

    ``topic`` is the command's topic; ``message`` one line for the person who sent it.
    """

    topic: str
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "result" if self.ok else "error": self.message, "timestamp": iso_time()}


def parse_command(subtopic: str, payload: bytes) -> Command:
    """The command that ``payload`` on ``.../command/<subtopic>`` asks for.

    Raises ``CommandError`` for an unknown subtopic, a payload that is too
    long, not UTF-8, not the JSON expected, or names nobody valid.
    """
    action = SUBTOPICS.get(subtopic)
    if action is None:
        raise CommandError(f"unknown command {subtopic!r}; expected one of {sorted(SUBTOPICS)}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"{subtopic}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{subtopic}: payload is not UTF-8 text") from None

    if action == "set_name":  # empty: no name (the next enrollment gets an automatic person_N)
        return Command(action, _name_field(subtopic, text) if text.strip() else None)
    if action == "remove":
        fields = _json_object(subtopic, text)
        if "name" not in fields:
            raise CommandError(f'{subtopic}: missing "name", expected {{"name": "<person>"}}')
        return Command(action, _name_field(subtopic, fields["name"]))
    if action == "rename":
        fields = _json_object(subtopic, text, allowed=("name", "new_name"))
        if "name" not in fields or "new_name" not in fields:
            raise CommandError(f'{subtopic}: expected {{"name": "<person>", "new_name": "<new name>"}}')
        return Command(action, _name_field(subtopic, fields["name"]),
                       new_name=_name_field(subtopic, fields["new_name"], "new_name"))
    if action == "enroll_start":
        fields = {} if _is_bare(text) else _json_object(subtopic, text, allowed=("name", "append"))
        name, append = fields.get("name"), fields.get("append", False)
        if not isinstance(append, bool):
            raise CommandError(f'{subtopic}: "append" must be true or false, got {type(append).__name__}')
        if append and name is None:
            raise CommandError(f'{subtopic}: "append" needs the "name" of the person to add samples to')
        return Command(action, None if name is None else _name_field(subtopic, name), append=append)
    # enroll_cancel, reload: no argument; "{}" is accepted, any field is not
    if not _is_bare(text):
        _json_object(subtopic, text, allowed=())
    return Command(action)


def _is_bare(text: str) -> bool:
    """True for the argument-free payloads: empty, whitespace or the button's ``PRESS``."""
    stripped = text.strip()
    return stripped in ("", BUTTON_PAYLOAD)


def _json_object(subtopic: str, text: str, allowed: tuple[str, ...] = ("name",)) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{subtopic}: payload is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise CommandError(f"{subtopic}: payload must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        expected = f"only {list(allowed)}" if allowed else "no fields"
        raise CommandError(f"{subtopic}: unknown field(s) {unknown}; expected {expected}")
    return value


def _name_field(subtopic: str, value: object, field: str = "name") -> str:
    if not isinstance(value, str):
        raise CommandError(f'{subtopic}: "{field}" must be a string, got {type(value).__name__}')
    try:
        return validate_name(value)
    except InvalidNameError as exc:
        raise CommandError(f"{subtopic}: {exc}") from None


SIGNATURE_WINDOW = 120.0
"""Seconds a signed command stays valid either side of the door's clock; a replay within it is refused."""


def _mac(key: bytes, topic: str, moment: int, payload: str) -> str:
    return hmac.new(key, f"{topic}\n{moment}\n{payload}".encode(), hashlib.sha256).hexdigest()


def sign_command(key: bytes, topic: str, payload: bytes | str, moment: float | None = None) -> bytes:
    """The signed envelope of ``payload`` for ``topic`` (what a script publishes to a door that needs signatures)."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    stamp = int(time.time() if moment is None else moment)
    return json.dumps({"payload": text, "time": stamp, "hmac": _mac(key, topic, stamp, text)}).encode()


class CommandVerifier:
    """Checks signed commands: the key's HMAC, the time window, and that no signature is used twice."""

    def __init__(self, key: bytes, clock=time.time) -> None:
        if not key:
            raise ValueError("the command key is empty")
        self._key, self._clock = key, clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> its time, oldest first

    def payload(self, topic: str, message: bytes) -> bytes:
        """The command payload inside a signed ``message`` on ``topic``; CommandError if it is not valid."""
        subtopic = topic.rsplit("/", 1)[-1]
        try:
            envelope = json.loads(message.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            envelope = None
        if not (isinstance(envelope, dict) and set(envelope) == {"payload", "time", "hmac"}
                and isinstance(envelope["payload"], str) and type(envelope["time"]) is int
                and isinstance(envelope["hmac"], str)):
            raise CommandError(f'{subtopic}: unsigned command refused: this door takes only signed commands '
                               '({"payload": ..., "time": ..., "hmac": ...}; [mqtt] command_key_env)')
        text, stamp, mac = envelope["payload"], envelope["time"], envelope["hmac"]
        if not hmac.compare_digest(mac, _mac(self._key, topic, stamp, text)):
            raise CommandError(f"{subtopic}: bad signature: command refused")
        now = self._clock()
        if abs(now - stamp) > SIGNATURE_WINDOW:
            raise CommandError(f"{subtopic}: signed {now - stamp:+.0f} s from the door's clock "
                               f"(more than {SIGNATURE_WINDOW:.0f} s): command refused")
        while self._seen and next(iter(self._seen.values())) < now - 2 * SIGNATURE_WINDOW:
            self._seen.popitem(last=False)
        if mac in self._seen:
            raise CommandError(f"{subtopic}: this signed command was already used: replay refused")
        self._seen[mac] = float(stamp)
        return text.encode("utf-8")
