"""Run hostile cases against edge and judge the answers.

Each CLI case runs as ``python -m edge.cli ...`` in its own folder, stdout and
stderr to files, with a timeout (a hang) and its peak RSS: the child's
high-water mark (VmHWM), polled every 20 ms. The runner kills a child above
``KILL_RSS`` so a runaway cannot take the machine down (that case then
reports its peak as at least that much).

Outcomes, one per case:

    traceback   "Traceback (most recent call last)" on stderr, death by a signal, or an
                exit status other than 0, 1, 2 (130: interrupted)
    hang        no exit within the case's timeout
    killed      RSS passed KILL_RSS_MIB (a bomb that went off): killed by the runner
    clear       exit 1 or 2 with a message: a line ``edge...: ...`` on stderr, a per-file
                error, or --json's {"error": ...} on stdout
    unclear     exit 1 or 2 with no output at all (not a failure of the issue's criteria, but listed)
    accepted    exit 0

and, independently, ``wrong_names`` (identify/door named someone it must
not), ``rows_lost`` (a damage that spared the committed rows, and
`gallery list` afterwards shows fewer than 2 samples of obama or fails), and
``memory_mib`` (peak; a case above ``BOMB_LIMIT_MIB`` fails).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hostile.generate import Case

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "fixtures" / "faces"
BOMB_LIMIT_MIB = 500
KILL_RSS_MIB = 3000
KILLED = -1000
"""The exit status recorded when the runner killed a case for going over KILL_RSS_MIB."""
ERROR_LINE = re.compile(rb"^edge[\w\- ]*:", re.MULTILINE)


@dataclass
class Result:
    family: str
    name: str
    outcome: str  # accepted | clear | unclear | traceback | hang | killed (over KILL_RSS_MIB)
    exit_status: int | None
    seconds: float
    memory_mib: float
    wrong_names: int = 0
    rows_lost: int = 0
    detail: str = ""
    bomb: bool = False

    @property
    def failed(self) -> bool:
        return (self.outcome in ("traceback", "hang", "killed") or self.wrong_names > 0 or self.rows_lost > 0
                or self.bomb and self.memory_mib > BOMB_LIMIT_MIB)

    def reasons(self) -> list[str]:
        out = []
        if self.outcome in ("traceback", "hang"):
            out.append(self.outcome)
        if self.outcome == "killed":
            out.append(f"killed by the runner above {KILL_RSS_MIB} MiB")
        if self.wrong_names:
            out.append("wrong name")
        if self.rows_lost:
            out.append("rows lost")
        if self.bomb and self.memory_mib > BOMB_LIMIT_MIB:
            out.append(f"bomb peak {self.memory_mib:.0f} MiB")
        return out


@dataclass
class Fixtures:
    """What the cases share: a base gallery (obama from 2 photos) and door frame folders."""

    root: Path
    gallery: Path
    frames: Path
    biden: Path
    obama: Path
    python: str = sys.executable
    baselines: dict = field(default_factory=dict)
    """Peak RSS MiB of each command on good input (what a bomb's peak compares with)."""

    @classmethod
    def make(cls, root: Path, python: str = sys.executable) -> Fixtures:
        from edge import demo

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        people = demo.write_dataset(root / "people")
        gallery = root / "base.gallery"
        built = subprocess.run([python, "-m", "edge.cli", "gallery", "build", str(people), "--gallery", str(gallery),
                                "--workers", "1", "--json"], capture_output=True, text=True, cwd=root, timeout=300)
        if built.returncode != 0 or json.loads(built.stdout)["enrolled"] != {"obama": 2}:
            raise RuntimeError(f"base gallery build failed: {built.stdout}\n{built.stderr}")
        frames = demo.write_stills(root / "frames", ("blank", "obama3.jpg", "biden.jpg"))
        biden = demo.write_frames(root / "biden", visitors=("biden.jpg",), frames_per_visit=12, empty_frames=3)
        obama = demo.write_frames(root / "obama", visitors=("obama3.jpg",), frames_per_visit=12, empty_frames=3)
        fixtures = cls(root, gallery, frames, biden, obama, python)
        fixtures.baselines = fixtures.measure_baselines()
        return fixtures

    def measure_baselines(self) -> dict[str, float]:
        """Peak RSS of identify, verify, gallery list/add and the door on good input."""
        faces, g = str(FACES), str(self.gallery)
        scratch = self.root / "baseline"
        scratch.mkdir(exist_ok=True)
        shutil.copytree(self.gallery, scratch / "g", dirs_exist_ok=True)
        commands = {
            "identify": ["identify", f"{faces}/obama3.jpg", f"{faces}/biden.jpg", "--gallery", g],
            "verify": ["verify", f"{faces}/obama.jpg", f"{faces}/obama3.jpg"],
            "verify --pairs": ["verify", "--pairs", f"{faces}/pairs.csv", "--root", faces, "--workers", "1"],
            "gallery list": ["gallery", "list", g],
            "gallery add": ["gallery", "add", faces, "--name", "obama", "--gallery", str(scratch / "g"), "--largest", "--workers", "1"],
            "run (door)": ["run", "--source", str(self.obama), "--gallery", g, "--exit-at-end"],
        }
        out = {}
        for name, argv in commands.items():
            status, _, _, _, peak = run_process([os.fsencode(self.python), b"-m", b"edge.cli", *map(os.fsencode, argv)], scratch, 120.0)
            out[name] = round(peak, 1)
        return out

    def places(self, case_dir: Path) -> dict[bytes, bytes]:
        return {
            b"@@CASE@@": os.fsencode(case_dir), b"@@GALLERY@@": os.fsencode(case_dir / "g"),
            b"@@FACES@@": os.fsencode(FACES), b"@@FRAMES@@": os.fsencode(self.frames),
            b"@@BIDEN@@": os.fsencode(self.biden), b"@@OBAMA@@": os.fsencode(self.obama),
        }


def _resolve(value: str | bytes, places: dict[bytes, bytes]) -> bytes:
    raw = value if isinstance(value, bytes) else os.fsencode(value)
    for token, path in places.items():
        raw = raw.replace(token, path)
    return raw


def prepare(case: Case, fixtures: Fixtures, case_dir: Path) -> list[bytes]:
    """Write the case's files, copy and damage its gallery; the resolved argv."""
    places = fixtures.places(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    for rel, content in case.files:
        target = os.path.join(os.fsencode(case_dir), rel if isinstance(rel, bytes) else os.fsencode(rel))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(content, tuple) and content[0] == "dir":
            os.makedirs(target, exist_ok=True)
        elif isinstance(content, tuple) and content[0] == "symlink":
            os.symlink(content[1], target)
        else:
            with open(target, "wb") as f:
                f.write(_resolve(content, places) if b"@@" in content[:100_000] else content)
    if case.gallery:
        shutil.copytree(fixtures.gallery, case_dir / "g")
        for op in case.damage:
            _damage(case_dir / "g", op)
    return [_resolve(a, places) for a in case.argv]


def _damage(gallery: Path, op: tuple) -> None:
    kind, file = op[0], gallery / op[1]
    if kind == "flip":
        with open(file, "r+b") as f:
            f.seek(op[2])
            byte = f.read(1)
            if byte:
                f.seek(op[2])
                f.write(bytes([byte[0] ^ (1 << op[3])]))
    elif kind == "write":
        with open(file, "r+b") as f:
            f.seek(op[2])
            f.write(op[3])
    elif kind == "truncate":
        os.truncate(file, op[2])
    elif kind == "delete":
        if file.is_dir():
            shutil.rmtree(file)
        else:
            file.unlink(missing_ok=True)
    elif kind == "add":
        if op[1].endswith("/"):
            file.mkdir(parents=True, exist_ok=True)
        else:
            file.write_bytes(op[2])
    else:
        raise ValueError(op)


def run_process(argv: list[bytes], cwd: Path, timeout: float, env: dict | None = None) -> tuple[int | None, bytes, bytes, float, float]:
    """(exit status or None on timeout, stdout, stderr, seconds, peak RSS MiB); negative status: signal."""
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    start = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                   start_new_session=True)
    # The peak is the child's own high-water mark (VmHWM), polled: wait4's ru_maxrss would start
    # from this process's size at fork (Linux carries it across exec), so inside a big pytest
    # process every child would seem as large as pytest. A peak in a child's last 20 ms is missed.
    status, peak = None, 0.0
    while True:
        pid, wait_status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            status = os.waitstatus_to_exitcode(wait_status)
            process.returncode = status
            break
        peak = max(peak, _peak_rss_mib(process.pid))
        if peak > KILL_RSS_MIB or time.monotonic() - start > timeout:
            timed_out = time.monotonic() - start > timeout
            _kill_group(process.pid)
            _, wait_status, _ = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(wait_status)
            status = None if timed_out else KILLED
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    return status, out_path.read_bytes(), err_path.read_bytes(), seconds, peak


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def classify(status: int | None, stdout: bytes, stderr: bytes) -> str:
    if status is None:
        return "hang"
    if status == KILLED:
        return "killed"
    if b"Traceback (most recent call last)" in stderr or b"Traceback (most recent call last)" in stdout:
        return "traceback"
    if status == 0:
        return "accepted"
    if status not in (1, 2, 130):
        return "traceback"
    if ERROR_LINE.search(stderr) or _said_something(stdout) or _said_something(stderr):
        return "clear"
    return "unclear"


def _said_something(data: bytes) -> bool:
    """Output beyond LiteRT's start-up line (e.g. a per-file error, or --json's {"error": ...})."""
    return any(line.strip() and not line.startswith(b"INFO: Created TensorFlow") for line in data.splitlines())


def judge_names(case: Case, stdout: bytes) -> tuple[int, str]:
    """Wrong names in identify --json output or door events (JSON lines on stdout)."""
    wrong, notes = 0, []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if case.check == "identify" and "faces" in record:
            stranger = str(record.get("path", "")).endswith("biden.jpg")
            for face in record.get("faces") or []:
                name = face.get("name") if isinstance(face, dict) else None
                if name is None:
                    continue
                if stranger or name != "obama" or not case.obama_ok:
                    wrong += 1
                    notes.append(f"{Path(str(record.get('path'))).name} named {name!r}")
        elif case.check == "door" and record.get("event_type") == "recognized":
            name = record.get("name")
            if case.stranger or name != "obama" or not case.obama_ok:
                wrong += 1
                notes.append(f"door recognized {name!r}")
    return wrong, "; ".join(notes)


def obama_rows(fixtures: Fixtures, gallery: Path, cwd: Path) -> int | None:
    """Samples of obama in ``gallery`` per `edge gallery list --json` (None: the listing failed)."""
    status, out, err, _, _ = run_process([os.fsencode(fixtures.python), b"-m", b"edge.cli", b"gallery", b"list",
                                          os.fsencode(gallery), b"--json"], cwd, 60.0)
    if status != 0:
        return None
    try:
        return int(json.loads(out)["people"].get("obama", 0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def run_cli_case(case: Case, fixtures: Fixtures, work: Path) -> Result:
    # mkdtemp: unique even when two names sanitize alike on two threads at once.
    case_dir = Path(tempfile.mkdtemp(prefix=re.sub(r"[^\w.-]+", "_", case.name)[:80] + "-", dir=work))
    try:
        argv = prepare(case, fixtures, case_dir)
    except OSError as exc:
        return Result(case.family, case.name, "unclear", None, 0.0, 0.0, detail=f"could not set up: {exc}")
    status, out, err, seconds, peak = run_process([os.fsencode(fixtures.python), b"-m", b"edge.cli", *argv],
                                                  case_dir, case.timeout)
    outcome = classify(status, out, err)
    wrong, notes = judge_names(case, out) if case.check in ("identify", "door") else (0, "")
    lost = 0
    if case.rows_kept and case.gallery:
        rows = obama_rows(fixtures, case_dir / "g", case_dir)
        if rows is None or rows < 2:
            lost = 2 - (rows or 0)
            notes = (notes + "; " if notes else "") + f"afterwards gallery list shows {rows} obama rows"
    detail = notes or _last_line(err if outcome != "accepted" else out)
    if outcome == "traceback":
        detail = _traceback_summary(err) or f"exit status {status}"
    elif outcome == "killed":
        detail = f"RSS passed {KILL_RSS_MIB} MiB: killed; {_last_line(err)}"
    elif outcome == "hang":
        detail = f"no exit after {case.timeout:.0f} s; {_last_line(err)}"
    result = Result(case.family, case.name, outcome, status, round(seconds, 2), round(peak, 1), wrong, lost, detail[:300],
                    bomb=case.bomb)
    shutil.rmtree(case_dir, ignore_errors=True)
    return result


def _last_line(data: bytes) -> str:
    lines = [l for l in data.decode(errors="replace").splitlines() if l.strip() and not l.startswith("INFO: Created TensorFlow")]
    return lines[-1] if lines else ""


def _traceback_summary(err: bytes) -> str:
    text = err.decode(errors="replace")
    if "Traceback (most recent call last)" not in text:
        return ""
    lines = text[text.rfind("Traceback (most recent call last)"):].splitlines()
    frames = [l.strip() for l in lines if l.strip().startswith("File ")]
    last = next((l for l in reversed(lines) if l.strip() and not l.startswith(" ")), "")
    where = frames[-1] if frames else ""
    return f"{last} at {where}"


def run_cases(cases: list[Case], fixtures: Fixtures, jobs: int = 2, progress=None) -> list[Result]:
    """Run every case; CLI cases on ``jobs`` threads, the MQTT family against one door."""
    work = Path(tempfile.mkdtemp(prefix="cases-", dir=fixtures.root))
    cli = [c for c in cases if c.family != "mqtt"]
    results: list[Result | None] = [None] * len(cases)
    index = {id(c): i for i, c in enumerate(cases)}
    done = [0]
    lock = threading.Lock()

    def one(case: Case) -> None:
        result = run_cli_case(case, fixtures, work)
        results[index[id(case)]] = result
        with lock:
            done[0] += 1
            if progress:
                progress(done[0], len(cases), result)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, cli))
    mqtt_cases = [c for c in cases if c.family == "mqtt"]
    if mqtt_cases:
        from hostile.mqtt_door import run_mqtt_cases

        for case, result in zip(mqtt_cases, run_mqtt_cases(mqtt_cases, fixtures, work)):
            results[index[id(case)]] = result
            done[0] += 1
            if progress:
                progress(done[0], len(cases), result)
    shutil.rmtree(work, ignore_errors=True)
    return [r for r in results if r is not None]


def summarize(results: list[Result]) -> dict[str, dict]:
    """Per family (and 'all'): cases, clear, unclear, accepted, tracebacks, hangs, max MiB, wrong names, rows lost."""
    table: dict[str, dict] = {}
    for key in [*dict.fromkeys(r.family for r in results), "all"]:
        rs = [r for r in results if key == "all" or r.family == key]
        table[key] = {
            "cases": len(rs),
            "clear_errors": sum(r.outcome == "clear" for r in rs),
            "unclear_errors": sum(r.outcome == "unclear" for r in rs),
            "accepted": sum(r.outcome == "accepted" for r in rs),
            "tracebacks": sum(r.outcome == "traceback" for r in rs),
            "hangs": sum(r.outcome == "hang" for r in rs),
            "killed": sum(r.outcome == "killed" for r in rs),
            "max_memory_mib": round(max((r.memory_mib for r in rs), default=0.0), 1),
            "bombs": sum(r.bomb for r in rs),
            "max_bomb_mib": round(max((r.memory_mib for r in rs if r.bomb), default=0.0), 1),
            "bombs_over_500_mib": sum(r.bomb and r.memory_mib > BOMB_LIMIT_MIB for r in rs),
            "wrong_names": sum(r.wrong_names for r in rs),
            "rows_lost": sum(r.rows_lost for r in rs),
            "failed": sum(r.failed for r in rs),
        }
    return table


def as_dicts(results: list[Result]) -> list[dict]:
    return [asdict(r) | {"failed": r.failed, "reasons": r.reasons()} for r in results]
