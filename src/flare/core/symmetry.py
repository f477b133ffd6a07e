"""The eight rot90 × flip views of a square image (the dihedral group D4): exact symmetries of the sky.

A quarter turn keeps a spiral's sense of rotation; a mirror reverses it, so a mirrored view carries the label's
mirror pair (``Taxonomy.mirror``: clockwise ↔ anticlockwise). Used by the benchmark's online augmentation
(``Raw_HR_online``) and by test-time augmentation, where the class probabilities of a mirrored view are
permuted back before averaging. Views are index ``0..7``: ``k = view % 4`` quarter turns, then a left-right
mirror when ``view >= 4``; view 0 is the identity.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["VIEWS", "view_mirrors", "views_mirror", "apply_view", "mirror_permutation",
           "average_views", "mirrored_classes"]

VIEWS = tuple(range(8))


def view_mirrors(view: int) -> bool:
    """Whether view ``view`` mirrors the image (and so swaps mirror-pair labels)."""
    return view >= 4


def views_mirror(views: np.ndarray) -> np.ndarray:
    """:func:`view_mirrors` for an array of view indices."""
    return np.asarray(views) >= 4


def apply_view(images: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` of ``(..., H, W)`` images (channels first), as a contiguous copy."""
    out = np.rot90(images, k=view % 4, axes=(-2, -1))
    if view_mirrors(view):
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def mirror_permutation(classes: Sequence[str], mirror: Callable[[str], str]) -> np.ndarray:
    """``perm`` with ``perm[i]`` = the index of ``mirror(classes[i])``: a mirrored image of class ``i`` is
    class ``perm[i]``, and ``probabilities[:, perm]`` turns a mirrored view's probabilities into the original's.

    ``mirror`` maps a class to its mirror image (identity for classes without a pair); a class whose mirror is
    not among ``classes`` maps to itself (a macro task whose disk class holds both chiralities)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(mirror(c), i) for i, c in enumerate(classes)], dtype=np.int64)


def average_views(probabilities: Iterable[tuple[int, np.ndarray]], mirror_perm: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of ``(view, probabilities)`` pairs, a mirrored view's classes permuted
    back to the original's first (float32)."""
    total, count = None, 0
    for view, probs in probabilities:
        aligned = probs[:, mirror_perm] if view_mirrors(view) else probs
        total = aligned.astype(np.float64) if total is None else total + aligned
        count += 1
    return (total / count).astype(np.float32)


def mirrored_classes(classes: Iterable[str], mirror_pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``{b: a}`` for every mirror pair ``(a, b)`` with both classes among ``classes``: class ``b`` can be made
    as the mirror image of class ``a`` (its canonical sense, the first of the pair). A pair with one class
    present maps nothing (that class stands alone)."""
    present = set(classes)
    return {b: a for a, b in mirror_pairs if a in present and b in present}
