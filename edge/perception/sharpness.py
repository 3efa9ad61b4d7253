"""How sharp a face crop is: the variance of its Laplacian (higher is sharper).

Used by the door's decision filter and by enrollment's sample check; both
thresholds are in these units (about 30 for a usable 112x112 crop).
"""

from __future__ import annotations

import cv2
import numpy as np


def laplacian_variance(crop_rgb: np.ndarray) -> float:
    """Sharpness of an aligned (112, 112, 3) uint8 RGB face crop."""
    gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
