"""The executor entry point shared by every stage."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from flare.core.config import ExecutorConfig
from flare.core.errors import ConfigError

__all__ = ["map_batches", "Worker"]

# A worker is built once (it may load a model) and maps a batch of manifest rows to a batch of new rows.
Worker = Callable[[pd.DataFrame], pd.DataFrame]


def map_batches(worker_class: type, rows: pd.DataFrame, *, worker_kwargs: dict[str, Any] | None = None,
                executor: ExecutorConfig | None = None, description: str = "") -> pd.DataFrame:
    """Apply ``worker_class(**worker_kwargs)`` to ``rows`` in batches; returns the concatenated outputs.

    The result does not depend on the executor, batch size or worker count: workers derive every seed
    from the row's id, and the output is sorted by ``id``.
    """
    executor = executor or ExecutorConfig()
    if executor.name == "local":
        from flare.executors.local import run_local

        out = run_local(worker_class, rows, worker_kwargs or {}, executor, description)
    elif executor.name == "ray":
        from flare.executors.ray import run_ray  # noqa: F401  (optional dependency)

        out = run_ray(worker_class, rows, worker_kwargs or {}, executor, description)
    else:  # pragma: no cover - pydantic already restricts the name
        raise ConfigError(f"executor.name: {executor.name!r} is not one of local, ray")
    if len(out) and "id" in out:
        out = out.sort_values("id", kind="stable").reset_index(drop=True)
    return out
