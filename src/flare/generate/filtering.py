"""Drop synthetic rows that a classifier trained on the real train split does not recognise (the scores come
from :func:`flare.metrics.synthetic.score_synthetic`)."""

from __future__ import annotations

import json

from flare.core.errors import ConfigError
from flare.core.manifest import Manifest
from flare.metrics.synthetic import score_synthetic

__all__ = ["filter_synthetic"]


def filter_synthetic(manifest: Manifest, *, method: str = "confidence", threshold: float = 0.5, epochs: int = 30,
                     resolution_px: int = 32, seed: int = 0) -> tuple[Manifest, int]:
    """Drop synthetic rows whose prompted-class confidence is below ``threshold`` (``confidence``) or whose
    outlier z-score is above it (``outlier``). Kept rows record their score in ``params["filter"]``."""
    if method not in ("confidence", "outlier"):
        raise ConfigError(f"generate.filter: {method!r} is not one of none, confidence, outlier")
    *_, scores, _ = score_synthetic(manifest, epochs=epochs, resolution_px=resolution_px, seed=seed)
    value = scores["confidence"] if method == "confidence" else scores["outlier_z"]
    keep = value >= threshold if method == "confidence" else value <= threshold
    dropped = set(scores.loc[~keep.to_numpy(), "id"])
    by_id = dict(zip(scores["id"], value))
    records = []
    for row in manifest.records():
        if row["id"] in dropped:
            continue
        if row["id"] in by_id:
            params = json.loads(row["params"] or "{}")
            params["filter"] = {"method": method, "score": round(float(by_id[row["id"]]), 6), "threshold": threshold}
            row["params"] = json.dumps(params, sort_keys=True)
        records.append(row)
    if dropped:
        (manifest.root / "filtered_out.csv").parent.mkdir(parents=True, exist_ok=True)
        scores[scores["id"].isin(dropped)].to_csv(manifest.root / "filtered_out.csv", index=False)
    return Manifest.from_records(records, manifest.root), len(dropped)
