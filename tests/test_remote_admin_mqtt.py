"""Remote administration against a real Mosquitto: answers on `error`/`result`, retained commands never
carried out (replayed on connect or delivered live), a command waiting for the gallery's lock does not stall
the link, and the shipped ACL example does what SETUP.md says."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

paho = pytest.importorskip("paho.mqtt.client")

from broker import TIMEOUT, Mosquitto, Observer, mosquitto_binary  # noqa: E402
from test_remote_admin import MODEL, gallery_path, handler, identities, unit_rows  # noqa: E402,F401 (gallery_path: a fixture)

from edge.adapters.mqtt import MqttLink  # noqa: E402
from edge.adapters.settings import MqttSettings  # noqa: E402
from edge.faces import BBox  # noqa: E402
from edge.gallery.store import Gallery  # noqa: E402
from edge.messages import Event  # noqa: E402

pytestmark = pytest.mark.slow  # a broker

DEVICE = "door1"
BASE = f"edge/{DEVICE}"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def door(mosquitto, gallery_path):
    """start(**handler options, keepalive=...) -> the link, its handler carrying out real gallery changes."""
    links = []

    def start(keepalive: int = 5, **options):
        commands, _ = handler(gallery_path, **options)
        settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, keepalive=keepalive,
                                reconnect_min_delay=1, reconnect_max_delay=1)
        link = MqttLink(settings, DEVICE, None, commands)
        links.append(link)
        link.start()
        wait_until(lambda: link.connected, "link connected")
        return link

    yield start
    for link in links:
        link.stop(timeout=1.0)


@pytest.fixture
def observe(mosquitto):
    observers: list[Observer] = []

    def make(topics):
        observers.append(Observer(mosquitto, topics))
        return observers[-1]

    yield make
    for observer in observers:
        observer.close()


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def retained_commands(mosquitto) -> list:
    """What the broker still keeps on the command topics (a fresh subscriber's retained replay)."""
    late = Observer(mosquitto, [f"{BASE}/command/#"])
    try:
        time.sleep(0.5)
        return [m for m in late.messages if m.retain and m.payload]
    finally:
        late.close()


def test_enroll_of_an_enrolled_name_and_remove_are_refused_by_default(door, observe, gallery_path) -> None:
    door()
    seen = observe([f"{BASE}/error", f"{BASE}/result", f"{BASE}/enrollment"])
    seen.publish(f"{BASE}/command/enroll", b'{"name": "raj"}')
    seen.publish(f"{BASE}/command/remove", b'{"name": "amy"}')
    refused_enroll, refused_remove = seen.wait_for(f"{BASE}/error", 2)
    assert refused_enroll.json()["topic"] == f"{BASE}/command/enroll"
    assert "'raj' is already enrolled (3 samples)" in refused_enroll.json()["error"]
    assert "remote_admin = true" in refused_remove.json()["error"]
    assert identities(gallery_path) == {"amy": 2, "raj": 3}
    assert seen.on(f"{BASE}/result") == []


def test_remove_with_remote_admin_is_answered_and_compacts(door, observe, gallery_path) -> None:
    door(remote_admin=True)
    seen = observe([f"{BASE}/error", f"{BASE}/result"])
    seen.publish(f"{BASE}/command/remove", b'{"name": "amy"}')
    (done,) = seen.wait_for(f"{BASE}/result")
    assert done.json()["result"] == "removed 'amy' (2 samples)"
    assert identities(gallery_path) == {"raj": 3}
    assert b"amy" not in (gallery_path / "gallery.sqlite").read_bytes()


def test_a_retained_command_from_before_the_connect_is_not_carried_out(mosquitto, door, observe,
                                                                       gallery_path) -> None:
    sender = observe([f"{BASE}/error"])
    sender.publish(f"{BASE}/command/remove", b'{"name": "amy"}', retain=True)
    door(remote_admin=True)
    (refused,) = sender.wait_for(f"{BASE}/error")
    assert "retained" in refused.json()["error"]
    time.sleep(0.3)
    assert identities(gallery_path) == {"amy": 2, "raj": 3}
    assert retained_commands(mosquitto) == [], "the broker was asked to forget it"


def test_a_retained_command_published_while_connected_is_not_carried_out(mosquitto, door, observe,
                                                                          gallery_path) -> None:
    door(remote_admin=True)
    sender = observe([f"{BASE}/error", f"{BASE}/result"])
    # The broker clears the retain flag on live delivery under MQTT 3.1.1; the link must still see it.
    sender.publish(f"{BASE}/command/remove", b'{"name": "amy"}', retain=True)
    (refused,) = sender.wait_for(f"{BASE}/error")
    assert "retained command refused" in refused.json()["error"]
    time.sleep(0.3)
    assert identities(gallery_path) == {"amy": 2, "raj": 3}
    assert sender.on(f"{BASE}/result") == []
    assert retained_commands(mosquitto) == []
    sender.publish(f"{BASE}/command/remove", b'{"name": "amy"}')  # the same, not retained: carried out
    assert sender.wait_for(f"{BASE}/result")[0].json()["result"] == "removed 'amy' (2 samples)"


def test_a_command_waiting_for_the_gallery_lock_does_not_stall_the_link(door, observe, gallery_path) -> None:
    # keepalive 1 s: a network thread blocked for 2 s would miss its ping and the broker would send the will.
    link = door(keepalive=1, remote_admin=True, lock_timeout=2.0)
    seen = observe([f"{BASE}/#"])
    writer = Gallery.open(gallery_path, MODEL, writable=True)  # e.g. a `gallery add` running
    try:
        for _ in range(3):
            seen.publish(f"{BASE}/command/remove", b'{"name": "amy"}')
        for i in range(12):  # 3 s of events while the commands wait
            link.publish_event(Event("unknown", None, 0.1, i, DEVICE, "cam", BBox(0, 0, 1, 1),
                                     datetime.now().astimezone()))
            seen.wait_for(f"{BASE}/event", i + 1, timeout=1.0)  # each within a second: the link is alive
            time.sleep(0.25)
    finally:
        writer.close()  # after 3 s: the first command has given up, the second gets the lock
    answers = sorted(m.json().get("error") or m.json()["result"]
                     for m in seen.wait_for(f"{BASE}/error", 2) + seen.wait_for(f"{BASE}/result"))
    assert answers[-1] == "removed 'amy' (2 samples)"
    assert any("lock" in a.lower() for a in answers[:-1]) and "nobody named 'amy' is enrolled" in answers
    assert link.connected
    assert b"offline" not in [m.payload for m in seen.on(f"{BASE}/availability")], "no offline will"


# ------------------------------------------------------------------- the ACL example

ACL = REPO / "firmware_config" / "mosquitto-acl.example"


@pytest.fixture
def acl_broker(tmp_path):
    """A broker with the shipped ACL (device id front_door) and users edge / homeassistant."""
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("the ACL test needs mosquitto_passwd")
    passwords = tmp_path / "passwords"
    subprocess.run([passwd, "-b", "-c", str(passwords), "edge", "edge-pw"], check=True, capture_output=True)
    subprocess.run([passwd, "-b", str(passwords), "homeassistant", "ha-pw"], check=True, capture_output=True)
    extra = f"allow_anonymous false\npassword_file {passwords}\nacl_file {ACL}\n"
    with Mosquitto(mosquitto_binary(), tmp_path / "broker", extra_config=extra) as broker:
        yield broker


class Client:
    """A paho client logged in as ``user``, recording what arrives on ``topics``."""

    def __init__(self, broker, user: str, password: str, topics: list[str]) -> None:
        self.messages: list[tuple[str, bytes]] = []
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"acl-{user}")
        self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert subscribed.wait(TIMEOUT)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_acl_example_lets_only_home_assistant_send_commands(acl_broker) -> None:
    commands = "edge/front_door/command/remove"
    ha = Client(acl_broker, "homeassistant", "ha-pw", ["edge/front_door/#", "homeassistant/#"])
    edge = Client(acl_broker, "edge", "edge-pw", ["edge/front_door/command/+", "homeassistant/status"])
    try:
        edge.publish(commands, b'{"name": "amy"}')                    # the door's own user: refused
        edge.publish("edge/other_door/event", b"{}")                  # another door's topics: refused
        edge.publish("edge/front_door/event", b'{"event_type": "unknown"}')
        edge.publish("homeassistant/sensor/front_door/last_person/config", b"{}", retain=True)
        ha.publish("edge/front_door/command/enroll", b'{"name": "zoe"}')
        ha.publish("homeassistant/status", b"online")
        time.sleep(0.5)
        assert (commands, b'{"name": "amy"}') not in ha.messages + edge.messages
        assert ("edge/front_door/event", b'{"event_type": "unknown"}') in ha.messages
        assert ("homeassistant/sensor/front_door/last_person/config", b"{}") in ha.messages
        assert ("edge/front_door/command/enroll", b'{"name": "zoe"}') in edge.messages
        assert ("homeassistant/status", b"online") in edge.messages
        assert not [t for t, _ in ha.messages if t.startswith("edge/other_door/")]
    finally:
        ha.close()
        edge.close()


def test_the_door_works_within_the_acl_example(acl_broker, caplog) -> None:
    """The real link as the door's user: it can say online, hear Home Assistant's commands, answer them;
    it cannot clear a retained command (the ACL forbids it), and says so in the log."""
    ha = Client(acl_broker, "homeassistant", "ha-pw", ["edge/front_door/#", "homeassistant/#"])
    calls = []
    settings = MqttSettings(host=acl_broker.host, port=acl_broker.port, username="edge", password="edge-pw",
                            reconnect_min_delay=1, reconnect_max_delay=1)
    link = MqttLink(settings, "front_door", None, lambda command: calls.append(command) or "done")
    try:
        with caplog.at_level(logging.WARNING, logger="edge.adapters.mqtt"):
            link.start()
            wait_until(lambda: link.connected, "the door connected as its own user")
            wait_until(lambda: ("edge/front_door/availability", b"online") in ha.messages, "online")
            wait_until(lambda: any(t.startswith("homeassistant/event/front_door/") for t, _ in ha.messages),
                       "discovery")
            ha.publish("edge/front_door/command/reload", b"")
            wait_until(lambda: any(t == "edge/front_door/result" for t, _ in ha.messages), "answer on result")
            ha.publish("edge/front_door/command/reload", b"{}", retain=True)
            wait_until(lambda: any(t == "edge/front_door/error" and b"retained" in m for t, m in ha.messages),
                       "retained command refused")
            wait_until(lambda: "broker refused a message" in caplog.text, "the denied clear is logged")
        assert len(calls) == 1
        assert "edge-pw" not in caplog.text
    finally:
        link.stop(timeout=1.0)
        ha.publish("edge/front_door/command/reload", b"", retain=True)
        ha.close()


def test_with_a_command_key_only_signed_commands_are_carried_out(mosquitto, observe, gallery_path,
                                                                 monkeypatch) -> None:
    from edge.adapters.commands import sign_command

    monkeypatch.setenv("EDGE_TEST_COMMAND_KEY", "s3cret-key")
    commands, _ = handler(gallery_path, remote_admin=True)
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, command_key_env="EDGE_TEST_COMMAND_KEY")
    link = MqttLink(settings, DEVICE, None, commands)
    link.start()
    try:
        wait_until(lambda: link.connected, "link connected")
        seen = observe([f"{BASE}/error", f"{BASE}/result"])
        topic = f"{BASE}/command/remove"
        seen.publish(topic, b'{"name": "amy"}')
        assert "unsigned command refused" in seen.wait_for(f"{BASE}/error")[0].json()["error"]
        assert identities(gallery_path) == {"amy": 2, "raj": 3}
        signed = sign_command(b"s3cret-key", topic, b'{"name": "amy"}')
        seen.publish(topic, signed)
        assert seen.wait_for(f"{BASE}/result")[0].json()["result"] == "removed 'amy' (2 samples)"
        seen.publish(topic, signed)  # the same message again: a replay
        assert "replay refused" in seen.wait_for(f"{BASE}/error", 2)[1].json()["error"]
        assert "s3cret-key" not in str(seen.messages)
    finally:
        link.stop(timeout=1.0)


def test_a_command_key_variable_that_is_not_set_is_one_line(monkeypatch) -> None:
    from edge.adapters.mqtt import MqttSetupError

    monkeypatch.delenv("EDGE_TEST_COMMAND_KEY", raising=False)
    link = MqttLink(MqttSettings(host="broker", command_key_env="EDGE_TEST_COMMAND_KEY"), DEVICE, None, print)
    with pytest.raises(MqttSetupError, match="EDGE_TEST_COMMAND_KEY is not set"):
        link.start()
