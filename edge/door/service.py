"""`edge run`: the door service, wired from one Config.

Opens the engine and the gallery, picks the publisher (the MQTT link when
[mqtt] host is set, else JSON lines on stdout), opens the camera (reopened
with backoff when it fails), sets up enrollment (MQTT commands and the GPIO
button when configured) and runs the loop until the source ends (with
``exit_at_end``) or SIGTERM/SIGINT. Commands from MQTT run on the link's
thread: they change the gallery (whose readers see the change) or ask the
loop to enroll.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from edge.config import Config, ConfigError, embedding_model_id, open_engine
from edge.door.commands import Command
from edge.door.runtime import DoorLoop, LoopSettings, Publisher, StdoutPublisher
from edge.door.button import EnrollButton, EnrollLight
from edge.door.decision import DecisionSettings
from edge.door.enroll import DoorEnrollment, EnrollSettings
from edge.door.sources import FolderSource, OpenCvSource, Reconnecting, SourceError, open_source
from edge.door.systemd import Notifier
from edge.gallery.store import Gallery

log = logging.getLogger(__name__)


def loop_settings(config: Config) -> LoopSettings:
    door = config.door
    return LoopSettings(
        detect_every=door.detect_every,
        attempts_per_second=door.attempts_per_second,
        track_iou=door.track_iou,
        track_gap=door.track_gap,
        unknown_recheck=door.unknown_recheck,
        decision=DecisionSettings(
            accept_threshold=config.recognition.match_threshold,
            unknown_threshold=door.unknown_threshold,
            window=door.window,
            min_agreeing=door.min_agreeing,
            min_unknown=door.min_unknown,
            cooldown=door.cooldown,
            min_face_size=door.min_face_size,
            min_sharpness=door.min_sharpness,
        ),
    )


class MqttPublisher:
    """The loop's reports over the MQTT link (edge.door.mqtt).

    The camera's state rides in the retained ``state`` message
    (``camera_online``, ``camera_detail``), so Home Assistant and anyone
    subscribing later see whether the door can currently see.
    """

    def __init__(self, link) -> None:
        self.link = link
        self._state: dict = {"present": [], "known_present": False, "last_person": None}
        self._camera: dict = {"camera_online": True, "camera_detail": ""}

    def publish_event(self, event: dict) -> None:
        self.link.publish_event(event)

    def publish_state(self, state: dict) -> None:
        self._state = dict(state)
        self.link.publish_state({**self._state, **self._camera})

    def publish_camera(self, state: str, detail: str) -> None:
        self._camera = {"camera_online": state == "online", "camera_detail": detail}
        self.link.publish_state({**self._state, **self._camera})

    def publish_enrollment(self, kind: str, message: dict) -> None:
        if kind == "progress":
            self.link.publish_progress(message)
        else:
            self.link.publish_status(message)


class CommandHandler:
    """Carries out MQTT commands; anything it cannot do raises (the link answers on `error`)."""

    def __init__(self, gallery_path: Path, model_id: str) -> None:
        self.gallery_path, self.model_id = gallery_path, model_id
        self.next_name: str | None = None
        self.enrollment: DoorEnrollment | None = None

    def __call__(self, command: Command) -> None:
        if command.action == "set_name":
            self.next_name = command.name
        elif command.action == "enroll_start":
            self._enrollment().request(command.name or self.next_name)
        elif command.action == "enroll_cancel":
            self._enrollment().cancel()
        elif command.action == "remove":
            gallery = Gallery.open(self.gallery_path, self.model_id, writable=True, lock_timeout=5.0)
            try:
                removed = gallery.delete_identity(command.name)
            finally:
                gallery.close()
            if not removed:
                raise ValueError(f"nobody named {command.name!r} is enrolled")
            log.info("removed %s (%d samples)", command.name, removed)
        elif command.action == "reload":
            pass  # the loop's Gallery.view() re-reads the gallery whenever it changed
        else:
            raise ValueError(f"unknown action {command.action!r}")

    def start_from_button(self) -> None:
        self._enrollment().request(self.next_name)

    def _enrollment(self) -> DoorEnrollment:
        if self.enrollment is None:
            raise ValueError("enrollment is not ready yet")
        return self.enrollment


def run_door(config: Config, exit_at_end: bool = False) -> int:
    """Run the door until the source ends (exit_at_end) or a signal; returns frames processed."""
    if config.gallery.path is None:
        raise ConfigError("no gallery: pass --gallery DIR or set [gallery] path (make one with `edge gallery build`)")
    model_id = embedding_model_id(config.recognition)
    gallery = Gallery.open(config.gallery.path, model_id=model_id)
    engine = open_engine(config.recognition)
    door = config.door
    try:
        source = open_source(door.source, door.frame_width, door.frame_height, door.folder_fps)
    except SourceError as exc:
        gallery.close()
        raise ConfigError(str(exc)) from None
    link = None
    commands = CommandHandler(Path(config.gallery.path), model_id)
    if config.mqtt.host is not None:
        from edge.door.mqtt import MqttLink

        link = MqttLink(mqtt_settings(config), commands)
        link.start()
        publisher: Publisher = MqttPublisher(link)
    else:
        publisher = StdoutPublisher()
    loop = DoorLoop(engine, gallery, publisher, loop_settings(config), door.device_id, source.name)
    light = EnrollLight(door.led_pin) if door.led_pin is not None else None

    def report_enrollment(kind: str, message: dict) -> None:
        publisher.publish_enrollment(kind, message)
        if light is not None:
            light.update(kind, message)

    enroll_settings = EnrollSettings(samples=door.enroll_samples, timeout=door.enroll_timeout,
                                     min_face_size=door.min_face_size, min_same_person=config.recognition.match_threshold)
    loop.enrollment = commands.enrollment = DoorEnrollment(
        engine, Path(config.gallery.path), model_id, enroll_settings, report_enrollment, source.name
    )
    button = None
    if door.button_pin is not None:
        button = EnrollButton(door.button_pin, commands.start_from_button, loop.enrollment.cancel, door.button_hold)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()
        loop.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        replay = isinstance(source, FolderSource) or (isinstance(source, OpenCvSource) and source.is_file)
        if replay:
            try:
                source.__enter__()
            except SourceError as exc:
                raise ConfigError(str(exc)) from None
            opened = source
        else:
            opened = Reconnecting(source, publisher.publish_camera).__enter__()
        notifier = Notifier()
        notifier.notify("READY=1")
        try:
            frames = loop.run(opened, notifier.ping)
        finally:
            opened.__exit__(None, None, None)
        if not exit_at_end and link is not None:
            while not stop.wait(notifier.interval):  # the source ended: keep serving commands
                notifier.ping()
        return frames
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for device in (button, light):
            if device is not None:
                device.close()
        if link is not None:
            link.stop()
        gallery.close()


def mqtt_settings(config: Config):
    """The link's settings from [mqtt] and [door]."""
    from edge.door.mqtt import MqttSettings

    m = config.mqtt
    return MqttSettings(
        host=m.host,
        device_id=config.door.device_id,
        device_name=config.door.device_name,
        port=m.port,
        username=m.username,
        password=m.password,
        tls=m.tls,
        ca_file=None if m.ca_file is None else str(m.ca_file),
        certfile=None if m.certfile is None else str(m.certfile),
        keyfile=None if m.keyfile is None else str(m.keyfile),
        topic_prefix=m.topic_prefix,
        discovery_prefix=m.discovery_prefix,
        keepalive=m.keepalive,
        queue_limit=m.queue_limit,
        publish_face_image=m.publish_face_image,
    )
