"""`edge run`: the door service, wired from one Config.

Opens, in order, the MQTT link (when [mqtt] host is set; else events go
to stdout as JSON lines), the gallery, the engine, the camera (reopened with
backoff when it fails; a file or folder is played once), enrollment (MQTT
commands, and the GPIO button and light when configured) and systemd's
notifier, then runs the loop until the source ends (with ``exit_at_end``)
or SIGTERM/SIGINT. Every resource is entered on one ExitStack, so each is
closed on every path out, errors included; the link's close publishes
``offline``. Commands from MQTT run on the link's command worker (never on
its network thread, so waiting for the gallery's lock does not stall the
connection): they change the gallery (whose readers see the change) or ask
the loop to enroll, as far as ``[mqtt] remote_admin`` allows.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from edge.adapters.camera import FolderSource, OpenCvSource, Reconnecting, SourceError, open_source
from edge.adapters.commands import Command, CommandError
from edge.adapters.gpio import EnrollButton, EnrollLight
from edge.adapters.homeassistant import HomeAssistantPublisher
from edge.adapters.stdout import StdoutPublisher
from edge.adapters.systemd import Notifier
from edge.config import Config, ConfigError
from edge.door.loop import DoorLoop, Publisher
from edge.enrollment.at_door import DoorEnrollment, EnrollmentRefused
from edge.gallery.errors import GalleryError
from edge.gallery.store import Gallery
from edge.gallery.topk import warm_up
from edge.messages import EnrollmentMessage
from edge.perception.engine import FaceEngine
from edge.perception.liveness import LivenessChecker
from edge.perception.modelset import embedding_model_id

log = logging.getLogger(__name__)


ADMIN_ACTIONS = frozenset({"remove", "rename"})
"""Commands that change who is enrolled; refused unless ``[mqtt] remote_admin = true``."""


class CommandHandler:
    """Carries out MQTT commands (and the button's press), within what ``remote_admin`` allows.

    Returns a line saying what was done (the link publishes it on
    ``result``); raises CommandError saying why not (on ``error``). Without
    ``remote_admin`` a command may only enroll a new name (or an automatic
    ``person_N``); with it, it may also remove or rename people and, with
    ``"append": true``, add samples to someone enrolled. The rules about
    names already enrolled and a session already running are
    DoorEnrollment's. A removal also compacts the gallery, so the person's
    vectors and name leave the disk.
    """

    def __init__(self, gallery_path: Path, model_id: str | None = None, *, remote_admin: bool = False,
                 lock_timeout: float = 5.0) -> None:
        self.gallery_path, self.model_id = gallery_path, model_id
        self.remote_admin, self.lock_timeout = remote_admin, lock_timeout
        self.next_name: str | None = None
        self.enrollment: DoorEnrollment | None = None
        self.on_name: Callable[[str | None], None] = lambda name: None
        """Hears the name held for the next enrollment whenever a command sets it."""

    def __call__(self, command: Command) -> str | None:
        if command.action in ADMIN_ACTIONS or command.append:
            if not self.remote_admin:
                what = "adding samples to someone enrolled" if command.append else f"{command.action!r}"
                raise CommandError(f"{what} over MQTT is off: set [mqtt] remote_admin = true on the door "
                                   "(and restrict the command topics with broker ACLs)")
        try:
            return self._carry_out(command)
        except (EnrollmentRefused, GalleryError) as exc:
            raise CommandError(str(exc)) from None

    def _carry_out(self, command: Command) -> str | None:
        if command.action == "set_name":
            self.next_name = command.name
            self.on_name(self.next_name)
            return None
        if command.action == "enroll_start":
            name = command.name or self.next_name
            self._enrollment().request(name, append=command.append)
            return None  # the enrollment topic reports how it goes
        if command.action == "enroll_cancel":
            self._enrollment().cancel()
            return None
        if command.action == "remove":
            with self._writable() as gallery:
                removed = gallery.delete_identity(command.name)
                if removed:
                    gallery.compact()  # the vectors and the name leave the disk, not only the search
            if not removed:
                raise CommandError(f"nobody named {command.name!r} is enrolled")
            log.warning("removed %s (%d samples) by MQTT command", command.name, removed)
            return f"removed {command.name!r} ({removed} samples)"
        if command.action == "rename":
            with self._writable() as gallery:
                renamed = gallery.rename_identity(command.name, command.new_name)
            if not renamed:
                raise CommandError(f"nobody named {command.name!r} is enrolled")
            log.warning("renamed %s to %s by MQTT command", command.name, command.new_name)
            return f"renamed {command.name!r} to {command.new_name!r} ({renamed} samples)"
        if command.action == "reload":
            return None  # the loop's Gallery.view() re-reads the gallery whenever it changed
        raise CommandError(f"unknown action {command.action!r}")

    def start_from_button(self) -> None:
        """A press of the enrollment button: refused requests are logged (nobody to answer at the door)."""
        try:
            self._enrollment().request(self.next_name)
        except (EnrollmentRefused, CommandError, GalleryError) as exc:
            log.warning("enrollment button ignored: %s", exc)

    def _writable(self) -> Gallery:
        return Gallery.open(self.gallery_path, self.model_id, writable=True, lock_timeout=self.lock_timeout)

    def _enrollment(self) -> DoorEnrollment:
        if self.enrollment is None:
            raise CommandError("enrollment is not ready yet")
        return self.enrollment


def run_door(config: Config, exit_at_end: bool = False) -> int:
    """Run the door until the source ends (exit_at_end) or a signal; returns frames processed."""
    if config.gallery.path is None:
        raise ConfigError("no gallery: pass --gallery DIR or set [gallery] path (make one with `edge gallery build`)")
    gallery_path = Path(config.gallery.path)
    door = config.door
    stop = threading.Event()  # set by SIGTERM/SIGINT: ends the loop, and any wait for the camera
    try:
        source, bad_source = open_source(config.camera, stop), None  # not opened yet: only its name is used before
    except SourceError as exc:
        source, bad_source = None, exc
    with ExitStack() as stack:
        commands = CommandHandler(gallery_path, remote_admin=config.mqtt.remote_admin)
        publisher: Publisher = StdoutPublisher()
        if config.mqtt.host is not None:
            from edge.adapters.mqtt import MqttLink, MqttSetupError

            def refused(subtopic: str) -> None:  # put Home Assistant's text back to the name the door holds
                if subtopic == "set_name":
                    home_assistant.publish_enroll_name(commands.next_name)

            link = MqttLink(config.mqtt, door.device_id, door.device_name, commands, refused)
            # Its first messages (nobody present, each enrolled person absent, ...) are retained and go
            # out before the link says "online": a crashed run's "present" never looks current.
            home_assistant = HomeAssistantPublisher(link, config.mqtt, source.name if source else config.camera.source)
            home_assistant.publish_people(_enrolled(gallery_path))
            commands.on_name = home_assistant.publish_enroll_name
            try:
                link.start()
            except MqttSetupError as exc:
                raise ConfigError(str(exc)) from None
            stack.callback(link.stop)  # from here on, whatever fails is seen: the link's close says "offline"
            publisher = home_assistant
        commands.model_id = model_id = embedding_model_id(config.recognition)
        gallery = stack.enter_context(Gallery.open(gallery_path, model_id=model_id))
        # A fresh install compiles the search kernels (seconds): meanwhile, not when the first face comes.
        threading.Thread(target=warm_up, args=(gallery.dtype, gallery.dim), name="search-warm-up", daemon=True).start()
        if source is None:
            raise ConfigError(str(bad_source))
        engine = stack.enter_context(FaceEngine.open(config.recognition))
        wants_liveness = door.liveness or config.enrollment.require_live
        checker = stack.enter_context(LivenessChecker.open(config.recognition)) if wants_liveness else None
        loop = DoorLoop(engine, gallery, publisher, door, config.search.match_threshold, source.name,
                        liveness=checker if door.liveness else None)
        light = stack.enter_context(EnrollLight(config.light)) if config.light.pin is not None else None

        def report_enrollment(message: EnrollmentMessage) -> None:
            publisher.publish_enrollment(message)
            if light is not None:
                light.update(message)

        loop.enrollment = commands.enrollment = DoorEnrollment(
            engine, gallery_path, model_id, config.enrollment, config.search.match_threshold,
            report_enrollment, source.name, liveness=checker if config.enrollment.require_live else None,
        )
        if config.button.pin is not None:
            stack.enter_context(EnrollButton(config.button, commands.start_from_button, loop.enrollment.cancel))
        stack.enter_context(_stop_on_signals(loop, stop))
        # A file or folder is played once; so is a camera when the run is to end with its source
        # (--exit-at-end): one that cannot open or fails then ends the run instead of being retried.
        replay = exit_at_end or isinstance(source, FolderSource) or (isinstance(source, OpenCvSource) and source.is_file)
        try:
            opened = stack.enter_context(source if replay else Reconnecting(source, publisher.publish_camera, stop=stop))
        except SourceError as exc:
            raise ConfigError(str(exc)) from None
        notifier = stack.enter_context(Notifier())
        notifier.notify("READY=1")
        frames = loop.run(opened, notifier.ping)
        if not exit_at_end and config.mqtt.host is not None:
            while not stop.wait(1.0):  # the source ended: keep serving commands, and following the gallery
                loop.follow_gallery()
                notifier.ping()
        return frames


def _enrolled(gallery_path: Path) -> tuple[str, ...]:
    """Who is enrolled, read before anything else starts; none if the gallery cannot be read
    (opening it for the door then says why)."""
    try:
        with Gallery.open(gallery_path) as gallery:
            return gallery.people()
    except GalleryError:
        return ()


@contextmanager
def _stop_on_signals(loop: DoorLoop, stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT stop the loop and set ``stop``; the previous handlers come back after."""

    def on_signal(signum, frame) -> None:
        stop.set()
        loop.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
