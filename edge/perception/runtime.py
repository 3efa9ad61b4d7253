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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"


class ModelError(RuntimeError):
    """A model file that is missing, not a TFLite model, or not the expected model."""


class DelegateError(RuntimeError):
    """A required hardware delegate could not be loaded."""


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How interpreters are created.

    num_threads: CPU threads per interpreter (1..16).
    delegate: "cpu", "edgetpu" or "gpu" (see DELEGATES).
    delegate_required: fail instead of falling back to the CPU.
    gpu_delegate_library: path of the GPU delegate shared library.
    """

    num_threads: int = 2
    delegate: str = "cpu"
    delegate_required: bool = False
    gpu_delegate_library: str | None = None


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


def _edgetpu_delegate(options: RuntimeOptions) -> Any:
    return _load_library_delegate(EDGETPU_LIBRARY)


def _gpu_delegate(options: RuntimeOptions) -> Any:
    if not options.gpu_delegate_library:
        raise DelegateError("delegate 'gpu' needs gpu_delegate_library (the .so path) in config")
    return _load_library_delegate(options.gpu_delegate_library)


DELEGATES: dict[str, Callable[[RuntimeOptions], Any] | None] = {
    "cpu": None,
    "edgetpu": _edgetpu_delegate,
    "gpu": _gpu_delegate,
}


def resolve_model_file(path: Path, options: RuntimeOptions) -> Path:
    """The file to load for ``path`` under ``options`` (the Edge TPU build when present)."""
    if options.delegate == "edgetpu":
        compiled = path.with_name(path.stem + "_edgetpu.tflite")
        if compiled.is_file():
            return compiled
    return path


class TfliteModel:
    """One loaded model: float32 in, float32 out, whatever the tensors' dtypes.

    Inputs are given in the units the model's manifest states (raw 0..255
    pixels for every model in this project); int8/uint8 tensors are quantized
    and dequantized here with the tensors' own scale and zero point.
    """

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        path = resolve_model_file(Path(path), options)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        interpreter_class, _ = _runtime()
        delegates = self._delegates(options)
        try:
            self._interpreter = interpreter_class(
                model_path=str(path),
                num_threads=options.num_threads,
                experimental_delegates=delegates or None,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a usable TFLite model ({exc})") from None
        self.path = path
        self.delegated = bool(delegates)
        self._input_shape: tuple[int, ...] | None = None
        # Models with a free height/width (P-Net) are allocated on first use:
        # their stored default shape (1x1 pixels) is too small to prepare.
        signature = self._interpreter.get_input_details()[0]["shape_signature"]
        if all(int(d) > 0 for d in signature[1:]):
            self._interpreter.allocate_tensors()
            self._input_shape = self.input_shape

    @staticmethod
    def _delegates(options: RuntimeOptions) -> list[Any]:
        if options.delegate not in DELEGATES:
            raise DelegateError(
                f"unknown delegate {options.delegate!r}; choose one of {sorted(DELEGATES)}"
            )
        factory = DELEGATES[options.delegate]
        if factory is None:
            return []
        try:
            return [factory(options)]
        except DelegateError as exc:
            if options.delegate_required:
                raise
            log.warning("delegate %r unavailable, running on the CPU: %s", options.delegate, exc)
            return []

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._interpreter.get_input_details()[0]["shape"])

    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in o["shape"]) for o in self._interpreter.get_output_details()]

    def _ensure_input_shape(self, shape: Sequence[int]) -> None:
        shape = tuple(int(d) for d in shape)
        if shape == self._input_shape:
            return
        index = self._interpreter.get_input_details()[0]["index"]
        self._interpreter.resize_tensor_input(index, list(shape), strict=False)
        self._interpreter.allocate_tensors()
        self._input_shape = shape

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on one input array; returns every output as float32.

        The input shape may differ from the last call (pyramid levels, batch
        sizes): the interpreter is resized only when it changes.
        """
        self._ensure_input_shape(batch.shape)
        detail = self._interpreter.get_input_details()[0]
        self._interpreter.set_tensor(detail["index"], _quantize(batch, detail))
        self._interpreter.invoke()
        return [
            _dequantize(self._interpreter.get_tensor(o["index"]), o)
            for o in self._interpreter.get_output_details()
        ]


def _quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(values, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    if dtype in (np.int8, np.uint8) and scale > 0:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(values, dtype=np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(values, dtype=dtype)


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    if values.dtype == np.float32:
        return values.copy()
    scale, zero_point = detail["quantization"]
    if scale > 0:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)
