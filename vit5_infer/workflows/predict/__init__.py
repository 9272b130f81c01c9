"""``predict``: run a model over an image collection into a resumable, sharded Parquet dataset,
locally (decoding in worker processes, overlapped with inference) or on Ray Data.

- ``options``: ``PredictOptions`` and ``Shard``, checked without touching a file;
- ``inputs``: the input list (folder, ImageFolder with labels, manifest) and its hash;
- ``model``: SOURCE -> runner spec, preprocessing and fingerprint;
- ``decode``: decoding workers behind a bounded queue;
- ``columns``: model outputs -> row columns (top-k, vectors, arrays);
- ``dataset``: the Parquet dataset (part files, .npy shards, metadata, resume);
- ``pipeline``: ``predict(options, progress=...) -> PredictSummary``;
- ``ray_pipeline``: the Ray Data path and ``Vit5Predictor`` (imports Ray only when used).
"""

from .options import PredictOptions, Shard
from .pipeline import PredictSummary, plan, predict

__all__ = ["PredictOptions", "PredictSummary", "Shard", "Vit5Predictor", "decode_batch", "plan", "predict"]


def __getattr__(name: str):
    if name in ("Vit5Predictor", "decode_batch"):
        from . import ray_pipeline

        return getattr(ray_pipeline, name)
    raise AttributeError(name)
