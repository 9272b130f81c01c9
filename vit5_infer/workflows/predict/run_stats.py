"""The counters of one predict run (rows, errors, accuracy, time per stage) and the summary fields they
give; the local pipeline and the Ray driver count the same way."""

from __future__ import annotations

import time
from typing import Optional

import numpy as np


class RunStats:
    """Counters of one run, and the summary fields they give."""

    def __init__(self, setup_start: float):
        self.setup_start = setup_start
        self.start = self.setup_s = 0.0
        self.rows = self.errors = self.correct1 = self.correct5 = self.labelled = 0
        self.decode_s = self.wait_s = self.compute_s = self.write_s = 0.0

    def started(self) -> None:
        self.start = time.perf_counter()
        self.setup_s = self.start - self.setup_start

    def count(self, columns: dict, errors, labels: Optional[np.ndarray]) -> None:
        failed = np.array([e is not None for e in errors], dtype=bool)
        self.rows += len(errors)
        self.errors += int(failed.sum())
        if labels is not None:
            ok = ~failed
            classes = columns["classes"][: len(errors)]
            self.labelled += int(ok.sum())
            self.correct1 += int(((classes[:, 0] == labels) & ok).sum())
            # within the written classes: with --topk below 5 this is top-k accuracy
            self.correct5 += int(((classes[:, :5] == labels[:, None]).any(axis=1) & ok).sum())

    def finish(self, labelled: bool) -> dict:
        wall = time.perf_counter() - self.start if self.start else 0.0
        fields = dict(
            rows=self.rows,
            errors=self.errors,
            wall_s=round(wall, 4),
            images_per_s=round(self.rows / wall, 3) if wall > 0 else 0.0,
            decode_s=round(self.decode_s, 4),
            wait_s=round(self.wait_s, 4),
            compute_s=round(self.compute_s, 4),
            write_s=round(self.write_s, 4),
            setup_s=round(self.setup_s, 4),
        )
        if labelled:
            fields["labelled"] = self.labelled
            if self.labelled:
                fields.update(top1=self.correct1 / self.labelled, top5=self.correct5 / self.labelled)
        return fields
