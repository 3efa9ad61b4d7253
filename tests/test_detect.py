"""The detector cut into pieces finds exactly what it found whole, and what it found before.

MtcnnDetector runs P-Net on bands of pyramid levels and R-Net/O-Net on
chunks of candidates, side by side on lanes (edge.perception.lanes). These
tests hold it to three things: a level's bands give exactly the level's
output map, a crop's R-Net/O-Net output does not depend on its batch, and
the faces found on generated scenes (several lanes or one) are the ones
recorded in tests/fixtures/detections.json with the detector of before
the change (tests/detect_scenes.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detect_scenes import as_rows, scenes
from edge.perception.detect import MtcnnDetector, pnet_bands, pnet_rows
from edge.perception.lanes import Lanes, Nets
from edge.perception.litert import TfliteModel
from edge.perception.modelset import MODEL_SETS, default_models_dir, model_files
from edge.perception.settings import DetectorSettings, RuntimeSettings

RECORDED = Path(__file__).parent / "fixtures" / "detections.json"


def detector(model_set: str, lanes: int, threads: int) -> MtcnnDetector:
    files = model_files(default_models_dir(), model_set)
    runtime = RuntimeSettings(num_threads=threads)
    nets = [Nets(*(TfliteModel(p, runtime) for p in (files.pnet, files.rnet, files.onet))) for _ in range(lanes)]
    return MtcnnDetector(*nets[0], DetectorSettings(), lanes=nets[1:])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(12, 700), st.integers(12, 700)), min_size=0, max_size=12),
       st.integers(1, 9))
def test_bands_cover_each_levels_output_rows_once_in_order(shapes, pieces):
    jobs = pnet_bands(shapes, pieces)
    bands = sorted(band for job in jobs for band in job)
    assert sorted({k for k, _, _ in bands}) == list(range(len(shapes)))
    for k, (height, _) in enumerate(shapes):
        mine = [(start, end) for level, start, end in bands if level == k]
        row = 0
        for i, (start, end) in enumerate(mine):
            assert start == 2 * row  # even, and the next output row
            if i == len(mine) - 1:
                assert end == height  # the last band keeps the level's bottom edge
            else:
                assert (end - start) % 2 == 0 and end < height
            row += pnet_rows(end - start)
        assert row == pnet_rows(height)


def test_bands_make_jobs_of_similar_area():
    shapes = [(288, 384), (205, 273), (145, 194), (103, 137), (73, 98), (52, 69), (37, 49), (26, 35), (19, 25), (14, 18)]
    jobs = pnet_bands(shapes, 4)
    areas = [sum((end - start) * shapes[k][1] for k, start, end in job) for job in jobs]
    assert areas == sorted(areas, reverse=True)
    assert len(jobs) <= 5 and max(areas) < 0.3 * sum(areas)
    assert pnet_bands(shapes, 1) == [[(k, 0, h) for k, (h, _) in enumerate(shapes)]]  # one lane: whole levels


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
def test_bands_give_exactly_the_levels_output_map(model_set):
    pnet = TfliteModel(model_files(default_models_dir(), model_set).pnet, RuntimeSettings(num_threads=1))
    rng = np.random.default_rng(3)
    for height, width in [(288, 384), (205, 273), (145, 194), (103, 137), (31, 40), (14, 18)]:
        level = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 1.0)
        level = level[None].astype(np.float32)
        whole = pnet.run(level)
        for pieces in (2, 3, 7):
            bands = [band for job in pnet_bands([(height, width)], pieces) for band in job]
            parts = [pnet.run(level[:, start:end]) for _, start, end in sorted(bands)]
            for i, out in enumerate(whole):
                assert np.array_equal(np.concatenate([p[i] for p in parts], axis=1), out)


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
def test_uint8_pixels_give_what_float32_pixels_give(model_set):
    files = model_files(default_models_dir(), model_set)
    pixels = np.random.default_rng(4).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    for path, batch in ((files.pnet, pixels[:1, :, :40]), (files.onet, pixels)):
        model = TfliteModel(path, RuntimeSettings(num_threads=1))
        for got, expected in zip(model.run(batch), model.run(batch.astype(np.float32))):
            assert got.dtype == np.float32 and np.array_equal(got, expected)


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
@pytest.mark.parametrize("role, side", [("rnet", 24), ("onet", 48)])
def test_a_crops_output_does_not_depend_on_its_batch(model_set, role, side):
    model = TfliteModel(getattr(model_files(default_models_dir(), model_set), role), RuntimeSettings(num_threads=1))
    crops = np.random.default_rng(5).integers(0, 256, (37, side, side, 3)).astype(np.float32)
    whole = model.run(crops)
    for chunk in (1, 5, 19):
        parts = [model.run(crops[i : i + chunk]) for i in range(0, len(crops), chunk)]
        for i, out in enumerate(whole):
            assert np.array_equal(np.concatenate([p[i] for p in parts]), out)


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
def test_lanes_find_exactly_what_one_lane_finds_and_what_was_recorded(model_set):
    recorded = json.loads(RECORDED.read_text())[model_set]
    whole = detector(model_set, 1, 2)
    for lanes in (2, 3):
        laned = detector(model_set, lanes, 1)
        for name, image in scenes().items():
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            faces = laned.detect(rgb)
            assert faces == whole.detect(rgb), name
            # Recorded on x86-64: another CPU's kernels may round differently, so a little slack.
            rows = np.array(as_rows(faces)).reshape(-1, 15)
            expected = np.array(recorded[name]).reshape(-1, 15)
            assert rows.shape == expected.shape, name
            np.testing.assert_allclose(rows[:, :4], expected[:, :4], atol=0.05, err_msg=name)
            np.testing.assert_allclose(rows[:, 4], expected[:, 4], atol=1e-4, err_msg=name)
            np.testing.assert_allclose(rows[:, 5:], expected[:, 5:], atol=0.05, err_msg=name)
        laned.close()


def test_scenes_have_the_faces_they_were_made_with():
    counts = {name: len(rows) for name, rows in json.loads(RECORDED.read_text())["float32"].items()}
    # The crowd's three smallest portraits hold faces under min_face_size.
    assert counts == {"door": 1, "corner": 2, "crowd": 4, "pair": 2}


def test_lanes_run_every_job_once_in_order_and_pass_errors_on():
    nets = [Nets(*(SimpleNamespace(close=lambda: None, name=f"{net}{i}") for net in "pro")) for i in range(3)]
    lanes = Lanes(nets)  # with stand-ins for the networks, only told apart
    used = []
    out = lanes.map(lambda n, job: used.append(n.pnet.name) or job * job, list(range(50)))
    assert out == [j * j for j in range(50)]
    assert len(used) == 50 and set(used) <= {"p0", "p1", "p2"}
    assert lanes.map(lambda n, job: job, []) == []

    def fail(nets, job):
        if job == 7:
            raise ValueError("job 7")
        return job

    with pytest.raises(ValueError, match="job 7"):
        lanes.map(fail, list(range(20)))
    assert lanes.map(lambda n, job: job, [1, 2]) == [1, 2]  # still usable
    lanes.close()
