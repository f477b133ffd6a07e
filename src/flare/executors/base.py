"""The executor entry point shared by every stage: :func:`map_batches` picks the executor named by the config.

The executors (``local.py``, ``ray.py``) are imported when chosen (Ray is optional); what they share with each
other lives in ``batches.py``, so this module is the only one that imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from flare.core.config import ExecutorConfig
from flare.core.errors import ConfigError
from flare.core.shard import Shard, parse_shard, select_shard
from flare.executors.checkpoint import PartStore, remove_stale_temp_files

__all__ = ["map_batches"]


def map_batches(worker_class: type, rows: pd.DataFrame, *, worker_kwargs: dict[str, Any] | None = None,
                executor: ExecutorConfig | None = None, description: str = "",
                shard: Shard | str | None = None, shard_key: str | None = None,
                checkpoint_dir: str | Path | None = None) -> pd.DataFrame:
    """Apply ``worker_class(**worker_kwargs)`` to ``rows`` in batches; returns the concatenated outputs.

    The result does not depend on the executor, batch size, worker count or on interruptions: workers
    derive every seed from the row's id, and the output is sorted by ``id``.

    Args:
        shard: ``"i/N"`` or a :class:`~flare.core.shard.Shard`: only the rows whose ``shard_key`` (default
            ``origin_id``, else ``id``) hashes to shard ``i``. Default: ``executor.shard``.
        checkpoint_dir: the stage's output folder. Each finished batch is saved under
            ``checkpoint_dir/.flare-parts/`` so that a re-run after a crash only redoes unfinished batches;
            the parts are removed when all rows are done.
    """
    executor = executor or ExecutorConfig()
    worker_kwargs = dict(worker_kwargs or {})
    shard = parse_shard(shard if shard is not None else executor.shard)
    rows = select_shard(rows, shard, shard_key).reset_index(drop=True)

    store = PartStore.for_run(checkpoint_dir, worker_class, worker_kwargs) if checkpoint_dir else None
    outputs: list[pd.DataFrame] = []
    if store is not None and "id" in rows:
        done, outputs = store.load(rows, root=checkpoint_dir)
        rows = rows[~rows["id"].astype(str).isin(done)].reset_index(drop=True)
    parts_folder = str(store.folder) if store is not None else None

    if len(rows):
        if executor.name == "local":
            from flare.executors.local import run_local

            outputs += run_local(worker_class, rows, worker_kwargs, executor, description, parts_folder)
        elif executor.name == "ray":
            from flare.executors.ray import run_ray  # optional dependency: only this module imports ray

            outputs += run_ray(worker_class, rows, worker_kwargs, executor, description, parts_folder)
        else:  # pragma: no cover - pydantic already restricts the name
            raise ConfigError(f"executor.name: {executor.name!r} is not one of local, ray")

    out = _concat(outputs)
    if store is not None:
        store.clear()
        remove_stale_temp_files(checkpoint_dir)
    return out


def _concat(outputs: list[pd.DataFrame]) -> pd.DataFrame:
    outputs = [o for o in outputs if len(o)]
    if not outputs:
        return pd.DataFrame()
    out = pd.concat(outputs, ignore_index=True)
    if "id" in out:
        # A batch redone after a crash may repeat rows a part already holds; they are identical by construction.
        out = out.drop_duplicates("id", keep="last").sort_values("id", kind="stable").reset_index(drop=True)
    return out
