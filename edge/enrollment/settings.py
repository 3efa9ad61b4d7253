"""Settings of an enrollment session from a camera (edge.enrollment.session): the [enrollment] section.

Used by `edge enroll` and by enrollment at the running door (button, MQTT).
"""

from __future__ import annotations

from pydantic import Field

from edge.settings import Settings


class EnrollSettings(Settings):
    """What a good sample is and how long to try.

    samples: good samples to collect. timeout: seconds before giving up
    (nothing stored). min_face_size: pixels (sqrt of box area) of a face
    that can give a sample.
    min_sharpness: variance of the Laplacian of the aligned 112x112 crop.
    max_turn: how far the nose may sit off the eyes' midpoint, as a fraction
    of the eye distance (0 = straight on). max_similarity: a sample at least
    this similar (cosine) to one already taken is a near-duplicate. Whether a
    sample is the same person as the first uses the [recognition]
    match_threshold. require_live: a face must look live
    (edge.perception.liveness) to give a sample, so a photo or a screen held
    up to the camera cannot enroll anyone.
    """

    samples: int = Field(5, ge=1, le=50, description="good samples an enrollment collects")
    timeout: float = Field(30.0, ge=1.0, le=600.0, description="seconds an enrollment may take")
    min_face_size: float = Field(60.0, ge=0.0, le=2000.0, description="pixels; smaller faces give no sample")
    min_sharpness: float = Field(30.0, ge=0.0, le=1e6, description="variance of the Laplacian of the crop")
    max_turn: float = Field(0.35, ge=0.0, le=2.0, description="nose offset from the eyes' midpoint / eye distance")
    max_similarity: float = Field(0.95, gt=0.0, le=1.0, description="cosine similarity of a near-duplicate sample")
    require_live: bool = Field(True, description="only faces that look live give samples (not photos or screens)")
