"""Kill a writer with SIGKILL at random moments; the gallery must stay whole.

The writer process appends batches (and now and then deletes a row or
compacts), announcing each change on stdout before it starts ("append UID
N", "delete UID", "compact") and after it returns ("ok"). Every row's vector
is a function of its uid (kept in the row's source), so after each kill the
test knows exactly what the gallery must hold: every change acknowledged
with "ok", plus the one in flight either entirely or not at all.
"""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.gallery.fileformat import encode_rows
from edge.gallery.store import Gallery

REPO = Path(__file__).resolve().parents[1]
MODEL = "sha256:crash-test"

pytestmark = pytest.mark.slow  # kills writer subprocesses in a loop

WRITER = r"""
import random, sys
import numpy as np
from edge.gallery.store import Gallery

def vector(uid):
    v = np.random.default_rng(uid).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)

path, dtype, seed, uid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
try:
    gallery = Gallery.open(path, "sha256:crash-test", writable=True, lock_timeout=10)
except Exception:
    gallery = Gallery.create(path, "sha256:crash-test", dtype=dtype)
rng = random.Random(seed)
print("ready", flush=True)
while True:
    draw = rng.random()
    if draw < 0.85 or gallery.count == 0:
        n = rng.choice([1, 1, 2, 5, 40])
        print(f"append {uid} {n}", flush=True)
        uids = range(uid, uid + n)
        gallery.append(np.stack([vector(u) for u in uids]), [f"person{u % 11}" for u in uids],
                       sources=[f"uid-{u}" for u in uids])
        uid += n
    elif draw < 0.97:
        row = gallery.row_info([rng.randrange(gallery.count)])[0]
        print(f"delete {row.source[4:]}", flush=True)
        gallery.delete([row.row])
    else:
        print("compact", flush=True)
        gallery.compact()
    print("ok", flush=True)
"""


def vector(uid):
    v = np.random.default_rng(uid).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def run_and_kill(path, dtype, seed, first_uid, delay):
    """Start a writer, let it work ``delay`` seconds, SIGKILL it; its stdout lines."""
    errors = path.with_name("writer-stderr.txt")
    with open(errors, "w") as stderr:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), dtype, str(seed), str(first_uid)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    with writer:
        assert writer.stdout.readline() == "ready\n", errors.read_text()
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        output = writer.stdout.read()
    assert writer.returncode == -signal.SIGKILL, errors.read_text()
    return output.split("\n")[:-1]  # the last piece may be cut short


class Expected:
    """What the gallery must contain: acknowledged live uids, and the change in flight."""

    def __init__(self):
        self.live: set[int] = set()
        self.next_uid = 0

    def replay(self, lines):
        """Apply the acknowledged changes; return the one announced but not acknowledged."""
        pending = None
        for line in lines:
            if line == "ok":
                kind, args = pending
                if kind == "append":
                    self.live.update(range(args[0], args[0] + args[1]))
                elif kind == "delete":
                    self.live.discard(args[0])
                pending = None
            else:
                kind, *args = line.split()
                pending = (kind, [int(a) for a in args])
                if kind == "append":
                    self.next_uid = max(self.next_uid, pending[1][0] + pending[1][1])
        return pending


def verify(path, dtype, expected: Expected, pending, reader: Gallery):
    with Gallery.open(path, MODEL) as gallery:
        rows_checked = gallery.check()
        view = gallery.view()
        infos = gallery.row_info()
    assert len(infos) == rows_checked == view.count
    live = {int(r.source[4:]): r.row for r in infos if not r.deleted}
    all_uids = [int(r.source[4:]) for r in infos]
    assert len(all_uids) == len(set(all_uids)), "a row appears twice"
    extra, missing = set(live) - expected.live, expected.live - set(live)
    kind, args = pending if pending else (None, None)
    if kind == "append":
        batch = set(range(args[0], args[0] + args[1]))
        assert extra in (set(), batch), f"half an append visible: {sorted(extra)}"
        assert not missing, f"lost committed rows {sorted(missing)}"
    elif kind == "delete":
        assert not extra and missing <= {args[0]}
    else:
        assert not extra and not missing, (sorted(extra), sorted(missing))
    uids = sorted(live)
    if uids:  # every live row holds exactly its uid's vector
        codes, scales = encode_rows(np.stack([vector(u) for u in uids]), dtype)
        np.testing.assert_array_equal(view.matrix[[live[u] for u in uids]], codes)
        if scales is not None:
            np.testing.assert_array_equal(view.scales[[live[u] for u in uids]], scales)
    # A reader open all along catches up without reopening.
    assert reader.view().count == view.count
    expected.live = set(live)


@pytest.mark.parametrize("dtype, kills", [("float32", 24), ("int8", 12)])
def test_killed_writers_never_corrupt_or_lose_rows(tmp_path, dtype, kills):
    path = tmp_path / "g"
    rng = random.Random(dtype)
    expected = Expected()
    lines = run_and_kill(path, dtype, 0, 0, 0.3)  # creates the gallery
    reader = Gallery.open(path, MODEL)
    verify(path, dtype, expected, expected.replay(lines), reader)
    changes = 0
    for attempt in range(1, kills):
        lines = run_and_kill(path, dtype, attempt, expected.next_uid, rng.uniform(0.0, 0.25))
        changes += lines.count("ok")
        verify(path, dtype, expected, expected.replay(lines), reader)
    reader.close()
    assert changes > 2 * kills, "the writer did too little before each kill to test anything"
    assert len(expected.live) > 0
