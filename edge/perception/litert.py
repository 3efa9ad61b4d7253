"""The one place that talks to the TFLite runtime (LiteRT).

It creates interpreters with the configured thread count and delegate, and
hides tensor quantization: callers pass float32 arrays in the model's own
units and get float32 arrays back.

Accelerators are chosen by name through DELEGATES:
- "cpu": the runtime's default CPU path (XNNPACK in LiteRT builds).
- "edgetpu": Coral Edge TPU via libedgetpu; uses the `*_edgetpu.tflite` file
  beside the chosen model when one exists (compiled by the user's
  edgetpu_compiler), else the model itself.
- "gpu": the TFLite GPU delegate, from a shared library path given in config.
A delegate that cannot load falls back to the CPU with one log line, or raises
DelegateError when the config says the delegate is required.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.perception.settings import RuntimeSettings

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"


class ModelError(RuntimeError):
    """A model file that is missing, not a TFLite model, or not the expected model."""


class DelegateError(RuntimeError):
    """A required hardware delegate could not be loaded."""


def _runtime() -> tuple[type, Callable[..., Any]]:
    """(Interpreter class, load_delegate) from LiteRT, else from tflite_runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError:
            raise ModelError(
                "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
            ) from None
    return Interpreter, load_delegate


def _load_library_delegate(library: str, options: dict | None = None) -> Any:
    # Probe with ctypes first: LiteRT's load_delegate leaves a noisy destructor
    # warning behind when the library is absent.
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        raise DelegateError(f"cannot load {library}: {exc}") from None
    _, load_delegate = _runtime()
    try:
        return load_delegate(library, options or {})
    except (OSError, ValueError, RuntimeError) as exc:
        raise DelegateError(f"{library} loaded but the delegate failed: {exc}") from None


def _edgetpu_delegate(settings: RuntimeSettings) -> Any:
    return _load_library_delegate(EDGETPU_LIBRARY)


def _gpu_delegate(settings: RuntimeSettings) -> Any:
    return _load_library_delegate(settings.gpu_delegate_library)


DELEGATES: dict[str, Callable[[RuntimeSettings], Any] | None] = {
    "cpu": None,
    "edgetpu": _edgetpu_delegate,
    "gpu": _gpu_delegate,
}


def resolve_model_file(path: Path, settings: RuntimeSettings) -> Path:
    """The file to load for ``path`` under ``settings`` (the Edge TPU build when present)."""
    if settings.delegate == "edgetpu":
        compiled = path.with_name(path.stem + "_edgetpu.tflite")
        if compiled.is_file():
            return compiled
    return path


class TfliteModel:
    """One loaded model: float32 in, float32 out, whatever the tensors' dtypes.

    Inputs are given in the units the model's manifest states (raw 0..255
    pixels for every model in this project); int8/uint8 tensors are quantized
    and dequantized here with the tensors' own scale and zero point.

    Re-preparing an interpreter for a new height or width costs more than
    running it (XNNPACK re-plans every convolution: 7 ms for P-Net's largest
    level), and the detector asks for the same few sizes every frame (its
    pyramid levels). So each size gets its own interpreter, prepared once and
    kept; the MAX_SHAPES used longest ago are dropped. On the CPU a new batch
    size only resizes that interpreter, which takes some 20 microseconds, so
    batches run at their exact size. A delegate may re-plan for any new shape,
    so there batches are padded to a power of two and each shape kept apart.
    """

    MAX_SHAPES = 24

    def __init__(self, path: Path, settings: RuntimeSettings) -> None:
        path = resolve_model_file(Path(path), settings)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self.path = path
        self._settings = settings
        self._delegates = self._load_delegates(settings)
        self.delegated = bool(self._delegates)
        self._by_shape: dict[tuple[int, ...], _Prepared] = {}
        first = self._new_interpreter()
        detail = first.get_input_details()[0]
        self.input_shape = tuple(int(d) for d in detail["shape"])
        self.output_shapes = [tuple(int(d) for d in o["shape"]) for o in first.get_output_details()]
        # Models with a free height/width (P-Net) are prepared per shape on first
        # use: their stored default shape (1x1 pixels) is too small to prepare.
        if all(int(d) > 0 for d in detail["shape_signature"][1:]):
            first.allocate_tensors()
            self._by_shape[self._key(self.input_shape)] = _Prepared(first, self.input_shape)

    def _new_interpreter(self) -> Any:
        interpreter_class, _ = _runtime()
        try:
            return interpreter_class(
                model_path=str(self.path),
                num_threads=self._settings.num_threads,
                experimental_delegates=self._delegates or None,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: not a usable TFLite model ({exc})") from None

    @staticmethod
    def _load_delegates(settings: RuntimeSettings) -> list[Any]:
        if settings.delegate not in DELEGATES:
            raise DelegateError(
                f"unknown delegate {settings.delegate!r}; choose one of {sorted(DELEGATES)}"
            )
        factory = DELEGATES[settings.delegate]
        if factory is None:
            return []
        try:
            return [factory(settings)]
        except DelegateError as exc:
            if settings.delegate_required:
                raise
            log.warning("delegate %r unavailable, running on the CPU: %s", settings.delegate, exc)
            return []

    def _key(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.delegated else shape[1:]

    def _prepared(self, shape: tuple[int, ...]) -> _Prepared:
        """The interpreter for inputs of ``shape`` (see the class docstring)."""
        prepared = self._by_shape.pop(self._key(shape), None)
        if prepared is None:
            prepared = _Prepared(self._new_interpreter(), None)
            if len(self._by_shape) >= self.MAX_SHAPES:
                del self._by_shape[next(iter(self._by_shape))]
        if prepared.shape != shape:
            try:
                prepared.interpreter.resize_tensor_input(prepared.input["index"], list(shape), strict=False)
                prepared.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"{self.path}: cannot run on input shape {shape} ({exc})") from None
            prepared.shape = shape
        self._by_shape[self._key(shape)] = prepared  # most recently used last
        return prepared

    def close(self) -> None:
        """Release the interpreters and delegates (the model cannot run afterwards)."""
        self._by_shape.clear()
        self._delegates = []

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on one input array; returns every output as float32.

        ``batch`` is in the model's units but may be of any numeric dtype:
        uint8 pixels are converted as they are written into the input tensor.
        """
        count = len(batch)
        if self.delegated and count & (count - 1):
            padding = np.zeros(((1 << count.bit_length()) - count, *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, padding])
        prepared = self._prepared(tuple(int(d) for d in batch.shape))
        interpreter = prepared.interpreter
        if prepared.input["dtype"] == np.float32:
            # Straight into the tensor, converted on the way: no float32 copy of a large input first.
            np.copyto(interpreter.tensor(prepared.input["index"])(), batch, casting="unsafe")
        else:
            interpreter.set_tensor(prepared.input["index"], _quantize(batch, prepared.input))
        interpreter.invoke()
        return [_dequantize(interpreter.get_tensor(o["index"]), o)[:count] for o in prepared.outputs]


class _Prepared:
    """An interpreter, the input shape it is allocated for (None: not yet), and its tensor details read once."""

    __slots__ = ("interpreter", "shape", "input", "outputs")

    def __init__(self, interpreter: Any, shape: tuple[int, ...] | None) -> None:
        self.interpreter = interpreter
        self.shape = shape
        self.input = interpreter.get_input_details()[0]
        self.outputs = interpreter.get_output_details()


def _quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    scale, zero_point = detail["quantization"]
    if dtype in (np.int8, np.uint8) and scale > 0:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(values, dtype=np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(values, dtype=dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if values.dtype == np.float32:
        return values  # get_tensor gave a copy already
    scale, zero_point = detail["quantization"]
    if scale > 0:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def run_chunked(model: TfliteModel, batch: np.ndarray, max_batch: int) -> list[np.ndarray]:
    """Every output of ``model`` for ``batch`` (n, ...), run in chunks of at most ``max_batch``
    (TfliteModel.run sizes or pads each chunk as the runtime prefers)."""
    results = [model.run(batch[start : start + max_batch]) for start in range(0, len(batch), max_batch)]
    return [np.concatenate(parts) for parts in zip(*results)]
