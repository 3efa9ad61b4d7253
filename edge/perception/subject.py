"""Which face is a photo's subject: the rules, in one place.

- ``main_face`` (verify, find, identify's main subject): the face the photo
  is of, weighing size and closeness to the centre.
- ``clear_subject`` (gallery build): one face alone, or the largest when it
  is at least CLEAR_SUBJECT_RATIO times the size of the next; otherwise no
  subject, since enrolling a bystander under someone's name would let that
  bystander in. ``similar_to_largest`` gives the contenders of a photo
  without a clear subject.

Pure functions over Face lists: no models, no I/O.
"""

from __future__ import annotations

import math

from edge.faces import Face

CLEAR_SUBJECT_RATIO = 1.5
"""How many times larger (box side) the largest face must be than the next
for a photo with several faces to count as a photo of that one person."""

MAX_CANDIDATES = 8
"""At most this many faces of a photo without a clear subject are contenders."""


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face a photo is 'of': large and near the centre, over a bystander.

    Each face is scored by twice its size less its distance from the centre,
    both in units of the image diagonal (a pixel of face size outweighs two
    pixels of distance), so a big face at the edge still beats a tiny one in
    the middle, and of two similar faces the more central one wins.
    """
    if not faces:
        return None
    diagonal = math.hypot(width, height)
    cx, cy = width / 2.0, height / 2.0

    def score(face: Face) -> float:
        fx, fy = face.box.center
        offset = math.hypot(fx - cx, fy - cy) / diagonal
        return 2.0 * face.box.size / diagonal - offset

    return max(faces, key=score)


def similar_to_largest(faces: list[Face]) -> list[Face]:
    """The faces within CLEAR_SUBJECT_RATIO of the largest one's size, largest first (at most MAX_CANDIDATES)."""
    by_size = sorted(faces, key=lambda f: f.box.size, reverse=True)
    return [f for f in by_size if f.box.size * CLEAR_SUBJECT_RATIO > by_size[0].box.size][:MAX_CANDIDATES]


def clear_subject(faces: list[Face]) -> Face | None:
    """The only face, or the largest if it is CLEAR_SUBJECT_RATIO x the next; else None."""
    contenders = similar_to_largest(faces)
    return contenders[0] if len(contenders) == 1 else None
