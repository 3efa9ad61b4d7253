"""Settings of the perception components: runtime, detector, embedder, and the engine that holds them.

Each model here belongs to one component and is what its constructor takes:

    RuntimeSettings      edge.perception.litert.TfliteModel
    DetectorSettings     edge.perception.detect.MtcnnDetector (and FaceEngine.detect)
    EmbedderSettings     edge.perception.embed.Embedder
    RecognitionSettings  edge.perception.engine.FaceEngine.open: the [recognition] section
    LivenessSettings     edge.perception.liveness.LivenessChecker ([recognition.liveness])

Kept apart from the components' code so that a config is read and checked
without loading OpenCV, numba or LiteRT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.imageio import DEFAULT_MAX_PIXELS, LARGEST_MAX_PIXELS
from edge.settings import Probability, Settings

ModelSetName = Literal["float16", "float32", "int8"]
"""The model sets of edge.perception.modelset.MODEL_SETS."""


MAX_THREADS = 16
"""The most CPU threads a model may be given (num_threads)."""


class RuntimeSettings(Settings):
    """How LiteRT interpreters are created (edge.perception.litert).

    num_threads: CPU threads per interpreter (the photo commands choose their
    own: edge.perception.photos.batch_plan). delegate: "cpu" (XNNPACK),
    "edgetpu" (Coral, libedgetpu) or "gpu" (the TFLite GPU delegate from
    ``gpu_delegate_library``). A delegate that cannot load falls back to the
    CPU with one log line, unless ``delegate_required``.
    """

    num_threads: int = Field(2, ge=1, le=MAX_THREADS, description="CPU threads per model")
    delegate: Literal["cpu", "edgetpu", "gpu"] = "cpu"
    delegate_required: bool = Field(False, description="fail instead of falling back to the CPU")
    gpu_delegate_library: str | None = Field(None, min_length=1, description="path of the GPU delegate .so")

    @model_validator(mode="after")
    def _gpu_needs_library(self) -> RuntimeSettings:
        if self.delegate == "gpu" and self.gpu_delegate_library is None:
            raise ValueError("delegate 'gpu' needs gpu_delegate_library (the .so path)")
        return self


class DetectorSettings(Settings):
    """MTCNN detection (edge.perception.detect).

    min_face_size: the smallest face searched for, in pixels of the detection
    image; smaller faces are never found (and the search is faster the larger
    this is). scale_factor: ratio between pyramid levels (higher finds more,
    slower). thresholds: face-probability cut-offs of P-Net, R-Net and O-Net.
    max_side: images whose longer side exceeds this many pixels are searched
    on a downscaled copy (faces come back in the full image's pixels).
    """

    min_face_size: float = Field(20.0, ge=12.0, le=2000.0, description="pixels")
    scale_factor: float = Field(0.709, ge=0.3, le=0.95, description="pyramid step")
    thresholds: tuple[Probability, Probability, Probability] = Field(
        (0.6, 0.7, 0.9), description="face probability cut-offs of P-Net, R-Net, O-Net"
    )
    """O-Net's 0.9 (MTCNN's usual is 0.7): of 2,999 LFW photos none had its main
    face below 0.95, while folds of a dark suit in a bundled portrait scored 0.82."""
    max_side: int = Field(1280, ge=64, le=8192, description="larger images are downscaled for detection, pixels")


class EmbedderSettings(Settings):
    """SFace embedding (edge.perception.embed).

    flip_average: also embed the mirrored crop and average the two (twice
    the cost; on LFW it did not help the float models).
    """

    flip_average: bool = Field(False, description="average each embedding with its mirror image's")


class RecognitionSettings(Settings):
    """The [recognition] section: which models, on what runtime (the match threshold is [search]'s),
    and the largest photo its photo commands decode (``max_image_pixels``, for edge.imageio.load_image:
    larger ones are refused from their header, before any memory is taken for them)."""

    models_dir: Path | None = Field(None, description="folder with the .tflite files and manifest.json")
    model_set: ModelSetName = "float16"
    runtime: RuntimeSettings = RuntimeSettings()
    detector: DetectorSettings = DetectorSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    liveness: LivenessSettings = Field(default_factory=lambda: LivenessSettings())  # defined below
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1_000_000, le=LARGEST_MAX_PIXELS,
                                  description="larger photos are refused before decoding, pixels")


class LivenessSettings(Settings):
    """Passive liveness (edge.perception.liveness.LivenessChecker): a live face, or a photo or a screen?

    model_set: which conversion of the two MiniFASNet models (models/README.md);
    the models folder and the runtime (threads, delegate) are [recognition]'s.
    models: "both" (the published ensemble: the mean of the two models'
    probabilities), or "v2" / "v1se" alone (half the cost).
    threshold: a face is live when its probability of being live (that mean,
    0..1) is at or above this; below it the face is taken for a printed photo
    or a screen. Higher rejects more attacks and more real faces.
    """

    model_set: ModelSetName = "float32"
    """float32, unlike [recognition]'s float16: it is the exact conversion and costs the
    same here (XNNPACK turns float16 weights into float32 at load), for 0.8 MB more per model;
    float16 moves the probability by up to about 0.005, int8 by up to 0.3 (models/README.md)."""
    models: Literal["both", "v2", "v1se"] = "both"
    threshold: Probability = Field(0.5, description="probability of live at or above which a face is live")
    """0.5: live when the models find live more likely than not. Chosen on that ground, not
    tuned on any data: the published usage calls a face real when live has the largest
    summed probability of the three classes, which 0.5 or more always wins (with less it can
    still win when the two attack classes split the rest, so 0.5 is a little stricter).
    Measured with it, float32 (models/README.md): the two real samples live (0.9999 and
    0.58), the printed poster (0.23) and the tablet replay (0.003) not; 540 of 600 LFW faces
    live (LFW: press photos of real people, not door-camera frames, so a rough figure)."""

    @property
    def model_names(self) -> tuple[str, ...]:
        """The enabled models, in the order results list them."""
        return ("v2", "v1se") if self.models == "both" else (self.models,)
