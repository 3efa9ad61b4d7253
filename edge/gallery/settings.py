"""Settings of the gallery store (edge.gallery.store.Gallery): the [gallery] section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.settings import Settings


class GallerySettings(Settings):
    """Where the enrolled faces live and how a new gallery stores them.

    path: the gallery directory (the CLI's --gallery overrides it).
    dtype: row storage of a new gallery: float32, or int8 with a per-row
    scale (4x smaller, 3x faster to search; an existing gallery keeps its own).
    """

    path: Path | None = Field(None, description="gallery directory (the CLI's --gallery overrides it)")
    dtype: Literal["float32", "int8"] = Field("float32", description="row storage of a new gallery")
