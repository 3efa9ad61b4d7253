"""Settings of the adapters around the door: camera, MQTT link, button and light.

    CameraSettings  edge.adapters.camera.open_source   [camera]
    MqttSettings    edge.adapters.mqtt.MqttLink        [mqtt]
    ButtonSettings  edge.adapters.gpio.EnrollButton    [button]
    LightSettings   edge.adapters.gpio.EnrollLight     [light]
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AfterValidator, Field, Strict, model_validator
from typing import Annotated

from edge.settings import Settings


class CameraSettings(Settings):
    """Where frames come from (see edge.adapters.camera.open_source for the kinds of ``source``)."""

    source: str = Field("picamera", min_length=1, description="picamera, a camera index, a stream URL, a video file or a folder")
    frame_width: int = Field(640, ge=64, le=4096, description="pixels asked of a camera")
    frame_height: int = Field(480, ge=64, le=4096, description="pixels asked of a camera")
    folder_fps: float = Field(10.0, gt=0.0, le=120.0, description="frame rate a folder of images is played at")
    folder_realtime: bool = Field(False, description="play a folder at folder_fps in real time, as a camera would")


_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_/-]{0,63}")


def check_topic_prefix(prefix: str) -> str:
    """``prefix`` if usable as the first level(s) of a topic: no wildcards, no empty levels."""
    if not _TOPIC_PREFIX.fullmatch(prefix) or "" in prefix.split("/"):
        raise ValueError(f"topic prefix {prefix!r} must be 1..64 of A-Z a-z 0-9 _ - /, without empty levels")
    return prefix


TopicPrefix = Annotated[str, AfterValidator(check_topic_prefix)]


class MqttSettings(Settings):
    """The broker, and how the door appears there; without a host, events go to stdout instead.

    Secrets (``password``) belong in the environment: write ``${MQTT_PASSWORD}``
    in the file. Times are in seconds.

    ``remote_admin``: off, a command can only start the enrollment of a new
    name (or an automatic ``person_N``); on, commands may also remove and
    rename people and, with ``"append": true``, add samples to someone
    already enrolled. Anyone allowed to publish on the command topics has
    these powers: restrict them with broker ACLs.

    ``command_key_env``: the name of an environment variable (not the key
    itself) holding a secret; commands must then be signed with it and
    unsigned ones are refused (Home Assistant's button and text entities
    cannot sign: send commands from a script instead).

    ``publish_face_image``: with each event, a JPEG of the face (at most
    50 KB) goes to Home Assistant's image entity; off by default, face crops
    being personal data. ``person_entities``: each enrolled person gets a
    presence entity and a "recognized" device trigger; turn off for large
    galleries (the "any" and "unknown" triggers stay).
    """

    host: str | None = Field(None, min_length=1, description="the broker; none = events as JSON lines on stdout")
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = Field(None, min_length=1)
    password: str | None = Field(None, repr=False, description="use ${ENV_VAR}: secrets belong in the environment")
    tls: bool = False
    ca_file: Path | None = Field(None, description="CA certificate(s) to verify the broker; the system's store if none")
    certfile: Path | None = Field(None, description="client certificate, for brokers that require one (with keyfile)")
    keyfile: Path | None = None
    tls_insecure: bool = Field(False, description="skip the check that the broker's certificate names host")
    topic_prefix: TopicPrefix = "edge"
    discovery_prefix: TopicPrefix = "homeassistant"
    client_id: str | None = Field(None, min_length=1, max_length=128, description="default: edge-<device_id>")
    keepalive: int = Field(30, ge=1, le=3600, description="seconds; the broker declares the door offline after 1.5x")
    queue_limit: int = Field(1000, ge=1, le=100_000, description="events kept while the broker is away")
    publish_face_image: bool = Field(False, description="send face crops to Home Assistant (personal data)")
    person_entities: bool = Field(True, description="a presence entity and a device trigger per enrolled person")
    reconnect_min_delay: int = Field(1, ge=1, le=3600, description="first wait before reconnecting, seconds")
    reconnect_max_delay: int = Field(60, ge=1, le=3600, description="longest wait between reconnects, seconds")
    remote_admin: Annotated[bool, Strict()] = Field(  # strict: only true/false, never "yes" or "1"
        False,
        description="let MQTT commands remove and rename people and add samples to someone enrolled "
                    "(off: only enrollments of new names); see firmware_config/SETUP.md",
    )
    command_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="name of the environment variable holding the key that commands must be signed with "
                    "(HMAC-SHA256, edge.adapters.commands.sign_command); none = unsigned commands",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if not self.tls and (self.ca_file or self.certfile or self.keyfile or self.tls_insecure):
            raise ValueError("ca_file, certfile, keyfile and tls_insecure need tls = true")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")
        if self.reconnect_min_delay > self.reconnect_max_delay:
            raise ValueError("reconnect_min_delay must not exceed reconnect_max_delay")
        return self


class ButtonSettings(Settings):
    """The enrollment button: a momentary switch between a GPIO pin and ground.

    pin: GPIO (BCM) number; none = no button. A short press starts an
    enrollment; holding it ``hold`` seconds cancels one in progress.
    """

    pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) number; none = no button")
    hold: float = Field(3.0, ge=0.5, le=30.0, description="seconds held that cancel an enrollment")


class LightSettings(Settings):
    """An optional LED showing enrollment: blinking while collecting, lit ``saved_seconds`` when saved."""

    pin: int | None = Field(None, ge=0, le=27, description="GPIO (BCM) number; none = no light")
    saved_seconds: float = Field(2.0, ge=0.1, le=30.0, description="seconds the light stays on after a save")
