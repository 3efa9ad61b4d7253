"""The command lines a user copies from the docs work: README.md, firmware_config/SETUP.md, the unit's ExecStart.

Every `edge ...` line in an indented code block is parsed by the real CLI
parser, with the synopsis notation expanded ([optional parts] included,
PLACEHOLDERS given a value of their kind); `make` lines are dry-run; the
cheap commands are run for real. The unit is checked by `systemd-analyze
verify` where systemd is installed (CI installs it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import _parser, main

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "firmware_config" / "edge.service"
EXAMPLE = REPO / "firmware_config" / "edge.example.toml"

PLACEHOLDERS = {
    "A.jpg": "a.jpg", "B.jpg": "b.jpg", "NAME": "alice", "SRC": "0", "N": "2", "S": "5", "T": "0.5",
    "KIND": "none", "G": "gallery", "DATASET": "people", "PERSON_DIR": "people/alice", "DIR": "photos",
    "OLD": "person_1", "NEW": "alice", "FILE": "people.zip", "PATH": "photo.jpg", "K": "3", "IMAGE": "photo.jpg",
}
"""A value for each placeholder of the synopsis lines; an unlisted ALL-CAPS word fails the test."""


def code_lines(document: Path) -> list[str]:
    """The lines of the indented code blocks, comments and shell prompts removed, continuations joined."""
    lines, block = [], False
    previous_blank = True
    for raw in document.read_text().splitlines():
        if raw.startswith("    ") and (block or previous_blank):
            block = True
            line = raw.strip().split("  #")[0].strip()
            if line:
                lines.append(line)
        elif raw.strip():
            block = False
        previous_blank = not raw.strip()
    return lines


def edge_commands(document: Path) -> list[str]:
    """Every `edge ...` command of ``document`` (also after `sudo`, a venv path, or joined by ' / ')."""
    found = []
    for line in code_lines(document):
        for part in line.split(" / "):
            words = part.split()
            if words[:1] == ["sudo"]:
                words = words[3:] if words[1:2] == ["-u"] else words[1:]  # sudo [-u USER]
            if words and (words[0] == "edge" or words[0].endswith("/bin/edge")):
                found.append(" ".join(words[1:]))
    return found


def expand(synopsis: str) -> list[str]:
    """Arguments for one synopsis: brackets opened, `PATH...` one path, placeholders filled in."""
    text = synopsis.replace("[", " ").replace("]", " ").replace("...", "")
    args = []
    for word in shlex.split(text):
        if re.fullmatch(r"[A-Z][A-Z_]*|[AB]\.jpg", word):
            assert word in PLACEHOLDERS, f"placeholder {word!r} in {synopsis!r} has no example value"
            word = PLACEHOLDERS[word]
        args.append(word)
    return args


def exec_start() -> str:
    (line,) = [line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


DOCUMENTED = [(doc.name, cmd) for doc in (REPO / "README.md", REPO / "firmware_config" / "SETUP.md")
              for cmd in edge_commands(doc)]


def test_the_docs_have_commands_to_check():
    names = {cmd.split()[0] for _, cmd in DOCUMENTED}
    assert {"run", "verify", "gallery", "identify", "find", "enroll", "validate-config"} <= names


@pytest.mark.parametrize("document,command", DOCUMENTED, ids=[f"{d}: {c}" for d, c in DOCUMENTED])
def test_each_documented_command_parses(document, command):
    args = _parser().parse_args(expand(command))
    assert callable(args.handler)


def test_the_service_command_line_parses_with_config_after_the_subcommand():
    words = shlex.split(exec_start())
    assert Path(words[0]).name == "edge"
    args = _parser().parse_args(words[1:])
    assert args.command == "run" and args.config == Path("/etc/edge/edge.toml")


def test_validate_config_as_documented_runs_on_the_example(capsys, monkeypatch):
    monkeypatch.setenv("EDGE_MQTT_PASSWORD", "from-the-environment")
    for _, command in DOCUMENTED:
        if command.startswith("validate-config"):
            args = expand(command)
            args[-1] = str(EXAMPLE)
            assert main(args) == 0, capsys.readouterr().err
            out = capsys.readouterr().out
            assert "valid" in out and "from-the-environment" not in out


@pytest.mark.slow
def test_the_readme_run_line_with_the_example_config_fails_cleanly_off_a_pi(tmp_path):
    """On this machine the example's Pi camera, GPIO button and broker are absent: one line, status 2."""
    (command,) = [c for _, c in DOCUMENTED if c.startswith("run --config")]
    env = {**os.environ, "EDGE_MQTT_PASSWORD": "x"}
    config = tmp_path / "edge.toml"  # the example, with a gallery that exists here
    text = EXAMPLE.read_text().replace('path = "/var/lib/edge/door.gallery"', f'path = "{tmp_path / "g"}"')
    config.write_text(text.replace('host = "homeassistant.local"', 'host = "127.0.0.1"\nport = 9'))
    from edge.gallery.store import Gallery
    from edge.perception.modelset import embedding_model_id
    from edge.perception.settings import RecognitionSettings

    Gallery.create(tmp_path / "g", embedding_model_id(RecognitionSettings())).close()
    args = [*command.split()[:-1], str(config)]
    run = subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, env=env,
                         timeout=120)
    errors = [line for line in run.stderr.splitlines() if line.startswith("edge: ")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("target", ["run", "test", "check"])
def test_make_targets_named_in_the_docs_exist(target):
    assert f"make {target}" in (REPO / "README.md").read_text()
    done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("on_pi, extras, flags", [("yes", ".[test,pi]", "--system-site-packages"), ("", ".[test]", None)])
def test_make_installs_the_pi_extras_on_a_pi_and_only_there(on_pi, extras, flags):
    """The Pi is detected from /proc/device-tree; ON_PI forces the answer (as on a Pi, or not)."""
    done = subprocess.run(["make", "-n", "-B", "run", f"ON_PI={on_pi}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    venv = next(line for line in done.stdout.splitlines() if " -m venv " in line)
    install = next(line for line in done.stdout.splitlines() if "pip install" in line and " -e " in line)
    assert install.endswith(f"-e '{extras}'"), install
    assert (flags in venv) if flags else ("--system-site-packages" not in venv), venv


@pytest.mark.skipif(shutil.which("systemd-analyze") is None and not os.environ.get("EDGE_REQUIRE_SYSTEMD"),
                    reason="systemd-analyze is not installed (CI installs systemd)")
def test_systemd_accepts_the_unit(tmp_path):
    # verify checks that ExecStart's program exists: point it at this checkout's edge.
    unit = tmp_path / "edge.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge/.venv/bin/edge", str(Path(sys.executable).parent / "edge")))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
