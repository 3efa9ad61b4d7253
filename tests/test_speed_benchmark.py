"""benchmarks/speed.py's own logic: which photos the batch takes, how its
answers are scored, which rows the frame section runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import speed  # noqa: E402


def test_the_batch_takes_the_people_with_50_photos_as_known_and_every_nth_other_photo(tmp_path):
    for name, count in (("Alice", 50), ("Bob", 3), ("Carol", 60), ("Dave", 1)):
        (tmp_path / name).mkdir()
        for i in range(1, count + 1):
            (tmp_path / name / f"{name}_{i:04d}.jpg").write_bytes(b"")
    known, unknown = speed.batch_photos(tmp_path, 20)
    assert known == {"Alice": tmp_path / "Alice" / "Alice_0001.jpg", "Carol": tmp_path / "Carol" / "Carol_0001.jpg"}
    assert len(unknown) == len(set(unknown)) == 20 and not set(unknown) & set(known.values())
    assert unknown == sorted(unknown)  # spread evenly over the sorted list
    assert {p.parent.name for p in unknown} >= {"Alice", "Bob", "Carol"}
    assert speed.batch_photos(tmp_path, 20) == (known, unknown)


def test_answers_are_scored_per_photo_from_path_name_lines():
    output = "\n".join([
        "u/Alice_0002.jpg,Alice",  # right
        "u/Alice_0002.jpg,unknown_person",  # a second face in the same photo
        "u/Bob_0001.jpg,Carol",  # a known name on someone else: wrong
        "u/Carol_0003.jpg,unknown_person",  # not named: neither
        "u/Dave_0001.jpg,no_persons_found",
        '"u/Eve, Jr_0001.jpg","error: u/Eve, Jr_0001.jpg: truncated image"',  # edge's CSV quotes
        "WARNING: More than one face found in k/Alice.jpg. Only considering the first face.",
    ])
    assert speed.naming(output, {"Alice", "Carol"}) == {"photos_with_lines": 5, "right": 1, "wrong": 1}


def test_the_frame_rows_measure_each_code_and_the_reference_once():
    args = argparse.Namespace(frames=["fixture", "lfw120"], model_sets=["float16"], min_faces=[20.0, 60.0],
                              threads=[2], no_reference=False)
    rows = speed.frame_rows(args, {"": Path("."), "before x": Path("/tmp/x")})
    assert len(rows) == 2 * (2 * 2 + 1)
    assert [r for r in rows if r["pipeline"] == speed.REFERENCE_NAME] == [
        {"code": "", "frame": f, "pipeline": speed.REFERENCE_NAME, "min_face": None, "threads": 2}
        for f in ("fixture", "lfw120")]
