"""`edge verify` end to end on real photos, including bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import FACES
from edge.cli import main
from edge.cli.common import EXIT_INPUT, EXIT_OK, EXIT_USAGE


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_same_and_different_person_as_json(capsys):
    code, out, _ = run(capsys, "verify", str(FACES / "obama.jpg"), str(FACES / "obama2.jpg"), "--json")
    assert code == EXIT_OK
    result = json.loads(out)
    assert result["same"] is True and result["similarity"] > 0.5
    assert len(result["box_a"]) == 4 and len(result["box_b"]) == 4

    code, out, _ = run(capsys, "verify", str(FACES / "obama.jpg"), str(FACES / "biden.jpg"), "--json")
    result = json.loads(out)
    assert code == EXIT_OK and result["same"] is False


def test_text_output_and_threshold(capsys):
    code, out, _ = run(capsys, "verify", str(FACES / "obama.jpg"), str(FACES / "biden.jpg"), "--threshold", "0")
    assert code == EXIT_OK and "same person" in out and ">= 0.000" in out
    code, _, err = run(capsys, "verify", str(FACES / "obama.jpg"), str(FACES / "biden.jpg"), "--threshold", "-0.2")
    assert code == EXIT_USAGE and "--threshold -0.2: Input should be greater than or equal to 0" in err


def test_pairs_file_with_bad_inputs(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        (tmp_path / name).write_bytes((FACES / name).read_bytes())
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "path_a,path_b,same\nobama.jpg,obama2.jpg,1\nobama.jpg,biden.jpg,0\n"
        "obama.jpg,blank.png,0\nbroken.jpg,obama.jpg,1\n"
    )
    code, out, _ = run(capsys, "verify", "--pairs", str(pairs), "--root", str(tmp_path), "--json", "--workers", "2")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_INPUT
    assert [r["same"] for r in lines[:4]] == [True, False, None, None]
    assert lines[2]["similarity"] is None and "no face found" in lines[2]["error"]
    assert "not a readable image" in lines[3]["error"]
    summary = lines[4]["summary"]
    assert summary["pairs"] == 4 and summary["scored"] == 2 and summary["unscored"] == 2
    assert summary["photos"] == 5
    assert summary["accuracy"] == 0.5  # unscored pairs count as wrong


def test_usage_errors(tmp_path, capsys):
    code, _, err = run(capsys, "verify", str(FACES / "obama.jpg"))
    assert code == EXIT_USAGE and "two images" in err
    code, _, err = run(capsys, "verify", "--pairs", str(tmp_path / "absent.csv"))
    assert code == EXIT_USAGE and "cannot read pairs" in err
    (tmp_path / "bad.csv").write_text("a,b\nx,y\n")
    code, _, err = run(capsys, "verify", "--pairs", str(tmp_path / "bad.csv"))
    assert code == EXIT_USAGE and "path_a,path_b" in err
    (tmp_path / "bad.toml").write_text("[recognition]\nnum_threads = 99\n")
    code, _, err = run(capsys, "--config", str(tmp_path / "bad.toml"), "verify", "a", "b")
    assert code == EXIT_USAGE and "num_threads" in err


@pytest.mark.slow
def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "edge.cli", "verify", str(FACES / "obama2.jpg"), str(FACES / "obama3.jpg")],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "same person" in out


@pytest.mark.slow
def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    """`edge ... | head`: the pipe is closed before edge writes; edge stops quietly with 128 + SIGPIPE."""
    import signal

    config = tmp_path / "edge.toml"
    config.write_text("")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "validate-config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert err == ""


@pytest.mark.parametrize("argv", [
    ["--config", "a.toml", "-v", "gallery", "list"],
    ["gallery", "list", "--config", "a.toml", "-v"],
    ["-v", "gallery", "list", "--config", "a.toml"],
    ["--config", "a.toml", "gallery", "list", "-v"],
])  # fmt: skip
def test_shared_options_go_before_or_after_the_subcommand(argv):
    from pathlib import Path

    from edge.cli import _parser

    args = _parser().parse_args(argv)
    assert (args.config, args.verbose) == (Path("a.toml"), True)


def test_a_subcommand_does_not_reset_options_given_before_it():
    from pathlib import Path

    from edge.cli import _parser

    args = _parser().parse_args(["--config", "a.toml", "-v", "run"])
    assert (args.config, args.verbose) == (Path("a.toml"), True)
    assert _parser().parse_args(["run"]).config is None
