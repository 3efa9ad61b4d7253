"""Hostile files in real subprocesses: the peak memory of `identify` on decompression
bombs, and the workers of a killed `gallery build` (issue 10)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FACES
from test_hostile_files import bomb_jpeg, bomb_png, wide_png

REPO = Path(__file__).resolve().parents[1]
PEAK_LIMIT_KB = 500 * 1024

MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""
"""Runs a command and prints its peak resident memory (kB) as the last line of stderr."""


def edge(*argv) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *map(str, argv)]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.slow
def test_identify_on_bombs_stays_under_500_mb_and_goes_on(tmp_path):
    from edge.gallery.store import Gallery
    from edge.perception.modelset import embedding_model_id
    from edge.perception.settings import RecognitionSettings

    Gallery.create(tmp_path / "G", embedding_model_id(RecognitionSettings())).close()
    photos = tmp_path / "photos"
    photos.mkdir()
    # The files: headers claiming 30,000 x 30,000 pixels (13.5 GB and 6.2 GB before the limit).
    (photos / "a_bomb.jpg").write_bytes(bomb_jpeg(30000, 30000))
    (photos / "b_bomb.png").write_bytes(bomb_png(30000, 30000))
    (photos / "c_bomb.jpg").write_bytes(bomb_jpeg(12000, 12000))  # 144 MP: over 400 MB once decoded
    (photos / "d_wide.png").write_bytes(wide_png())
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(FACES / "obama.jpg", good / "e_good.jpg")

    def identify(*paths) -> tuple[subprocess.CompletedProcess, int]:
        done = subprocess.run([sys.executable, "-c", MEASURE, *edge("identify", *paths, "--gallery", tmp_path / "G")],
                              capture_output=True, text=True, env=environment(), timeout=300)
        return done, int(done.stderr.strip().splitlines()[-1])

    _, good_kb = identify(good)  # the models' own cost (and numba's first compilation, on a fresh clone)
    bombs, bombs_kb = identify(photos)
    both, both_kb = identify(photos, good)
    assert bombs.returncode == both.returncode == 1, both.stderr
    assert "Traceback" not in bombs.stderr + both.stderr
    lines = both.stdout.splitlines()
    assert len(lines) == 5 and lines[-1] == f"{good / 'e_good.jpg'},unknown_person"
    assert all(",error: " in line for line in lines[:4])
    assert bombs_kb < PEAK_LIMIT_KB, f"the bombs alone: peak {bombs_kb} kB"
    # With a real photo the peak is that photo's, whatever bombs came before it.
    assert both_kb < good_kb + 64 * 1024, f"bombs and a photo {both_kb} kB, the photo alone {good_kb} kB"


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_workers_of_a_killed_build_die_with_it(tmp_path):
    dataset = tmp_path / "people" / "obama"
    dataset.mkdir(parents=True)
    for i in range(60):
        shutil.copy(FACES / ("obama.jpg", "obama2.jpg")[i % 2], dataset / f"{i:02d}.jpg")
    build = subprocess.Popen(edge("gallery", "build", tmp_path / "people", "--gallery", tmp_path / "G", "--workers", "2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment())
    workers: set[int] = set()
    try:
        line = build.stderr.readline()  # the first progress line: the workers are at work
        assert line, "the build ended before any progress"
        workers = children_of(build.pid)
        assert len(workers) >= 2
        build.send_signal(signal.SIGKILL)
        build.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [w for w in workers if alive(w)]
        assert survivors == []
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
        for worker in workers:
            if alive(worker):
                os.kill(worker, signal.SIGKILL)
    leftovers = [p.name for p in tmp_path.iterdir() if ".building-" in p.name]
    assert leftovers  # the killed build's, removed by the next build of that path:
    done = subprocess.run(edge("gallery", "build", tmp_path / "people", "--gallery", tmp_path / "G", "--workers", "1"),
                          capture_output=True, text=True, env=environment(), timeout=600)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir() if ".building-" in p.name] == []
