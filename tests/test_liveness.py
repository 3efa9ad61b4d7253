"""The liveness stage: the published crop rule, one batched call per model, its settings and model files.

The expected crop bounds below are worked out by hand from the published
rule (Silent-Face-Anti-Spoofing's CropImage; see crop_bounds' docstring):
box (x, y, w, h) = (int(x1), int(y1), int(x2 - x1 + 1), int(y2 - y1 + 1)),
scale = min(scale, (H - 1) / h, (W - 1) / w), centred, shifted inside, truncated.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import ConfigError, validate
from edge.faces import BBox
from edge.perception.litert import ModelError, TfliteModel
from edge.perception.liveness import (
    CROP_SCALES,
    CROP_SIZE,
    Liveness,
    LivenessChecker,
    crop_bounds,
    liveness_crop,
)
from edge.perception.modelset import LIVENESS_MODELS, MODEL_SETS, default_models_dir, liveness_model_files, model_files
from edge.perception.settings import LivenessSettings, RecognitionSettings, RuntimeSettings

MODELS = default_models_dir()
WIDTH, HEIGHT = 640, 480


# ---------------------------------------------------------------- the crop rule


def test_a_box_well_inside_is_scaled_around_its_centre():
    # w = 51, h = 61; 2.7x: 137.7 x 164.7 around (125.5, 130.5)
    assert crop_bounds(BBox(100, 100, 150, 160), 2.7, WIDTH, HEIGHT) == (56, 48, 194, 212)
    # 4.0x: 204 x 244 around the same centre
    assert crop_bounds(BBox(100, 100, 150, 160), 4.0, WIDTH, HEIGHT) == (23, 8, 227, 252)


def test_a_box_at_the_top_left_corner_is_shifted_right_and_down_keeping_its_size():
    # 2.7x would start at (-43.35, -51.85): moved to 0, the far edges move as much
    assert crop_bounds(BBox(0, 0, 50, 60), 2.7, WIDTH, HEIGHT) == (0, 0, 137, 164)


def test_a_box_at_the_bottom_right_corner_is_shifted_left_and_up_keeping_its_size():
    # w = 41, h = 61: 110.7 x 164.7 around (620.5, 450.5); right 675.85 > 639 and bottom 532.85 > 479
    assert crop_bounds(BBox(600, 420, 640, 480), 2.7, WIDTH, HEIGHT) == (528, 314, 639, 479)


@pytest.mark.parametrize(
    "box, expected",
    [
        (BBox(-20, 200, 30, 260), (0, 148, 137, 312)),     # left edge, partly outside: int(-20) = -20
        (BBox(610, 200, 660, 260), (501, 148, 639, 312)),  # right edge, partly outside
        (BBox(300, -10, 350, 50), (256, 0, 394, 164)),     # top edge
        (BBox(300, 450, 350, 510), (256, 314, 394, 479)),  # bottom edge
    ],
)
def test_a_box_at_each_edge_gives_a_crop_of_the_same_size_inside_the_image(box, expected):
    assert crop_bounds(box, 2.7, WIDTH, HEIGHT) == expected


def test_a_box_larger_than_the_image_is_shrunk_to_fit_keeping_its_aspect_ratio():
    # w = 1001, h = 801: the scale becomes 479 / 801 (the height binds): 598.6 x 479
    assert crop_bounds(BBox(-100, -100, 900, 700), 2.7, WIDTH, HEIGHT) == (40, 0, 639, 479)
    # a face filling the frame: the 4.0x crop is the whole height, as wide as the aspect ratio allows
    left, top, right, bottom = crop_bounds(BBox(200, 60, 440, 420), 4.0, WIDTH, HEIGHT)
    assert (top, bottom) == (0, 479) and right - left == pytest.approx(479 * 241 / 361, abs=1)


def test_a_tiny_box_gives_a_crop_of_a_few_pixels_and_a_degenerate_one_no_error():
    # w = int(1.4) = 1, h = int(1.2) = 1; 4.0x: 4 x 4 around (300.5, 200.5)
    assert crop_bounds(BBox(300, 200, 300.4, 200.2), 4.0, WIDTH, HEIGHT) == (298, 198, 302, 202)
    # x2 < x1: counted as one pixel (the published code would divide by zero)
    assert crop_bounds(BBox(300, 200, 290, 190), 4.0, WIDTH, HEIGHT) == (298, 198, 302, 202)
    crop = liveness_crop(np.zeros((HEIGHT, WIDTH, 3), np.uint8), BBox(300, 200, 300, 200), 2.7)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(2, 2000),
    height=st.integers(2, 2000),
    x1=st.floats(-500, 2500),
    y1=st.floats(-500, 2500),
    w=st.floats(0, 3000),
    h=st.floats(0, 3000),
    scale=st.sampled_from(sorted(CROP_SCALES.values())),
)
def test_every_crop_is_inside_the_image_and_keeps_the_scaled_size_when_it_fits(width, height, x1, y1, w, h, scale):
    box = BBox(x1, y1, x1 + w, y1 + h)
    left, top, right, bottom = crop_bounds(box, scale, width, height)
    assert 0 <= left <= right <= width - 1 and 0 <= top <= bottom <= height - 1
    box_w, box_h = max(1, int(box.x2 - box.x1 + 1)), max(1, int(box.y2 - box.y1 + 1))
    if box_w * scale <= width - 1 and box_h * scale <= height - 1:
        assert right - left == pytest.approx(box_w * scale, abs=1)
        assert bottom - top == pytest.approx(box_h * scale, abs=1)


def test_the_crop_is_the_bounds_resized_to_80_pixels_in_the_image_s_channel_order():
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:, :, 0] = 255  # blue in BGR
    left, top, right, bottom = crop_bounds(BBox(100, 100, 150, 160), 2.7, WIDTH, HEIGHT)
    image[top : bottom + 1, left : right + 1, 1] = 100  # exactly the crop's pixels
    crop = liveness_crop(image, BBox(100, 100, 150, 160), 2.7)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    assert (crop[:, :, 0] == 255).all() and (crop[:, :, 1] == 100).all() and (crop[:, :, 2] == 0).all()


# ---------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def frame(photo):
    """A bundled portrait (910x1137, the face at about (369, 83)-(608, 417))."""
    return photo("obama.jpg")


BOXES = [BBox(369.3, 83.2, 607.5, 417.1), BBox(10, 10, 80, 100), BBox(800, 1000, 1000, 1200)]
"""The face, a patch of background, and a box partly outside the image."""


@pytest.fixture(scope="module")
def checker():
    with LivenessChecker.open(RecognitionSettings()) as opened:
        yield opened


def test_results_are_frozen_typed_and_in_the_order_of_the_boxes(checker, frame):
    results = checker.check(frame, BOXES)
    assert len(results) == len(BOXES) and all(isinstance(r, Liveness) for r in results)
    for result in results:
        assert len(result.per_model) == 2 and checker.models == ("v2", "v1se")
        assert 0.0 <= result.score <= 1.0 and result.score == pytest.approx(np.mean(result.per_model), abs=1e-6)
        assert result.live == (result.score >= checker.settings.threshold)
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].score = 1.0
    reversed_results = checker.check(frame, BOXES[::-1])
    np.testing.assert_allclose([r.per_model for r in reversed_results], [r.per_model for r in results[::-1]],
                               atol=1e-5)


def test_one_batched_call_gives_what_one_call_per_face_gives(checker, frame):
    batched = checker.check(frame, BOXES)
    alone = [checker.check(frame, [box])[0] for box in BOXES]
    np.testing.assert_allclose([r.per_model for r in batched], [r.per_model for r in alone], atol=1e-5)


def test_one_interpreter_call_per_model_for_all_faces(checker, frame, monkeypatch):
    calls = []

    def counted(name, run):
        def counting(batch):
            calls.append((name, batch.shape))
            return run(batch)
        return counting

    for name, model in checker._models.items():
        monkeypatch.setattr(model, "run", counted(name, model.run))
    checker.check(frame, BOXES)
    # three faces, one batch of exactly three on the CPU (TfliteModel resizes its interpreter)
    assert calls == [("v2", (3, 80, 80, 3)), ("v1se", (3, 80, 80, 3))]


def test_no_boxes_no_results_and_bad_images_refused(checker, frame):
    assert checker.check(frame, []) == []
    for bad in (frame[:, :, 0], frame.astype(np.float32), np.zeros((0, 10, 3), np.uint8), [[1, 2, 3]]):
        with pytest.raises(ValueError, match="uint8 BGR image"):
            checker.check(bad, BOXES)


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
@pytest.mark.parametrize("models", ["v2", "v1se"])
def test_each_set_and_single_model_opens_and_scores(frame, model_set, models):
    settings = RecognitionSettings(liveness=LivenessSettings(model_set=model_set, models=models),
                                   runtime=RuntimeSettings(num_threads=1))
    with LivenessChecker.open(settings) as one:
        results = one.check(frame, BOXES[:1])
    assert one.models == (models,) and len(results[0].per_model) == 1
    assert results[0].score == results[0].per_model[0]


def test_a_stricter_threshold_changes_the_decision_not_the_score(frame):
    lenient = RecognitionSettings(liveness=LivenessSettings(threshold=0.0))
    strict = RecognitionSettings(liveness=LivenessSettings(threshold=1.0))
    with LivenessChecker.open(lenient) as a, LivenessChecker.open(strict) as b:
        ra, rb = a.check(frame, BOXES), b.check(frame, BOXES)
    assert [r.score for r in ra] == [r.score for r in rb]
    assert all(r.live for r in ra) and not any(r.live for r in rb if r.score < 1.0)


def test_a_model_that_is_not_minifasnet_is_refused():
    files = model_files(MODELS, "float32")
    with pytest.raises(ModelError, match="not a MiniFASNet liveness model"):
        LivenessChecker({"v2": TfliteModel(files.rnet, RuntimeSettings())}, LivenessSettings())
    path = liveness_model_files(MODELS, "float32", ("v2",))["v2"]
    with pytest.raises(ValueError, match="unknown liveness model"):
        LivenessChecker({"v3": TfliteModel(path, RuntimeSettings())}, LivenessSettings())


# ---------------------------------------------------------------- files and settings


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
def test_every_liveness_file_is_listed_and_the_manifest_states_the_crop_the_code_makes(model_set):
    manifest = json.loads((MODELS / "manifest.json").read_text())["models"]
    files = liveness_model_files(MODELS, model_set, LIVENESS_MODELS)
    assert set(files) == set(LIVENESS_MODELS) == set(CROP_SCALES)
    for name, path in files.items():
        entry = manifest[path.name]
        assert entry["input"]["crop_scale"] == CROP_SCALES[name]
        assert entry["input"]["channel_order"] == "BGR" and entry["input"]["shape"][1:] == [CROP_SIZE, CROP_SIZE, 3]


def test_a_damaged_liveness_file_is_refused(tmp_path):
    shutil.copytree(MODELS, tmp_path / "models", ignore=shutil.ignore_patterns("*.py", "sface_*"))
    target = tmp_path / "models" / "minifasnet_v1se_float32.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest"):
        LivenessChecker.open(RecognitionSettings(models_dir=tmp_path / "models"))
    with pytest.raises(ModelError, match="unknown liveness model"):
        liveness_model_files(MODELS, "float32", ("v3",))


def test_the_config_has_a_liveness_section_with_checked_values():
    config = validate({"recognition": {"liveness": {"model_set": "int8", "models": "v1se", "threshold": 0.7}}}, "t")
    assert config.recognition.liveness == LivenessSettings(model_set="int8", models="v1se", threshold=0.7)
    assert RecognitionSettings().liveness == LivenessSettings()
    assert LivenessSettings().model_names == ("v2", "v1se")
    for bad, message in (({"threshold": 1.5}, "less than or equal to 1"), ({"models": "v3"}, "models"),
                         ({"model_set": "float64"}, "model_set"), ({"treshold": 0.5}, "unknown key")):
        with pytest.raises(ConfigError, match=message):
            validate({"recognition": {"liveness": bad}}, "t")
