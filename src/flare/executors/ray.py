"""Ray Data executor: the stage is one ``map_batches`` over an actor pool; each actor builds the worker once.

Batches travel as pickled pandas frames (one Ray row per batch), so each worker sees exactly the frame the
local executor would give it and returns exactly the same rows: the two executors give the same manifest,
byte for byte. Each actor asks for ``executor.gpus_per_worker`` GPUs (default: 1 when the cluster has GPUs)
and ``executor.cpus_per_worker`` CPUs; a dead actor is restarted and its batch retried up to
``executor.max_retries`` times. This is the only module that imports ``ray``.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import pandas as pd

from flare.core.config import ExecutorConfig
from flare.core.errors import ConfigError, FlareError
from flare.executors.batches import BatchRunner, split_batches

__all__ = ["run_ray", "RayBatchActor", "ensure_ray"]

_BATCH = "flare_batch"
_RESULT = "flare_result"


class RayBatchActor:
    """The callable class Ray Data runs as actors: unpickles a batch, runs the worker, pickles its rows."""

    def __init__(self, worker_class: type, worker_kwargs: dict[str, Any], parts_folder: str | None):
        # Ray sets OMP_NUM_THREADS to the actor's num_cpus, so torch uses the cores it was given.
        self.runner: BatchRunner | None = None
        self.error: FlareError | None = None
        try:
            self.runner = BatchRunner(worker_class, worker_kwargs, parts_folder)
        except FlareError as exc:  # e.g. missing weights: report it as one line instead of restarting forever
            self.error = exc

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        results = []
        for blob in batch[_BATCH]:
            try:
                if self.error is not None:
                    raise self.error
                results.append(pickle.dumps(self.runner(pickle.loads(blob)), protocol=5))
            except FlareError as exc:  # bad input: sent back as data, so the caller sees the one-line error
                results.append(pickle.dumps(exc, protocol=5))
        return pd.DataFrame({_RESULT: results})


def ensure_ray(executor: ExecutorConfig) -> None:
    """Connect to ``executor.ray_address``, or start a local single-machine cluster (no dashboard)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor.name: 'ray' needs Ray Data; install it with `pip install 'ray[data]'`") from None
    if ray.is_initialized():
        return
    if executor.ray_address:
        ray.init(address=executor.ray_address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)


def run_ray(worker_class: type, rows: pd.DataFrame, worker_kwargs: dict[str, Any], executor: ExecutorConfig,
            description: str = "", parts_folder: str | None = None) -> list[pd.DataFrame]:
    """Run every batch of ``rows`` on an actor pool of ``executor.workers``; returns the workers' outputs."""
    import ray
    import ray.data

    ensure_ray(executor)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = os.environ.get("FLARE_PROGRESS", "1") != "0"
    context.print_on_execution_start = False
    blobs = [pickle.dumps(batch, protocol=5) for batch in split_batches(rows, executor.batch_size)]
    # One block per batch, so that the pool's actors share the work.
    dataset = ray.data.from_pandas([pd.DataFrame({_BATCH: [blob]}) for blob in blobs])
    gpus = executor.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    with warnings.catch_warnings():
        # Bounded restarts are only reachable through the (deprecated) remote args; Ray's default is unbounded,
        # which would retry a worker that always crashes forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        mapped = dataset.map_batches(
            RayBatchActor,
            fn_constructor_kwargs={"worker_class": worker_class, "worker_kwargs": worker_kwargs,
                                   "parts_folder": parts_folder},
            batch_size=1,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=min(executor.workers, len(blobs))),
            num_cpus=executor.cpus_per_worker,
            num_gpus=gpus,
            max_restarts=executor.max_retries,
            max_task_retries=executor.max_retries,
        )
    outputs = []
    for row in mapped.iter_rows():
        output = pickle.loads(row[_RESULT])
        if isinstance(output, FlareError):
            raise output
        outputs.append(output)
    return outputs
