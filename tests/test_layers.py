"""The package's import layers, as [tool.importlinter] in pyproject.toml declares them.

Highest layer first; a module may import only from layers below its own, and
siblings on one line not from each other (so no cycle between packages):

    edge.cli
    edge.service | edge.demo | edge.verification
    edge.config
    edge.adapters
    edge.door | edge.enrollment
    edge.gallery | edge.perception
    edge.messages
    edge.faces | edge.frames | edge.imageio | edge.names | edge.similarity | edge.settings

plus: no cycles between the modules of any one package, only edge.perception.litert
imports the LiteRT runtime, only edge.adapters.mqtt imports paho, and the door's
decision and tracking import no I/O. The self-check copies the package, breaks
each contract once and expects lint-imports to say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the `edge` package and pyproject.toml in root; nothing cached."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
               "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_edge_keeps_its_import_contracts():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("files, expected", [
    pytest.param({"edge/gallery/breach.py": "import edge.cli"}, "edge.gallery.breach -> edge.cli",
                 id="lower-imports-higher"),
    pytest.param({"edge/door/breach.py": "import edge.enrollment"}, "edge.door.breach -> edge.enrollment",
                 id="sibling-imports-sibling"),
    pytest.param({"edge/breach.py": ""}, "edge.breach", id="module-in-no-layer"),
    pytest.param({"edge/gallery/breach_a.py": "import edge.gallery.breach_b",
                  "edge/gallery/breach_b.py": "import edge.gallery.breach_a"}, "No cycles are allowed in edge.gallery.",
                 id="cycle-inside-a-package"),
    pytest.param({"edge/gallery/breach.py": "import ai_edge_litert"}, "edge.gallery.breach -> ai_edge_litert",
                 id="litert-outside-litert"),
    pytest.param({"edge/gallery/breach.py": "import paho.mqtt.client"}, "edge.gallery.breach -> paho",
                 id="paho-outside-mqtt"),
    pytest.param({"edge/door/decision.py": "import sqlite3"}, "edge.door.decision -> sqlite3",
                 id="io-in-decision"),
])  # fmt: skip
def test_a_broken_contract_is_caught(tmp_path, files, expected):
    shutil.copytree(REPO / "edge", tmp_path / "edge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for name, line in files.items():
        path = tmp_path / name
        path.write_text((path.read_text() if path.exists() else "") + f"\n{line}\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0 and expected in done.stdout, done.stdout + done.stderr


def test_importing_the_config_loads_no_heavy_or_io_library():
    heavy = ["cv2", "numba", "ai_edge_litert", "tflite_runtime", "paho"]
    code = f"import sys, edge.config; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(heavy)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
