"""The door's link to Home Assistant over MQTT: the only module that uses paho-mqtt.

    link = MqttLink(MqttSettings(host="broker"), "front", "Front door", on_command, on_refused)
    link.start()                                    # connects in the background, reconnects by itself
    link.publish_event(Event("recognized", "alice", 0.71, ...))    # edge.messages
    link.publish_state(State(("alice",), "alice", "front", "camera"))
    link.stop()                                     # "offline", then disconnect

paho is imported when the link starts, so this module (and ``edge``) imports
without it. Topics and discovery payloads are in ``edge.adapters.discovery``,
command parsing in ``edge.adapters.commands``.

On every connect the link publishes its retained status messages (the
state first: the service gives it a fresh one, nobody present, before the
first connect, so that ``online`` never makes a crashed run's state look
current), then ``online`` (retained; ``offline`` is the last will) and the
discovery messages; it subscribes to the command topics and
``<discovery_prefix>/status`` (Home Assistant's birth message: discovery is
sent again when it says ``online``), then sends the queued events in order.
Everything goes out with QoS 1.

Retained messages the link owns -- its discovery configs and per-person
presence topics -- that a broker still holds from an earlier run but that
are no longer wanted (a person removed while the door was down) are
cleared once the door has said what it wants (``set_discovery``).

Events are queued (at most ``queue_limit``; when full the oldest is dropped
and counted in ``dropped``) and an event leaves the queue only once the
broker has acknowledged it (PUBACK, seen in ``on_publish``). Events not
acknowledged when the connection drops are sent again after the reconnect,
before any newer event, so the order is kept; as QoS 1 promises "at least
once", an event whose acknowledgement was lost with the connection can
arrive twice. paho's own store of unacknowledged messages is discarded on
each connect so that it cannot resend them out of order.

Retained status messages (``publish_retained``, ``publish_state``) and
discovery are not queued: the last of each is kept and sent again on each
connect. Enrollment feedback, errors and face images are sent only while
connected.

Commands. The link speaks MQTT 5 and subscribes to the command topics with
"retain as published", so a command that was published retained carries
the retain flag whether it is replayed on subscribing or delivered live
(MQTT 3.1.1 brokers clear the flag on live delivery, which hid retained
commands). A retained command is never carried out: it is answered on
``error`` and the link publishes an empty retained message on its topic so
that the broker forgets it (a broker ACL may refuse that; the error says to
clear it). Valid commands go to a queue served by one worker thread, in
order, so ``on_command`` may take its time (e.g. wait for the gallery's
writer lock) while the network thread keeps the connection alive. What
``on_command`` returns (a line of text) is published on ``result``; a
``CommandError`` it raises on ``error``; any other exception is logged and
answered on ``error`` in one line. Neither stops the link. A command
refused before it reaches ``on_command`` (malformed, a bad name) is also
told to ``on_refused`` (its subtopic), so that what Home Assistant shows can
be put back to what the door holds.

With ``[mqtt] command_key_env`` every command must be signed (HMAC, see
edge.adapters.commands); unsigned, badly signed, stale or replayed ones are
refused on ``error``.

Connection failures are logged with their reason, once per change of
reason: a refused CONNECT (bad credentials, not authorized), a TLS
certificate the CA does not vouch for, a TLS handshake with a plain-MQTT
port, a plain connection to a TLS port, nothing listening. The password is
never part of a message.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.adapters.commands import Command, CommandError, CommandOutcome, CommandVerifier, parse_command
from edge.adapters.discovery import PAYLOAD_OFFLINE, PAYLOAD_ONLINE, Topics, door_discovery
from edge.adapters.settings import MqttSettings
from edge.messages import EnrollmentMessage, Event, State

if TYPE_CHECKING:
    import paho.mqtt.client as paho

log = logging.getLogger(__name__)

QOS = 1
COMMAND_QUEUE_LIMIT = 32
"""Commands waiting for the worker; more are refused (answered on ``error``) until it catches up."""


class MqttSetupError(ValueError):
    """The link cannot be set up as configured (e.g. a TLS file that cannot be read); one line."""


@dataclass(slots=True)
class _Queued:
    """An event waiting for the broker's PUBACK; ``mid`` is None until sent on this connection."""

    payload: bytes
    mid: int | None = None
    acked: bool = False


class MqttLink:
    """The door's MQTT connection; see the module docstring for what it sends and when.

    Thread-safe: ``publish_*`` may be called from any thread.
    """

    def __init__(
        self,
        settings: MqttSettings,
        device_id: str,
        device_name: str | None,
        on_command: Callable[[Command], str | None],
        on_refused: Callable[[str], None] = lambda subtopic: None,
    ) -> None:
        if settings.host is None:
            raise ValueError("MqttLink needs [mqtt] host")
        self.settings = settings
        self.device_id, self.device_name = device_id, device_name or device_id
        self.topics = Topics(settings.topic_prefix, device_id)
        self._on_command, self._on_refused = on_command, on_refused
        self._client: paho.Client | None = None
        # Held while deciding what to send and calling client.publish, so that queued
        # and new events go out in order. Never taken inside paho's callbacks that run
        # under paho's own message lock (on_publish), to avoid a lock-order deadlock.
        self._send_lock = threading.RLock()
        self._queue: deque[_Queued] = deque()
        self._inflight: dict[int, _Queued] = {}
        self._acked: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._dropped = 0
        self._connected = False
        self._stopped = False
        self._retained: dict[str, bytes] = {}  # status topics, sent before "online" on every connect
        self.sw_version = edge_version()
        self._discovery = _encoded(door_discovery(self.topics, settings, self.device_name, self.sw_version))
        self._owned_known = False  # set_discovery was called: stale retained configs may be cleared
        self._stale: set[str] = set()  # retained topics of ours seen on the broker, not wanted now
        self._first_attempt = threading.Event()  # the first connection attempt has an outcome
        self._commands: queue.Queue[tuple[str, Command] | None] = queue.Queue(COMMAND_QUEUE_LIMIT)
        self._worker: threading.Thread | None = None
        self._last_failure: str | None = None  # the last connection failure logged (logged again when it changes)
        self._refused = False  # the broker answered the last CONNECT with a refusal (the disconnect follows)
        self._verifier: CommandVerifier | None = None  # with [mqtt] command_key_env: signed commands only

    # ----------------------------------------------------------------- status

    @property
    def connected(self) -> bool:
        """True while connected to the broker (and the connect-time messages are sent)."""
        return self._connected

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (oldest first), since start."""
        with self._send_lock:
            return self._dropped

    @property
    def pending(self) -> int:
        """Events not yet acknowledged by the broker (queued or in flight)."""
        with self._send_lock:
            self._take_acks()
            return len(self._queue)

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect in the background; returns at once. Reconnects by itself until ``stop``."""
        import paho.mqtt.client as paho

        if self._client is not None:
            raise RuntimeError("MqttLink already started")
        s = self.settings
        if s.command_key_env is not None:
            key = os.environ.get(s.command_key_env, "")
            if not key:
                raise MqttSetupError(f"[mqtt] command_key_env: environment variable {s.command_key_env} "
                                     "is not set or empty (it holds the key commands are signed with)")
            self._verifier = CommandVerifier(key.encode("utf-8"))
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"edge-{self.device_id}",
            protocol=paho.MQTTv5,  # for "retain as published" on the command subscription
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            # paho's defaults: TLS client context, certificate and host name checked.
            try:
                client.tls_set(ca_certs=_path(s.ca_file), certfile=_path(s.certfile), keyfile=_path(s.keyfile))
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise MqttSetupError(f"[mqtt] TLS files ({_tls_files(s)}) cannot be used: {_reason(exc)}") from None
            client.tls_insecure_set(s.tls_insecure)
        client.will_set(self.topics.availability, PAYLOAD_OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=s.reconnect_min_delay, max_delay=s.reconnect_max_delay)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        self._client = client
        self._worker = threading.Thread(target=self._serve_commands, name="mqtt-commands", daemon=True)
        self._worker.start()
        client.connect_async(s.host, s.port, keepalive=s.keepalive, clean_start=True)
        client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline``, disconnect and stop the network thread.

        While connected, first waits up to ``timeout`` seconds for queued events
        to be acknowledged; events still unacknowledged after that are lost.
        A stopped link cannot be started again.
        """
        client = self._client
        if client is None or self._stopped:
            return
        deadline = time.monotonic() + timeout
        # A door that fails right after starting must still say "offline": let the first attempt finish.
        self._first_attempt.wait(timeout)
        while self._connected and self.pending and time.monotonic() < deadline:
            time.sleep(0.02)
        info = None
        with self._send_lock:
            self._stopped = True
            if self._connected:
                info = client.publish(self.topics.availability, PAYLOAD_OFFLINE, qos=QOS, retain=True)
        if info is not None:
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # the connection went away meanwhile: the will says offline instead
        client.disconnect()
        client.loop_stop()
        self._connected = False
        self._stop_worker(max(0.1, deadline - time.monotonic()))

    # ------------------------------------------------------------ publishing

    def publish_event(self, event: Event) -> None:
        """Send one event on ``event``, QoS 1, in order; queued while offline."""
        item = _Queued(_json(event.to_dict()))
        with self._send_lock:
            self._take_acks()
            self._queue.append(item)
            while len(self._queue) > self.settings.queue_limit:
                oldest = self._queue.popleft()
                if oldest.mid is not None:
                    self._inflight.pop(oldest.mid, None)
                self._dropped += 1
            if self._connected and not self._stopped:
                self._send_queued(item)

    def publish_state(self, state: State) -> None:
        """Send who is at the door now (``discovery.STATE_FIELDS``), retained; re-sent on reconnect."""
        self.publish_retained(self.topics.state, _json(state.to_dict()))

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` retained on ``topic`` and keep it to send again on every connect,
        before ``online``; an empty payload clears the topic on the broker and is not kept."""
        with self._send_lock:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
            self._publish_if_connected(topic, payload, retain=True)

    def set_discovery(self, messages: list[tuple[str, Mapping[str, Any] | None]]) -> None:
        """Make these the door's discovery messages (a payload of None: clear that topic).

        Configs of the last set that are not in this one are cleared (an
        entity or trigger of a person removed), changed ones sent again, and
        from now on retained configs of ours that a broker kept from an
        earlier run are cleared when not wanted.
        """
        wanted = _encoded(messages)
        with self._send_lock:
            gone = {topic: b"" for topic in self._discovery if topic not in wanted and self._discovery[topic]}
            changed = {topic: body for topic, body in wanted.items() if self._discovery.get(topic) != body}
            self._discovery = wanted
            self._owned_known = True
            for topic, body in {**gone, **changed}.items():
                self._publish_if_connected(topic, body, retain=True)
            self._clear_stale()

    def publish_face_image(self, jpeg: bytes) -> None:
        """Send the latest face crop (JPEG bytes) for Home Assistant's image entity.

        Does nothing unless ``publish_face_image`` is enabled, and nothing while
        offline; never retained (face crops are personal data)."""
        if not self.settings.publish_face_image:
            return
        if not jpeg.startswith(b"\xff\xd8"):
            raise ValueError("not JPEG data (no SOI marker)")
        with self._send_lock:
            self._publish_if_connected(self.topics.face, jpeg, retain=False)

    def publish_enrollment(self, message: EnrollmentMessage) -> None:
        """Send enrollment progress or an outcome on ``enrollment``; only while connected."""
        with self._send_lock:
            self._publish_if_connected(self.topics.enrollment, _json(message.to_dict()), retain=False)

    def publish_error(self, source_topic: str, message: str) -> None:
        """Answer a command that could not be carried out, on ``error``; only while connected."""
        self.publish_outcome(CommandOutcome(source_topic, False, message))

    def publish_outcome(self, outcome: CommandOutcome) -> None:
        """Answer a command: on ``result`` when done, on ``error`` when not; only while connected."""
        topic = self.topics.result if outcome.ok else self.topics.error
        with self._send_lock:
            self._publish_if_connected(topic, _json(outcome.to_dict()), retain=False)

    # --------------------------------------------------------------- commands

    def _serve_commands(self) -> None:
        """The worker thread: carries out queued commands in order, answering each."""
        while True:
            item = self._commands.get()
            if item is None:
                return
            topic, command = item
            try:
                result = self._on_command(command)
            except CommandError as exc:
                self.publish_error(topic, str(exc))
            except Exception as exc:
                log.error("command on %s failed: %s: %s", topic, type(exc).__name__, exc)
                self.publish_error(topic, f"{type(exc).__name__}: {exc}")
            else:
                if result:
                    self.publish_outcome(CommandOutcome(topic, True, result))

    def _stop_worker(self, timeout: float) -> None:
        worker = self._worker
        if worker is None:
            return
        while True:  # commands still waiting are dropped: the door is stopping
            try:
                self._commands.get_nowait()
            except queue.Empty:
                break
        try:
            self._commands.put(None, timeout=timeout)
        except queue.Full:
            pass
        worker.join(timeout)

    # ------------------------------------------------------------- internals
    # All of these run with self._send_lock held.

    def _publish_if_connected(self, topic: str, payload: bytes, *, retain: bool) -> None:
        self._take_acks()  # keeps self._acked short even when no event is sent for a long time
        if self._connected and not self._stopped and self._client is not None:
            self._client.publish(topic, payload, qos=QOS, retain=retain)

    def _send_queued(self, item: _Queued) -> None:
        assert self._client is not None
        info = self._client.publish(self.topics.event, item.payload, qos=QOS, retain=False)
        # A PUBACK arriving before this line only puts its mid on self._acked; it is
        # matched to the item by the next _take_acks, so the race is harmless.
        item.mid = info.mid
        self._inflight[info.mid] = item

    def _take_acks(self) -> None:
        """Remove the events the broker has acknowledged from the queue."""
        done = False
        while True:
            try:
                mid = self._acked.get_nowait()
            except queue.Empty:
                break
            item = self._inflight.pop(mid, None)
            if item is not None:
                item.acked = True
                done = True
        if done:
            self._queue = deque(i for i in self._queue if not i.acked)

    def _send_connect_messages(self, client: paho.Client) -> None:
        for topic, payload in self._retained.items():  # first: "online" must never make an old state look current
            client.publish(topic, payload, qos=QOS, retain=True)
        client.publish(self.topics.availability, PAYLOAD_ONLINE, qos=QOS, retain=True)
        for topic, payload in self._discovery.items():
            client.publish(topic, payload, qos=QOS, retain=True)

    def _owned(self, topic: str) -> bool:
        """Whether ``topic`` is one of the retained namespaces this door owns (configs, presence)."""
        parts = topic.split("/")
        discovery = self.settings.discovery_prefix.split("/")
        config = (len(parts) == len(discovery) + 4 and parts[: len(discovery)] == discovery
                  and parts[len(discovery) + 1] == self.device_id and parts[-1] == "config")
        return config or topic.startswith(self.topics.presence_filter[:-1])

    def _clear_stale(self) -> None:
        """Clear the retained topics of ours seen on the broker that are not wanted now."""
        if not self._owned_known:
            return
        for topic in sorted(self._stale):
            if topic not in self._discovery and topic not in self._retained:
                log.info("clearing %s: retained from an earlier run, not wanted now", topic)
                self._publish_if_connected(topic, b"", retain=True)
        self._stale.clear()

    # ------------------------------------------------------- paho callbacks

    def _log_failure(self, reason: str) -> None:
        """Log a connection failure: a warning when the reason is new, else at debug level."""
        s = self.settings
        level = logging.DEBUG if reason == self._last_failure else logging.WARNING
        self._last_failure = reason
        log.log(level, "MQTT broker %s:%d: %s; retrying", s.host, s.port, reason)

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` (connect or TLS handshake): the exception is current.
        self._first_attempt.set()
        self._log_failure(connect_failure(sys.exc_info()[1], self.settings))

    def _handle_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._first_attempt.set()
            self._refused = True
            hint = ""
            if reason.value in (0x86, 0x87, 4, 5):  # bad user name or password, not authorized (v5 and v3 codes)
                hint = ": check [mqtt] username and password (and the broker's password file and ACL)"
            self._log_failure(f"connection refused ({reason}){hint}")
            return
        self._last_failure, self._refused = None, False
        log.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
        with self._send_lock:
            if self._stopped:
                return
            self._take_acks()
            # Unacknowledged messages of the last connection: paho would resend them
            # after this callback, i.e. after newer ones; the queue resends events in order.
            client.drop_out_messages()
            for item in self._inflight.values():
                item.mid = None
            self._inflight.clear()
            self._send_connect_messages(client)
            client.subscribe(_subscriptions(
                self.topics.command_filter, f"{self.settings.discovery_prefix}/status",
                owned=(f"{self.settings.discovery_prefix}/+/{self.device_id}/+/config", self.topics.presence_filter),
            ))
            for item in self._queue:
                self._send_queued(item)
            self._connected = True
        self._first_attempt.set()

    def _handle_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # Only a flag: what was in flight is sorted out in _handle_connect.
        was_connected, self._connected = self._connected, False
        if self._stopped:
            return
        s = self.settings
        if was_connected:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", s.host, s.port, reason)
        elif self._refused:  # the refusal was logged by _handle_connect
            self._refused = False
        else:  # closed before the broker answered the CONNECT
            self._first_attempt.set()
            hint = "" if s.tls else ": is it a TLS port? (then set tls = true)"
            self._log_failure(f"connection closed before the broker answered ({reason}){hint}")

    def _handle_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # Runs under paho's message lock: must not take _send_lock (see __init__).
        if getattr(reason, "is_failure", False):
            # The broker took the message but will not deliver it (an ACL): resending cannot help.
            log.warning("MQTT broker refused a message (%s): check the broker's ACL for the door's user", reason)
        self._acked.put(mid)

    def _handle_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        for reason in reasons:
            if getattr(reason, "is_failure", False):
                log.warning("MQTT broker refused a subscription (%s): commands or Home Assistant's status "
                            "will not arrive; check the broker's ACL for the door's user", reason)

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        topic = message.topic
        if self._owned(topic):
            if message.retain and message.payload:  # kept by the broker, maybe from an earlier run
                with self._send_lock:
                    self._stale.add(topic)
                    if self._connected:
                        self._clear_stale()
            return
        if topic == f"{self.settings.discovery_prefix}/status":
            if message.payload.strip() == PAYLOAD_ONLINE.encode():
                log.info("Home Assistant is online: sending discovery again")
                with self._send_lock:
                    if self._connected and not self._stopped:
                        self._send_connect_messages(client)
            return
        prefix = self.topics.command_base + "/"
        if not topic.startswith(prefix):
            return
        if message.retain:
            # Retained (replayed on subscribing or, thanks to "retain as published", live): it would be
            # carried out again on every connect. Never run; ask the broker to forget it.
            if not message.payload:
                return  # an empty retained message clears one: it is no command
            log.warning("retained command on %s refused and cleared", topic)
            self.publish_error(topic, "retained command refused, not carried out: publish commands without the "
                                      "retain flag (edge asked the broker to forget it; if it comes back, clear it "
                                      "with an empty retained message)")
            with self._send_lock:
                self._publish_if_connected(topic, b"", retain=True)
            return
        try:
            payload = message.payload if self._verifier is None else self._verifier.payload(topic, message.payload)
            command = parse_command(topic[len(prefix) :], payload)
        except CommandError as exc:
            self.publish_error(topic, str(exc))
            self._on_refused(topic[len(prefix) :])
            return
        try:
            self._commands.put_nowait((topic, command))
        except queue.Full:
            self.publish_error(topic, f"busy: {COMMAND_QUEUE_LIMIT} commands are waiting; send it again later")


def _path(value: object) -> str | None:
    return None if value is None else str(value)


def _subscriptions(command_filter: str, status_topic: str, owned: tuple[str, ...]) -> list[tuple[str, Any]]:
    from paho.mqtt.subscribeoptions import SubscribeOptions

    return [
        (command_filter, SubscribeOptions(qos=QOS, retainAsPublished=True)),
        (status_topic, SubscribeOptions(qos=QOS)),
        # Our own retained messages, to clear stale ones; noLocal: not what we publish now.
        *((topic, SubscribeOptions(qos=QOS, noLocal=True, retainAsPublished=True)) for topic in owned),
    ]


def edge_version() -> str | None:
    """edge's version (the installed package's), for Home Assistant's device info."""
    from importlib import metadata

    try:
        return metadata.version("edge-face")
    except metadata.PackageNotFoundError:
        return None


def _tls_files(s: MqttSettings) -> str:
    files = [f"{key} = {value}" for key, value in
             (("ca_file", s.ca_file), ("certfile", s.certfile), ("keyfile", s.keyfile)) if value is not None]
    return ", ".join(files) or "the system's CA store"


def _reason(exc: BaseException) -> str:
    """An OS or TLS error in words, without errno noise: 'certificate verify failed: ...', 'No such file'."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}" if exc.verify_message else str(exc)
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def connect_failure(exc: BaseException | None, s: MqttSettings) -> str:
    """Why connecting to the broker failed, in one line with what to check (never the password)."""
    if exc is None:
        return "unreachable"
    if isinstance(exc, ssl.SSLCertVerificationError):  # also ssl.CertificateError: a host name mismatch
        if not exc.verify_message:
            return f"TLS certificate does not name {s.host} ({exc}); check [mqtt] host"
        return (f"TLS {_reason(exc)}; the broker's certificate is not vouched for by {_tls_files(s)} "
                "(check [mqtt] ca_file, and that the certificate names the host)")
    if s.tls and isinstance(exc, (ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return (f"TLS handshake failed ({_reason(exc)}): is port {s.port} a TLS listener? "
                "(plain MQTT is usually 1883, TLS 8883)")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer (timed out)" + (": is it a TLS port that waits for a handshake?" if s.tls else "")
    return f"unreachable ({_reason(exc)})"


def _encoded(messages: list[tuple[str, Mapping[str, Any] | None]]) -> dict[str, bytes]:
    return {topic: b"" if payload is None else _json(payload) for topic, payload in messages}


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
