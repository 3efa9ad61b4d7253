"""MqttLink against a real Mosquitto broker, observed by a plain paho subscriber (no mocks)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client")

from broker import TIMEOUT, Message, Mosquitto, Observer, free_port, mosquitto_binary  # noqa: E402

from edge.adapters.discovery import Topics, discovery_messages  # noqa: E402
from edge.adapters.commands import Command, CommandError  # noqa: E402
from edge.adapters.mqtt import MqttLink  # noqa: E402
from edge.adapters.settings import MqttSettings  # noqa: E402
from edge.faces import BBox  # noqa: E402
from edge.messages import Event, State  # noqa: E402

DEVICE = "door1"
BASE = f"edge/{DEVICE}"
"""Seconds to wait for something that should happen; generous for a busy 2-core machine."""
HA_COMPONENTS = {"event", "sensor", "binary_sensor", "button", "text"}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def mosquitto(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mosquitto]:
    """A running broker; ``indirect`` parametrization may pass Mosquitto options (e.g. persistence)."""
    options = getattr(request, "param", {})
    with Mosquitto(mosquitto_binary(), tmp_path / "broker", **options) as broker:
        yield broker


persistent_broker = pytest.mark.parametrize("mosquitto", [{"persistence": True}], indirect=True, ids=["persistent"])


@pytest.fixture
def observe(mosquitto: Mosquitto) -> Iterator[Callable[..., Observer]]:
    observers: list[Observer] = []

    def make(topics: list[str], **options) -> Observer:
        observers.append(Observer(mosquitto, topics, **options))
        return observers[-1]

    yield make
    for observer in observers:
        observer.close()


@pytest.fixture
def make_link(mosquitto: Mosquitto) -> Iterator[Callable[..., MqttLink]]:
    """Start an MqttLink to the test broker; ``on_command`` and settings fields as keywords."""
    links: list[MqttLink] = []

    def make(on_command: Callable[[Command], None] = lambda c: None, *, wait: bool = True, **fields) -> MqttLink:
        defaults = {"keepalive": 5, "reconnect_min_delay": 1, "reconnect_max_delay": 1}
        settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, **(defaults | fields))
        link = MqttLink(settings, DEVICE, "Front door", on_command)
        links.append(link)
        link.start()
        if wait:
            wait_until(lambda: link.connected, "link connected")
        return link

    yield make
    for link in links:
        link.stop(timeout=1.0)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def event(i: int) -> Event:
    return Event("recognized", f"p{i}", 0.7, i, DEVICE, "cam0", BBox(1, 2, 3, 4), datetime.now().astimezone())


def track_ids(messages: list[Message]) -> list[int]:
    return [m.json()["track_id"] for m in messages]


def first_deliveries(seen: Observer, count: int) -> list[int]:
    """Track ids of the first ``count`` events the observer got, without the broker's own redeliveries.

    A persistent observer's unacknowledged messages are redelivered (flagged DUP) by the
    restarted broker: the observer's QoS 1, not the link's, so they are left out.
    """
    topic = f"{BASE}/event"
    wait_until(lambda: len([m for m in seen.on(topic) if not m.dup]) >= count, f"{count} events")
    return track_ids([m for m in seen.on(topic) if not m.dup])


@pytest.mark.slow
def test_start_publishes_online_and_discovery_retained(make_link, observe) -> None:
    link = make_link()
    link.publish_face_image(JPEG)  # off by default: must send nothing
    # Subscribing after the link connected: what arrives now is what the broker retained.
    seen = observe([f"{BASE}/#", "homeassistant/#"])
    (online,) = seen.wait_for(f"{BASE}/availability")
    assert online.payload == b"online" and online.retain

    for component in HA_COMPONENTS:
        key = {"event": "recognition", "sensor": "last_person", "binary_sensor": "known_present",
               "button": "enroll", "text": "enroll_name"}[component]  # fmt: skip
        (config,) = seen.wait_for(f"homeassistant/{component}/{DEVICE}/{key}/config")
        assert config.retain and config.qos == 1
        payload = config.json()
        assert payload["unique_id"] == f"edge_{DEVICE}_{key}"
        assert payload["default_entity_id"] == f"{component}.edge_{DEVICE}_{key}"
        assert payload["object_id"] == f"edge_{DEVICE}_{key}"
        assert payload["availability_topic"] == f"{BASE}/availability"
        assert payload["device"]["identifiers"] == [f"edge_{DEVICE}"]
        assert payload["device"]["name"] == "Front door"
    time.sleep(0.3)
    assert not [m for m in seen.messages if m.topic.startswith("homeassistant/image/")], "image entity is opt-in"
    assert not seen.on(f"{BASE}/face")


@pytest.mark.slow
def test_face_image_entity_and_crops_when_enabled(make_link, observe) -> None:
    link = make_link(publish_face_image=True)
    seen = observe([f"homeassistant/image/{DEVICE}/face/config", f"{BASE}/face"])
    (config,) = seen.wait_for(f"homeassistant/image/{DEVICE}/face/config")
    assert config.retain
    assert config.json()["image_topic"] == f"{BASE}/face"
    assert config.json()["content_type"] == "image/jpeg"

    link.publish_face_image(JPEG)
    (face,) = seen.wait_for(f"{BASE}/face")
    assert face.payload == JPEG and not face.retain


@pytest.mark.slow
def test_discovery_sent_again_when_home_assistant_comes_online(make_link, observe) -> None:
    make_link()
    every = len(discovery_messages(Topics("edge", DEVICE), device_name=DEVICE))  # the image's empty one included
    seen = observe(["homeassistant/+/+/+/config"])
    wait_until(lambda: len([m for m in seen.messages if m.payload]) >= every - 1, "retained discovery")
    seen.clear()
    seen.publish("homeassistant/status", "offline")
    time.sleep(0.3)
    assert seen.messages == [], "only 'online' asks for discovery"
    seen.publish("homeassistant/status", "online")
    wait_until(lambda: len(seen.messages) >= every, "discovery sent again")
    assert {m.topic.split("/")[1] for m in seen.messages if m.payload} == HA_COMPONENTS
    # Live subscribers also see the empty message that keeps the (disabled) image entity removed.
    assert [m.topic for m in seen.messages if not m.payload] == [f"homeassistant/image/{DEVICE}/face/config"]


_LINK_PROCESS = """
import sys, time
from edge.adapters.mqtt import MqttLink
from edge.adapters.settings import MqttSettings
settings = MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), keepalive=5)
link = MqttLink(settings, "killed", None, lambda command: None)
link.start()
while not link.connected:
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_last_will_says_offline_when_the_process_is_killed(mosquitto, observe) -> None:
    seen = observe(["edge/killed/availability"])
    process = subprocess.Popen(
        [sys.executable, "-c", _LINK_PROCESS, str(mosquitto.port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        (online,) = seen.wait_for("edge/killed/availability")
        assert online.payload == b"online"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The broker sends the will when it notices: at once on the closed socket, 1.5 x keepalive at worst.
    offline = seen.wait_for("edge/killed/availability", 2)[1]
    assert offline.payload == b"offline"
    (retained,) = observe(["edge/killed/availability"]).wait_for("edge/killed/availability")
    assert retained.payload == b"offline" and retained.retain


@pytest.mark.slow
def test_stop_says_offline(make_link, observe) -> None:
    link = make_link()
    link.stop()
    assert not link.connected
    (retained,) = observe([f"{BASE}/availability"]).wait_for(f"{BASE}/availability")
    assert retained.payload == b"offline" and retained.retain


@pytest.mark.slow
def test_event_is_json_with_qos_1(make_link, observe) -> None:
    link = make_link()
    seen = observe([f"{BASE}/event"])
    link.publish_event(event(7))
    (message,) = seen.wait_for(f"{BASE}/event")
    assert message.qos == 1 and not message.retain
    body = message.json()
    assert body["event_type"] == "recognized" and body["name"] == "p7" and body["track_id"] == 7
    assert body["similarity"] == 0.7 and body["box"] == [1, 2, 3, 4]
    assert body["device"] == DEVICE and body["camera"] == "cam0"
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    wait_until(lambda: link.pending == 0, "event acknowledged")


@pytest.mark.slow
def test_state_is_retained_and_sent_again_after_reconnect(mosquitto, make_link, observe) -> None:
    link = make_link()
    live = observe([f"{BASE}/state"])
    link.publish_state(State(("alice",), "alice", DEVICE, "cam0"))
    live.wait_for(f"{BASE}/state")  # the broker has it: a new subscriber now gets it as the retained message
    (state,) = observe([f"{BASE}/state"]).wait_for(f"{BASE}/state")
    assert state.retain and state.json()["known_present"] is True and state.json()["last_person"] == "alice"

    mosquitto.restart()  # no persistence: the broker forgets every retained message
    wait_until(lambda: not link.connected, "link noticed the restart")
    wait_until(lambda: link.connected, "link reconnected")
    after = observe([f"{BASE}/state", f"{BASE}/availability"])
    assert after.wait_for(f"{BASE}/state")[0].json()["last_person"] == "alice"
    assert after.wait_for(f"{BASE}/availability")[0].payload == b"online"


@pytest.mark.slow
@persistent_broker
def test_events_while_the_broker_is_down_arrive_after_restart_in_order(mosquitto, make_link, observe) -> None:
    link = make_link()
    # A persistent session: the restarted broker keeps the subscription and queues for it.
    seen = observe([f"{BASE}/event"], client_id="restart-observer", clean_session=False)
    for i in range(5):
        link.publish_event(event(i))
    seen.wait_for(f"{BASE}/event", 5)
    wait_until(lambda: link.pending == 0, "first events acknowledged")

    mosquitto.stop()
    wait_until(lambda: not link.connected, "link noticed the broker is gone")
    for i in range(5, 15):
        link.publish_event(event(i))
    assert link.pending == 10
    mosquitto.start()

    assert first_deliveries(seen, 15) == list(range(15))
    wait_until(lambda: link.pending == 0, "queued events acknowledged")
    assert link.dropped == 0
    time.sleep(0.3)
    assert first_deliveries(seen, 15) == list(range(15)), "no event twice"


@pytest.mark.slow
def test_events_unacknowledged_when_the_connection_drops_are_sent_again(mosquitto, make_link, observe) -> None:
    link = make_link(keepalive=1)
    seen = observe([f"{BASE}/event"])
    link.publish_event(event(0))
    seen.wait_for(f"{BASE}/event")
    mosquitto.pause()
    try:
        for i in range(1, 6):
            link.publish_event(event(i))  # sent, but the frozen broker acknowledges nothing
        wait_until(lambda: not link.connected, "link gave up on the silent broker (keepalive)")
        assert link.pending == 5
    finally:
        mosquitto.resume()
    wait_until(lambda: link.connected and link.pending == 0, "link reconnected and all acknowledged")
    # QoS 1 is "at least once": the broker may also have read the first copies from the
    # old socket; either way every event arrives, and in order of first arrival.
    wait_until(lambda: set(track_ids(seen.on(f"{BASE}/event"))) == set(range(6)), "all events")
    ids = track_ids(seen.on(f"{BASE}/event"))
    assert list(dict.fromkeys(ids)) == list(range(6))


@pytest.mark.slow
@persistent_broker
def test_full_queue_drops_the_oldest_and_counts_them(mosquitto, make_link, observe) -> None:
    link = make_link(queue_limit=5)
    seen = observe([f"{BASE}/event"], client_id="queue-observer", clean_session=False)
    mosquitto.stop()
    wait_until(lambda: not link.connected, "link noticed the broker is gone")
    for i in range(8):
        link.publish_event(event(i))
    assert (link.pending, link.dropped) == (5, 3)
    mosquitto.start()

    assert first_deliveries(seen, 5) == [3, 4, 5, 6, 7]
    wait_until(lambda: link.pending == 0, "queued events acknowledged")
    time.sleep(0.3)
    assert first_deliveries(seen, 5) == [3, 4, 5, 6, 7]
    assert link.dropped == 3


@pytest.mark.slow
def test_malformed_commands_are_answered_on_error_and_change_nothing(make_link, observe) -> None:
    calls: list[Command] = []
    make_link(calls.append)
    seen = observe([f"{BASE}/error"])
    malformed = [
        ("remove", b"not json"),
        ("remove", b"{}"),
        ("remove", b'{"name": 5}'),
        ("enroll", b'{"name": "a/b"}'),
        ("enroll", b'{"name": "alice", "extra": 1}'),
        ("set_name", b".hidden"),
        ("reload", b'{"now": true}'),
        ("self_destruct", b""),
    ]
    for subtopic, payload in malformed:
        seen.publish(f"{BASE}/command/{subtopic}", payload)
    errors = seen.wait_for(f"{BASE}/error", len(malformed))
    for (subtopic, _), error in zip(malformed, errors, strict=True):
        body = error.json()
        assert body["topic"] == f"{BASE}/command/{subtopic}"
        assert body["error"] and "timestamp" in body
    assert "JSON" in errors[0].json()["error"]
    assert "missing" in errors[1].json()["error"]
    assert "'/'" in errors[3].json()["error"]
    assert "unknown command" in errors[7].json()["error"]
    time.sleep(0.3)
    assert calls == []


@pytest.mark.slow
def test_valid_commands_reach_the_callback_in_order(make_link, observe) -> None:
    calls: list[Command] = []
    make_link(calls.append)
    sender = observe([f"{BASE}/error"])
    for subtopic, payload in [
        ("enroll", b'{"name": " alice "}'),
        ("set_name", b"bob"),
        ("enroll", b"PRESS"),  # Home Assistant's button
        ("enroll_cancel", b""),
        ("remove", b'{"name": "bob"}'),
        ("reload", b""),
    ]:
        sender.publish(f"{BASE}/command/{subtopic}", payload)
    wait_until(lambda: len(calls) == 6, "six commands")
    assert calls == [
        Command("enroll_start", "alice"),
        Command("set_name", "bob"),
        Command("enroll_start", None),
        Command("enroll_cancel"),
        Command("remove", "bob"),
        Command("reload"),
    ]
    assert sender.on(f"{BASE}/error") == []


@pytest.mark.slow
def test_a_failing_handler_and_retained_commands_are_answered_on_error(mosquitto, make_link, observe) -> None:
    sender = observe([f"{BASE}/error"])
    sender.publish(f"{BASE}/command/reload", b"{}", retain=True)  # would rerun on every connect
    calls: list[Command] = []

    def handler(command: Command) -> None:
        calls.append(command)
        raise CommandError(f"nobody called {command.name!r} is enrolled")

    make_link(handler)
    (retained,) = sender.wait_for(f"{BASE}/error")
    assert "retained" in retained.json()["error"]
    sender.publish(f"{BASE}/command/remove", b'{"name": "carol"}')
    failed = sender.wait_for(f"{BASE}/error", 2)[1]
    assert failed.json()["error"] == "nobody called 'carol' is enrolled"
    assert calls == [Command("remove", "carol")]


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, int, Path]]:
    """A broker with a second listener that needs TLS and a password ("door" / "s3cret").

    Yields the broker (its plain listener is anonymous, for observers), the TLS port and the CA file.
    """
    binary = mosquitto_binary()
    tools = {name: shutil.which(name) for name in ("openssl", "mosquitto_passwd")}
    if not all(tools.values()):
        pytest.skip(f"TLS test needs {[n for n, p in tools.items() if not p]}")
    certs = tmp_path / "certs"
    certs.mkdir()

    def run(*args: str) -> None:
        subprocess.run(args, cwd=certs, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=edge test CA")  # fmt: skip
    run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    run("mosquitto_passwd", "-b", "-c", "passwords", "door", "s3cret")
    tls_port = free_port()
    extra = "\n".join([
        f"listener {tls_port} 127.0.0.1",
        f"cafile {certs / 'ca.crt'}",
        f"certfile {certs / 'server.crt'}",
        f"keyfile {certs / 'server.key'}",
        "allow_anonymous false",
        f"password_file {certs / 'passwords'}",
    ])  # fmt: skip
    broker = Mosquitto(binary, tmp_path / "broker", global_config="per_listener_settings true", extra_config=extra)
    with broker:
        yield broker, tls_port, certs / "ca.crt"


@pytest.mark.slow
def test_tls_with_password(tls_broker) -> None:
    broker, tls_port, ca_file = tls_broker
    seen = Observer(broker, ["edge/+/availability"])
    links = []
    try:
        for device_id, password in [("good", "s3cret"), ("bad", "wrong")]:
            settings = MqttSettings(
                host="127.0.0.1", port=tls_port, username="door", password=password,
                tls=True, ca_file=str(ca_file), reconnect_min_delay=1, reconnect_max_delay=1,
            )  # fmt: skip
            assert password not in repr(settings)
            links.append(MqttLink(settings, device_id, None, lambda c: None))
            links[-1].start()
        good, bad = links
        wait_until(lambda: good.connected, "TLS link connected")
        assert seen.wait_for("edge/good/availability")[0].payload == b"online"
        time.sleep(1.0)
        assert not bad.connected, "a wrong password is refused"
        assert seen.on("edge/bad/availability") == []
    finally:
        for link in links:
            link.stop(timeout=1.0)
        seen.close()


@pytest.mark.slow
def test_connection_failures_are_logged_with_their_reason(tls_broker, tmp_path, caplog) -> None:
    broker, tls_port, ca_file = tls_broker
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-days", "2",
                    "-subj", "/CN=another CA"], check=True, capture_output=True)  # fmt: skip
    login = {"username": "door", "password": "s3cret"}
    cases = [
        ("TLS to a plain port", {"port": broker.port, "tls": True, "ca_file": str(ca_file)},
         ["TLS handshake failed", f"is port {broker.port} a TLS listener?"]),
        ("system CA store", {"port": tls_port, "tls": True, **login},
         ["TLS certificate verify failed", "the system's CA store"]),
        ("wrong CA", {"port": tls_port, "tls": True, "ca_file": str(other_ca), **login},
         ["TLS certificate verify failed", f"ca_file = {other_ca}"]),
        ("plain to a TLS port", {"port": tls_port, **login},
         ["closed before the broker answered", "is it a TLS port? (then set tls = true)"]),
        ("bad password", {"port": tls_port, "tls": True, "ca_file": str(ca_file), "username": "door",
                          "password": "wrong-pw"},
         ["connection refused", "check [mqtt] username and password"]),
    ]  # fmt: skip
    for what, fields, expected in cases:
        caplog.clear()
        settings = MqttSettings(host="127.0.0.1", reconnect_min_delay=1, reconnect_max_delay=1, **fields)
        link = MqttLink(settings, "failing", None, lambda c: None)
        with caplog.at_level(logging.WARNING, logger="edge.adapters.mqtt"):
            link.start()
            try:
                wait_until(lambda: all(e in caplog.text for e in expected), f"{what}: {expected} in {caplog.text!r}")
                assert not link.connected
            finally:
                link.stop(timeout=0.5)
        assert "s3cret" not in caplog.text and "wrong-pw" not in caplog.text
        assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1, f"{what}: logged once"


def test_unreadable_tls_files_are_one_line(tmp_path) -> None:
    from edge.adapters.mqtt import MqttSetupError

    settings = MqttSettings(host="broker", tls=True, ca_file=str(tmp_path / "missing.crt"))
    with pytest.raises(MqttSetupError, match=r"ca_file = .*missing.crt.*No such file"):
        MqttLink(settings, "door", None, lambda c: None).start()


def test_settings_are_checked() -> None:
    ok = {"host": "broker"}
    assert MqttLink(MqttSettings(**ok), "door", None, lambda c: None).topics.event == "edge/door/event"
    with pytest.raises(ValueError):
        MqttLink(MqttSettings(**ok), "a/b", None, lambda c: None)
    for bad in [
        {"port": 0},
        {"keepalive": 0},
        {"queue_limit": 0},
        {"password": "x"},  # without a username
        {"ca_file": "ca.crt"},  # without tls
        {"tls": True, "certfile": "c.crt"},  # without keyfile
        {"topic_prefix": "edge/#"},
        {"reconnect_min_delay": 5, "reconnect_max_delay": 1},
    ]:
        with pytest.raises(ValueError):
            MqttSettings(**(ok | bad))


def test_event_message() -> None:
    now = datetime.now().astimezone()
    recognized = Event("recognized", "alice", 0.712345, 3, "d", "c", BBox(1.04, 2, 3, 4), now).to_dict()
    assert recognized["similarity"] == 0.7123 and recognized["box"] == [1.0, 2.0, 3.0, 4.0]
    assert datetime.fromisoformat(recognized["timestamp"]).utcoffset() is not None
    unknown = Event("unknown", None, 0.2, 4, "d", "c", BBox(0, 0, 1, 1), now).to_dict()
    assert unknown["name"] is None and set(unknown) == set(recognized)
    with pytest.raises(ValueError):
        Event("waved", None, 0.1, 1, "d", "c", BBox(0, 0, 1, 1), now)
    with pytest.raises(ValueError):
        Event("unknown", "alice", 0.1, 1, "d", "c", BBox(0, 0, 1, 1), now)
    with pytest.raises(ValueError):
        Event("recognized", "a", 0.1, 1, "d", "c", BBox(0, 0, 1, 1), datetime(2025, 1, 1))
