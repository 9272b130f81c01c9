"""A small tritonclient wrapper: send pixels or encoded images over HTTP or gRPC, get every output.

Used by the tests and the load benchmark; a user's client needs nothing beyond what this shows
(see the README's client snippet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Optional

import numpy as np

from vit5_infer.vocabulary import INPUT_NAME

from .batching import IMAGES_INPUT
from .errors import SERVE_INSTALL_HINT, ServeUnavailableError

PROTOCOLS = ("http", "grpc")
_TRITON_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16"}


def _module(protocol: str):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be http or grpc, got {protocol!r}")
    try:
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
    except ImportError as exc:
        raise ServeUnavailableError(
            f"the Triton client needs tritonclient ({exc.name}): {SERVE_INSTALL_HINT}"
        ) from None
    return module


class TritonModelClient:
    """One connection to one served model; a context manager (closes the connection)."""

    def __init__(self, url: str, model: str, protocol: str = "http", timeout_s: float = 60.0):
        self.protocol = protocol
        self.model = model
        self.timeout_s = timeout_s
        self._module = _module(protocol)
        if protocol == "http":
            self._client = self._module.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = self._module.InferenceServerClient(url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonModelClient:
        return self

    def __exit__(self, *exc) -> Literal[False]:
        self.close()
        return False

    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(self.model))
        except Exception:  # noqa: BLE001 - not reachable yet
            return False

    def output_names(self) -> list[str]:
        meta = self._client.get_model_metadata(self.model)
        outputs = meta["outputs"] if isinstance(meta, dict) else meta.outputs
        return [o["name"] if isinstance(o, dict) else o.name for o in outputs]

    def infer(
        self,
        pixel_values: Optional[np.ndarray] = None,
        images: Optional[Sequence[bytes]] = None,
        outputs: Optional[Sequence[str]] = None,
    ) -> dict[str, np.ndarray]:
        """Every output (or those named) for a batch of ``pixel_values`` ``[B, C, H, W]`` or of
        encoded ``images``; raises tritonclient's InferenceServerException on an error response."""
        if (pixel_values is None) == (images is None):
            raise ValueError("pass exactly one of pixel_values and images")
        m = self._module
        if pixel_values is not None:
            x = np.ascontiguousarray(pixel_values)
            tensor = m.InferInput(INPUT_NAME, list(x.shape), _TRITON_DTYPES.get(x.dtype, "FP32"))
        else:
            x = np.array([[bytes(b)] for b in (images if images is not None else ())], dtype=np.object_)
            tensor = m.InferInput(IMAGES_INPUT, list(x.shape), "BYTES")
        tensor.set_data_from_numpy(x)
        names = list(outputs) if outputs is not None else self.output_names()
        requested = [m.InferRequestedOutput(name) for name in names]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._client.infer(self.model, [tensor], outputs=requested, **kwargs)
        return {name: result.as_numpy(name) for name in names}
