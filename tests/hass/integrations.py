"""Which Home Assistant integrations the harness loads, and (run as a script) their Python requirements.

The harness writes ``CONFIGURED`` into ``configuration.yaml``; Home Assistant
adds its own default integrations (``bootstrap.DEFAULT_INTEGRATIONS``, which
include ``frontend``, whose failure sends HA into recovery mode) and the
config entry's ``mqtt``, whose entities go to ``MQTT_PLATFORMS``.

HA runs with ``--skip-pip``: it installs nothing at run time, so ``build.sh``
installs up front every requirement of those integrations and of their
dependencies. It runs this file with the Home Assistant venv's Python::

    python integrations.py          # prints one pip requirement per line

This module must import on the tests' Python too (the harness reads
``CONFIGURED``): it imports ``homeassistant`` only inside ``requirements()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CONFIGURED = [
    "http",
    "api",
    "websocket_api",
    "onboarding",
    "auth",
    "config",  # the config-entries and automation-editor REST API
    "automation",
    "device_automation",
    "image",  # /api/image_proxy/<entity_id>
    "logger",
]
"""Domains the harness's configuration.yaml sets up (plus a ``homeassistant:`` core section)."""

MQTT_PLATFORMS = [
    "alarm_control_panel", "binary_sensor", "button", "camera", "climate", "cover", "device_tracker", "event",
    "fan", "humidifier", "image", "lawn_mower", "light", "lock", "notify", "number", "scene", "select", "sensor",
    "siren", "switch", "tag", "text", "update", "vacuum", "valve", "water_heater",
]
"""Entity domains an MQTT discovery message can create (``device_automation`` triggers need no platform)."""

EXTRA = ["mqtt", "homeassistant", "persistent_notification", "system_log", "trace", "blueprint", "isal"]
"""Set up as well: the MQTT config entry, the core, what automations bring; isal (newer HA) for http's zlib."""


def requirements() -> list[str]:
    """The pip requirements of every integration HA may set up or import with our configuration.

    Follows what HA itself does before it sets an integration up
    (``homeassistant.requirements``): the requirements of the integration, of its
    ``dependencies`` and ``after_dependencies`` (their code gets imported, e.g.
    analytics imports recorder, hence SQLAlchemy), and of the discovery
    integrations (zeroconf, ssdp, ...) whose key its manifest has.
    """
    import homeassistant
    from homeassistant import bootstrap
    from homeassistant import requirements as ha_requirements

    components = Path(homeassistant.__file__).parent / "components"
    discovery = dict(getattr(ha_requirements, "DISCOVERY_INTEGRATIONS", {}))
    seeds = set(CONFIGURED) | set(MQTT_PLATFORMS) | set(EXTRA)
    seeds |= set(getattr(bootstrap, "CORE_INTEGRATIONS", ()))
    seeds |= set(getattr(bootstrap, "DEFAULT_INTEGRATIONS", ()))
    try:
        from homeassistant.const import BASE_PLATFORMS  # newer HA processes every base platform at start

        seeds |= set(BASE_PLATFORMS)
    except ImportError:
        pass
    seen: set[str] = set()
    found: list[str] = []
    todo = sorted(seeds)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest_path = components / domain / "manifest.json"
        if not manifest_path.is_file():
            continue  # e.g. an MQTT platform this HA version does not have
        manifest = json.loads(manifest_path.read_text())
        for requirement in manifest.get("requirements", []):
            if requirement not in found:
                found.append(requirement)
        todo.extend(manifest.get("dependencies", []))
        todo.extend(manifest.get("after_dependencies", []))
        todo.extend(check for check, keys in discovery.items() if any(k in manifest for k in keys))
    return sorted(found)


if __name__ == "__main__":
    sys.stdout.write("".join(f"{r}\n" for r in requirements()))
