"""CI-only: verification accuracy on one LFW fold with the default model set.

Skipped with a reason where ../shared/data/lfw is absent; EDGE_REQUIRE_LFW=1
(set by .ci/run) makes its absence a failure instead.
"""

from __future__ import annotations

import csv

import pytest

from edge.perception.settings import RecognitionSettings
from edge.similarity import MATCH_THRESHOLD, is_match
from edge.perception.photos import embed_photos

FOLD_SIZE = 600

pytestmark = pytest.mark.slow  # reads LFW


@pytest.mark.lfw
def test_first_fold_accuracy_at_the_default_threshold(lfw):
    with open(lfw / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:FOLD_SIZE]
    config = RecognitionSettings()
    paths = sorted({str(lfw / r[k]) for r in rows for k in ("path_a", "path_b")})
    photos = dict(zip(paths, embed_photos(paths, config)))
    correct = 0
    for row in rows:
        a, b = photos[str(lfw / row["path_a"])], photos[str(lfw / row["path_b"])]
        if a.embedding is None or b.embedding is None:
            continue  # a missed face is a wrong answer
        same = is_match(float(a.embedding @ b.embedding), MATCH_THRESHOLD)
        correct += same == (row["same"] == "1")
    accuracy = correct / len(rows)
    missed = sum(p.embedding is None for p in photos.values())
    assert missed <= 2, f"{missed} of {len(paths)} LFW photos had no face found"
    assert accuracy >= 0.985, f"fold-1 accuracy {accuracy:.4f} at threshold {MATCH_THRESHOLD}"
