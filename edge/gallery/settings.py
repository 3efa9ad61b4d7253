"""Settings of the gallery components: the store ([gallery]) and the search over it ([search]).

    GallerySettings  edge.gallery.store.Gallery.create, and where the CLI and the door find it
    SearchSettings   edge.gallery.search.identify, and the match threshold every decision uses
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.settings import Count, Settings
from edge.similarity import MATCH_THRESHOLD, MatchThreshold


class GallerySettings(Settings):
    """Where the enrolled faces live and how a new gallery stores them.

    path: the gallery directory (the CLI's --gallery overrides it).
    dtype: row storage of a new gallery: float32, or int8 with a per-row
    scale (4x smaller, 3x faster to search; an existing gallery keeps its own).
    """

    path: Path | None = Field(None, description="gallery directory (the CLI's --gallery overrides it)")
    dtype: Literal["float32", "int8"] = Field("float32", description="row storage of a new gallery")


class SearchSettings(Settings):
    """Who a face is: the match threshold, and how the nearest samples decide.

    match_threshold: the one "same person" threshold (edge.similarity.is_match),
    a cosine similarity 0..1; gallery search, the door's decisions,
    enrollment, verify and find all use it. vote: none to take the most
    similar person; K to let the K most similar samples vote, each for its
    person, counting only matches (`edge identify --k`).
    """

    match_threshold: MatchThreshold = Field(MATCH_THRESHOLD, description="cosine similarity for 'same person', 0..1")
    vote: Count | None = Field(None, ge=1, le=100, description="decide by a vote of the K nearest samples")
