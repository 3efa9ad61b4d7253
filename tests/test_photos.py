"""Photo batches (edge.perception.photos): how they use the machine, and that
spreading them over processes changes no result."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES
from edge.perception.photos import (
    PHOTOS_PER_PROCESS, WORKER_MEMORY_MIB, BatchPlan, WorkerDied, batch_plan, embed_photos, usable_cores,
)
from edge.perception.settings import MAX_THREADS, RecognitionSettings

BIG = 10_000  # photos: enough for a process per core on any machine below


@pytest.mark.parametrize("cores", [2, 4, 8])
def test_a_big_batch_takes_a_process_per_core(cores):
    assert batch_plan(BIG, cores) == BatchPlan(processes=cores, threads=1)


@pytest.mark.parametrize("cores", [2, 4, 8])
def test_a_small_batch_runs_here_on_every_core(cores):
    assert batch_plan(1, cores) == BatchPlan(1, cores)
    assert batch_plan(2 * PHOTOS_PER_PROCESS - 1, cores) == BatchPlan(1, cores)
    assert batch_plan(2 * PHOTOS_PER_PROCESS, cores) == BatchPlan(2, cores // 2)


def test_fewer_processes_than_cores_divide_them():
    assert batch_plan(3 * PHOTOS_PER_PROCESS, 8) == BatchPlan(2, 4)  # not 3 x 2: two cores idle
    assert batch_plan(5 * PHOTOS_PER_PROCESS, 8) == BatchPlan(4, 2)
    assert batch_plan(5 * PHOTOS_PER_PROCESS, 6) == BatchPlan(3, 2)


@pytest.mark.parametrize("cores", [2, 4, 8])
def test_workers_set_the_processes_and_the_cores_are_split_among_them(cores):
    assert batch_plan(BIG, cores, workers=1) == BatchPlan(1, cores)
    assert batch_plan(BIG, cores, workers=2) == BatchPlan(2, cores // 2)
    assert batch_plan(3, cores, workers=16) == BatchPlan(3, max(1, cores // 3))  # no more than photos
    assert batch_plan(BIG, 8, workers=3) == BatchPlan(3, 2)  # 6 of 8 cores rather than 9 threads on 8


def test_no_more_workers_than_the_memory_holds_nor_than_one_device_takes():
    assert batch_plan(BIG, 8, memory_mib=4.5 * WORKER_MEMORY_MIB) == BatchPlan(4, 2)
    assert batch_plan(BIG, 8, memory_mib=3.5 * WORKER_MEMORY_MIB) == BatchPlan(2, 4)
    assert batch_plan(BIG, 4, memory_mib=WORKER_MEMORY_MIB / 2) == BatchPlan(1, 4)
    assert batch_plan(BIG, 8, delegate="edgetpu") == BatchPlan(1, 8)
    assert batch_plan(BIG, 8, workers=4, delegate="gpu") == BatchPlan(1, 8)


def test_never_more_threads_than_cores_and_all_cores_used_unless_workers_say_otherwise():
    for cores in range(1, 65):
        for photos in (1, 2, 31, 32, 64, 100, 1000, 5000):
            plan = batch_plan(photos, cores)
            assert 1 <= plan.processes <= cores and 1 <= plan.threads <= MAX_THREADS
            assert plan.processes * plan.threads == min(cores, plan.processes * MAX_THREADS)
            for workers in (1, 3, 64):
                plan = batch_plan(photos, cores, workers)
                assert plan.processes == min(workers, photos) and 1 <= plan.threads <= MAX_THREADS
                assert plan.processes * plan.threads <= max(cores, plan.processes)


def test_usable_cores_are_this_process_s_cpus():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cores() == expected


def _photos(folder: Path) -> list[str]:
    names = ["obama.jpg", "biden.jpg", "obama2.jpg", "obama3.jpg"]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    cv2.imwrite(str(folder / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    paths = []
    for i in range(12):
        name = names[i % len(names)]
        shutil.copy(FACES / name, folder / f"{i:02d}_{name}")
        paths.append(str(folder / f"{i:02d}_{name}"))
    return [*paths[:5], str(folder / "broken.jpg"), *paths[5:], str(folder / "blank.png"), str(folder / "absent.jpg")]


def _same(a, b) -> bool:
    def arrays_equal(x, y):
        return (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))

    return (a.path == b.path and a.box == b.box and a.score == b.score and a.error == b.error
            and a.faces_found == b.faces_found and arrays_equal(a.embedding, b.embedding)
            and len(a.faces) == len(b.faces)
            and all(f.box == g.box and f.score == g.score and np.array_equal(f.embedding, g.embedding)
                    for f, g in zip(a.faces, b.faces)))


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["main", "every"])
def test_worker_processes_give_the_same_results_in_the_same_order(tmp_path, rule):
    paths = _photos(tmp_path)
    here = list(embed_photos(paths, RecognitionSettings(), workers=1, rule=rule))
    spread = list(embed_photos(paths, RecognitionSettings(), workers=3, rule=rule))
    assert [r.path for r in spread] == paths
    assert all(_same(a, b) for a, b in zip(here, spread))
    assert "truncated image" in spread[5].error and "no such file" in spread[-1].error
    if rule == "every":  # a photo without a face has none, and no error
        assert [len(r.faces) for r in spread[:2]] == [1, 1] and spread[-2].faces == () and spread[-2].error is None
    else:
        assert "no face found" in spread[-2].error


@pytest.mark.slow
def test_a_bad_models_folder_in_the_workers_is_one_line(tmp_path):
    settings = RecognitionSettings(models_dir=tmp_path)
    from edge.perception.litert import ModelError

    with pytest.raises(ModelError, match="no model manifest"):
        list(embed_photos(_photos(tmp_path), settings, workers=2))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_ends_the_batch_with_one_line(tmp_path):
    from test_hostile_files_slow import children_of

    paths = _photos(tmp_path) * 20
    results = embed_photos(paths, RecognitionSettings(), workers=2)
    next(results)  # the workers are up
    for worker in children_of(os.getpid()):
        if b"spawn_main" in Path(f"/proc/{worker}/cmdline").read_bytes():
            os.kill(worker, signal.SIGKILL)
            break
    with pytest.raises(WorkerDied, match=r"a worker process died after \d+ of 300 photos"):
        list(results)
