"""The one rule for 'same person': cosine similarity at or above a threshold.

Embeddings are unit vectors, so their dot product is their cosine
similarity, -1..1 (1: the same direction). Two faces are taken as the same
person when their similarity is at least the match threshold. Every part of
edge that decides "is this that person" (gallery search, the door's
decisions, enrollment's same-person check, verify, find, gallery build)
calls ``is_match`` with the configured ``match_threshold``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MATCH_THRESHOLD = 0.36
"""The default match threshold: the mean of the ten LFW fold thresholds of the
default models (benchmarks/results/lfw_accuracy.txt)."""

MatchThreshold = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A match threshold: a cosine similarity, 0..1 (a negative one would call
faces pointing away from each other the same person)."""

Similarity = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
"""A cosine similarity, -1..1."""

SIMILARITY_SLACK = 0.02
"""How far outside -1..1 a computed similarity may be from rounding alone: stored
rows are within 0.01 of unit length (edge.gallery.fileformat), queries within
0.001. Anything beyond comes from damaged data: never a match."""


def is_plausible(similarity):
    """Whether ``similarity`` can be a cosine similarity of sound embeddings (within the slack)."""
    return (similarity >= -1.0 - SIMILARITY_SLACK) & (similarity <= 1.0 + SIMILARITY_SLACK)


def is_match(similarity: float, threshold: float) -> bool:
    """True when ``similarity`` (cosine, -1..1) reaches ``threshold``: the same person.
    A similarity beyond 1 + SIMILARITY_SLACK is damage, never a match."""
    return (similarity >= threshold) & is_plausible(similarity)
