"""What every executor runs: the worker contract, the per-process :class:`BatchRunner` and the batch split.

``base.map_batches`` picks an executor; ``local.py`` and ``ray.py`` import these pieces from here, so neither
imports ``base`` back.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from flare.executors.checkpoint import PartStore

__all__ = ["Worker", "BatchRunner", "split_batches"]

# A worker is built once (it may load a model) and maps a batch of manifest rows to a batch of new rows.
Worker = Callable[[pd.DataFrame], pd.DataFrame]


class BatchRunner:
    """What every executor runs per process/actor: builds the worker once, calls it per batch, and
    checkpoints each finished batch when a parts folder is given."""

    def __init__(self, worker_class: type, worker_kwargs: dict[str, Any], parts_folder: str | None = None):
        self.worker = worker_class(**worker_kwargs)
        self.parts = PartStore(parts_folder) if parts_folder else None

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.reset_index(drop=True)
        output = self.worker(batch)
        if output is None:
            output = pd.DataFrame()
        if self.parts is not None and "id" in batch:
            self.parts.write(batch, output)
        return output


def split_batches(rows: pd.DataFrame, batch_size: int) -> list[pd.DataFrame]:
    return [rows.iloc[start:start + batch_size].reset_index(drop=True) for start in range(0, len(rows), batch_size)]
