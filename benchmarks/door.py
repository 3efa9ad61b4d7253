"""The door loop's throughput and latency, against recognizing every face in every frame.

Scenes are made from the bundled photos (edge.demo): 640x480 frames in
which an enrolled person (Obama) and then a stranger (Biden) walk past,
with 1 or 3 copies of the visitor per frame, and empty frames between visits.
Two ways of running the same frames, each in its own process (so peak RSS
and CPU time are its own):

- ``tracked``: edge.door.loop.DoorLoop (detect, track, match each track
  until it is decided, decide once per visit);
- ``every frame``: detect, align, embed and search every face of every frame
  (what the classic webcam scripts do), no tracking or decision.

Reported: frames per second of processing (frames are fed as fast as they
are processed), CPU use (process CPU seconds per wall second; 2.0 = both
cores busy), peak RSS (of the whole measuring process, which also builds
the small gallery with an engine of its own), and for ``tracked`` the latency from the start of a
visit's first frame to its event, in processing milliseconds and in frames
(multiply by the camera's frame interval for the latency at a live camera).

    .venv/bin/python benchmarks/door.py [--frames-per-visit 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import environment, format_table, header  # noqa: E402

MODES = ("tracked", "every frame")


def measure(mode: str, faces: int, frames_per_visit: int) -> dict:
    from edge import demo
    from edge.adapters.camera import FolderSource
    from edge.config import Config
    from edge.door.loop import DoorLoop
    from edge.enrollment.dataset import build_gallery
    from edge.gallery.search import search
    from edge.gallery.store import Gallery
    from edge.perception.engine import FaceEngine

    config = Config()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        build_gallery(demo.write_dataset(work / "people"), work / "gallery", config.recognition,
                      dtype=config.gallery.dtype, workers=1, match_threshold=config.search.match_threshold)
        frames_dir = demo.write_frames(work / "frames", frames_per_visit=frames_per_visit, faces_per_frame=faces)
        visit_starts = [0, frames_per_visit + 30]  # demo.write_frames: each visit, then 30 empty frames
        gallery = Gallery.open(work / "gallery")
        engine = FaceEngine.open(config.recognition)
        with FolderSource(frames_dir) as source:
            frames = []
            while (frame := source.read()) is not None:
                frames.append(frame)
        events: list[tuple[int, float, dict]] = []

        class Recorder:
            def publish_event(self, event):
                events.append((current[0], time.perf_counter(), event))

            def publish_state(self, state):
                pass

            def publish_camera(self, status):
                pass

            def publish_enrollment(self, message):
                pass

            def publish_problem(self, problem):
                pass

        current = [0]
        loop = DoorLoop(engine, gallery, Recorder(), config.door, config.search.match_threshold)
        engine.detect(frames[0].image)  # load-time work (first allocation) is not part of the loop
        started_at: dict[int, float] = {}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for frame in frames:
            current[0] = frame.index
            started_at[frame.index] = time.perf_counter()
            if mode == "tracked":
                loop.process(frame)
            else:
                found = engine.detect(frame.image)
                if found:
                    search(gallery, engine.embed(frame.image, found), k=1)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        gallery.close()
    result = {
        "mode": mode, "faces": faces, "frames": len(frames), "fps": round(len(frames) / wall, 2),
        "cpu_use": round(cpu / wall, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if mode == "tracked":
        latencies = []
        for index, at, event in events:
            start = max(s for s in visit_starts if s <= index)
            latencies.append({"event": event.event_type, "name": event.name,
                              "frames": index - start + 1, "ms": round((at - started_at[start]) * 1000, 1)})
        result["events"] = latencies
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-visit", type=int, default=40)
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.frames_per_visit)))
        return 0
    env = environment()
    results = []
    for faces in args.faces:
        for mode in MODES:
            print(f"{mode}, {faces} face(s) ...", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, __file__, "--one", mode, str(faces),
                                   "--frames-per-visit", str(args.frames_per_visit)], capture_output=True, text=True)
            try:
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            except (IndexError, json.JSONDecodeError):
                print(done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{mode}, {faces} face(s) failed")
    print(header(env, "Door loop: throughput and latency"))
    print("scene:    640x480 frames; an enrolled person then a stranger walk past "
          f"({args.frames_per_visit} frames each, 30 empty frames after each); default config, 2 threads\n")
    rows = []
    for r in results:
        latency = "; ".join(f"{e['event']} {e['name'] or ''} after {e['frames']} fr / {e['ms']:.0f} ms".replace("  ", " ")
                            for e in r.get("events", [])) or "-"
        rows.append([r["mode"], str(r["faces"]), str(r["frames"]), f"{r['fps']:.1f}", f"{r['cpu_use']:.2f}",
                     f"{r['peak_rss_mib']:.0f}", latency])
    print(format_table(["mode", "faces", "frames", "fps", "cpu", "RSS MiB", "events (frames / processing ms from visit start)"], rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
