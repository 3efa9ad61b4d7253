"""Who is this? Identity-level answers from a gallery, over edge.gallery.topk.top_k.

    results = search(gallery, vectors, k=3)                       # per query: best 3 people
    answers = identify(gallery, vectors, SearchSettings())        # per query: Match or None (unknown)
    answers = identify(gallery, vectors, SearchSettings(vote=5))

Similarities are cosine similarities, -1..1, of unit embeddings. A person
with several samples counts once, with the best of them. A face is that
person when the similarity is a match (edge.similarity.is_match with the
settings' match_threshold); otherwise the answer is None: unknown.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from edge.gallery.errors import DimensionMismatchError, GalleryError
from edge.gallery.settings import SearchSettings
from edge.gallery.store import Gallery, GalleryView
from edge.gallery.topk import top_k
from edge.similarity import is_match

_ATTEMPTS = 5
"""Searches retried when a compaction renumbers the rows between search and name lookup."""


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
        live = view.live_count
        depth = min(live, max(4 * k, 16))
        while True:
            scores, rows = _top(view, queries, max(depth, 1))
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
        scores, rows = _top(view, queries, vote)
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
    scores, rows = top_k(view.matrix, queries, max(1, min(k, view.live_count or 1)), view.scales, view.valid)
    found = [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]
    info = {i.row: i for i in gallery.row_info([r for r, _ in found])}
    return [SampleMatch(r, info[r].identity, info[r].source, s) for r, s in found if r in info]


def _as_queries(gallery: Gallery, queries: np.ndarray) -> np.ndarray:
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.ndim != 2 or queries.shape[1] != gallery.dim:
        raise DimensionMismatchError(f"{gallery.path}: rows are {gallery.dim}-d, queries {np.shape(queries)}")
    return queries


def _top(view: GalleryView, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return top_k(view.matrix, queries, k, view.scales, view.valid)


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
