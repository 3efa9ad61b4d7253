"""edge: face recognition for a Raspberry Pi at the door.

Public API (imported lazily, so `import edge` loads nothing heavy):

    from edge import FaceEngine, load_image
    engine = FaceEngine.open()                    # or FaceEngine.open(config.recognition)
    image = load_image("photo.jpg")              # (H, W, 3) uint8 BGR
    faces = engine.detect(image)                 # list[Face]: box, score, landmarks
    vectors = engine.embed(image, faces)         # (n, 128) float32, unit length
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "FaceEngine": "edge.perception.engine",
    "Subject": "edge.perception.engine",
    "main_face": "edge.perception.subject",
    "BBox": "edge.faces",
    "Face": "edge.faces",
    "load_image": "edge.imageio",
    "decode_image": "edge.imageio",
    "ImageError": "edge.imageio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
