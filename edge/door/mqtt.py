"""The door's link to Home Assistant over MQTT: the only module that uses paho-mqtt.

    link = MqttLink(MqttSettings(host="broker", device_id="front", device_name="Front door"), on_command)
    link.start()                                    # connects in the background, reconnects by itself
    link.publish_event(make_event("recognized", name="alice", similarity=0.71, ...))
    link.publish_state({"present": ["alice"], "unknown": 0, "known_present": True, "last_person": "alice"})
    link.stop()                                     # "offline", then disconnect

paho is imported when the link starts, so this module (and ``edge``) imports
without it. Topics and discovery payloads are in ``edge.door.discovery``,
command parsing in ``edge.door.commands``.

On every connect the link publishes ``online`` (retained; ``offline`` is the
last will), the discovery messages and the last state, subscribes to the
command topics and ``<discovery_prefix>/status`` (Home Assistant's birth
message: discovery is sent again when it says ``online``), then sends the
queued events in order. Everything goes out with QoS 1.

Events are queued (at most ``queue_limit``; when full the oldest is dropped
and counted in ``dropped``) and an event leaves the queue only once the
broker has acknowledged it (PUBACK, seen in ``on_publish``). Events not
acknowledged when the connection drops are sent again after the reconnect,
before any newer event, so the order is kept; as QoS 1 promises "at least
once", an event whose acknowledgement was lost with the connection can
arrive twice. paho's own store of unacknowledged messages is discarded on
each connect so that it cannot resend them out of order.

State, enrollment feedback, errors and face images are not queued: the
state is sent again on each connect (only the last one matters) and the
others are sent only while connected.

Callbacks (``on_command``) run on paho's network thread: keep them short and
hand work to another thread. An exception raised by ``on_command`` is
answered on the ``error`` topic and does not stop the link.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.door.commands import Command, CommandError, parse_command
from edge.door.discovery import (
    EVENT_TYPES,
    PAYLOAD_OFFLINE,
    PAYLOAD_ONLINE,
    Topics,
    check_device_id,
    check_topic_prefix,
    discovery_messages,
)

if TYPE_CHECKING:
    import paho.mqtt.client as paho

log = logging.getLogger(__name__)

QOS = 1


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """Where and how to reach the broker, and how the door appears in Home Assistant.

    Secrets (``password``) come from the caller (e.g. the environment via the
    configuration file); nothing here has a built-in credential.
    Times are in seconds.
    """

    host: str
    device_id: str
    """Identifies the door in topics and in Home Assistant: 1..64 of A-Z a-z 0-9 _ -."""
    device_name: str | None = None
    """The device's name in Home Assistant; the device_id if not given."""
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    """CA certificate(s) to verify the broker with; the system's store if None."""
    certfile: str | None = None
    """Client certificate for brokers that require one (with ``keyfile``)."""
    keyfile: str | None = None
    tls_insecure: bool = False
    """Skip the check that the broker's certificate names ``host``: for tests only."""
    topic_prefix: str = "edge"
    discovery_prefix: str = "homeassistant"
    client_id: str | None = None
    """MQTT client id; ``edge-<device_id>`` if not given."""
    keepalive: int = 30
    """Seconds between keep-alive pings; the broker declares the door offline after 1.5x this."""
    queue_limit: int = 1000
    """Events kept while the broker is away; beyond it the oldest are dropped."""
    publish_face_image: bool = False
    """Send face crops to Home Assistant (personal data: off unless chosen)."""
    reconnect_min_delay: int = 1
    """First wait before reconnecting, seconds; doubles per failed attempt up to the max."""
    reconnect_max_delay: int = 60

    def __post_init__(self) -> None:
        check_device_id(self.device_id)
        check_topic_prefix(self.topic_prefix)
        check_topic_prefix(self.discovery_prefix)
        if not self.host:
            raise ValueError("host is empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 1..65535")
        if not 1 <= self.keepalive <= 65535:
            raise ValueError(f"keepalive {self.keepalive} s is not in 1..65535")
        if self.queue_limit < 1:
            raise ValueError(f"queue_limit {self.queue_limit} must be at least 1")
        if not 1 <= self.reconnect_min_delay <= self.reconnect_max_delay:
            raise ValueError("need 1 <= reconnect_min_delay <= reconnect_max_delay")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if not self.tls and (self.ca_file or self.certfile or self.keyfile or self.tls_insecure):
            raise ValueError("ca_file, certfile, keyfile and tls_insecure need tls = true")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix, self.device_id)


def now_iso() -> str:
    """The current local time as ISO 8601 with its UTC offset, to the millisecond."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def make_event(
    event_type: str,
    *,
    name: str | None,
    similarity: float | None,
    track_id: int,
    device: str,
    camera: str,
    box: Sequence[float] | None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """One ``event`` message.

    ``event_type`` is ``recognized`` (``name`` set) or ``unknown`` (``name``
    None); ``similarity`` is the cosine similarity of the best match (-1..1);
    ``box`` is (x1, y1, x2, y2) in pixels of the camera frame (rounded to
    0.1 px); ``timestamp`` must carry a zone (default: now, local time).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type {event_type!r} is not one of {EVENT_TYPES}")
    if (name is None) != (event_type == "unknown"):
        raise ValueError("a recognized event needs a name and an unknown one has none")
    if timestamp is not None and timestamp.tzinfo is None:
        raise ValueError("timestamp needs a time zone")
    return {
        "event_type": event_type,
        "name": name,
        "similarity": None if similarity is None else round(float(similarity), 4),
        "track_id": int(track_id),
        "device": device,
        "camera": camera,
        "timestamp": now_iso() if timestamp is None else timestamp.isoformat(timespec="milliseconds"),
        "box": None if box is None else [round(float(v), 1) for v in box],
    }


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

    def __init__(self, settings: MqttSettings, on_command: Callable[[Command], None]) -> None:
        self.settings = settings
        self.topics = settings.topics
        self._on_command = on_command
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
        self._last_state: bytes | None = None

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
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"edge-{s.device_id}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            # paho's defaults: TLS client context, certificate and host name checked.
            client.tls_set(ca_certs=s.ca_file, certfile=s.certfile, keyfile=s.keyfile)
            client.tls_insecure_set(s.tls_insecure)
        client.will_set(self.topics.availability, PAYLOAD_OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=s.reconnect_min_delay, max_delay=s.reconnect_max_delay)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        self._client = client
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
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

    # ------------------------------------------------------------ publishing

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """Send one event (see ``make_event``) on ``event``, QoS 1, in order; queued while offline."""
        if event.get("event_type") not in EVENT_TYPES:
            raise ValueError(f"event_type must be one of {EVENT_TYPES}, got {event.get('event_type')!r}")
        item = _Queued(_json(event))
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

    def publish_state(self, state: Mapping[str, Any]) -> None:
        """Send who is at the door now (fields: ``discovery.STATE_FIELDS``), retained; re-sent on reconnect."""
        if not isinstance(state.get("known_present"), bool):
            raise ValueError("state needs a boolean 'known_present'")
        if "last_person" not in state or not isinstance(state["last_person"], str | None):
            raise ValueError("state needs 'last_person' (a name or None)")
        payload = _json({**state, "timestamp": state.get("timestamp") or now_iso()})
        with self._send_lock:
            self._last_state = payload
            self._publish_if_connected(self.topics.state, payload, retain=True)

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

    def publish_progress(self, progress: Mapping[str, Any]) -> None:
        """Send enrollment progress on ``enrollment`` as ``{"type": "progress", ...progress}``; only while connected."""
        self._publish_enrollment("progress", progress)

    def publish_status(self, status: Mapping[str, Any]) -> None:
        """Send an enrollment outcome on ``enrollment`` as ``{"type": "status", ...status}``; only while connected."""
        self._publish_enrollment("status", status)

    def publish_error(self, source_topic: str, message: str) -> None:
        """Answer a command that could not be carried out, on ``error``; only while connected."""
        payload = _json({"topic": source_topic, "error": message, "timestamp": now_iso()})
        with self._send_lock:
            self._publish_if_connected(self.topics.error, payload, retain=False)

    def _publish_enrollment(self, kind: str, fields: Mapping[str, Any]) -> None:
        payload = _json({"type": kind, **fields, "timestamp": fields.get("timestamp") or now_iso()})
        with self._send_lock:
            self._publish_if_connected(self.topics.enrollment, payload, retain=False)

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
        s = self.settings
        client.publish(self.topics.availability, PAYLOAD_ONLINE, qos=QOS, retain=True)
        for topic, payload in discovery_messages(
            self.topics,
            device_name=s.device_name or s.device_id,
            discovery_prefix=s.discovery_prefix,
            publish_face_image=s.publish_face_image,
        ):
            client.publish(topic, b"" if payload is None else _json(payload), qos=QOS, retain=True)
        if self._last_state is not None:
            client.publish(self.topics.state, self._last_state, qos=QOS, retain=True)

    # ------------------------------------------------------- paho callbacks

    def _handle_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.settings.host, self.settings.port, reason)
            return
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
            client.subscribe(
                [(self.topics.command_filter, QOS), (f"{self.settings.discovery_prefix}/status", QOS)]
            )
            for item in self._queue:
                self._send_queued(item)
            self._connected = True

    def _handle_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # Only a flag: what was in flight is sorted out in _handle_connect.
        self._connected = False
        if not self._stopped:
            s = self.settings
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", s.host, s.port, reason)

    def _handle_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # Runs under paho's message lock: must not take _send_lock (see __init__).
        self._acked.put(mid)

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        topic = message.topic
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
            # Sent because a command was published retained: it would run again on every connect.
            self.publish_error(topic, "retained command ignored: publish commands without the retain flag")
            return
        try:
            command = parse_command(topic[len(prefix) :], message.payload)
        except CommandError as exc:
            self.publish_error(topic, str(exc))
            return
        try:
            self._on_command(command)
        except CommandError as exc:
            self.publish_error(topic, str(exc))
        except Exception as exc:
            log.exception("command handler failed on %s", topic)
            self.publish_error(topic, f"{type(exc).__name__}: {exc}")


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
