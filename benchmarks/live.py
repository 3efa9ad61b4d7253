"""Frame-to-event latency on a live RTSP stream at 30 frames a second, now and before the newest-frame change.

The stream: GStreamer's RTSP server on 127.0.0.1 (tests/rtsp.py) serving an
H.264 video at real time: 2 s of empty doorway, the enrolled person (Obama,
edge.demo) walks past for 2 s, 2.5 s of empty doorway, a stranger (Biden)
walks past for 2 s, 2.5 s of empty doorway (11 s); the scene plays twice
(``--repeats``). ``edge run --source rtsp://... --gallery G`` runs as a
subprocess, as a user would run it, with its events on stdout.

Latency of a visit: from the moment the visit's first frame leaves the server
to the moment its event line (``recognized`` obama; ``unknown`` for the
stranger) is read from edge's stdout. The server reports when the client's
stream started, on the system's monotonic clock (GStreamer's system clock):
frame k leaves it k / 30 s after that (its sinks follow the clock); each line
from edge is stamped with time.monotonic() (the same clock) when read.
Events are matched to visits in order (the first ``recognized`` obama after
Obama's first visit starts is that visit's, the next one the next visit's).

Codes, in the same run, alternating round by round:

- ``now``: ``--now`` (default HEAD: the committed code; a live camera is read
  on a thread of its own and the loop takes the newest frame, the frames it
  had no time for are dropped);
- ``before``: git revision ``--before`` (default 3cf5d17, the commit before
  that change: the loop reads the stream frame after frame);

each checked out into a temporary worktree (git worktree add --detach) and
run with PYTHONPATH=<worktree> and the same venv, so that what is measured
is the revision named, whatever happens to this checkout meanwhile.

Each code first plays a short folder of frames (discarded), so that its
numba kernels are compiled and cached on disk before it is timed (a fresh
worktree has no cache: its first run would spend seconds compiling).

Doors:

- ``normal``: 640x480 frames, the default config (2 threads per model);
- ``slowed``: 1280x960 frames and ``[recognition.runtime] num_threads = 1``:
  the loop is slower than the camera's 30 frames a second while a face is in
  view, so the frames the old loop cannot keep up with queue up.

Both doors have ``[door.decision] cooldown = 0``, so that Obama is announced
on each visit, not only the first of the run. ``frames_dropped`` (the
retained MQTT state) is read in one more run per door with ``--mqtt``
against a real Mosquitto where it is installed (the old code does not
report it).

    .venv/bin/python benchmarks/live.py [--now HEAD] [--before 3cf5d17] [--rounds 3] [--repeats 2] \\
        [--json benchmarks/results/live.json] [--txt benchmarks/results/live.txt]

Needs ffmpeg and GStreamer's RTSP server (tests/rtsp.py names the Debian packages).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import rtsp  # noqa: E402  (tests/rtsp.py)
from benchmarks.machine import checkout, environment, format_table, header  # noqa: E402

DOORS = {
    "normal": {"size": (640, 480), "config": "[door.decision]\ncooldown = 0\n",
               "about": "640x480, default config (2 threads per model)"},
    "slowed": {"size": (1280, 960),
               "config": "[recognition.runtime]\nnum_threads = 1\n\n[door.decision]\ncooldown = 0\n",
               "about": "1280x960, [recognition.runtime] num_threads = 1"},
}
LEAD_IN, VISIT, EMPTY = 60, 60, 75
"""Frames of the scene: 2 s of empty doorway, each visitor in view for 2 s, then 2.5 s empty (longer than
the tracker's 2 s gap, so that each visit is a track of its own)."""
SCENE_SECONDS = (LEAD_IN + 2 * (VISIT + EMPTY)) / rtsp.FPS
SETTLE = 3.0
"""Seconds to go on reading after the last visit's scene has been served."""
LATE = 45.0
"""Seconds more to wait for events still missing then (a backlog being worked off)."""


def edge_env(code: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code)}  # ahead of the venv's editable install of this checkout


def which_edge(code: Path) -> str:
    """The edge package a run with this code imports (a check that PYTHONPATH took)."""
    return subprocess.run([sys.executable, "-c", "import edge; print(edge.__file__)"], env=edge_env(code), cwd="/",
                          capture_output=True, text=True, check=True).stdout.strip()


def warm_up(code: Path, frames: Path, gallery: Path) -> None:
    """Play a folder once with this code: its numba kernels are compiled and cached before it is timed."""
    subprocess.run([sys.executable, "-m", "edge.cli", "run", "--source", str(frames), "--gallery", str(gallery),
                    "--exit-at-end"], env=edge_env(code), cwd="/", capture_output=True, check=True, timeout=600)


def run_once(code: Path, scene: rtsp.Scene, gallery: Path, config: Path, scratch: Path, repeats: int,
             broker=None) -> dict:
    """One edge run against a fresh server: each visit's latency, and what else was seen."""
    lines: list[tuple[float, dict]] = []
    errors: list[tuple[float, str]] = []
    states: list[dict] = []
    visits = [(r * scene.scene_frames + v.first, v) for r in range(repeats) for v in scene.visits]
    wanted = {v.photo: ("recognized", "obama") if v.photo.startswith("obama") else ("unknown", None)
              for v in scene.visits}
    with rtsp.RtspServer(scene.video, scratch / "server") as server:
        observer = None
        command = [sys.executable, "-m", "edge.cli", "-v", "run", "--source", server.url, "--gallery",
                   str(gallery), "--config", str(config)]
        if broker is not None:
            from broker import Observer

            observer = Observer(broker, ["edge/live/#"])
            command += ["--mqtt", f"mqtt://{broker.host}:{broker.port}", "--device-id", "live"]
        load = os.getloadavg()[0]
        started = time.monotonic()
        edge = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=edge_env(code), cwd="/")

        def read_out() -> None:
            for line in edge.stdout:
                now = time.monotonic()
                try:
                    lines.append((now, json.loads(line)))
                except ValueError:
                    pass

        def read_err() -> None:
            for line in edge.stderr:
                errors.append((time.monotonic(), line.rstrip()))

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for reader in readers:
            reader.start()
        try:
            base = server.wait_for_play(timeout=120)
            end = base + repeats * SCENE_SECONDS + SETTLE
            while edge.poll() is None and time.monotonic() < end + LATE:
                if observer is not None:
                    lines = [(0.0, m.json()) for m in observer.on("edge/live/event")]
                if time.monotonic() >= end and len(lines) >= len(visits):
                    break
                time.sleep(0.05)
            ended = time.monotonic()
        finally:
            if edge.poll() is None:
                edge.send_signal(signal.SIGTERM)
            try:
                edge.wait(30)
            except subprocess.TimeoutExpired:
                edge.kill()
                edge.wait()
            for reader in readers:
                reader.join(5)
            if observer is not None:
                lines = [(0.0, m.json()) for m in observer.on("edge/live/event")]
                states = [m.json() for m in observer.on("edge/live/state")]
                observer.close()
    if edge.returncode != 0:
        raise RuntimeError(f"edge exited with {edge.returncode}:\n" + "\n".join(e for _, e in errors[-40:]))
    online = [t for t, e in errors if "camera online" in e]
    result = {
        "startup_s": round(base - started, 2),
        "camera_online_s": round(online[0] - base, 3) if online else None,
        "read_s": round(ended - base, 1),
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
        "events": [{"at_s": round(t - base, 3) if broker is None else None, "event_type": e["event_type"],
                    "name": e["name"]} for t, e in lines],
        "ffmpeg_errors": sum(1 for _, line in errors if line.startswith("[")),
        "warnings": [line for _, line in errors if " WARNING " in line or "Traceback" in line][:10],
        "log": [f"{t - base:.3f} {line}" for t, line in errors if " INFO edge." in line or " WARNING " in line][:40],
    }
    if broker is not None:
        result["events_seen"] = len(lines)
        if states:
            last = states[-1]
            wall = datetime.fromisoformat(last["timestamp"]).timestamp()
            delivered = (wall - (time.time() - time.monotonic()) - base) * scene.fps  # frames served by then
            result.update(frames_dropped=last.get("frames_dropped"), state_at_s=round(delivered / scene.fps, 1),
                          served_by_then=round(delivered))
        return result
    used: set[int] = set()
    rows = []
    for first, visit in visits:
        served = base + first / scene.fps
        match = next((k for k, (t, e) in enumerate(lines)
                      if k not in used and t >= served and (e["event_type"], e["name"]) == wanted[visit.photo]), None)
        if match is not None:
            used.add(match)
        rows.append({"visitor": visit.photo.removesuffix(".jpg"), "first_frame": first,
                     "served_at_s": round(first / scene.fps, 3),
                     "latency_s": None if match is None else round(lines[match][0] - served, 3)})
    result["visits"] = rows
    result["unmatched_events"] = len(lines) - len(used)
    return result


def summary(results: list[dict], doors: list[str], codes: list[str]) -> list[list[str]]:
    rows = []
    for door in doors:
        for code in codes:
            runs = [r for r in results if r["door"] == door and r["code"] == code and "visits" in r]
            if not runs:
                continue
            for k, visit in enumerate(runs[0]["visits"]):
                figures = [r["visits"][k]["latency_s"] for r in runs]
                got = [f for f in figures if f is not None]
                rows.append([door, code, f"{visit['visitor']} at {visit['served_at_s']:.1f} s",
                             f"{statistics.median(got):.2f}" if got else "-",
                             " ".join("-" if f is None else f"{f:.2f}" for f in figures)])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--now", default="HEAD", help="the revision measured as now")
    parser.add_argument("--before", default="3cf5d17", help="the revision it is compared with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="times the scene plays in each run")
    parser.add_argument("--doors", nargs="+", default=list(DOORS), choices=list(DOORS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--txt", type=Path)
    args = parser.parse_args(argv)
    missing = rtsp.missing()
    if missing:
        print(f"needs {', '.join(missing)}: {rtsp.APT_LINE}", file=sys.stderr)
        return 2
    env = environment()
    env["ffmpeg"] = subprocess.run(["ffmpeg", "-version"], capture_output=True,
                                   text=True).stdout.split("\n")[0].split(" Copyright")[0]
    env["gstreamer"] = subprocess.run([rtsp.SYSTEM_PYTHON, "-c", "import gi; gi.require_version('Gst', '1.0'); "
                                       "from gi.repository import Gst; Gst.init(None); print(Gst.version_string())"],
                                      capture_output=True, text=True).stdout.strip()
    results: list[dict] = []
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    revisions = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True,
                                      text=True, check=True).stdout.strip()
                 for name, rev in (("now", args.now), ("before", args.before))}
    env["measured"] = revisions
    now_label, before_label = f"now ({revisions['now']})", f"before ({revisions['before']})"
    with tempfile.TemporaryDirectory(prefix="edge-live-") as scratch, contextlib.ExitStack() as stack:
        scratch = Path(scratch)
        codes = {now_label: scratch / "now", before_label: scratch / "before"}
        for revision, code in zip(revisions.values(), codes.values()):
            stack.enter_context(checkout(revision, code))
        imported = {label: which_edge(code) for label, code in codes.items()}
        if any(not imported[label].startswith(str(code)) for label, code in codes.items()):
            raise RuntimeError(f"PYTHONPATH did not take: {imported}")
        from edge import demo

        people = demo.write_dataset(scratch / "people")
        gallery = scratch / "gallery"
        subprocess.run([sys.executable, "-m", "edge.cli", "gallery", "build", str(people), "--gallery",
                        str(gallery)], check=True, capture_output=True, env=edge_env(codes[now_label]), cwd="/")
        warm = demo.write_frames(scratch / "warm", frames_per_visit=5, empty_frames=2)
        for label, code in codes.items():
            print(f"warming up {label} ({imported[label]}) ...", file=sys.stderr, flush=True)
            warm_up(code, warm, gallery)
        scenes, configs = {}, {}
        for door in args.doors:
            scenes[door] = rtsp.make_video(scratch / f"video-{door}", frames_per_visit=VISIT,
                                           empty_frames=EMPTY, lead_in=LEAD_IN,
                                           seconds=(args.repeats + 6) * SCENE_SECONDS, size=DOORS[door]["size"])
            configs[door] = scratch / f"{door}.toml"
            configs[door].write_text(DOORS[door]["config"])
        for round_ in range(1, args.rounds + 1):  # alternating, so that a busy moment favours neither
            for door in args.doors:
                order = list(codes.items()) if round_ % 2 else list(codes.items())[::-1]
                for label, code in order:
                    print(f"round {round_}: {door}, {label} ...", file=sys.stderr, flush=True)
                    result = run_once(code, scenes[door], gallery, configs[door], scratch, args.repeats)
                    print("  " + ", ".join(f"{v['visitor']} {v['latency_s']}" for v in result["visits"]),
                          file=sys.stderr, flush=True)
                    results.append({"round": round_, "door": door, "code": label, **result})
            if mosquitto:  # frames_dropped, reported by this code only (the retained MQTT state)
                from broker import Mosquitto

                for door in args.doors:
                    print(f"round {round_}: {door}, now, --mqtt (frames_dropped) ...", file=sys.stderr, flush=True)
                    with Mosquitto(mosquitto, scratch / "broker") as broker:
                        result = run_once(codes[now_label], scenes[door], gallery, configs[door], scratch, args.repeats,
                                          broker)
                    print(f"  frames_dropped {result.get('frames_dropped')} of {result.get('served_by_then')}",
                          file=sys.stderr, flush=True)
                    results.append({"round": round_, "mqtt": True, "door": door, "code": now_label, **result})

    codes_order = [now_label, before_label]
    title = "Live stream: frame-to-event latency at 30 fps over RTSP, now vs before the newest-frame change"
    lines = [header(env, title),
             f"stream:   {env['ffmpeg']}; {env['gstreamer']} RTSP server on 127.0.0.1; H.264, 30 fps, 1 s GOP, "
             "no B-frames, played at real time",
             f"scene:    {LEAD_IN / 30:.0f} s empty, obama (enrolled) {VISIT / 30:.0f} s, {EMPTY / 30:.1f} s empty, "
             f"biden (stranger) {VISIT / 30:.0f} s, {EMPTY / 30:.1f} s empty; played {args.repeats} times per run",
             "latency:  seconds from the visit's first frame leaving the server to its event line on edge's stdout "
             f"(recognized obama / unknown); median of {args.rounds} rounds, then every round; - = no event",
             "doors:    " + "; ".join(f"{door}: {DOORS[door]['about']}" for door in args.doors)
             + "; both with [door.decision] cooldown = 0", ""]
    lines.append(format_table(["door", "code", "visit (first frame served at)", "median s", "rounds s"],
                              summary(results, args.doors, codes_order)))
    mqtt = [r for r in results if r.get("mqtt")]
    if mqtt:
        lines += ["", f"frames_dropped, {now_label} (one more run per door and round with --mqtt against Mosquitto; the "
                  "last retained state, sent when the doorway emptied after the last visit; the old code does not "
                  "report it):"]
        lines.append(format_table(
            ["door", "round", "frames_dropped", "of frames served by then", "events seen", "load avg"],
            [[r["door"], str(r["round"]), str(r.get("frames_dropped", "-")), str(r.get("served_by_then", "-")),
              str(r["events_seen"]), str(r["load_average_1min"][0])] for r in mqtt]))
    else:
        lines += ["", "frames_dropped: not measured (no mosquitto here)"]
    loads = [r["load_average_1min"][0] for r in results]
    lines += ["", f"load average (1 min) at the start of the {len(results)} runs: {min(loads)} to {max(loads)} "
              "(other work on the machine skews timings)"]
    other = [(r["door"], r["code"], r["round"], r["ffmpeg_errors"], r["warnings"]) for r in results
             if r["ffmpeg_errors"] or r["warnings"]]
    lines += ["", "stderr of edge: " + ("; ".join(f"{d}/{c}/round {n}: {e} ffmpeg lines, warnings {w}"
                                                   for d, c, n, e, w in other) if other else
                                        "no ffmpeg messages, warnings or tracebacks in any run")]
    text = "\n".join(lines)
    print(text)
    if args.txt:
        args.txt.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "doors": DOORS, "scene": {
            "lead_in": LEAD_IN, "visit": VISIT, "empty": EMPTY, "fps": rtsp.FPS, "repeats": args.repeats},
            "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
