"""Face detection time per frame, this checkout against an older revision, on issue 14's frame.

The frame: 640x480 BGR, a grey vertical gradient (benchmarks/speed.py's)
with one 250x250 LFW photo pasted in the centre (``--photo``, default
Aaron_Eckhart/Aaron_Eckhart_0001.jpg): one face about 120 px, as a door
camera sees a visitor. LFW is read where it is (../shared/data/lfw).

Codes: this checkout, and with ``--before REV`` the code of git revision REV
(checked out into a temporary worktree). Rounds alternate between the codes,
each measurement in a fresh process, so that a busy moment on a shared
machine does not favour one: open FaceEngine at the default settings (model
set and threads as given), detect once (cold: numba's cache load, the first
interpreters), ``--warmup`` frames, then ``--frames`` timed frames of

- detect: FaceEngine.detect (time.perf_counter, milliseconds);
- whole: detect, then align and embed the main face (the issue's "whole frame");
- cpu: process CPU time per detect (all threads; the work done, whatever the
  machine's load).

Reported per code: the median over rounds of each round's median, the range
of the rounds' medians, the peak RSS of the process (median over rounds),
and the faces found (count and main box), which must be the same for every code.

With ``--reference``, OpenCV's YuNet + SFace (benchmarks/reference.py) takes
part in the rounds too, timed the same way (detect: FaceDetectorYN; whole:
detect, the face nearest the centre, alignCrop, feature), for issue 14's
yardstick: edge's whole frame against the reference's.

    .venv/bin/python benchmarks/detect_speed.py --before main --rounds 7 --reference
    .venv/bin/python benchmarks/detect_speed.py --min-face-size 60 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw"
PHOTO = "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


def time_frames(frames: int, detect, rest) -> dict:
    """Median milliseconds over ``frames`` calls: detect (wall), the whole frame (detect, then
    ``rest`` on detect's result: align and embed the main face) and detect's process CPU time."""
    detect_s, whole_s, cpu_s = [], [], []
    for _ in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        found = detect()
        t1, c1 = time.perf_counter(), time.process_time()
        rest(found)
        t2 = time.perf_counter()
        detect_s.append(t1 - t0)
        whole_s.append(t2 - t0)
        cpu_s.append(c1 - c0)
    return {name: 1000 * float(np.median(values))
            for name, values in (("detect_ms", detect_s), ("whole_ms", whole_s), ("cpu_ms", cpu_s))}


def measure(args: argparse.Namespace) -> dict:
    """One round for the code on sys.path (or the reference), in this process."""
    import cv2

    cv2.setNumThreads(args.threads)
    frame = cv2.imread(str(args.frame), cv2.IMREAD_COLOR)
    if args.code is None:
        return measure_reference(args, frame)

    from edge.perception.engine import FaceEngine
    from edge.perception.settings import DetectorSettings, RecognitionSettings, RuntimeSettings
    from edge.perception.subject import main_face

    settings = RecognitionSettings(
        model_set=args.model_set,
        runtime=RuntimeSettings(num_threads=args.threads),
        detector=DetectorSettings(min_face_size=args.min_face_size),
    )
    engine = FaceEngine.open(settings)
    start = time.perf_counter()
    faces = engine.detect(frame)
    cold = time.perf_counter() - start
    face = main_face(faces, frame.shape[1], frame.shape[0])
    if face is None:
        raise RuntimeError("no face found in the benchmark frame")
    for _ in range(args.warmup):
        engine.detect(frame)
    times = time_frames(args.frames, lambda: engine.detect(frame),
                        lambda found: engine.embed(frame, [main_face(found, frame.shape[1], frame.shape[0])]))
    return {
        **times,
        "cold_ms": 1000 * cold,
        "faces": len(faces),
        "box": [round(v, 2) for v in face.box.as_list()],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_reference(args: argparse.Namespace, frame: np.ndarray) -> dict:
    """One round of OpenCV's YuNet + SFace on ``frame``, timed as measure() times edge."""
    sys.path.insert(0, str(REPO))
    from benchmarks.reference import ReferencePipeline, reference_models

    pipeline = ReferencePipeline(reference_models())
    start = time.perf_counter()
    faces = pipeline.detect(frame)
    cold = time.perf_counter() - start
    for _ in range(args.warmup):
        pipeline.detect(frame)
    times = time_frames(args.frames, lambda: pipeline.detect(frame), lambda found: pipeline.feature(
        pipeline.align(frame, pipeline.main_face(found, frame.shape[1], frame.shape[0]))))
    x, y, w, h = (float(v) for v in pipeline.main_face(faces, frame.shape[1], frame.shape[0])[:4])
    return {
        **times,
        "cold_ms": 1000 * cold,
        "faces": len(faces),
        "box": [round(v, 2) for v in (x, y, x + w, y + h)],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_one(code: Path | None, argv: list[str]) -> dict:
    """measure() in a fresh process importing edge from ``code`` (None: the reference)."""
    where = ["--code", str(code)] if code is not None else []
    done = subprocess.run([sys.executable, __file__, *argv, "--one", *where], capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"the measurement of {code} failed") from None


def summary(label: str, rounds: list[dict]) -> list[str]:
    cells = [label]
    for key in ("detect_ms", "whole_ms", "cpu_ms"):
        values = sorted(r[key] for r in rounds)
        cells.append(f"{np.median(values):.2f} ({values[0]:.2f}-{values[-1]:.2f})")
    last = rounds[-1]
    # The median: a fresh --before worktree's first round compiles the numba kernels (some 35 MiB more).
    cells += [f"{np.median([r['peak_rss_mib'] for r in rounds]):.0f}", str(last["faces"]),
              " ".join(f"{v:.1f}" for v in last["box"])]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="also measure the code of this git revision (e.g. main, HEAD~2)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per code (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=50, help="timed frames per round (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames after the first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT and OpenCV threads (default: %(default)s)")
    parser.add_argument("--model-set", default="float16", help="default: %(default)s")
    parser.add_argument("--min-face-size", type=float, default=20.0, help="pixels (default: %(default)s)")
    parser.add_argument("--photo", default=PHOTO, help="LFW photo, relative to --lfw (default: %(default)s)")
    parser.add_argument("--lfw", type=Path, default=LFW, help="LFW folder (default: %(default)s)")
    parser.add_argument("--reference", action="store_true", help="also OpenCV's YuNet + SFace (see above)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every round to FILE")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--frame", type=Path, help=argparse.SUPPRESS)  # the frame, as a PNG file
    args = parser.parse_args(argv)
    if args.one:
        if args.code is not None:
            sys.path.insert(0, str(args.code))  # the edge package measured: this checkout or --before's worktree
        print(json.dumps(measure(args)))
        return 0

    sys.path.insert(0, str(REPO))
    import cv2

    from benchmarks.machine import checkout, environment, format_table, header
    from benchmarks.speed import FRAME_SIZE, paste_centred  # this checkout's, also for --before's rounds

    env = environment()
    if args.reference:
        from benchmarks.reference import reference_models

        reference_models()  # fetch the wheel once, before the rounds
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        frame = Path(scratch) / "frame.png"
        cv2.imwrite(str(frame), paste_centred(args.lfw / args.photo))
        forwarded = ["--frames", str(args.frames), "--warmup", str(args.warmup), "--threads", str(args.threads),
                     "--model-set", args.model_set, "--min-face-size", str(args.min_face_size), "--frame", str(frame)]
        codes: dict[str, Path | None] = {"now": REPO}
        if args.reference:
            codes["opencv-yunet-sface"] = None
        if args.before:
            codes[f"before ({args.before})"] = stack.enter_context(checkout(args.before, Path(scratch) / "before"))
        for round_ in range(1, args.rounds + 1):
            order = list(codes.items())
            if round_ % 2 == 0:
                order.reverse()  # neither code always goes first
            for label, code in order:
                print(f"round {round_}: {label} ...", file=sys.stderr, flush=True)
                results.setdefault(label, []).append(run_one(code, forwarded))
    print(header(env, "Face detection time per frame"))
    print(f"frame:    {FRAME_SIZE[0]}x{FRAME_SIZE[1]} BGR, grey gradient + LFW {args.photo} (250x250) in the centre; "
          f"model set {args.model_set}, min_face_size {args.min_face_size:g}, {args.threads} thread(s)")
    print(f"method:   {args.rounds} alternating rounds per code, each a fresh process: cold frame, {args.warmup} "
          f"warm-up frames, median of {args.frames} frames; shown: median of the rounds (range of the rounds)\n")
    rows = [summary(label, rounds) for label, rounds in results.items()]
    print(format_table(["code", "detect ms", "whole ms", "detect CPU ms", "peak RSS MiB", "faces", "main box"], rows))
    median = {label: {key: float(np.median([r[key] for r in rounds])) for key in ("detect_ms", "whole_ms")}
              for label, rounds in results.items()}
    print()
    for label in results:
        if label.startswith("before"):
            print(f"detect now: {median[label]['detect_ms'] / median['now']['detect_ms']:.2f}x as fast as {label}")
        if label == "opencv-yunet-sface":
            for code in (c for c in results if c != label):
                print(f"whole frame, {code}: {median[code]['whole_ms'] / median[label]['whole_ms']:.2f}x "
                      f"the reference's time")
    boxes = {json.dumps([r["faces"], r["box"]]) for label, rounds in results.items() for r in rounds
             if label != "opencv-yunet-sface"}
    print("faces found by edge: " + ("the same in every round" if len(boxes) == 1 else f"DIFFER: {sorted(boxes)}"))
    print("(ratios of the medians)")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "arguments": forwarded, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
