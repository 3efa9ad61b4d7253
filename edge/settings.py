"""The base of every component's settings model, and the value types they share.

Each component declares its settings as a subclass of ``Settings`` in its
package's ``settings`` module (e.g. ``edge.door.settings.DecisionSettings``
for ``edge.door.decision.DecisionMaker``) and takes that model in its
constructor. A model is frozen and refuses unknown keys (a typo must not
silently fall back to a default); its bounds and cross-field rules are the
only place those rules are written. ``edge.config`` composes the models into
the sections of the TOML file.

The settings modules import nothing heavier than pydantic, so reading and
checking a config never loads OpenCV, numba or the model runtime.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
"""A probability or a fraction, 0..1."""

Count = Annotated[int, Strict()]
"""A whole number written as one (``true`` or ``2.0`` are refused), for counts with bounds of their own."""


class Settings(BaseModel):
    """Frozen, strict about unknown keys, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
