"""Decoding and preprocessing of one chunk of images, in worker processes, overlapped with inference.

A file that cannot be used becomes an error text for its row (never an exception): the rest of its
chunk is decoded as usual.  ``DecodePool`` keeps at most a bounded number of chunks in flight, so
memory stays flat however long the input list is.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vit5_infer.errors import Vit5Error
from vit5_infer.preprocessing import Preprocessing, load_image


@dataclass
class DecodedChunk:
    indices: np.ndarray  # int64 [n]: positions in the input list
    pixels: np.ndarray  # float32 [n, 3, S, S]; rows with an error are zeros
    errors: list  # per row: None or a one-line reason
    seconds: float  # decode time spent on this chunk (in its worker)


_WHAT = "image"  # how load_image names the file's role in its messages; dropped from the row's error


def decode_error(path: str, exc: BaseException) -> str:
    """The one-line reason ``path`` could not be used."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.removeprefix(f"{_WHAT}: ")
    return text if path in text else f"{path}: {text}"


def decode_chunk(indices: Sequence[int], paths: Sequence[str], pre: Preprocessing) -> DecodedChunk:
    start = time.perf_counter()
    size = pre.image_size
    pixels = np.zeros((len(paths), 3, size, size), dtype=np.float32)
    errors: list = [None] * len(paths)
    for row, path in enumerate(paths):
        try:
            pixels[row] = load_image(path, pre, _WHAT)
        except (Vit5Error, OSError, ValueError, MemoryError) as exc:
            # load_image names unreadable, non-image, bomb and unsupported-mode files; anything else
            # Pillow raises for one file stays that file's problem.
            errors[row] = decode_error(path, exc)
    return DecodedChunk(np.asarray(indices, dtype=np.int64), pixels, errors, time.perf_counter() - start)


def _init_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL cannot stop its pool: a worker leaves once it is orphaned.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


class DecodePool:
    """Decodes chunks in ``workers`` processes (inline when 0), at most ``depth`` chunks ahead."""

    def __init__(self, pre: Preprocessing, workers: int, depth: Optional[int] = None):
        self.pre, self.workers = pre, workers
        self.depth = depth or max(2, 2 * workers)
        self._pool: Optional[ProcessPoolExecutor] = None

    def __enter__(self) -> DecodePool:
        if self.workers > 0:
            # spawn: the parent holds ONNX Runtime / TensorRT threads that a fork would copy mid-state
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)
            self._pool = None

    def map(self, chunks: Iterable[tuple[Sequence[int], Sequence[str]]]) -> Iterator[DecodedChunk]:
        """The decoded chunks, in the order given."""
        if self._pool is None:
            for indices, paths in chunks:
                yield decode_chunk(indices, paths, self.pre)
            return
        pending: collections.deque = collections.deque()
        chunks = iter(chunks)
        for indices, paths in chunks:
            pending.append(self._pool.submit(decode_chunk, indices, paths, self.pre))
            if len(pending) >= self.depth:
                break
        while pending:
            done = pending.popleft().result()
            following = next(chunks, None)
            if following is not None:
                pending.append(self._pool.submit(decode_chunk, *following, self.pre))
            yield done
