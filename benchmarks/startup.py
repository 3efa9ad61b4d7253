"""`edge run`'s start-up: time to MQTT `online` and to the first event, numba's cache cold and warm.

A fresh install has no compiled search kernels: numba compiles them the
first time a face is matched (``cold``); afterwards they come from the
cache (``warm``; the systemd unit keeps that cache in NUMBA_CACHE_DIR under
/var/cache/edge, so a read-only install keeps it). Each run starts `edge run`
as a subprocess against a real Mosquitto, over a folder where the enrolled
person (Obama) is in view from the first frame, and records from the
process's start: the retained `online`, and the `recognized` event. The
cache is made cold by pointing NUMBA_CACHE_DIR at an empty directory.
Two scenes: the person in view from the first frame (the worst case: the
first search waits for the compilation), and the person arriving after
ARRIVAL seconds of an empty doorway, played in real time (the usual case:
the door compiles its kernels in the background meanwhile).

    .venv/bin/python benchmarks/startup.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from benchmarks.machine import environment, format_table, header  # noqa: E402


ARRIVAL = 5.0
"""Seconds of empty doorway before the person arrives, in the second scene."""


def one_run(gallery: Path, frames: Path, cache: Path, broker, realtime: bool) -> dict:
    from broker import Observer

    observer = Observer(broker, ["edge/door/availability", "edge/door/event"])
    config = frames.parent / f"{frames.name}.toml"
    config.write_text(f"[camera]\nsource = '{frames}'\nfolder_realtime = {str(realtime).lower()}\n"
                      f"[gallery]\npath = '{gallery}'\n[door]\ndevice_id = 'door'\n"
                      f"[mqtt]\nhost = '{broker.host}'\nport = {broker.port}\n")
    try:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
        started = time.perf_counter()
        run = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--exit-at-end"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        online = event = None
        while run.poll() is None or event is None:
            now = time.perf_counter() - started
            if online is None and any(m.payload == b"online" for m in observer.on("edge/door/availability")):
                online = now
            if event is None and observer.on("edge/door/event"):
                event = now
            if run.poll() is not None and event is None and now > 300:
                break
            time.sleep(0.005)
        run.wait(60)
        return {"online_s": round(online, 3) if online else None, "first_event_s": round(event, 3) if event else None,
                "exit": run.returncode}
    finally:
        observer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from broker import Mosquitto, mosquitto_binary
    from edge import demo

    env = environment()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        built = subprocess.run([sys.executable, "-m", "edge.cli", "gallery", "build",
                                str(demo.write_dataset(work / "people")), "--gallery", str(work / "g")],
                               capture_output=True, text=True)
        if built.returncode:
            raise SystemExit(built.stderr)
        at_once = demo.write_frames(work / "at_once", visitors=("obama3.jpg",), frames_per_visit=20, empty_frames=0)
        later = demo.write_stills(work / "later", ("blank",) * int(ARRIVAL * 10) + ("obama3.jpg",) * 20)
        warm_cache = work / "warm-cache"
        with Mosquitto(mosquitto_binary(), work / "broker") as broker:
            one_run(work / "g", at_once, warm_cache, broker, realtime=False)  # fills the warm cache
            for round_ in range(args.rounds):
                for kind in ("cold", "warm"):
                    for scene, frames, realtime in (("in view at start", at_once, False),
                                                    (f"arrives after {ARRIVAL:.0f} s", later, True)):
                        cache = work / f"cold-{round_}-{frames.name}" if kind == "cold" else warm_cache
                        print(f"round {round_ + 1}: {kind}, {scene} ...", file=sys.stderr, flush=True)
                        result = one_run(work / "g", frames, cache, broker, realtime)
                        results.setdefault(f"{kind}|{scene}", []).append(result)
    print(header(env, "edge run: start-up to MQTT online and to the first event"))
    print("scene:    the enrolled person in view from the first frame, or arriving after an empty doorway "
          "played in real time (its frames start when the camera is first read); seconds from the process's start\n")
    rows = []
    for key, runs in results.items():
        kind, scene = key.split("|")
        online = [r["online_s"] for r in runs if r["online_s"] is not None]
        event = [r["first_event_s"] for r in runs if r["first_event_s"] is not None]
        rows.append([kind, scene, f"{statistics.median(online):.2f}", " ".join(f"{v:.2f}" for v in online),
                     f"{statistics.median(event):.2f}", " ".join(f"{v:.2f}" for v in event)])
    print(format_table(["numba cache", "scene", "online", "(rounds)", "first event", "(rounds)"], rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
