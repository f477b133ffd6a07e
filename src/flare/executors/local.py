"""In-process executor: one worker, batches in order, a rich progress bar."""

from __future__ import annotations

from typing import Any

import pandas as pd

from flare.core.config import ExecutorConfig
from flare.core.progress import make_progress

__all__ = ["run_local"]


def run_local(worker_class: type, rows: pd.DataFrame, worker_kwargs: dict[str, Any], executor: ExecutorConfig,
              description: str = "") -> pd.DataFrame:
    worker = worker_class(**worker_kwargs)
    outputs: list[pd.DataFrame] = []
    size = executor.batch_size
    with make_progress() as progress:
        task = progress.add_task(description or worker_class.__name__, total=len(rows))
        for start in range(0, len(rows), size):
            batch = rows.iloc[start:start + size].reset_index(drop=True)
            outputs.append(worker(batch))
            progress.advance(task, len(batch))
    outputs = [o for o in outputs if len(o)]
    return pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame()
