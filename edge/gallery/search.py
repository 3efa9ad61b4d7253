"""Who is this? Identity-level answers from a gallery, over edge.gallery.topk.top_k.

    results = search(gallery, vectors, k=3)                       # per query: best 3 people
    answers = identify(gallery, vectors, SearchSettings())        # per query: Match or None (unknown)
    answers = identify(gallery, vectors, SearchSettings(vote=5))

Similarities are cosine similarities, -1..1, of unit embeddings. A person
with several samples counts once, with the best of them. A face is that
person when the similarity is a match (edge.similarity.is_match with the
settings' match_threshold); otherwise the answer is None: unknown.

A row found at a similarity no sound embedding can have (outside -1..1 by
more than edge.similarity.SIMILARITY_SLACK) was damaged after the gallery
verified it: it is excluded (Gallery.exclude: left out from then on, logged,
listed in Gallery.excluded) and the search is run again without it. Queries
must be unit vectors (or zero).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edge.gallery.errors import DimensionMismatchError, GalleryError
from edge.gallery.fileformat import UNIT_TOLERANCE
from edge.gallery.settings import SearchSettings
from edge.gallery.store import Gallery, GalleryView
from edge.gallery.topk import top_k
from edge.similarity import is_match, is_plausible

_ATTEMPTS = 5
"""Searches retried when a compaction renumbers the rows between search and name lookup."""
_EXCLUSION_PASSES = 8
"""Searches run again after excluding rows found at impossible similarities; past these,
such rows are just dropped from the answer."""


@dataclass(frozen=True, slots=True)
class Match:
    """An enrolled person and how well a face matches them.

    ``similarity``: cosine similarity to the best-matching sample (-1..1);
    ``row``: that sample's gallery row (valid until the next compaction).
    """

    name: str
    similarity: float
    row: int


def search(gallery: Gallery, queries: np.ndarray, k: int = 1) -> list[list[Match]]:
    """For each query the k most similar people, best first (fewer if fewer are enrolled).

    Searches more rows until each query has k distinct people among them (a
    person's best sample is the first of theirs in the ranking), so the
    answer is exact however many samples each person has.
    """
    queries = _as_queries(gallery, queries)
    for _ in range(_ATTEMPTS):
        view = gallery.view()
        if view.live_count == 0:
            return [[] for _ in queries]
        depth = min(view.live_count, max(4 * k, 16))
        while True:
            view, scores, rows = _top(gallery, view, queries, max(depth, 1))
            live = view.live_count
            names = gallery.names_of(rows.ravel(), view.generation)
            if names is None:
                break  # compacted meanwhile: start again from a fresh view
            results = [_best_per_identity(s, r, names, k) for s, r in zip(scores, rows)]
            if depth >= live or all(len(found) >= k for found in results):
                return results
            depth = min(live, depth * 4)
    raise GalleryError(f"{gallery.path}: rows kept changing under the search; try again")


def identify(gallery: Gallery, queries: np.ndarray, settings: SearchSettings) -> list[Match | None]:
    """For each query the enrolled person it is, or None when nobody matches well enough.

    Without ``settings.vote``: the most similar person, if their similarity
    is a match (``settings.match_threshold``). With a vote of K: the K most
    similar samples vote, each for its person, counting only matches; most
    votes wins, a tie goes to the person with the most similar sample; no
    vote at all means unknown. The Match carries the winner's best sample.
    """
    threshold, vote = settings.match_threshold, settings.vote
    if vote is None:
        return [found[0] if found and is_match(found[0].similarity, threshold) else None
                for found in search(gallery, queries, 1)]
    queries = _as_queries(gallery, queries)
    for _ in range(_ATTEMPTS):
        view = gallery.view()
        if view.live_count == 0:
            return [None for _ in queries]
        view, scores, rows = _top(gallery, view, queries, vote)
        names = gallery.names_of(rows.ravel(), view.generation)
        if names is not None:
            return [_vote(s, r, names, threshold) for s, r in zip(scores, rows)]
    raise GalleryError(f"{gallery.path}: rows kept changing under the search; try again")


@dataclass(frozen=True, slots=True)
class SampleMatch:
    """One enrolled sample (gallery row) and its similarity (-1..1) to a query."""

    row: int
    name: str
    source: str | None
    similarity: float


def nearest_samples(gallery: Gallery, query: np.ndarray, k: int) -> list[SampleMatch]:
    """The k samples (rows, not people) most similar to one query, best first."""
    queries = _as_queries(gallery, query)[:1]
    view = gallery.view()
    if view.live_count == 0:
        return []
    view, scores, rows = _top(gallery, view, queries, max(1, min(k, view.live_count)))
    found = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
    info = {i.row: i for i in gallery.row_info([r for r, _ in found])}
    return [SampleMatch(r, info[r].identity, info[r].source, s) for r, s in found if r in info]


def _as_queries(gallery: Gallery, queries: np.ndarray) -> np.ndarray:
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.ndim != 2 or queries.shape[1] != gallery.dim:
        raise DimensionMismatchError(f"{gallery.path}: rows are {gallery.dim}-d, queries {np.shape(queries)}")
    if queries.size and not (np.linalg.norm(queries, axis=1) <= 1.0 + UNIT_TOLERANCE).all():
        raise ValueError("queries must be unit vectors (L2-normalised embeddings)")
    return queries


def _top(gallery: Gallery, view: GalleryView, queries: np.ndarray, k: int
         ) -> tuple[GalleryView, np.ndarray, np.ndarray]:
    """top_k over ``view``, without rows found at impossible similarities: those are
    excluded from the gallery and the search run again. Returns the view searched."""
    for _ in range(_EXCLUSION_PASSES):
        scores, rows = top_k(view.matrix, queries, k, view.scales, view.valid)
        damaged = (rows >= 0) & ~is_plausible(scores)
        if not damaged.any():
            return view, scores, rows
        worst = float(np.max(np.abs(scores[damaged])))
        gallery.exclude(np.unique(rows[damaged]).tolist(), f"similarity {worst:.3g} to a query: damaged", view)
        view = gallery.view()
    scores, rows = top_k(view.matrix, queries, k, view.scales, view.valid)
    damaged = (rows >= 0) & ~is_plausible(scores)
    scores[damaged], rows[damaged] = -np.inf, -1
    return view, scores, rows


def _best_per_identity(scores: np.ndarray, rows: np.ndarray, names: dict[int, str], k: int) -> list[Match]:
    found: dict[str, Match] = {}
    for score, row in zip(scores.tolist(), rows.tolist()):
        if row < 0 or row not in names:
            continue
        name = names[row]
        if name not in found:
            found[name] = Match(name, score, row)
            if len(found) == k:
                break
    return list(found.values())


def _vote(scores: np.ndarray, rows: np.ndarray, names: dict[int, str], threshold: float) -> Match | None:
    votes: dict[str, int] = defaultdict(int)
    best: dict[str, Match] = {}
    for score, row in zip(scores.tolist(), rows.tolist()):
        if row < 0 or row not in names or not is_match(score, threshold):
            continue
        name = names[row]
        votes[name] += 1
        best.setdefault(name, Match(name, score, row))  # rows come best first
    if not votes:
        return None
    winner = max(votes, key=lambda name: (votes[name], best[name].similarity))
    return best[winner]
