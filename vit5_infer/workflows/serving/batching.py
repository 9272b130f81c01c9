"""One batch of Triton requests -> one runner call -> one response per request.

Triton's dynamic batcher hands the model a list of requests; each carries ``pixel_values``
(already checked by Triton against the declared dims and data type) or ``images`` (encoded bytes,
decoded here as the graph's metadata says).  The requests that read correctly run as one batch,
padded to the graph's static batch where it has one, and the outputs are cut back per request; a
request that does not read is answered with its own error.  Pure NumPy: nothing here needs PyTriton,
so it is tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vit5_infer.errors import InputError, Vit5Error
from vit5_infer.preprocessing import Preprocessing, decode_image

from .signature import ModelSignature

#: The optional input carrying encoded images (PNG, JPEG, ...), one per batch item.
IMAGES_INPUT = "images"


class BatchedModel:
    """Callable ``requests -> responses`` over a loaded runner (one per Triton model instance)."""

    def __init__(self, runner, signature: ModelSignature):
        self.runner = runner
        self.signature = signature
        spec = signature.pixel_input
        self._pixel_name = spec.name
        self._pixel_dims = tuple(spec.dims)
        self._pixel_dtype = spec.numpy_dtype
        self._preprocessing = signature.preprocessing or Preprocessing(image_size=self._image_size())

    def _image_size(self) -> int:
        dims = self._pixel_dims
        return int(dims[1] if self.signature.layout == "nchw" else dims[0])

    def __call__(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        # Every request is read before anything runs, so a bad one fails before any work is done.
        items = [self.pixels(request, index) for index, request in enumerate(requests)]
        return self.outputs_per_request(items)

    def read_each(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list:
        """Per request, its pixels (``read``) or the Vit5Error that refuses it."""
        read: list = []
        for request in requests:
            try:
                read.append(self.read(request))
            except Vit5Error as exc:
                read.append(exc)
        return read

    def outputs_per_request(self, items: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """The outputs of each request's pixels ``items``, all run as one batch."""
        if not items:
            return []
        sizes = [len(x) for x in items]
        outputs = self.run(np.concatenate(items) if len(items) > 1 else items[0])
        responses, start = [], 0
        for size in sizes:
            responses.append({name: value[start : start + size] for name, value in outputs.items()})
            start += size
        return responses

    def pixels(self, request: Mapping[str, np.ndarray], index: int = 0) -> np.ndarray:
        """The ``[n, *dims]`` pixels of one request of a batch, errors naming it by its ``index``."""
        return self.read(request, f"request {index}: ")

    def read(self, request: Mapping[str, np.ndarray], where: str = "") -> np.ndarray:
        """The ``[n, *dims]`` pixels of one request, from ``pixel_values`` or decoded ``images``;
        ``where`` begins every error message."""
        has_pixels = request.get(self._pixel_name) is not None
        has_images = request.get(IMAGES_INPUT) is not None
        if has_pixels == has_images:
            raise InputError(f"{where}send exactly one of {self._pixel_name} and {IMAGES_INPUT}")
        if has_pixels:
            x = np.asarray(request[self._pixel_name])
            if x.ndim != len(self._pixel_dims) + 1 or tuple(x.shape[1:]) != self._pixel_dims:
                raise InputError(
                    f"{where}{self._pixel_name} must be [batch, {', '.join(map(str, self._pixel_dims))}], got "
                    f"{list(x.shape)}"
                )
            if x.dtype != self._pixel_dtype:
                raise InputError(f"{where}{self._pixel_name} must be {self._pixel_dtype}, got {x.dtype}")
            return x
        images = np.asarray(request[IMAGES_INPUT], dtype=object)
        # Triton checks the element count of a BYTES input against its declared shape only where the
        # count fits; a shape such as [1099511627776, 1] reaches the model with one element in [1].
        if images.ndim != 2 or images.shape[1] != 1:
            raise InputError(f"{where}{IMAGES_INPUT} must be [batch, 1], got {list(images.shape)}")
        return self.decode(images, where)

    def decode(self, images: np.ndarray, where: str = "") -> np.ndarray:
        """Encoded images ``[n]`` or ``[n, 1]`` (bytes) -> preprocessed pixels ``[n, *dims]``."""
        flat = np.asarray(images, dtype=object).reshape(-1)
        if flat.size == 0:
            raise InputError(f"{where}{IMAGES_INPUT} holds no image")
        decoded = []
        for k, data in enumerate(flat):
            if not isinstance(data, (bytes, bytearray, np.bytes_)):
                raise InputError(f"{where}{IMAGES_INPUT}[{k}] must be encoded bytes, got {type(data).__name__}")
            chw = decode_image(bytes(data), self._preprocessing, what=f"{where}{IMAGES_INPUT}[{k}]")
            decoded.append(chw if self.signature.layout == "nchw" else chw.transpose(1, 2, 0))
        return np.stack(decoded).astype(self._pixel_dtype, copy=False)

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for ``pixels``, in runs of at most max_batch (padded to a static batch)."""
        limit = self.signature.static_batch or self.signature.max_batch
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(pixels), limit):
            chunk = pixels[start : start + limit]
            count = len(chunk)
            if self.signature.static_batch and count < self.signature.static_batch:
                pad = np.zeros((self.signature.static_batch - count, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            for name, value in self.runner.run(chunk).items():
                parts.setdefault(name, []).append(np.asarray(value)[:count])
        return {name: values[0] if len(values) == 1 else np.concatenate(values) for name, values in parts.items()}
