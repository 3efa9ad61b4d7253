"""Identity-level search: best sample per person, threshold, K-nearest vote."""

import numpy as np
import pytest

from edge.gallery.errors import DimensionMismatchError
from edge.gallery.search import Match, identify, search
from edge.gallery.settings import SearchSettings
from edge.gallery.store import Gallery

MODEL = "sha256:search-test"


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def near(base, rng, spread, n):
    """n unit vectors around ``base``; cosine to it about 1 - spread**2 * dim / 2."""
    return unit(base + rng.normal(0, spread, (n, base.size)))


@pytest.fixture(params=["float32", "int8"])
def people(tmp_path, request):
    """Five people with 1..40 samples each around their own direction."""
    rng = np.random.default_rng(5)
    centres = unit(rng.standard_normal((5, 128)))
    names = ["ann", "bob", "cy", "dee", "eve"]
    counts = [1, 3, 40, 2, 5]
    gallery = Gallery.create(tmp_path / "g", MODEL, dtype=request.param)
    for name, centre, count in zip(names, centres, counts):
        gallery.append(near(centre, rng, 0.05, count), [name] * count, sources=[f"{name}{i}" for i in range(count)])
    yield gallery, dict(zip(names, centres)), rng
    gallery.close()


def exact_per_identity(gallery, query):
    """Best similarity per person by brute force over the dequantised rows."""
    view = gallery.view()
    rows = view.matrix.astype(np.float32)
    if view.scales is not None:
        rows = rows * view.scales[:, None]
    scores = rows @ query
    best = {}
    for info in gallery.row_info():
        if not info.deleted and (info.identity not in best or scores[info.row] > best[info.identity][0]):
            best[info.identity] = (float(scores[info.row]), info.row)
    return sorted(best.items(), key=lambda item: -item[1][0])


def test_search_gives_best_sample_per_person(people):
    gallery, centres, rng = people
    queries = np.stack([near(centres["cy"], rng, 0.05, 1)[0], near(centres["ann"], rng, 0.05, 1)[0]])
    results = search(gallery, queries, k=4)
    for query, found in zip(queries, results):
        expected = exact_per_identity(gallery, query)[:4]
        assert [m.name for m in found] == [name for name, _ in expected]
        assert [m.row for m in found] == [row for _, (_, row) in expected]
        np.testing.assert_allclose([m.similarity for m in found], [s for _, (s, _) in expected], atol=1e-5)
        assert all(isinstance(m, Match) for m in found)
    assert results[0][0].name == "cy" and results[1][0].name == "ann"


def test_search_reaches_past_a_crowded_person(people):
    """cy's 40 samples all beat everyone else: the search must look deeper for k people."""
    gallery, centres, _ = people
    found = search(gallery, centres["cy"], k=5)[0]
    assert [m.name for m in found][0] == "cy" and len({m.name for m in found}) == 5


def test_identify_threshold(people):
    gallery, centres, rng = people
    stranger = unit(rng.standard_normal(128))
    known = near(centres["dee"], rng, 0.05, 1)[0]
    answers = identify(gallery, np.stack([known, stranger]), SearchSettings(match_threshold=0.5))
    assert answers[0].name == "dee" and answers[0].similarity >= 0.5
    assert answers[1] is None
    assert identify(gallery, known, SearchSettings(match_threshold=0.9999))[0] is None


def test_vote_takes_the_majority_of_the_nearest(tmp_path):
    """One 'bob' sample is nearest, but three of the five nearest are 'ann'."""
    rng = np.random.default_rng(9)
    query = unit(rng.standard_normal(128))
    other = unit(rng.standard_normal(128))
    def at(cos):  # a unit vector with cosine ``cos`` to the query
        direction = unit(other - (other @ query) * query)
        return unit(cos * query + np.sqrt(1 - cos**2) * direction)
    with Gallery.create(tmp_path / "g", MODEL) as gallery:
        gallery.append(np.stack([at(0.9), at(0.8), at(0.79), at(0.78), at(0.7), at(0.2), at(0.1)]),
                       ["bob", "ann", "ann", "ann", "bob", "cy", "cy"])
        assert identify(gallery, query, SearchSettings(match_threshold=0.5))[0].name == "bob"
        voted = identify(gallery, query, SearchSettings(match_threshold=0.5, vote=5))[0]
        assert voted.name == "ann" and voted.row == 1 and voted.similarity == pytest.approx(0.8, abs=1e-5)
        # Only neighbours at or above the threshold vote: here just the nearest one.
        assert identify(gallery, query, SearchSettings(match_threshold=0.85, vote=5))[0].name == "bob"
        assert identify(gallery, query, SearchSettings(match_threshold=0.95, vote=5))[0] is None
        # A tie in votes goes to the person with the most similar sample.
        assert identify(gallery, query, SearchSettings(match_threshold=0.5, vote=2))[0].name == "bob"
        with pytest.raises(ValueError):
            SearchSettings(match_threshold=0.5, vote=0)


def test_deleted_and_compacted_rows_are_not_found(people):
    gallery, centres, _ = people
    assert search(gallery, centres["ann"], k=1)[0][0].name == "ann"
    gallery.delete_identity("ann")
    assert "ann" not in [m.name for m in search(gallery, centres["ann"], k=5)[0]]
    gallery.compact()
    assert sorted(m.name for m in search(gallery, centres["ann"], k=10)[0]) == ["bob", "cy", "dee", "eve"]


def test_a_reader_searching_during_compaction_gets_consistent_names(people, tmp_path):
    gallery, centres, _ = people
    reader = Gallery.open(tmp_path / "g", MODEL)
    view = reader.view()
    gallery.delete_identity("ann")
    gallery.compact()
    assert reader.names_of([0, 1], view.generation) is None  # stale generation is refused
    assert search(reader, centres["bob"], k=1)[0][0].name == "bob"
    reader.close()


def test_empty_gallery_and_bad_queries(tmp_path):
    with Gallery.create(tmp_path / "g", MODEL) as gallery:
        assert search(gallery, unit(np.ones(128)), k=3) == [[]]
        assert identify(gallery, unit(np.ones((2, 128))), SearchSettings(match_threshold=0.3)) == [None, None]
        with pytest.raises(DimensionMismatchError):
            search(gallery, unit(np.ones(64)))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_warm_up_compiles_what_a_search_uses(dtype):
    from edge.gallery.topk import _scan, _scan_codes, warm_up

    warm_up(dtype, 128)
    kernel = _scan if dtype == "float32" else _scan_codes
    kinds = {str(signature[0].dtype) for signature in kernel.signatures}
    assert dtype in kinds  # the first real search finds the kernel compiled
