"""Who may change the gallery from MQTT (issue 10): the command handler's rules, without a broker.

By default a command can only start the enrollment of a new name; removing,
renaming and adding samples to someone enrolled need ``[mqtt] remote_admin``.
A second enrollment never replaces the running one. The broker end to end is
in test_remote_admin_mqtt.py.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edge.adapters.commands import Command, CommandError, parse_command
from edge.enrollment.at_door import DoorEnrollment, EnrollmentRefused
from edge.enrollment.settings import EnrollSettings
from edge.frames import Frame
from edge.gallery.store import Gallery
from edge.service import CommandHandler

MODEL = "test-model"


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def gallery_path(tmp_path):
    """A gallery with raj (3 samples) and amy (2)."""
    path = tmp_path / "g"
    with Gallery.create(path, MODEL) as gallery:
        gallery.append(unit_rows(3, 1), ["raj"] * 3, ["raj.jpg"] * 3)
        gallery.append(unit_rows(2, 2), ["amy"] * 2, ["amy.jpg"] * 2)
    return path


def identities(path) -> dict[str, int]:
    with Gallery.open(path) as gallery:
        return gallery.identities()


class Reports(list):
    def __call__(self, message):
        self.append(message.to_dict())


def handler(path, engine=None, **options) -> tuple[CommandHandler, Reports]:
    reports = Reports()
    commands = CommandHandler(path, MODEL, **options)
    commands.enrollment = DoorEnrollment(engine, path, MODEL, EnrollSettings(samples=3, require_live=False), 0.36, reports)
    return commands, reports


def test_enroll_of_an_enrolled_name_is_refused_by_default(gallery_path) -> None:
    commands, reports = handler(gallery_path)
    with pytest.raises(CommandError, match=r"'raj' is already enrolled \(3 samples\)"):
        commands(Command("enroll_start", "raj"))
    commands(Command("set_name", "raj"))  # Home Assistant's text entity, then its button
    with pytest.raises(CommandError, match="already enrolled"):
        commands(Command("enroll_start", None))
    assert not commands.enrollment.active()
    commands(Command("enroll_start", "zoe"))  # a new name is fine
    assert commands.enrollment.active()


def test_automatic_person_n_stays_allowed(gallery_path) -> None:
    commands, _ = handler(gallery_path)
    assert commands(Command("enroll_start", None)) is None
    assert commands.enrollment.active()


ADMIN_COMMANDS = {
    "remove": lambda: Command("remove", "amy"),
    "rename": lambda: Command("rename", "amy", new_name="ann"),
    "append": lambda: Command("enroll_start", "raj", append=True),
}


@pytest.mark.parametrize("kind", ADMIN_COMMANDS)
def test_admin_commands_are_refused_by_default(gallery_path, kind) -> None:
    command = ADMIN_COMMANDS[kind]()
    commands, _ = handler(gallery_path)
    with pytest.raises(CommandError, match=r"remote_admin = true"):
        commands(command)
    assert identities(gallery_path) == {"amy": 2, "raj": 3}
    assert not commands.enrollment.active()


def test_remove_with_remote_admin_compacts_the_name_off_the_disk(gallery_path) -> None:
    commands, _ = handler(gallery_path, remote_admin=True)
    assert commands(Command("remove", "amy")) == "removed 'amy' (2 samples)"
    assert identities(gallery_path) == {"raj": 3}
    with Gallery.open(gallery_path) as gallery:
        assert gallery.count == 3, "compacted: amy's rows are gone, not only marked deleted"
    on_disk = b"".join(f.read_bytes() for f in gallery_path.iterdir() if f.is_file())
    assert b"amy" not in on_disk
    with pytest.raises(CommandError, match="nobody named 'amy'"):
        commands(Command("remove", "amy"))


def test_rename_with_remote_admin(gallery_path) -> None:
    commands, _ = handler(gallery_path, remote_admin=True)
    assert commands(Command("rename", "amy", new_name="ann")) == "renamed 'amy' to 'ann' (2 samples)"
    assert identities(gallery_path) == {"ann": 2, "raj": 3}
    with pytest.raises(CommandError, match="already enrolled"):
        commands(Command("rename", "ann", new_name="raj"))
    with pytest.raises(CommandError, match="nobody named 'zed'"):
        commands(Command("rename", "zed", new_name="zoe"))


def test_append_with_remote_admin_is_announced(gallery_path, engine) -> None:
    commands, reports = handler(gallery_path, engine, remote_admin=True)
    with pytest.raises(CommandError, match="already enrolled"):
        commands(Command("enroll_start", "raj"))  # even with remote_admin: only an explicit append
    commands(Command("enroll_start", "raj", append=True))
    commands.enrollment.process(Frame(np.zeros((240, 320, 3), np.uint8), 0.0, 0))
    assert reports[0]["state"] == "started" and reports[0]["name"] == "raj"
    assert reports[1]["reason"] == "adding samples to 'raj', already enrolled with 3"


def test_a_second_enrollment_is_refused_and_does_not_replace_the_first(gallery_path, engine, caplog) -> None:
    commands, reports = handler(gallery_path, engine)
    commands(Command("enroll_start", "zoe"))
    with pytest.raises(CommandError, match=r"an enrollment \('zoe'\) is already running"):
        commands(Command("enroll_start", "yan"))
    commands.enrollment.process(Frame(np.zeros((240, 320, 3), np.uint8), 0.0, 0))
    with pytest.raises(EnrollmentRefused, match="already running"):
        commands.enrollment.request(None)
    with caplog.at_level(logging.WARNING, logger="edge.service"):
        commands.start_from_button()  # at the door: ignored with a log line
    assert "enrollment button ignored: an enrollment ('zoe') is already running" in caplog.text
    assert [r["name"] for r in reports if r["type"] == "status"] == ["zoe"]
    commands(Command("enroll_cancel"))
    commands.enrollment.process(Frame(np.zeros((240, 320, 3), np.uint8), 0.1, 1))
    commands(Command("enroll_start", "yan"))  # after the cancel, a new one may start
    assert commands.enrollment.active()


def test_enroll_payloads() -> None:
    assert parse_command("enroll", b'{"name": "raj", "append": true}') == Command("enroll_start", "raj", append=True)
    assert parse_command("rename", b'{"name": "person_1", "new_name": "Amy"}') == Command(
        "rename", "person_1", new_name="Amy")
    for payload, message in [(b'{"append": true}', '"append" needs the "name"'),
                             (b'{"name": "raj", "append": "yes"}', '"append" must be true or false'),
                             (b'{"name": "raj", "force": true}', "unknown field(s) ['force']")]:
        with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            parse_command("enroll", payload)
    with pytest.raises(CommandError, match="expected"):
        parse_command("rename", b'{"name": "a"}')
    with pytest.raises(CommandError, match=r'"new_name" must be a string'):
        parse_command("rename", b'{"name": "a", "new_name": 3}')


def test_a_malformed_mqtt_url_does_not_echo_the_password() -> None:
    from edge.config import ConfigError, parse_mqtt_url

    for url in ["mqtt://door:hunter2@broker:99999", "http://door:hunter2@broker", "mqtt://door:hunter2@:1883"]:
        with pytest.raises(ConfigError) as caught:
            parse_mqtt_url(url)
        assert "hunter2" not in str(caught.value)


def test_remote_admin_is_off_by_default_and_only_a_real_boolean_turns_it_on() -> None:
    from edge.adapters.settings import MqttSettings

    assert MqttSettings().remote_admin is False
    assert MqttSettings(remote_admin=True).remote_admin is True
    for loose in ["yes", "true", 1, "1", "on"]:
        with pytest.raises(ValueError, match="valid boolean"):
            MqttSettings(remote_admin=loose)


def test_signed_commands_are_checked() -> None:
    from edge.adapters.commands import SIGNATURE_WINDOW, CommandVerifier, sign_command

    key, topic, now = b"k3y", "edge/door1/command/remove", 1_800_000_000.0
    verifier = CommandVerifier(key, clock=lambda: now)
    signed = sign_command(key, topic, b'{"name": "amy"}', now - 5)
    assert verifier.payload(topic, signed) == b'{"name": "amy"}'
    refusals = [
        (signed, "already used: replay refused"),
        (b'{"name": "amy"}', "unsigned command refused"),
        (b"PRESS", "unsigned command refused"),
        (sign_command(b"other", topic, b'{"name": "amy"}', now), "bad signature"),
        (sign_command(key, "edge/door1/command/enroll", b'{"name": "amy"}', now), "bad signature"),
        (sign_command(key, topic, b'{"name": "amy"}', now - SIGNATURE_WINDOW - 1), "from the door's clock"),
    ]
    for message, reason in refusals:
        with pytest.raises(CommandError, match=reason):
            verifier.payload(topic, message)
    forged = json.loads(sign_command(key, topic, b'{"name": "amy"}', now - 1))
    forged["payload"] = '{"name": "raj"}'
    with pytest.raises(CommandError, match="bad signature"):
        verifier.payload(topic, json.dumps(forged).encode())
