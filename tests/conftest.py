"""Shared fixtures: the bundled face photos and one engine per test session."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FACES = FIXTURES / "faces"
LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw"
SPOOF_SAMPLES = LFW.parent / "spoof_samples"


@pytest.fixture(scope="session")
def engine():
    from edge.perception.engine import FaceEngine
    from edge.perception.settings import RecognitionSettings

    return FaceEngine.open(RecognitionSettings())


@pytest.fixture(scope="session")
def liveness():
    """The liveness stage with the default settings, for the door loops of the tests."""
    from edge.perception.liveness import LivenessChecker
    from edge.perception.settings import RecognitionSettings

    return LivenessChecker.open(RecognitionSettings())


@pytest.fixture(scope="session")
def photo():
    """Load a bundled photo by name (BGR uint8)."""
    from edge.imageio import load_image

    return lambda name: load_image(FACES / name)


def side_by_side(*images: np.ndarray, height: int = 400) -> np.ndarray:
    """The photos scaled to one height and placed next to each other."""
    scaled = [cv2.resize(i, (round(i.shape[1] * height / i.shape[0]), height)) for i in images]
    return np.concatenate(scaled, axis=1)


@pytest.fixture(scope="session")
def lfw() -> Path:
    """The LFW folder; skipped where absent, unless EDGE_REQUIRE_LFW=1 (CI) makes that a failure."""
    if (LFW / "pairs.csv").is_file():
        return LFW
    if os.environ.get("EDGE_REQUIRE_LFW") == "1":
        pytest.fail(f"EDGE_REQUIRE_LFW=1 but {LFW} is missing")
    pytest.skip(f"LFW not found at {LFW} (CI-only accuracy check)")


@pytest.fixture(scope="session")
def spoof_samples() -> Path:
    """../shared/data/spoof_samples (real/ and spoof/ photos); skipped where absent, unless
    EDGE_REQUIRE_LFW=1 (CI) makes that a failure."""
    if (SPOOF_SAMPLES / "real").is_dir():
        return SPOOF_SAMPLES
    if os.environ.get("EDGE_REQUIRE_LFW") == "1":
        pytest.fail(f"EDGE_REQUIRE_LFW=1 but {SPOOF_SAMPLES} is missing")
    pytest.skip(f"spoof samples not found at {SPOOF_SAMPLES} (CI-only check)")
