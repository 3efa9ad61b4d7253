"""Cost of the liveness stage per face: each model set, 1 and 2 threads, both models and each alone.

The frame is benchmarks/speed.py's: 640x480 BGR with one face about 75 px
wide. Its box is found once (FaceEngine, float32); then
LivenessChecker.check(frame, boxes) is timed (the crops, one batched call
per model, the softmax) with that one box, and with 4 boxes (the box and
three copies shifted by a few pixels: four faces in one frame, one batch);
rows of set "crops" time the crops alone (cutting and resizing, OpenCV on
one thread), which is part of every other row.

The machine may be shared: configurations are timed in turn, ``--rounds``
times ``--calls`` calls each, so that a burst of other work hits all of them
alike. Reported per configuration: the median wall time over all its calls,
the range (lowest to highest) of its per-round medians, and the median CPU
time of the process per call (all threads; unlike the wall time it does not
grow when other work takes the cores, which on a busy machine hits longer
calls more: they are more often preempted). Per face = per call / number of
boxes.

    .venv/bin/python benchmarks/liveness_cost.py
    .venv/bin/python benchmarks/liveness_cost.py --model-sets float32 --threads 1 --rounds 3 --json cost.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.machine import environment, format_table, header  # noqa: E402
from benchmarks.speed import make_frame  # noqa: E402

ALL_SETS = ("float32", "float16", "int8")
ALL_MODELS = ("both", "v2", "v1se")
FACE_COUNTS = (1, 4)
CROPS = "crops"
"""The pseudo model set of the rows that time the crops alone."""


def face_boxes(frame: np.ndarray, models_dir: Path | None) -> list:
    """The frame's main face box, and three copies of it shifted by (4, 0), (0, 4) and (-4, -4) pixels."""
    from edge.perception.engine import FaceEngine
    from edge.perception.settings import RecognitionSettings
    from edge.perception.subject import main_face

    with FaceEngine.open(RecognitionSettings(model_set="float32", models_dir=models_dir)) as engine:
        face = main_face(engine.detect(frame), frame.shape[1], frame.shape[0])
    if face is None:
        raise RuntimeError("no face found in the benchmark frame")
    return [face.box.shifted(dx, dy) for dx, dy in ((0, 0), (4, 0), (0, 4), (-4, -4))]


def open_checker(model_set: str, threads: int, models: str, models_dir: Path | None):
    from edge.perception.liveness import LivenessChecker
    from edge.perception.settings import LivenessSettings, RecognitionSettings, RuntimeSettings

    return LivenessChecker.open(RecognitionSettings(
        models_dir=models_dir, runtime=RuntimeSettings(num_threads=threads),
        liveness=LivenessSettings(model_set=model_set, models=models)))


def measure(configs: list[tuple], frame: np.ndarray, boxes: list, args: argparse.Namespace) -> list[dict]:
    """Time every configuration (model set, threads, models, faces) in ``args.rounds`` interleaved rounds.

    Model set "crops" times LivenessChecker.crops alone (the cutting and resizing, no model run).
    """
    checkers = {}
    for model_set, threads, models, _ in configs:
        key = (model_set, threads, models)
        if key not in checkers:
            checkers[key] = open_checker("float32" if model_set == CROPS else model_set, threads, models,
                                         args.models_dir)

    def call(config: tuple) -> None:
        checker, faces = checkers[config[:3]], boxes[: config[3]]
        if config[0] == CROPS:
            checker.crops(frame, faces)
        else:
            checker.check(frame, faces)

    try:
        calls: dict[tuple, list[list[float]]] = {config: [] for config in configs}
        cpu: dict[tuple, list[float]] = {config: [] for config in configs}
        for config in configs:  # warm-up: every batch shape prepared once before timing
            for _ in range(args.warmup):
                call(config)
        for _ in range(args.rounds):
            for config in configs:
                times = []
                for _ in range(args.calls):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    call(config)
                    times.append((time.perf_counter() - start) * 1000)
                    cpu[config].append((time.process_time() - start_cpu) * 1000)
                calls[config].append(times)
    finally:
        for checker in checkers.values():
            checker.close()
    results = []
    for (model_set, threads, models, faces), rounds in calls.items():
        every = np.concatenate(rounds)
        medians = [float(np.median(r)) for r in rounds]
        results.append({
            "model_set": model_set, "threads": threads, "models": models, "faces": faces,
            "median_ms": round(float(np.median(every)), 4),
            "round_medians_ms": [round(m, 4) for m in medians],
            "per_face_ms": round(float(np.median(every)) / faces, 4),
            "cpu_median_ms": round(float(np.median(cpu[(model_set, threads, models, faces)])), 4),
        })
    return results


def table(results: list[dict]) -> str:
    headers = ["set", "thr", "models", "faces", "per call ms (median)", "round medians ms", "per face ms",
               "CPU ms per call"]
    rows = [[r["model_set"], str(r["threads"]), r["models"], str(r["faces"]), f"{r['median_ms']:.3f}",
             f"{min(r['round_medians_ms']):.3f} - {max(r['round_medians_ms']):.3f}", f"{r['per_face_ms']:.3f}",
             f"{r['cpu_median_ms']:.3f}"]
            for r in results]
    return format_table(headers, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-sets", default=",".join(ALL_SETS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default: %(default)s)")
    parser.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all configurations")
    parser.add_argument("--calls", type=int, default=100, help="timed calls per configuration and round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per configuration first")
    parser.add_argument("--models-dir", type=Path, help="folder with the .tflite files (default: the engine's)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import cv2

    args = parse_args(argv)
    sets = [s for s in args.model_sets.split(",") if s]
    threads = [int(t) for t in args.threads.split(",") if t]
    models = [m for m in args.models.split(",") if m]
    configs = list(itertools.product(sets, threads, models, FACE_COUNTS))
    configs += list(itertools.product([CROPS], [1], models, FACE_COUNTS))
    env = environment()
    cv2.setNumThreads(1)  # the crops' resizes: a few 80x80 images, not worth more threads
    frame = make_frame()
    boxes = face_boxes(frame, args.models_dir)
    results = measure(configs, frame, boxes, args)
    box = boxes[0]
    print(header(env, "Liveness cost per face"))
    print(f"frame:    benchmarks/speed.py's 640x480 frame; face box {box.width:.0f}x{box.height:.0f} px; "
          f"4 faces = that box and 3 copies shifted by 4 px, in one batch")
    print(f"method:   LivenessChecker.check timed; {args.rounds} rounds over all configurations, {args.calls} calls "
          f"each per round after {args.warmup} warm-up calls; wall time: median over all calls, range of the round "
          f"medians; CPU: median process CPU time per call, all threads")
    print()
    print(table(results))
    if args.json:
        document = {"environment": env, "rounds": args.rounds, "calls": args.calls, "warmup": args.warmup,
                    "face_box": box.as_list(), "results": results}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
