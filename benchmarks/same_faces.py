#!/usr/bin/env python3
"""Does this checkout's detector find the same faces as an older revision's?

Every photo of LFW (13,233, read where they are: ../shared/data/lfw) and the
680 frames of benchmarks/door.py's scenes (the walk with one and with three
faces, the idle doorway, the queue of 14 LFW people; made once by this
checkout and given to both codes) are searched with FaceEngine.detect by
each code and model set, one process each, the two codes side by side. A
face is its box and score as float32 values; an image counts as identical
when every face of it is, bit for bit, and as the same count when it has as
many faces.

    .venv/bin/python benchmarks/same_faces.py --before 2a97338
    .venv/bin/python benchmarks/same_faces.py --before HEAD~1 --model-sets float16 --no-lfw   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"
QUEUE_PEOPLE, QUEUE_SEED = 14, 11  # benchmarks/door.py's queue


def write_door_frames(folder: Path) -> int:
    """benchmarks/door.py's scenes as PNG files in ``folder``; returns how many."""
    sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]
    import cv2
    import door
    import scenes
    from edge import demo

    folder.mkdir(parents=True)
    images = []
    with tempfile.TemporaryDirectory() as work:
        for faces in (1, 3):
            walk = demo.write_frames(Path(work) / f"walk{faces}", frames_per_visit=40, faces_per_frame=faces)
            images += [cv2.imread(str(path)) for path in sorted(walk.iterdir())]
    portrait = demo._fit(cv2.imread(str(demo.samples_dir() / "obama3.jpg")), 400, demo.PORTRAIT_HEIGHT)
    idle = [scenes.empty_doorway(i, light=0.4 * i) for i in range(door.IDLE_FRAMES + door.VISIT_FRAMES)]
    for image in idle[door.IDLE_FRAMES:]:
        demo._paste(image, portrait, 320, 240)
    images += idle
    if (LFW / "pairs.csv").is_file():
        queue = scenes.Scene()
        for visitor in door.queue_plan(LFW, QUEUE_PEOPLE, QUEUE_SEED):
            queue.step(visitor["seconds"], scenes.Walk(scenes.lfw_person(LFW, visitor["name"], visitor["photo"])))
            queue.step(visitor["gap"])
        queue.step(2.5)
        images += [frame.image for frame in queue.frames()]
    for index, image in enumerate(images):
        cv2.imwrite(str(folder / f"{index:05d}.png"), image)
    return len(images)


def detect_all(code: Path, model_set: str, images: list[str], out: Path) -> None:
    """In this process: the faces of every image by the edge package in ``code``, as JSON in ``out``."""
    sys.path.insert(0, str(code))
    import cv2
    import edge
    from edge.perception.engine import FaceEngine
    from edge.perception.settings import RecognitionSettings, RuntimeSettings

    if not edge.__file__.startswith(str(code)):
        raise RuntimeError(f"edge imported from {edge.__file__}, not {code}")
    engine = FaceEngine.open(RecognitionSettings(model_set=model_set, runtime=RuntimeSettings(num_threads=1)))
    found = {path: [[*face.box.as_list(), face.score] for face in engine.detect(cv2.imread(path))] for path in images}
    out.write_text(json.dumps(found))


def compared(images: list[str], now: dict, before: dict) -> dict:
    return {"images": len(images),
            "faces_now": sum(len(now[k]) for k in images), "faces_before": sum(len(before[k]) for k in images),
            "same_count": sum(len(now[k]) == len(before[k]) for k in images),
            "identical": sum(now[k] == before[k] for k in images)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision to compare with")
    parser.add_argument("--model-sets", default="float16,float32,int8", help="comma-separated (default: all)")
    parser.add_argument("--no-lfw", action="store_true", help="the door frames only")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures to FILE")
    parser.add_argument("--detect", nargs=4, help=argparse.SUPPRESS)  # CODE SET LIST OUT: one code's run
    args = parser.parse_args(argv)
    if args.detect:
        code, model_set, listing, out = args.detect
        detect_all(Path(code), model_set, Path(listing).read_text().splitlines(), Path(out))
        return 0

    sys.path.insert(0, str(REPO))
    from benchmarks.machine import checkout, environment, format_table, header

    env = environment()
    rows, figures = [], []
    with tempfile.TemporaryDirectory(prefix="edge-faces-") as scratch, contextlib.ExitStack() as stack:
        scratch = Path(scratch)
        codes = {"now": REPO, "before": stack.enter_context(checkout(args.before, scratch / "before"))}
        write_door_frames(scratch / "frames")
        frames = sorted(str(path) for path in (scratch / "frames").iterdir())
        photos = [] if args.no_lfw else sorted(str(p) for p in LFW.glob("*/*.jpg"))
        listing = scratch / "images.txt"
        listing.write_text("\n".join(frames + photos))
        for model_set in args.model_sets.split(","):
            print(f"{model_set} ...", file=sys.stderr, flush=True)
            outs = {label: scratch / f"{label}-{model_set}.json" for label in codes}
            runs = [subprocess.Popen([sys.executable, __file__, "--before", args.before, "--detect", str(code),
                                      model_set, str(listing), str(outs[label])]) for label, code in codes.items()]
            if any(run.wait() for run in runs):
                raise RuntimeError(f"a detection run failed ({model_set})")
            now, before = (json.loads(outs[label].read_text()) for label in ("now", "before"))
            for name, images in (("door.py frames", frames), ("LFW photos", photos)):
                if images:
                    figure = {"model_set": model_set, "images_of": name, **compared(images, now, before)}
                    figures.append(figure)
                    rows.append([model_set, name, str(figure["images"]), str(figure["faces_before"]),
                                 str(figure["faces_now"]), str(figure["same_count"]), str(figure["identical"])])
    print(header(env, f"Faces found: this checkout against {args.before}"))
    print(f"method:   FaceEngine.detect at the default settings (1 thread) on each image, each code in its own "
          f"process; a face is its box and score\n")
    print(format_table(["model set", "images of", "images", f"faces {args.before}", "faces now", "same count",
                        "bit-identical"], rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "before": args.before, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
