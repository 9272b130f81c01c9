"""PyTorch runners: the reference modules in eager mode, or through torch.compile.

``outputs`` selects what ``run`` returns (vit5_infer.outputs; default ``logits``): with backbone
outputs the runner runs (and compiles) the network's ``forward_outputs`` instead of ``forward``.

Reduced precision on PyTorch means autocast, which is only meaningful (and only offered here) on
CUDA; on the CPU the runner stays FP32, the reference numerics.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional

import numpy as np
import torch

from vit5_infer.errors import InputError
from vit5_infer.outputs import DEFAULT_OUTPUTS, select_outputs
from vit5_infer.vocabulary import LOGITS

from .base import Runner
from .errors import BackendError, NoGPUError

_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class SelectedOutputs(torch.nn.Module):
    """``forward(x) -> {name: tensor}``: the network's ``forward_outputs`` as a module's forward,
    so that torch.compile compiles exactly the outputs asked for."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_outputs(pixel_values, self.outputs)


class TorchRunner(Runner):
    def __init__(
        self,
        model: torch.nn.Module,
        precision: str = "fp32",
        device: str = "cpu",
        compile: bool = False,
        threads: Optional[int] = None,
        compile_options: Optional[dict] = None,
        outputs=None,
    ):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise BackendError(f"the torch backends run a ViT5ClassificationNet, not {type(model).__name__}")
        if precision not in ("fp32", *_AUTOCAST_DTYPES):
            raise BackendError(f"unknown precision {precision!r} for torch; use fp32, fp16 or bf16")
        device = str(device)
        if not (device == "cpu" or device.startswith("cuda")):
            raise BackendError(f"unknown torch device {device!r}; use cpu or cuda[:N]")
        if precision != "fp32" and device == "cpu":
            raise BackendError(f"torch {precision} uses CUDA autocast; on the CPU use fp32 (or --device cuda)")
        if outputs is None:
            self.outputs = DEFAULT_OUTPUTS
        elif hasattr(model, "forward_outputs"):
            self.outputs = select_outputs(model.config, outputs)
        else:
            raise BackendError(f"backbone outputs need a ViT5ClassificationNet, not {type(model).__name__}")
        self.model = model
        self.precision = precision
        self.device = device
        self.compile = compile
        self.backend = "torch-compile" if compile else "torch"
        self.threads = threads
        self.compile_options = dict(compile_options or {})
        self._module: Any = None
        self._previous_threads: Optional[int] = None

    def load(self) -> None:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise NoGPUError(f"torch on {self.device}", "torch.cuda.is_available() is False")
        if self.threads and self.device == "cpu":
            self._previous_threads = torch.get_num_threads()
            torch.set_num_threads(self.threads)
        module: Any = self.model.to(self.device).eval()
        if self.outputs != DEFAULT_OUTPUTS:
            module = SelectedOutputs(module, self.outputs)
        if self.compile:
            module = torch.compile(module, **self.compile_options)
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
        self._module = module
        self._loaded = True

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=_AUTOCAST_DTYPES[self.precision])

    def infer(self, pixel_values: np.ndarray) -> np.ndarray:
        if LOGITS not in self.outputs:
            raise BackendError(f"this runner gives {', '.join(self.outputs)}, not logits; use run()")
        return self.run(pixel_values)[LOGITS]

    def run(self, pixel_values: np.ndarray) -> dict[str, np.ndarray]:
        if self._module is None:
            self.load()
        if not isinstance(pixel_values, np.ndarray) or pixel_values.ndim != 4:
            raise InputError("pixel_values must be a [B, C, H, W] NumPy array")
        x = torch.from_numpy(np.ascontiguousarray(pixel_values, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), self._autocast():
            out = self._module(x)
        if not isinstance(out, dict):
            out = {LOGITS: out}
        return {name: value.float().cpu().numpy() for name, value in out.items()}

    def release(self) -> None:
        self._module = None
        if self._previous_threads is not None:
            torch.set_num_threads(self._previous_threads)
            self._previous_threads = None
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        super().release()

    def peak_memory_bytes(self) -> Optional[int]:
        if self.device.startswith("cuda") and torch.cuda.is_available():
            return int(torch.cuda.max_memory_allocated(torch.device(self.device)))
        return None

    def describe(self) -> dict:
        info = super().describe()
        info["outputs"] = list(self.outputs)
        if self.compile:
            info["compile_options"] = dict(self.compile_options)
        return info
