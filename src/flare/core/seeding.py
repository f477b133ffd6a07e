"""Seeds derived from names, so that a per-image seed never depends on order, batching or sharding."""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "numpy_rng"]


def derive_seed(base_seed: int, *keys: object) -> int:
    """Return a 31-bit seed determined by ``base_seed`` and ``keys`` only.

    Hashing (rather than drawing from a shared stream) makes the seed of image ``x`` the same whether it is
    processed first, last, alone, or on another worker.
    """
    text = "\x1f".join([str(int(base_seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def numpy_rng(base_seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator seeded by :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(base_seed, *keys))
