"""The runner interface shared by every backend (in the spirit of Polygraphy's runners).

A runner is loaded (or built) once, runs batches of ``pixel_values`` given as float32 NCHW NumPy
arrays and returns float32 logits ``[B, classes]`` on the host, then is released.  Heavy imports
(torch.compile, onnxruntime providers, tensorrt) happen in ``load``, never at import time.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Optional

from vit5_infer.vocabulary import LOGITS

if TYPE_CHECKING:  # annotations only: the registry imports this module, and `vit5 --help` reads the registry
    import numpy as np


class Runner(abc.ABC):
    #: backend name as the CLI spells it: torch, torch-compile, ort, ort-cuda, ort-trt, trt
    backend: str = ""
    #: fp32, fp16, bf16 or int8
    precision: str = "fp32"
    #: "cpu" or "cuda"
    device: str = "cpu"

    def __init__(self):
        self._loaded = False

    @property
    def name(self) -> str:
        return f"{self.backend}[{self.precision}]"

    @abc.abstractmethod
    def load(self) -> None:
        """Build or deserialize everything needed to run; may be slow."""

    @abc.abstractmethod
    def infer(self, pixel_values: np.ndarray) -> np.ndarray:
        """Logits for one batch; returns only when the result is on the host."""

    def run(self, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
        """Every output of the model, by name, as float32 host arrays (``logits`` and, for graphs
        exported with backbone outputs, the features)."""
        return {LOGITS: self.infer(pixel_values)}

    def release(self) -> None:
        """Free sessions, engines and device memory."""
        self._loaded = False

    def peak_memory_bytes(self) -> Optional[int]:
        """Peak device (GPU) or process memory attributable to this runner, if known."""
        return None

    def describe(self) -> dict:
        return {"backend": self.backend, "precision": self.precision, "device": self.device}

    def __enter__(self):
        if not self._loaded:
            self.load()
            self._loaded = True
        return self

    def __exit__(self, *exc):
        self.release()
        return False
