"""1:1 verification: is the main subject of photo A the same person as that of photo B?

Photos are embedded by edge.perception.photos (in parallel, each distinct photo once
however many pairs name it); this module reads pair lists and scores pairs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.imageio import shown
from edge.perception.photos import PhotoResult
from edge.similarity import is_match


@dataclass(frozen=True, slots=True)
class PairResult:
    path_a: str
    path_b: str
    similarity: float | None
    same: bool | None
    a: PhotoResult
    b: PhotoResult

    def to_dict(self) -> dict:
        return {
            "path_a": shown(self.path_a),
            "path_b": shown(self.path_b),
            "similarity": None if self.similarity is None else round(self.similarity, 5),
            "same": self.same,
            "box_a": self.a.box.as_list() if self.a.box else None,
            "box_b": self.b.box.as_list() if self.b.box else None,
            "error": "; ".join(e for e in (self.a.error, self.b.error) if e) or None,
        }


def read_pairs(csv_path: Path) -> list[tuple[str, str, bool | None]]:
    """Rows of a pairs file (UTF-8, with or without a BOM) with columns path_a, path_b and
    optionally same (0/1); ValueError naming the line of a row that lacks a path."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            fields = reader.fieldnames
        except csv.Error as exc:
            raise ValueError(f"{csv_path}: not a CSV file ({exc})") from None
        if not fields or not {"path_a", "path_b"} <= {name.strip() for name in fields}:
            raise ValueError(f"{csv_path}: needs a header with path_a,path_b[,same]")
        reader.fieldnames = [name.strip() for name in fields]
        rows = []
        try:
            records = list(reader)
        except csv.Error as exc:
            raise ValueError(f"{csv_path}:{reader.line_num}: not CSV ({exc})") from None
        for line, row in enumerate(records, start=2):
            missing = [k for k in ("path_a", "path_b") if not row.get(k)]
            if missing:
                raise ValueError(f"{csv_path}:{line}: no {' or '.join(missing)} (short row?)")
            same = row.get("same")
            same = same.strip() if isinstance(same, str) else same
            if same not in (None, "", "0", "1", "true", "false", "True", "False"):
                raise ValueError(f"{csv_path}:{line}: 'same' must be 0 or 1, not {same!r}")
            label = None if same in (None, "") else same in ("1", "true", "True")
            rows.append((row["path_a"], row["path_b"], label))
    return rows


def compare(a: PhotoResult, b: PhotoResult, threshold: float) -> PairResult:
    if a.embedding is None or b.embedding is None:
        return PairResult(a.path, b.path, None, None, a, b)
    similarity = float(np.dot(a.embedding, b.embedding))
    return PairResult(a.path, b.path, similarity, is_match(similarity, threshold), a, b)
