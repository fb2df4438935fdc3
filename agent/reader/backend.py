"""Loading and running int8 TFLite models on the device.

``ai_edge_litert`` (the current LiteRT wheel) is preferred; ``tflite_runtime``
(older boards' wheel) is the fallback. Model files are untrusted input: a
missing, unreadable or corrupt file raises :class:`~agent.errors.ModelError`
with the path and the reason, never a bare interpreter exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.errors import ModelError

_TFLITE_MAGIC = b"TFL3"


class _Interpreter(Protocol):
    def allocate_tensors(self) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None: ...
    def get_tensor(self, tensor_index: int) -> npt.NDArray[Any]: ...
    def invoke(self) -> None: ...


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                "no TFLite runtime installed: install ai-edge-litert (or tflite-runtime)"
            ) from exc
    return Interpreter


def load_interpreter(path: Path, num_threads: int = 1) -> _Interpreter:
    """An interpreter for the ``.tflite`` file at ``path``, tensors allocated.

    Raises ``ModelError`` if the file is missing, unreadable, not a TFLite
    flatbuffer, or the runtime refuses it.
    """
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"model file {path} not found") from exc
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    if len(data) < 8 or data[4:8] != _TFLITE_MAGIC:
        raise ModelError(f"model file {path} is not a TFLite model (bad header)")
    interpreter_cls = _interpreter_class()
    try:
        interpreter: _Interpreter = interpreter_cls(model_content=data, num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model file {path} is corrupt or unsupported: {exc}") from exc
    return interpreter


@dataclass(frozen=True, slots=True)
class Quantization:
    """Affine int8/uint8 quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


class QuantizedModel:
    """One-input, one-output quantized model with preallocated buffers.

    ``invoke`` takes the already-quantized input (uint8 for our models) and
    returns the dequantized float32 output. The returned array is an internal
    buffer reused by the next call: copy it if you keep it.
    """

    def __init__(self, path: Path, num_threads: int = 1) -> None:
        self.path = path
        self._interp = load_interpreter(path, num_threads)
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"model {path} must have one input and one output, "
                f"has {len(inputs)} and {len(outputs)}"
            )
        inp, out = inputs[0], outputs[0]
        self.input_shape: tuple[int, ...] = tuple(int(d) for d in inp["shape"])
        self.input_dtype: np.dtype[Any] = np.dtype(inp["dtype"])
        self.output_shape: tuple[int, ...] = tuple(int(d) for d in out["shape"])
        self.output_dtype: np.dtype[Any] = np.dtype(out["dtype"])
        self.input_quant = Quantization(float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output_quant = Quantization(float(out["quantization"][0]), int(out["quantization"][1]))
        if self.input_dtype != np.uint8:
            raise ModelError(f"model {path} must take uint8 input, takes {self.input_dtype}")
        self._in_index = int(inp["index"])
        self._out_index = int(out["index"])
        self._output = np.empty(self.output_shape, np.float32)
        self._scale = np.float32(self.output_quant.scale or 1.0)
        self._zero = np.float32(self.output_quant.zero_point)

    def invoke(self, data: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Run the model on ``data`` (the input shape, uint8); dequantized float32 output."""
        if data.shape != self.input_shape or data.dtype != np.uint8:
            raise ValueError(
                f"model {self.path.name} wants uint8 {self.input_shape}, "
                f"got {data.dtype} {data.shape}"
            )
        self._interp.set_tensor(self._in_index, data)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._out_index)
        if self.output_dtype == np.float32:
            np.copyto(self._output, raw)
        else:
            np.subtract(raw, self._zero, out=self._output, dtype=np.float32)
            self._output *= self._scale
        return self._output
