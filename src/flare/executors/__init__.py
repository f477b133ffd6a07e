"""Where a stage's per-image work runs. A stage hands a worker *class* and its kwargs to :func:`map_batches`;
the executor builds the worker once per process/actor and feeds it pandas batches of manifest rows.
Only ``executors/ray.py`` imports ``ray``.
"""

from flare.executors.base import map_batches

__all__ = ["map_batches"]
