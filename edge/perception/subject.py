"""Which face is a photo's subject: the rules, in one place.

- ``main_face`` (verify, find, identify's main subject): the face the photo
  is of, weighing size and closeness to the centre.
- ``clear_subject`` (gallery build): one face alone, or the largest when it
  is at least CLEAR_SUBJECT_RATIO times the size of the next; otherwise no
  subject, since enrolling a bystander under someone's name would let that
  bystander in. ``similar_to_largest`` gives the contenders of a photo
  without a clear subject.
- ``clear_cut_main_face`` (gallery build, a photo without a clear subject
  and nothing else to decide by): ``main_face``'s choice when it is beyond
  doubt, i.e. among the largest and clearly the nearest of them to the
  centre (CENTRE_MARGIN).

Geometry, shared by the rules: a face's size (``relative_size``) and its
distance from the image centre (``centre_offset``) are both measured in
units of the image diagonal, so the rules hold whatever the resolution.

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

CENTRE_MARGIN = 0.5
"""For ``clear_cut_main_face``: the most the subject's distance from the image
centre may be, as a fraction of the next nearest contender's (dimensionless;
both distances in image diagonals). 0.5: the subject is at most half as far
from the centre as any other face of similar size."""


def relative_size(face: Face, width: int, height: int) -> float:
    """The face's size (``BBox.size``, pixels) in units of the image diagonal."""
    return face.box.size / math.hypot(width, height)


def centre_offset(face: Face, width: int, height: int) -> float:
    """Distance from the face's box centre to the image centre, in units of
    the image diagonal: 0 at the centre, 0.5 at a corner."""
    fx, fy = face.box.center
    return math.hypot(fx - width / 2.0, fy - height / 2.0) / math.hypot(width, height)


def main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """The face a photo is 'of': large and near the centre, over a bystander.

    Each face is scored by twice its size less its distance from the centre,
    both in units of the image diagonal (``relative_size``, ``centre_offset``:
    a pixel of face size outweighs two pixels of distance), so a big face at
    the edge still beats a tiny one in the middle, and of two similar faces
    the more central one wins.
    """
    if not faces:
        return None
    return max(faces, key=lambda f: 2.0 * relative_size(f, width, height) - centre_offset(f, width, height))


def similar_to_largest(faces: list[Face]) -> list[Face]:
    """The faces within CLEAR_SUBJECT_RATIO of the largest one's size, largest first (at most MAX_CANDIDATES)."""
    by_size = sorted(faces, key=lambda f: f.box.size, reverse=True)
    return [f for f in by_size if f.box.size * CLEAR_SUBJECT_RATIO > by_size[0].box.size][:MAX_CANDIDATES]


def clear_subject(faces: list[Face]) -> Face | None:
    """The only face, or the largest if it is CLEAR_SUBJECT_RATIO x the next; else None."""
    contenders = similar_to_largest(faces)
    return contenders[0] if len(contenders) == 1 else None


def clear_cut_main_face(faces: list[Face], width: int, height: int) -> Face | None:
    """``main_face``'s choice when size and position leave no doubt; else None.

    The face must be (1) ``main_face``'s choice, so that verify and the
    gallery build agree on it; (2) among the largest (``similar_to_largest``);
    and (3) near the centre by a margin: its ``centre_offset`` at most
    CENTRE_MARGIN times that of every other such contender. With a single
    contender (3) holds at once. Two faces equally near the centre (e.g.
    side by side around it, or two boxes on one face) give None.

    Why a ratio of distances: it does not depend on the image or face size,
    and it asks the subject to be clearly nearer than the others wherever
    they stand. On LFW (photos centred on the named person) the 874 photos
    with several faces of similar size split at a gap: the face taken is at
    most 0.41 of the next one's distance, the others are 0.62 or more, and
    those are two overlapping faces (or two boxes on one) around the centre.
    """
    contenders = similar_to_largest(faces)
    chosen = main_face(faces, width, height)
    at = next((i for i, f in enumerate(contenders) if f is chosen), None)
    if at is None:
        return None
    offset = centre_offset(chosen, width, height)
    for other in contenders[:at] + contenders[at + 1:]:
        other_offset = centre_offset(other, width, height)
        if other_offset == 0.0 or offset > CENTRE_MARGIN * other_offset:
            return None
    return chosen
