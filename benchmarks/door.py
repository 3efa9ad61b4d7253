"""The door loop: throughput, latency, and whom it announces in a queue at the door.

Scenes (640x480 frames, frame times at 10 frames a second):

- ``walk, N faces``: the bundled photos (edge.demo): an enrolled person
  (Obama) and then a stranger (Biden) walk past, N copies side by side, 30
  empty frames after each visit. Reported: frames per second of processing
  (frames are fed as fast as they are processed), CPU use (process CPU
  seconds per wall second; 2.0 = both cores busy), peak RSS, and the
  latency from a visit's first frame to its event.
- ``queue``: people from LFW (tests/scenes.py; enrolled from 3 photos each,
  at the door with a 4th, and strangers) step one after another into the
  same spot, each for 1-2 s, with 0.2-0.5 s of empty doorway between them.
  Per person: right (exactly one event, and the right one: `recognized`
  with their name, or `unknown` for a stranger), missed (no event), wrong
  (an event naming someone else, or the wrong type), and the latency to
  their event; and the frames in which ``present`` named someone not in
  view, while someone else stood there (wrong) or with the doorway empty
  (a person counts as present until ``gap`` seconds after their face was
  last seen).

- ``idle``: an empty doorway with camera noise and a slow change of light
  for 10 s, then Obama steps in and stays 4 s: process CPU time per frame
  with the doorway empty and with him there, and the latency of his event
  from his first frame.

Ways of running the same frames, each in its own process:

- ``tracked``: edge.door.loop.DoorLoop at its default settings;
- ``whole frames`` (walk only): the same with [door.motion] near_tracks off
  (every frame with someone in it searched whole): what searching only
  near the tracked faces saves;
- ``no recheck`` (walk only): the same with the identity watch off (announced
  tracks never matched again, no abrupt-change checks): what re-checks cost;
- ``no motion gate`` (idle only): the same with [door.motion] off;
- ``every frame`` (walk only): detect, align, embed and search every face of
  every frame (the classic webcam scripts), no tracking or decision;
- with ``--before REV``, ``tracked`` again with the door code of git
  revision REV (checked out into a temporary worktree), in the same run.

    .venv/bin/python benchmarks/door.py [--before REV] [--people 14] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"

WALK_MODES = ("tracked", "whole frames", "no recheck", "every frame")
IDLE_FRAMES, VISIT_FRAMES = 100, 40
"""The idle scene: 10 s of empty doorway, then 4 s of a visitor (frames at 10 a second)."""


def queue_plan(lfw: Path, people: int, seed: int) -> list[dict]:
    """Who comes, in which order, for how long: residents (4+ LFW photos) and strangers, about 4:3."""
    rng = random.Random(seed)
    counts = {d.name: sum(1 for _ in d.iterdir()) for d in sorted(lfw.iterdir()) if d.is_dir()}
    residents = rng.sample(sorted(n for n, c in counts.items() if c >= 4), (people * 4 + 6) // 7)
    strangers = rng.sample(sorted(n for n in counts if n not in residents), people - len(residents))
    visitors = [{"name": n, "enrolled": True, "photo": 4} for n in residents]
    visitors += [{"name": n, "enrolled": False, "photo": 1} for n in strangers]
    rng.shuffle(visitors)
    first = next(k for k, v in enumerate(visitors) if v["enrolled"])  # start with a resident: the case that failed
    visitors = visitors[first:] + visitors[:first]
    for visitor in visitors:
        visitor["seconds"] = round(rng.uniform(1.0, 2.0), 1)
        visitor["gap"] = round(rng.uniform(0.2, 0.5), 1)
    return visitors


def measure(scene: str, mode: str, faces: int, frames_per_visit: int, plan: list[dict] | None) -> dict:
    from edge import demo
    from edge.config import Config
    from edge.door.loop import DoorLoop
    from edge.enrollment.dataset import build_gallery
    from edge.gallery.search import search
    from edge.gallery.store import Gallery
    from edge.perception.engine import FaceEngine
    from edge.perception.liveness import LivenessChecker

    config = Config()
    if mode == "no recheck":
        door = config.door.model_copy(update={
            "recheck": 60.0,
            "tracker": config.door.tracker.model_copy(update={"lost_frames": 1000, "scale_jump": 10.0, "jump": 10.0}),
        })
    elif mode == "whole frames":
        door = config.door.model_copy(update={"motion": config.door.motion.model_copy(update={"near_tracks": False})})
    elif mode == "no motion gate":
        door = config.door.model_copy(update={"motion": config.door.motion.model_copy(update={"enabled": False})})
    else:
        door = config.door
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if scene == "queue":
            import scenes

            people = work / "people"
            for visitor in plan:
                if visitor["enrolled"]:
                    (people / visitor["name"]).mkdir(parents=True)
                    for number in (1, 2, 3):
                        shutil.copy(LFW / visitor["name"] / f"{visitor['name']}_{number:04d}.jpg", people / visitor["name"])
            queue = scenes.Scene()
            for visitor in plan:
                queue.step(visitor["seconds"], scenes.Walk(scenes.lfw_person(LFW, visitor["name"], visitor["photo"])))
                queue.step(visitor["gap"])
            queue.step(2.5)  # the last one leaves for good
            frames = list(queue.frames())
            starts = queue.starts()[:-1][::2]  # each visitor's first frame (a gap after each, the last one longer)
            shots = queue.shots
        elif scene == "idle":
            import scenes
            from edge.frames import Frame

            people = demo.write_dataset(work / "people")
            portrait = demo._fit(cv2.imread(str(demo.samples_dir() / "obama3.jpg")), 400, demo.PORTRAIT_HEIGHT)
            images = [scenes.empty_doorway(i, light=0.4 * i) for i in range(IDLE_FRAMES + VISIT_FRAMES)]
            for image in images[IDLE_FRAMES:]:
                demo._paste(image, portrait, 320, 240)
            frames = [Frame(image, i / 10.0, i) for i, image in enumerate(images)]
            starts = [IDLE_FRAMES]
        else:
            people = demo.write_dataset(work / "people")
            frames_dir = demo.write_frames(work / "frames", frames_per_visit=frames_per_visit, faces_per_frame=faces)
            from edge.adapters.camera import FolderSource

            with FolderSource(frames_dir) as source:
                frames = []
                while (frame := source.read()) is not None:
                    frames.append(frame)
            starts = [0, frames_per_visit + 30]  # demo.write_frames: each visit, then 30 empty frames
        build_gallery(people, work / "gallery", config.recognition, dtype=config.gallery.dtype, workers=1,
                      match_threshold=config.search.match_threshold)
        gallery = Gallery.open(work / "gallery")
        engine = FaceEngine.open(config.recognition)
        events: list[tuple[int, float, object]] = []
        states: dict[int, tuple[str, ...]] = {}
        current = [0]

        class Recorder:
            def publish_event(self, event):
                events.append((current[0], time.perf_counter(), event))

            def publish_state(self, state):
                states[current[0]] = tuple(state.present)

            def publish_camera(self, status):
                pass

            def publish_enrollment(self, message):
                pass

            def publish_problem(self, problem):
                pass

            def publish_people(self, people):
                pass

        # Liveness as the config says (on by default: each matched face scored; see benchmarks/liveness.py).
        liveness = LivenessChecker.open(config.recognition) if door.liveness else None
        loop = DoorLoop(engine, gallery, Recorder(), door, config.search.match_threshold, liveness=liveness)
        # Load-time work (first allocations, numba's compilation on a fresh checkout) is not part of the loop.
        for frame in frames:
            found = engine.detect(frame.image)
            if found:
                search(gallery, engine.embed(frame.image, found), k=2)
                break
        started_at: dict[int, float] = {}
        cpu_per_frame: list[float] = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for frame in frames:
            current[0] = frame.index
            started_at[frame.index] = time.perf_counter()
            cpu_per_frame.append(time.process_time())
            if mode == "every frame":
                found = engine.detect(frame.image)
                if found:
                    search(gallery, engine.embed(frame.image, found), k=1)
            else:
                loop.process(frame)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        cpu_per_frame = list(np.diff([*cpu_per_frame, cpu0 + cpu]))
        gallery.close()
    result = {
        "scene": scene, "mode": mode, "faces": faces, "frames": len(frames), "fps": round(len(frames) / wall, 2),
        "cpu_use": round(cpu / wall, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if mode == "every frame":
        return result
    if scene == "idle":
        empty, person = cpu_per_frame[:IDLE_FRAMES], cpu_per_frame[IDLE_FRAMES:]
        result["cpu_ms_per_frame_empty"] = round(1000 * sum(empty) / len(empty), 2)
        result["cpu_ms_per_frame_person"] = round(1000 * sum(person) / len(person), 2)
    timeline = [{"frame": index, "event": event.event_type, "name": event.name, "track": event.track_id,
                 "visit": max(k for k, s in enumerate(starts) if s <= index),
                 "ms": round((at - started_at[max(s for s in starts if s <= index)]) * 1000, 1)}
                for index, at, event in events]
    for item in timeline:
        item["frames"] = item["frame"] - starts[item["visit"]] + 1
    result["events"] = timeline
    if scene == "queue":
        result["people"] = judge_queue(plan, timeline)
        present, shown = (), []
        for index in range(len(frames)):
            present = states.get(index, present)
            shown.append(present)
        stale = [i for i in range(len(frames)) if any(n not in shots[i] for n in shown[i])]
        result["present_wrong_while_someone_in_view"] = sum(1 for i in stale if shots[i])
        result["present_after_leaving"] = sum(1 for i in stale if not shots[i])  # the track's gap: normal
    return result


def judge_queue(plan: list[dict], timeline: list[dict]) -> list[dict]:
    """Per visitor: their events (those made during their visit or the gap after it), and a verdict."""
    judged = []
    for k, visitor in enumerate(plan):
        mine = [e for e in timeline if e["visit"] == k]
        expected = ("recognized", visitor["name"]) if visitor["enrolled"] else ("unknown", None)
        right = [e for e in mine if (e["event"], e["name"]) == expected]
        if not mine:
            verdict = "missed"
        elif len(right) != len(mine):
            verdict = "wrong"
        else:
            verdict = "right" if len(mine) == 1 else "repeated"
        judged.append({"name": visitor["name"], "enrolled": visitor["enrolled"], "verdict": verdict,
                       "events": [(e["event"], e["name"]) for e in mine],
                       "latency_frames": mine[0]["frames"] if mine else None,
                       "latency_ms": mine[0]["ms"] if mine else None})
    return judged


def events_text(result: dict) -> str:
    """A run's events as 'recognized obama after 3 fr / 68 ms; ...', or '-'."""
    return "; ".join(f"{e['event']} {e['name'] or ''} after {e['frames']} fr / {e['ms']:.0f} ms".replace("  ", " ")
                     for e in result.get("events", [])) or "-"


def run_one(args: list[str], code: Path) -> dict:
    """One measurement in a process of its own, importing edge from ``code``."""
    done = subprocess.run([sys.executable, __file__, "--one", *args, "--code", str(code)],
                          capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(args)} failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-visit", type=int, default=40)
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--people", type=int, default=14, help="people in the queue scene (needs LFW)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--before", help="also run the door code of this git revision (e.g. HEAD~3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the walk scenes (median shown)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=REPO, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        sys.path.insert(0, str(REPO / "tests"))
        sys.path.insert(0, str(args.code))  # the edge package measured: this checkout or --before's worktree
        scene, mode, faces = args.one
        plan = json.loads(args.plan) if args.plan else None
        print(json.dumps(measure(scene, mode, int(faces), args.frames_per_visit, plan)))
        return 0

    sys.path.insert(0, str(REPO))
    from benchmarks.machine import checkout, environment, format_table, header

    env = environment()
    plan = queue_plan(LFW, args.people, args.seed) if (LFW / "pairs.csv").is_file() else None
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        codes = {"": REPO}
        if args.before:
            codes[f"before ({args.before})"] = stack.enter_context(checkout(args.before, Path(scratch) / "before"))
        runs = []
        for label, code in codes.items():
            modes = ("tracked",) if label else WALK_MODES  # the old code has no re-check to turn off
            runs += [(label or "now", code, "walk", mode, faces) for faces in args.faces for mode in modes]
        walks: dict[tuple, list[dict]] = {}
        for round_ in range(1, args.rounds + 1):  # alternating, so a busy moment does not favour one
            for label, code, scene, mode, faces in runs:
                print(f"round {round_}: {label}: {scene}, {mode}, {faces} face(s) ...", file=sys.stderr, flush=True)
                result = run_one([scene, mode, str(faces), "--frames-per-visit", str(args.frames_per_visit)], code)
                walks.setdefault((label, mode, faces), []).append(result)
        results = []
        for (label, _, _), rounds in walks.items():
            middle = sorted(rounds, key=lambda r: r["fps"])[len(rounds) // 2]  # the median round
            results.append({**middle, "code": label, "fps_rounds": [r["fps"] for r in rounds]})
        for label, code in codes.items():
            for mode in (("tracked",) if label else ("tracked", "no motion gate")):
                print(f"{label or 'now'}: idle, {mode} ...", file=sys.stderr, flush=True)
                result = run_one(["idle", mode, "1"], code)
                results.append({**result, "code": label or "now"})
            if plan is not None:
                print(f"{label or 'now'}: queue ...", file=sys.stderr, flush=True)
                result = run_one(["queue", "tracked", "1", "--plan", json.dumps(plan)], code)
                results.append({**result, "code": label or "now"})
    print(header(env, "Door loop: throughput, latency, and a queue at the door"))
    print(f"walk:     640x480 frames; an enrolled person then a stranger walk past ({args.frames_per_visit} frames "
          f"each, 30 empty frames after each); default config, 2 threads; fps: median of {args.rounds} rounds\n")
    rows = []
    for r in results:
        if r["scene"] != "walk":
            continue
        latency = events_text(r)
        rows.append([r["code"], r["mode"], str(r["faces"]), str(r["frames"]), f"{r['fps']:.1f}",
                     " ".join(f"{f:.1f}" for f in r["fps_rounds"]), f"{r['cpu_use']:.2f}", f"{r['peak_rss_mib']:.0f}",
                     latency])
    print(format_table(["code", "mode", "faces", "frames", "fps", "fps by round", "cpu", "RSS MiB",
                        "events (frames / processing ms from visit start)"], rows))
    rows = []
    for r in results:
        if r["scene"] != "idle":
            continue
        latency = events_text(r)
        rows.append([r["code"], r["mode"], f"{r['cpu_ms_per_frame_empty']:.2f}", f"{r['cpu_ms_per_frame_person']:.2f}",
                     f"{100 * r['cpu_ms_per_frame_empty'] / r['cpu_ms_per_frame_person']:.1f}%", latency])
    if rows:
        print(f"\nidle:     {IDLE_FRAMES} frames of an empty doorway (sensor noise, light rising 4 grey levels a "
              f"second), then {VISIT_FRAMES} with Obama; process CPU ms per frame")
        print(format_table(["code", "mode", "empty", "person", "empty/person", "first event from his first frame"], rows))
    for r in results:
        if r["scene"] != "queue":
            continue
        people = r["people"]
        verdicts = {v: sum(p["verdict"] == v for p in people) for v in ("right", "missed", "wrong", "repeated")}
        print(f"\nqueue, code {r['code']}: {len(people)} people (seed {args.seed}), {r['frames']} frames, "
              f"{r['fps']:.1f} fps: right {verdicts['right']}, missed {verdicts['missed']}, wrong {verdicts['wrong']}, "
              f"repeated {verdicts['repeated']}.\nFrames whose `present` named someone not in view: "
              f"{r['present_wrong_while_someone_in_view']} while someone else stood there, "
              f"{r['present_after_leaving']} with the doorway empty (within the track's gap after they left)")
        rows = [[p["name"], "yes" if p["enrolled"] else "no", p["verdict"],
                 ", ".join(f"{t} {n or ''}".strip() for t, n in p["events"]) or "-",
                 "-" if p["latency_frames"] is None else f"{p['latency_frames']} fr / {p['latency_ms']:.0f} ms"]
                for p in people]
        print(format_table(["person", "enrolled", "verdict", "events", "latency"], rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "plan": plan, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
