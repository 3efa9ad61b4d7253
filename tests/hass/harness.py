"""A real Home Assistant Core for tests: onboarded, connected to a real MQTT broker, inspected over REST and websocket.

    from broker import Mosquitto, mosquitto_binary
    from hass.harness import HomeAssistant, ha_environment, wait_for_subscription

    environment = ha_environment("current")       # or "oldest"; skips (fails with EDGE_REQUIRE_HOMEASSISTANT=1) if not built
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker, \\
            HomeAssistant(environment, broker.host, broker.port) as ha:
        wait_for_subscription(broker, "door/temperature")   # HA subscribed to the discovered entity's topic
        ha.wait_for_state("sensor.x", lambda s: s["state"] == "21.5")
        ha.ws({"type": "config/device_registry/list"})

The environments are built by ``tests/hass/build.sh`` into
``${EDGE_HA_CACHE:-$HOME/.cache/edge-ha}``: "current" is the newest Home
Assistant in a Debian root entered with chroot (it needs a newer Python than
this host's), "oldest" the oldest supported one in a venv on this host.
Home Assistant runs with ``--skip-pip``: nothing is downloaded at test time.

Only the standard library is used: urllib for REST, a small RFC 6455 client
for the websocket API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hass.integrations import CONFIGURED

FLAVOURS = ("current", "oldest")
START_TIMEOUT = 180.0
"""Seconds to wait for Home Assistant to answer and finish starting (a cold start on 2 cores takes far less)."""
STOP_TIMEOUT = 30.0
"""Seconds between SIGTERM and SIGKILL."""
BUILD_HINT = "tests/hass/build.sh"


def cache_dir() -> Path:
    """Where build.sh keeps the environments: ``$EDGE_HA_CACHE`` or ``~/.cache/edge-ha``."""
    return Path(os.environ.get("EDGE_HA_CACHE") or Path.home() / ".cache" / "edge-ha")


@dataclass(frozen=True)
class Environment:
    """One built Home Assistant environment (see build.sh)."""

    flavour: str
    directory: Path
    """The flavour's cache directory (stamp.json, requirements.txt, the venv or the root)."""
    root: Path | None
    """The Debian root HA runs in (chroot), or None if it runs on this host."""
    python: str
    """HA's Python, as a path inside ``root`` (chroot) or on this host."""
    homeassistant: str
    """The Home Assistant version the stamp records."""
    python_version: str
    stamp: dict

    def host_path(self, inner: str | Path) -> Path:
        """The host path of a path as HA sees it."""
        return Path(inner) if self.root is None else self.root / str(inner).lstrip("/")

    def host_mounts(self) -> list[str]:
        """Mount points inside the root that this host's mount namespace sees (none, unless something leaked)."""
        if self.root is None:
            return []
        prefix = str(self.root).rstrip("/") + "/"
        points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        return [p for p in points if p.startswith(prefix)]

    def command(self, args: list[str], resolv_conf: Path | None = None) -> list[str]:
        """A command line that runs ``python args...`` in this environment.

        For a root: a private mount namespace (unshare) with /proc, /dev and /sys
        mounted in the root, then chroot, with a clean environment. The mounts
        live only as long as the namespace's processes: nothing to unmount on the
        host, even after a SIGKILL. ``resolv_conf`` (a host path) is bind-mounted
        over the /etc/resolv.conf HA sees (in the root, or on this host in a
        private mount namespace too, as root), so that it resolves no names.
        """
        if self.root is None and (resolv_conf is None or os.geteuid() != 0):
            return [self.python, *args]
        root = str(self.root) if self.root is not None else ""
        script = (
            'resolv="$1"; root="$2"; shift 2; '
            'if [ -n "$resolv" ]; then mount --bind "$resolv" "$root/etc/resolv.conf" || exit 1; fi; '
            'if [ -z "$root" ]; then exec "$@"; fi; '
            'mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" && mount --bind /sys "$root/sys" || exit 1; '
            'exec chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 TZ=UTC "$@"'
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
                str(resolv_conf or ""), root, self.python, *args]


def _missing(flavour: str, reason: str) -> None:
    message = f"Home Assistant environment {flavour!r} {reason}; build it with {BUILD_HINT} {flavour}"
    if os.environ.get("EDGE_REQUIRE_HOMEASSISTANT") == "1":
        pytest.fail(f"EDGE_REQUIRE_HOMEASSISTANT=1 but the {message}")
    pytest.skip(message)


def ha_environment(flavour: str) -> Environment:
    """The built environment ``flavour`` ("current" or "oldest"); skip (fail with EDGE_REQUIRE_HOMEASSISTANT=1) if absent."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; one of {FLAVOURS}")
    directory = cache_dir() / flavour
    stamp_file = directory / "stamp.json"
    if not stamp_file.is_file():
        _missing(flavour, f"is not built (no {stamp_file})")
    stamp = json.loads(stamp_file.read_text())
    if flavour == "current":
        root, python = directory / "root", "/opt/ha/bin/python"
        if os.geteuid() != 0:
            _missing(flavour, "runs in a chroot and needs root (unshare, mount, chroot)")
    else:
        root, python = None, str(directory / "venv" / "bin" / "python")
    environment = Environment(flavour, directory, root, python, stamp["homeassistant"], stamp["python"], stamp)
    if not environment.host_path(python).exists():
        _missing(flavour, f"is incomplete ({environment.host_path(python)} is missing)")
    return environment


class HomeAssistantError(RuntimeError):
    """Home Assistant answered with an error (or not at all)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


CONFIGURATION = """\
# Written by tests/hass/harness.py: a minimal Home Assistant for the edge tests.
homeassistant:
  name: Edge test home
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
{domains}
automation: !include automations.yaml
logger:
  default: {log_level}
  logs:
    homeassistant.components.mqtt: {mqtt_log_level}
    homeassistant.setup: info
    homeassistant.bootstrap: info
"""


class HomeAssistant:
    """One Home Assistant Core process on 127.0.0.1:``port``, onboarded, its MQTT integration on ``broker``.

    ``config_dir`` is the host path of HA's fresh configuration directory (inside
    the root for the chroot flavour; ``config_dir_in_ha`` is the same path as HA
    sees it). ``token`` is a long-lived access token of the owner user.
    ``extra_config`` is appended to configuration.yaml.
    """

    USERNAME = "edge"
    PASSWORD = "edge-test-password"

    def __init__(
        self,
        environment: Environment,
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        *,
        log_level: str = "info",
        mqtt_log_level: str = "debug",
        start_timeout: float = START_TIMEOUT,
        extra_config: str = "",
    ) -> None:
        self.environment = environment
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.log_level = log_level
        self.mqtt_log_level = mqtt_log_level
        self.start_timeout = start_timeout
        self.extra_config = extra_config
        self.host = "127.0.0.1"
        self.port = 0
        self.config_dir: Path | None = None
        self.config_dir_in_ha: str | None = None
        self.token: str | None = None
        self.version: str = environment.homeassistant
        self.mqtt_entry_id: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._output = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> HomeAssistant:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Write the configuration, start HA, onboard it, add the MQTT config entry."""
        if self.process is not None:
            raise RuntimeError("Home Assistant already running")
        self._write_config()
        self._spawn()
        self._wait_until_answering()
        self._onboard()
        self._wait_until_running()
        self._add_mqtt()

    def stop(self) -> int | None:
        """Stop HA: SIGTERM, then SIGKILL (to its whole session) after STOP_TIMEOUT seconds. Returns its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # anything it left in its session (start_new_session)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()
        if self._output is not None:
            self._output.close()
            self._output = None
        return process.returncode

    def close(self) -> None:
        """Stop HA and remove its configuration directory (the root's mounts vanish with the process)."""
        try:
            self.stop()
        finally:
            if self.config_dir is not None and os.environ.get("EDGE_HA_KEEP_CONFIG") != "1":
                shutil.rmtree(self.config_dir, ignore_errors=True)

    def _write_config(self) -> None:
        env = self.environment
        base = env.host_path("/tmp") if env.root is not None else None
        self.config_dir = Path(tempfile.mkdtemp(prefix="edge-ha-", dir=base))
        self.config_dir_in_ha = (
            "/tmp/" + self.config_dir.name if env.root is not None else str(self.config_dir)
        )
        self.port = _free_port()
        domains = "\n".join(f"{d}:" for d in CONFIGURED if d not in ("http", "automation", "logger"))
        text = CONFIGURATION.format(
            port=self.port, domains=domains, log_level=self.log_level, mqtt_log_level=self.mqtt_log_level
        )
        (self.config_dir / "configuration.yaml").write_text(text + self.extra_config)
        (self.config_dir / "automations.yaml").write_text("[]\n")
        # Onboarding's core_config step sets up met, radio_browser, google_translate and shopping_list, which
        # reach out to the internet (and need requirements we do not install): mark that step done beforehand.
        # The other steps (user, analytics, integration) go through the REST API in _onboard.
        storage = self.config_dir / ".storage"
        storage.mkdir()
        (storage / "onboarding").write_text(
            json.dumps({"version": 4, "minor_version": 1, "key": "onboarding", "data": {"done": ["core_config"]}})
        )

    def _spawn(self) -> None:
        assert self.config_dir is not None and self.config_dir_in_ha is not None
        args = ["-m", "homeassistant", "--config", self.config_dir_in_ha, "--skip-pip", "--log-no-color"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.config_dir), "LANG": "C.UTF-8", "TZ": "UTC"}
        # No name resolution for HA: nothing it sets up by default (in 2026.11 the Marketplace fetches its
        # catalog at start) reaches past this machine. The broker is given as an address.
        resolv_conf = self.config_dir / "resolv.conf"
        resolv_conf.write_text("# Written by tests/hass/harness.py: no DNS for the test Home Assistant\n"
                               "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        command = self.environment.command(args, resolv_conf)
        if shutil.which("setpriv"):
            # SIGKILL for HA when the test process dies, even by SIGKILL: no HA outlives a run. The setting
            # survives the execs of unshare, sh, chroot and env, none of which forks.
            command = ["setpriv", "--pdeathsig", "KILL", "--", *command]
        self._output = open(self.config_dir / "output.log", "wb")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _deadline_check(self, deadline: float, what: str) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise HomeAssistantError(f"Home Assistant exited (code {code}) while {what}\n{self.log_tail()}")
        if time.monotonic() > deadline:
            raise HomeAssistantError(f"Home Assistant timed out while {what}\n{self.log_tail()}")
        log = self.log_text()
        if "Activating recovery mode" in log:  # it then serves on 8123, not on our port
            raise HomeAssistantError(f"Home Assistant went into recovery mode while {what}\n{self.log_tail()}")
        if "Failed to create HTTP server" in log:  # e.g. someone took the port in the meantime
            raise HomeAssistantError(f"Home Assistant could not listen on {self.port} while {what}\n{self.log_tail()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._deadline_check(deadline, "starting (waiting for /api/onboarding)")
            try:
                status, _ = self.rest("GET", "/api/onboarding", token=False, timeout=5)
                if status == 200:
                    return
            except (OSError, HomeAssistantError):
                pass
            time.sleep(0.25)

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._deadline_check(deadline, "starting (waiting for /api/config state RUNNING)")
            status, body = self.rest("GET", "/api/config")
            if status == 200 and body.get("state", "RUNNING") == "RUNNING":
                self.version = body.get("version", self.version)
                return
            time.sleep(0.25)

    def _onboard(self) -> None:
        client_id = f"{self.url}/"
        status, steps = self.rest("GET", "/api/onboarding", token=False)
        if status != 200:
            raise HomeAssistantError(f"GET /api/onboarding: {status} {steps}")
        access_token = None
        for step in [s["step"] for s in steps if not s["done"]]:
            if step == "user":
                status, body = self.rest(
                    "POST", "/api/onboarding/users", token=False,
                    json={"client_id": client_id, "name": "Edge Test", "username": self.USERNAME,
                          "password": self.PASSWORD, "language": "en"},
                )
                if status != 200:
                    raise HomeAssistantError(f"onboarding user: {status} {body}")
                status, tokens = self._post_form(
                    "/auth/token", {"grant_type": "authorization_code", "code": body["auth_code"], "client_id": client_id}
                )
                if status != 200:
                    raise HomeAssistantError(f"/auth/token: {status} {tokens}")
                access_token = self.token = tokens["access_token"]
            elif step == "integration":
                status, body = self.rest(
                    "POST", "/api/onboarding/integration",
                    json={"client_id": client_id, "redirect_uri": f"{client_id}?auth_callback=1"},
                )
            else:  # core_config, analytics, and whatever a newer HA adds that needs no data
                status, body = self.rest("POST", f"/api/onboarding/{step}", json={})
            if status != 200:
                raise HomeAssistantError(f"onboarding step {step}: {status} {body}")
        if access_token is None:
            raise HomeAssistantError(f"onboarding had no user step: {steps}")
        # A long-lived token: the access token from /auth/token expires after 30 minutes.
        self.token = self.ws({"type": "auth/long_lived_access_token", "client_name": "edge-tests", "lifespan": 30})

    def _add_mqtt(self) -> None:
        status, step = self.rest("POST", "/api/config/config_entries/flow", json={"handler": "mqtt", "show_advanced_options": False})
        for _ in range(6):
            if status != 200:
                raise HomeAssistantError(f"MQTT config flow: {status} {step}")
            kind = step.get("type")
            if kind == "create_entry":
                entry = step.get("result") or {}
                self.mqtt_entry_id = entry.get("entry_id") if isinstance(entry, dict) else entry
                break
            if kind == "menu":
                options = step["menu_options"]
                options = list(options) if not isinstance(options, dict) else list(options.keys())
                choice = "broker" if "broker" in options else options[0]
                status, step = self.rest("POST", f"/api/config/config_entries/flow/{step['flow_id']}", json={"next_step_id": choice})
            elif kind == "form":
                if step.get("errors"):
                    raise HomeAssistantError(f"MQTT config flow: {step}")
                data = _fill_form(step.get("data_schema", []), {"broker": self.broker_host, "port": self.broker_port})
                status, step = self.rest("POST", f"/api/config/config_entries/flow/{step['flow_id']}", json=data)
            else:
                raise HomeAssistantError(f"MQTT config flow ended with {step}")
        else:
            raise HomeAssistantError(f"MQTT config flow did not finish: {step}")
        deadline = time.monotonic() + 60
        while True:
            self._deadline_check(deadline, "setting up the MQTT config entry")
            entries = [e for e in self.config_entries() if e["domain"] == "mqtt"]
            if entries and entries[0]["state"] == "loaded":
                self.mqtt_entry_id = entries[0]["entry_id"]
                return
            if entries and entries[0]["state"] in ("setup_error", "migration_error", "failed_unload"):
                raise HomeAssistantError(f"MQTT config entry: {entries[0]}\n{self.log_tail()}")
            time.sleep(0.25)

    # -- REST ------------------------------------------------------------------------------------------------

    def rest(self, method: str, path: str, json: Any = None, *, token: bool = True, timeout: float = 30) -> tuple[int, Any]:
        """One REST request (with the bearer token): (status, body), the body parsed if it is JSON, else bytes."""
        data = None
        headers = {}
        if json is not None:
            data = _json_dumps(json).encode()
            headers["Content-Type"] = "application/json"
        return self._request(method, path, data, headers, token=token, timeout=timeout)

    def _post_form(self, path: str, form: dict[str, str]) -> tuple[int, Any]:
        data = urllib.parse.urlencode(form).encode()
        return self._request("POST", path, data, {"Content-Type": "application/x-www-form-urlencoded"}, token=False)

    def _request(self, method: str, path: str, data: bytes | None, headers: dict[str, str], *, token: bool, timeout: float = 30) -> tuple[int, Any]:
        if token:
            if self.token is None:
                raise HomeAssistantError("no access token yet (not onboarded)")
            headers = {**headers, "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, content_type, raw = response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:
            status, content_type, raw = error.code, error.headers.get("Content-Type", ""), error.read()
        if "json" in content_type:
            try:
                return status, json_loads(raw)
            except ValueError:
                pass
        return status, raw

    def states(self) -> list[dict]:
        """All states (GET /api/states)."""
        return self._ok("GET", "/api/states")

    def state(self, entity_id: str) -> dict | None:
        """The state of ``entity_id`` (GET /api/states/<entity_id>), None if it has none."""
        status, body = self.rest("GET", f"/api/states/{entity_id}")
        if status == 404:
            return None
        if status != 200:
            raise HomeAssistantError(f"GET /api/states/{entity_id}: {status} {body!r}")
        return body

    def wait_for_state(
        self, entity_id: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 30
    ) -> dict:
        """Poll until ``entity_id`` has a state (for which ``predicate`` holds); return it. Fails with the log tail."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = self.state(entity_id)
            if last is not None and (predicate is None or predicate(last)):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"{entity_id}: no matching state within {timeout} s; last {last}\n{self.log_tail()}")
            time.sleep(0.2)

    def config_entries(self) -> list[dict]:
        return self._ok("GET", "/api/config/config_entries/entry")

    def call_service(self, domain: str, service: str, data: dict | None = None) -> Any:
        return self._ok("POST", f"/api/services/{domain}/{service}", data or {})

    def _ok(self, method: str, path: str, json: Any = None) -> Any:
        status, body = self.rest(method, path, json)
        if status != 200:
            raise HomeAssistantError(f"{method} {path}: {status} {body!r}")
        return body

    # -- websocket -------------------------------------------------------------------------------------------

    def websocket(self, timeout: float = 30) -> WebSocket:
        """A websocket connection to HA's API, already authenticated; close it with ``with`` (or ``close()``).

        For several commands on one connection, or a subscription::

            with ha.websocket() as ws:
                ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
                ws.recv_json()   # the result, then {"id": 1, "type": "event", ...} messages
        """
        if self.token is None:
            raise HomeAssistantError("no access token yet (not onboarded)")
        sock = WebSocket(self.host, self.port, "/api/websocket", timeout)
        try:
            hello = sock.recv_json()
            if hello.get("type") != "auth_required":
                raise HomeAssistantError(f"websocket: expected auth_required, got {hello}")
            sock.send_json({"type": "auth", "access_token": self.token})
            auth = sock.recv_json()
            if auth.get("type") != "auth_ok":
                raise HomeAssistantError(f"websocket auth: {auth}")
        except BaseException:
            sock.close()
            raise
        return sock

    def ws(self, message: dict, *, timeout: float = 30) -> Any:
        """One websocket command (authenticated, ``id`` added); its ``result``, or HomeAssistantError."""
        with self.websocket(timeout) as sock:
            sock.send_json({**message, "id": 1})
            while True:
                reply = sock.recv_json()
                if reply.get("id") == 1 and reply.get("type") == "result":
                    if not reply.get("success"):
                        raise HomeAssistantError(f"websocket {message}: {reply.get('error')}")
                    return reply.get("result")

    def entity_registry(self) -> list[dict]:
        return self.ws({"type": "config/entity_registry/list"})

    def device_registry(self) -> list[dict]:
        return self.ws({"type": "config/device_registry/list"})

    def device_triggers(self, device_id: str) -> list[dict]:
        return self.ws({"type": "device_automation/trigger/list", "device_id": device_id})

    # -- automations -----------------------------------------------------------------------------------------

    def create_automation(self, config: dict, *, timeout: float = 30) -> str:
        """Add (or replace) an automation at run time through the automation editor's REST API; its entity_id.

        Write it as HA 2024.10+ does (``triggers``/``actions``, ``trigger: device``) or as older ones do
        (``trigger``/``action``, ``platform: device``): it is translated for an older HA.
        """
        config = dict(config)
        automation_id = str(config.pop("id", None) or uuid.uuid4().hex)
        if _version_tuple(self.version) < (2024, 10):
            config = _old_automation_syntax(config)
        self._ok("POST", f"/api/config/automation/config/{automation_id}", config)  # writes automations.yaml, reloads
        deadline = time.monotonic() + timeout
        while True:
            for state in self.states():
                if state["entity_id"].startswith("automation.") and state["attributes"].get("id") == automation_id:
                    return state["entity_id"]
            if time.monotonic() > deadline:
                raise AssertionError(f"automation {automation_id} did not appear within {timeout} s\n{self.log_tail()}")
            time.sleep(0.2)

    # -- logs ------------------------------------------------------------------------------------------------

    def log_text(self) -> str:
        """What HA logged (its console output: what home-assistant.log gets, and anything before logging started)."""
        if self.config_dir is None or not (self.config_dir / "output.log").exists():
            return ""
        return (self.config_dir / "output.log").read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- last {len(text)} lines of Home Assistant's log ---\n" + "\n".join(text)


def wait_for_subscription(broker: Any, topic: str, timeout: float = 30) -> None:
    """Wait until some client subscribed to exactly ``topic`` on ``broker`` (a tests/broker.py Mosquitto).

    An entity HA has just discovered subscribes to its state topic a moment
    later (and a device trigger only once an automation uses it): a message
    published before that, and not retained, is lost. Mosquitto logs every
    SUBSCRIBE (``log_type all``), one topic a line: "<tab>topic (QoS n)".
    """
    needle = f"\t{topic} (QoS "
    deadline = time.monotonic() + timeout
    while needle not in broker.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"nobody subscribed to {topic} within {timeout} s")
        time.sleep(0.1)


def _fill_form(schema: list[dict], given: dict[str, Any]) -> dict[str, Any]:
    """Answers to a config-flow form as the frontend would send them: ours, else defaults.

    A section (``expandable``, e.g. MQTT's "other_settings" in newer HA) gets its own
    defaults; a required boolean without a default is False, a required select the
    first option (for MQTT: no client certificate, CA "off").
    """
    data: dict[str, Any] = {}
    for field in schema:
        name = field.get("name")
        selector = field.get("selector") or {}
        if name in given:
            data[name] = given[name]
        elif field.get("type") == "expandable":
            data[name] = _fill_form(field.get("schema", []), given)
        elif "default" in field:
            data[name] = field["default"]
        elif field.get("required") and "boolean" in selector:
            data[name] = False
        elif field.get("required") and "select" in selector and selector["select"].get("options"):
            option = selector["select"]["options"][0]
            data[name] = option["value"] if isinstance(option, dict) else option
    return data


def _old_automation_syntax(config: dict) -> dict:
    """``triggers``/``conditions``/``actions`` and ``trigger: <platform>`` as HA before 2024.10 wants them."""
    renamed = {}
    for key, value in config.items():
        key = {"triggers": "trigger", "conditions": "condition", "actions": "action"}.get(key, key)
        renamed[key] = value
    triggers = renamed.get("trigger")
    if isinstance(triggers, dict):
        triggers = [triggers]
    if isinstance(triggers, list):
        renamed["trigger"] = [
            {("platform" if k == "trigger" else k): v for k, v in t.items()} if isinstance(t, dict) else t
            for t in triggers
        ]
    actions = renamed.get("action")
    if isinstance(actions, dict):
        actions = [actions]
    if isinstance(actions, list):
        renamed["action"] = [
            {("service" if k == "action" and "service" not in a else k): v for k, v in a.items()} if isinstance(a, dict) else a
            for a in actions
        ]
    return renamed


def _json_dumps(value: Any) -> str:
    return json.dumps(value)


def json_loads(raw: bytes | str) -> Any:
    return json.loads(raw)


class _WebSocket:
    """The client side of RFC 6455, enough for Home Assistant's JSON API: text frames, masking, ping/pong, close."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, host: str, port: int, path: str, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise HomeAssistantError(f"websocket upgrade refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise HomeAssistantError("websocket upgrade: bad Sec-WebSocket-Accept")
        self.pending: list[Any] = []

    def __enter__(self) -> _WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Send a close frame (if the connection still takes one) and close the socket."""
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()

    def _recv_some(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HomeAssistantError("websocket closed by Home Assistant")
        return chunk

    def _recv_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, value: Any) -> None:
        self._send_frame(0x1, json.dumps(value).encode())

    def _recv_message(self) -> bytes:
        message = b""
        while True:
            b0, b1 = self._recv_exactly(2)
            fin, opcode, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._recv_exactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._recv_exactly(8))
            mask = self._recv_exactly(4) if masked else b""
            payload = self._recv_exactly(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise HomeAssistantError(f"websocket closed by Home Assistant: {payload[2:].decode(errors='replace')}")
            message += payload  # text (0x1) or continuation (0x0)
            if fin:
                return message

    def recv_json(self) -> Any:
        while not self.pending:
            value = json.loads(self._recv_message())
            self.pending.extend(value if isinstance(value, list) else [value])
        return self.pending.pop(0)


WebSocket = _WebSocket
"""The public name of the websocket client (``HomeAssistant.websocket()`` returns one, authenticated)."""
