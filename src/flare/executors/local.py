"""In-machine executor: one worker in this process, or a pool of ``executor.workers`` processes (or threads).

Each process builds the worker once (its initializer), then takes batches as they come. Processes are
started with ``spawn`` by default so that a worker holding torch or CUDA state never inherits a forked copy;
the worker class must therefore be importable (defined at module level). ``executor.local_start: fork`` starts
them as copies of this process instead, which skips each worker's torch import (about 2 s on the development
machine, more than a 5,000-image augment run takes at 10x, docs/augmentation.md); it is refused once CUDA is
initialised here. Threads suit workers that release the GIL.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from typing import Any

import pandas as pd

from flare.core.config import ExecutorConfig
from flare.core.errors import FlareError
from flare.core.progress import make_progress
from flare.executors.batches import BatchRunner, split_batches

__all__ = ["run_local"]


def run_local(worker_class: type, rows: pd.DataFrame, worker_kwargs: dict[str, Any], executor: ExecutorConfig,
              description: str = "", parts_folder: str | None = None) -> list[pd.DataFrame]:
    """Run every batch of ``rows``; returns the workers' outputs (in no particular order)."""
    batches = split_batches(rows, executor.batch_size)
    workers = min(executor.workers, len(batches))
    outputs: list[pd.DataFrame] = []
    with make_progress() as progress:
        task = progress.add_task(description or worker_class.__name__, total=len(rows))
        if workers <= 1:
            runner = BatchRunner(worker_class, worker_kwargs, parts_folder)
            for batch in batches:
                outputs.append(runner(batch))
                progress.advance(task, len(batch))
            return outputs
        with _make_pool(executor.local_pool, workers, (worker_class, worker_kwargs, parts_folder),
                        executor.local_start) as pool:
            futures = {pool.submit(_run_batch, batch): len(batch) for batch in batches}
            for future in as_completed(futures):
                outputs.append(future.result())
                progress.advance(task, futures[future])
    return outputs


# ---------------------------------------------------------------------------------------------- pools

_process_runner: BatchRunner | None = None
_thread_state = threading.local()
_init_error: list[FlareError] = []


def _make_pool(kind: str, workers: int, runner_args: tuple, start: str = "spawn") -> Executor:
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers, initializer=_init_thread, initargs=runner_args)
    if start == "fork":
        if "fork" not in multiprocessing.get_all_start_methods():
            raise FlareError("executor.local_start: fork is not available on this platform; use spawn")
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            raise FlareError("executor.local_start: fork cannot copy a process that has initialised CUDA; use spawn")
    context = multiprocessing.get_context(start)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_process,
                               initargs=runner_args)


def _init_process(worker_class: type, worker_kwargs: dict[str, Any], parts_folder: str | None) -> None:
    global _process_runner
    # One core per process: N processes should not each start N BLAS/torch threads (read at torch import).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        # Unpickling ``worker_class`` for this call imported torch before the line above ran, so its intra-op
        # pool was sized to every core: N processes × N spinning OpenMP threads made a 2-process augment run
        # 17x slower than one process on a busy 2-core machine.
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:
        _process_runner = BatchRunner(worker_class, worker_kwargs, parts_folder)
    except FlareError as exc:  # an initializer that raises breaks the pool and loses the message
        _init_error.append(exc)


def _init_thread(worker_class: type, worker_kwargs: dict[str, Any], parts_folder: str | None) -> None:
    try:
        _thread_state.runner = BatchRunner(worker_class, worker_kwargs, parts_folder)
    except FlareError as exc:
        _thread_state.error = exc


def _run_batch(batch: pd.DataFrame) -> pd.DataFrame:
    error = getattr(_thread_state, "error", None) or (_init_error[0] if _init_error else None)
    if error is not None:
        raise error
    runner = getattr(_thread_state, "runner", None) or _process_runner
    assert runner is not None, "executor pool was not initialised"
    return runner(batch)
