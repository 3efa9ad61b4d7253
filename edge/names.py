"""The naming rules: person names (gallery identities) and device ids.

A person name is stripped of surrounding whitespace and put in Unicode NFC
(so that 'José' typed and 'José' from a macOS file name are one name); it
must then be 1..64 characters long, contain no control characters and no
``/``, and not start with ``.`` (a name becomes a folder name in a dataset).

A device id names the door in MQTT topics, Home Assistant unique ids and
entity ids: 1..64 of A-Z a-z 0-9 ``_`` ``-``.

``PersonName`` and ``DeviceId`` are the same rules as pydantic types, for
settings models and commands.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

MAX_NAME_CHARS = 64

_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class InvalidNameError(ValueError):
    """A person name or device id that breaks its rule; the message says which part."""


def validate_name(raw: str) -> str:
    """``raw`` as a person name (stripped, NFC) if it follows the rule; else InvalidNameError."""
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        raise InvalidNameError("name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidNameError(f"name is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed")
    if "/" in name:
        raise InvalidNameError("name must not contain '/'")
    if name.startswith("."):
        raise InvalidNameError("name must not start with '.'")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise InvalidNameError(f"name must not contain control characters (found U+{ord(ch):04X})")
    return name


def check_device_id(device_id: str) -> str:
    """``device_id`` if usable in topics, unique ids and entity ids; else InvalidNameError."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise InvalidNameError(f"device_id {device_id!r} must be 1..64 characters of A-Z, a-z, 0-9, '_' and '-'")
    return device_id


PersonName = Annotated[str, AfterValidator(validate_name)]
DeviceId = Annotated[str, AfterValidator(check_device_id)]
