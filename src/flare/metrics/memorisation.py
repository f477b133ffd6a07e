"""Near-copy (memorisation) audit of synthetic images against the real train split, on plain arrays.

Diffusion models trained on small sets reproduce training images (Kadkhodaie et al., ICLR 2024: below a few
thousand images they memorise rather than generalise). A synthetic image that is a near-copy of a train image
adds nothing a classifier has not seen and leaks train images into "synthetic" results, so it should be found
and dropped.

The yardstick is what a *different* real object looks like: for every real held-out image (val, never
generated from) the distance to its nearest real train image. A synthetic image is a **near-copy** when its
own nearest-train distance lies below the ``quantile`` (default 1 %) of those held-out distances **in every
space** audited (pixels, and a generic pretrained feature space when available): closer to a train image than
all but 1 % of genuinely new real objects, both in appearance and in content. ``closeness`` puts that in one
number per image: the largest, over the spaces, of distance / threshold; a near-copy has ``closeness < 1``.

Everything here works on feature arrays (the caller extracts features); it imports nothing but NumPy and PIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["pixel_vectors", "nearest_neighbours", "nearest_over_views", "SpaceDistances", "NearCopyAudit", "audit_near_copies",
           "distance_quantiles", "QUANTILES"]

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def pixel_vectors(images: Sequence[np.ndarray], side_px: int) -> np.ndarray:
    """Each uint8 RGB image area-averaged to ``side_px`` × ``side_px`` (PIL's box filter), as a flat float32
    vector in [0, 1]; L2 between two is the pixel distance."""
    from PIL import Image

    out = np.zeros((len(images), side_px * side_px * 3), np.float32)
    for i, image in enumerate(images):
        pil = Image.fromarray(np.ascontiguousarray(image))
        if pil.size != (side_px, side_px):
            pil = pil.resize((side_px, side_px), Image.Resampling.BOX)
        out[i] = np.asarray(pil.convert("RGB"), np.float32).reshape(-1) / 255.0
    return out


def nearest_neighbours(queries: np.ndarray, references: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each query's nearest reference (Euclidean; ties: the lowest index).

    Hand-written rather than scikit-learn's ``NearestNeighbors``: the candidate is found with the float64
    ``|q|² + |r|² − 2 q·r`` expansion in chunks (memory O(chunk × references)), then its distance is recomputed
    directly, so that a byte-identical copy reads exactly 0.0 instead of the expansion's rounding error."""
    queries = np.asarray(queries, np.float64)
    references = np.asarray(references, np.float64)
    if not len(references):
        raise ValueError("nearest_neighbours: no reference vectors")
    distances = np.zeros(len(queries))
    indices = np.zeros(len(queries), np.int64)
    reference_sq = (references ** 2).sum(1)
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        squared = (q ** 2).sum(1)[:, None] + reference_sq[None, :] - 2.0 * q @ references.T
        best = squared.argmin(1)
        indices[start:start + chunk] = best
        distances[start:start + chunk] = np.linalg.norm(q - references[best], axis=1)
    return distances, indices


def nearest_over_views(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_neighbours` of ``(n, d)`` queries, or of ``(n, views, d)`` ones taking the nearest view of
    each query (the lowest view on ties)."""
    queries = np.asarray(queries)
    if queries.ndim == 2:
        return nearest_neighbours(queries, references)
    n, views = queries.shape[:2]
    if not n:
        return np.zeros(0), np.zeros(0, np.int64)
    distances, indices = nearest_neighbours(queries.reshape(n * views, -1), references)
    distances, indices = distances.reshape(n, views), indices.reshape(n, views)
    best = distances.argmin(1)
    return distances[np.arange(n), best], indices[np.arange(n), best]


def distance_quantiles(values: np.ndarray, quantiles: Sequence[float] = QUANTILES) -> dict[str, float]:
    """``{"q0.01": value, ...}`` (linear interpolation, NumPy's default), rounded to 6 decimals for stable JSON."""
    values = np.asarray(values, np.float64)
    if not len(values):
        return {}
    return {f"q{q:g}": round(float(np.quantile(values, q)), 6) for q in quantiles}


@dataclass
class SpaceDistances:
    """One space's numbers: the synthetic and held-out images' nearest-train distances and the threshold."""

    name: str
    synthetic_distance: np.ndarray
    synthetic_nearest: np.ndarray  # index into the train array
    heldout_distance: np.ndarray
    threshold: float

    def summary(self) -> dict[str, object]:
        return {"threshold": round(self.threshold, 6),
                "synthetic_quantiles": distance_quantiles(self.synthetic_distance),
                "heldout_quantiles": distance_quantiles(self.heldout_distance),
                "synthetic_below_threshold": int((self.synthetic_distance < self.threshold).sum())}


@dataclass
class NearCopyAudit:
    quantile: float
    spaces: dict[str, SpaceDistances]
    closeness: np.ndarray  # per synthetic image: max over spaces of distance / threshold
    near_copy: np.ndarray  # closeness < 1, i.e. below the threshold in every space
    notes: list[str] = field(default_factory=list)

    def closest(self, k: int) -> np.ndarray:
        """Indices of the ``k`` synthetic images with the smallest closeness (ties: lowest index)."""
        return np.argsort(self.closeness, kind="stable")[:k]


def audit_near_copies(spaces: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], quantile: float = 0.01) -> NearCopyAudit:
    """Audit synthetic images in one or more spaces.

    Args:
        spaces: ``{name: (train, heldout, synthetic)}`` feature arrays: train ``(n, d)``; held-out and synthetic
            ``(n, d)`` or ``(n, views, d)`` (distance of the nearest view). The same images, in the same order, in
            every space.
        quantile: the share of held-out images allowed to be "as close as a copy"; the threshold of a space is this
            quantile of the held-out images' nearest-train distances.
    """
    if not spaces:
        raise ValueError("audit_near_copies: no feature space given")
    if not 0 < quantile < 1:
        raise ValueError(f"audit_near_copies: quantile must be in (0, 1), got {quantile}")
    measured: dict[str, SpaceDistances] = {}
    notes: list[str] = []
    n_synthetic = None
    for name, (train, heldout, synthetic) in spaces.items():
        if not len(heldout):
            raise ValueError("audit_near_copies: no held-out images to set the threshold with")
        if n_synthetic is not None and len(synthetic) != n_synthetic:
            raise ValueError(f"audit_near_copies: space {name!r} has {len(synthetic)} synthetic rows, expected {n_synthetic}")
        n_synthetic = len(synthetic)
        heldout_distance, _ = nearest_over_views(heldout, train)
        synthetic_distance, synthetic_nearest = (nearest_over_views(synthetic, train) if len(synthetic)
                                                 else (np.zeros(0), np.zeros(0, np.int64)))
        threshold = float(np.quantile(heldout_distance, quantile))
        measured[name] = SpaceDistances(name, synthetic_distance, synthetic_nearest, heldout_distance, threshold)
    if len(next(iter(spaces.values()))[1]) < round(1 / quantile):
        notes.append(f"only {len(next(iter(spaces.values()))[1])} held-out images: the {quantile:g} quantile is "
                     "interpolated between the smallest held-out distances")
    ratios = [m.synthetic_distance / max(m.threshold, 1e-12) for m in measured.values()]
    closeness = np.max(np.stack(ratios), axis=0) if n_synthetic else np.zeros(0)
    return NearCopyAudit(quantile, measured, closeness, closeness < 1.0, notes)
