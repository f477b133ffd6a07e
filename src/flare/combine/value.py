"""Rule ``value``: keep the augmentation and synthesis *types* that measurably help a cheap probe on val.

The paper keeps a fraction α (β) of the types, chosen at random (rule ``types``); this rule keeps the same
number, ``floor(fraction × n_types + 0.5)``, chosen by a measured score instead:

1. Features. Every image is resized (PIL bicubic) to ``combine.value_size_px`` and passed through the packaged
   ImageNet EfficientNet-Lite0 (:mod:`flare.core.pretrained`, the penultimate 1280-d features, the same
   generic space as :mod:`flare.metrics.synthetic`). When its weights package is not installed
   (``combine.value_features: auto``) or when asked (``pixels``), the features are the raw pixels at
   16 × 16 px (768 values in [0, 1]): cheaper and weaker, and the report names the space used.
2. Images. The val base images (at most ``combine.value_max_val``) and, per probe seed, a draw of the real
   train base images (at most ``combine.value_max_train``; capped samples are spread evenly over the classes)
   and, per type, of at most ``combine.value_samples_per_type`` of its rows (preferring rows whose origin is
   in the real draw, so a capped real set is not topped up with new galaxies through their augmentations).
3. Probe. A class-balanced logistic regression (scikit-learn, lbfgs: deterministic) on features standardised by
   the real train draw. Trained on the real draw alone it gives the baseline val macro-F1; trained on the real
   draw + one type's draw it gives that type's val macro-F1. ``value = macro-F1(real + type) − baseline`` of
   the same real draw, averaged over ``combine.value_probe_seeds`` draws (draws that repeat an earlier one,
   as when nothing is capped, are fitted once). With ``combine.value_tta`` (the default) the probe is scored
   the way the benchmark scores its classifiers: class probabilities averaged over the 8 rot90 × flip views
   of each val image, a mirrored view's mirror-pair classes swapped back (:mod:`flare.core.symmetry`). A probe
   scored on one view cannot see what D4 training views give a view-averaged classifier: in the #14 ablation
   (docs/RESULTS.md) it scored D4 at −0.002, the rule dropped it, and FLARE lost 3.2 points to the shuffle.
4. Selection. Types are ranked by value (rounded to 6 decimals, as reported), highest first; equal values keep
   the order of the ``types`` rule's seeded shuffle, so with no signal at all the rule keeps what ``types``
   keeps. Same rows, config and seed give the same scores and the same kept types.

Nothing is measured (the branch falls back to rule ``types`` and the report says why) when there is no val
split, fewer than two real train classes, or lazy augmentation recipes and no ``render`` to draw them.

Cost (docs/augmentation.md): one forward pass per image drawn above (8 per val image with TTA) plus
``1 + n_types × seeds`` probe fits.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from flare.combine.selection import take_count
from flare.core.config import CombineConfig
from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.core.pretrained import GENERIC_BACKBONE, PRETRAINED
from flare.core.seeding import derive_seed, numpy_rng
from flare.core.symmetry import VIEWS, apply_view, average_views, mirror_permutation

__all__ = ["TypeValues", "score_types", "rank_by_value", "PIXEL_FEATURE_PX"]

PIXEL_FEATURE_PX = 16  # the fallback space: 16 x 16 x 3 = 768 values per image

# ``render(manifest, row) -> (H, W, 3) uint8`` draws a row without a file (a lazy augmentation recipe); the
# caller hands in ``flare.augment.loader.load_row_image``, so combine never imports augment.
RowRenderer = Callable[[Manifest, dict[str, Any]], np.ndarray]
# ``(row, the manifest its path is relative to, whether it has a file)``, as the stage collects them
Entry = tuple[dict[str, Any], Manifest, bool]


@dataclass
class TypeValues:
    """What the value rule measured; ``report()`` is the ``value`` section of ``combine_report.json``."""

    feature_space: str = ""
    baseline_val_macro_f1: float | None = None
    scores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # branch → type → numbers
    unscored: dict[str, str] = field(default_factory=dict)  # branch → why it fell back to rule ``types``
    real_train: int = 0
    val: int = 0
    seconds: float = 0.0  # wall time of the scoring; kept out of the report so reruns write identical files

    def values(self, branch: str) -> dict[str, float] | None:
        """``{type: value}`` of a scored branch, else None."""
        if branch not in self.scores:
            return None
        return {name: numbers["value"] for name, numbers in self.scores[branch].items()}

    def report(self, config: CombineConfig) -> dict[str, Any]:
        return {"feature_space": self.feature_space, "baseline_val_macro_f1": self.baseline_val_macro_f1,
                "probe": "class-balanced logistic regression on standardised features (real train scaler)",
                "scores": self.scores, "unscored": self.unscored, "real_train": self.real_train, "val": self.val,
                "samples_per_type": config.value_samples_per_type, "probe_seeds": config.value_probe_seeds,
                "max_train": config.value_max_train, "max_val": config.value_max_val,
                "size_px": config.value_size_px,
                "tta_views": len(VIEWS) if config.value_tta else 1}


def rank_by_value(values: dict[str, float], fraction: float, seed: int, branch: str) -> list[str]:
    """The kept types (sorted): the ``take_count(fraction, n)`` highest values; ties in ``types``-rule order."""
    ordered = sorted(values)
    shuffle = numpy_rng(seed, "combine", branch).permutation(len(ordered))  # the ``types`` rule's order
    position = {ordered[i]: rank for rank, i in enumerate(shuffle)}
    ranked = sorted(ordered, key=lambda name: (-round(values[name], 6), position[name]))
    return sorted(ranked[:take_count(fraction, len(ordered))])


def _sample(rows: Sequence[Any], cap: int, rng: np.random.Generator, key: Callable[[Any], str]) -> list[Any]:
    """At most ``cap`` of ``rows`` (sorted by ``key`` first, so the draw does not depend on input order)."""
    ordered = sorted(rows, key=key)
    if len(ordered) <= cap:
        return ordered
    return [ordered[i] for i in sorted(rng.choice(len(ordered), cap, replace=False))]


def _balanced_sample(rows: Sequence[dict[str, Any]], cap: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """At most ``cap`` real rows, as even across classes as the counts allow (each class shuffled, then taken
    in turn), so a small cap still shows the probe every class."""
    if len(rows) <= cap:
        return sorted(rows, key=lambda r: r["id"])
    by_class: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        by_class.setdefault(str(row["label"]), []).append(row)
    queues = [[rows_[i] for i in rng.permutation(len(rows_))] for _, rows_ in sorted(by_class.items())]
    taken: list[dict[str, Any]] = []
    for depth in range(max(len(q) for q in queues)):
        taken += [q[depth] for q in queues if depth < len(q)]
    return sorted(taken[:cap], key=lambda r: r["id"])


class _Features:
    """Images → feature rows in the chosen space. The Lite0 space is :mod:`flare.metrics.synthetic`'s generic
    extractor (the one the quality report and the memorisation audit use), built once, on first use."""

    def __init__(self, kind: str, size_px: int):
        from flare.core.pretrained import is_installed

        if kind == "auto":
            kind = "imagenet" if is_installed(GENERIC_BACKBONE) else "pixels"
        self.kind, self.size_px = kind, size_px
        if kind == "imagenet":
            self.name = (f"{GENERIC_BACKBONE}: {PRETRAINED[GENERIC_BACKBONE].description}, penultimate 1280-d "
                         f"features at {size_px} px")
        else:
            self.name = f"pixels: {PIXEL_FEATURE_PX} x {PIXEL_FEATURE_PX} RGB in [0, 1] (768-d)"
        self._extractor = None

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if self.kind == "pixels":
            side = PIXEL_FEATURE_PX
            pixels = np.stack([np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC))
                               if image.shape[:2] != (side, side) else image for image in images])
            return pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0
        from flare.metrics.synthetic import generic_extractor, generic_features

        if self._extractor is None:
            self._extractor = generic_extractor(self.size_px)
        return generic_features(images, self._extractor).astype(np.float64)


def _view(image: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` of one ``(H, W, 3)`` image (:func:`flare.core.symmetry.apply_view` works channels first)."""
    return np.ascontiguousarray(apply_view(image.transpose(2, 0, 1), view).transpose(1, 2, 0))


def _probe_f1(train_x: np.ndarray, train_y: np.ndarray, val_views: list[tuple[int, np.ndarray]],
              val_y: np.ndarray, labels: list[str], seed: int, mirror: Callable[[str], str]) -> float:
    """Val macro-F1 of a class-balanced logistic probe; ``val_views`` = ``(view, features)`` pairs, whose
    probabilities are averaged (mirrored views permuted back) before the arg-max."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    probe = LogisticRegression(max_iter=1000, class_weight="balanced", random_state=seed)
    probe.fit(train_x, train_y)
    classes = [str(c) for c in probe.classes_]
    perm = mirror_permutation(classes, mirror)
    probabilities = average_views(((view, probe.predict_proba(x)) for view, x in val_views), perm)
    predicted = np.asarray(probe.classes_)[probabilities.argmax(axis=1)]
    return float(f1_score(val_y, predicted, labels=labels, average="macro", zero_division=0))


def score_types(base_rows: Sequence[dict[str, Any]], base_manifest: Manifest, branches: dict[str, list[Entry]],
                row_type: Callable[[dict[str, Any]], str], config: CombineConfig, seed: int,
                render: RowRenderer | None = None, mirror: Callable[[str], str] | None = None) -> TypeValues:
    """Score every type of every branch (see the module doc); ``branches`` maps a branch name to its entries;
    ``mirror`` maps a class to its mirror pair for the TTA views (``Taxonomy.mirror``; None: no pairs)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    result = TypeValues()
    all_train = [r for r in base_rows if r["split"] == "train"]
    val = _balanced_sample([r for r in base_rows if r["split"] == "val"], config.value_max_val,
                           numpy_rng(seed, "combine-value", "val"))
    todo = {branch: entries for branch, entries in branches.items() if entries}
    reason = None
    if not val:
        reason = "no val split to measure on"
    elif len({r["label"] for r in all_train}) < 2:
        reason = "fewer than two real train classes"
    for branch, entries in list(todo.items()):
        if reason:
            result.unscored[branch] = reason
            del todo[branch]
        elif render is None and not all(has_file for _, _, has_file in entries):
            result.unscored[branch] = "lazy augmentation recipes and no renderer (pass render=load_row_image)"
            del todo[branch]
    if not todo:
        result.seconds = time.perf_counter() - started
        return result

    # One draw per probe seed: a real train sample and, per type, a sample of its rows; a draw equal to an
    # earlier one (nothing is capped) is fitted once.
    trains: list[list[dict[str, Any]]] = []
    for s in range(config.value_probe_seeds):
        drawn = _balanced_sample(all_train, config.value_max_train, numpy_rng(seed, "combine-value", "train", s))
        if drawn not in trains:
            trains.append(drawn)
    features = _Features(config.value_features, config.value_size_px)
    result.feature_space = features.name
    cache: dict[str, np.ndarray] = {}

    def features_of(entries: Sequence[Entry]) -> np.ndarray:
        missing = sorted({row["id"]: (row, manifest, has_file) for row, manifest, has_file in entries
                          if row["id"] not in cache}.items())
        if missing:
            images = [load_rgb(m.resolve(r["path"])) if has_file else render(m, r)  # type: ignore[misc]
                      for _, (r, m, has_file) in missing]
            cache.update(zip([row_id for row_id, _ in missing], features(images)))
        return np.stack([cache[row["id"]] for row, _, _ in entries])

    def real(rows: Sequence[dict[str, Any]]) -> list[Entry]:
        return [(r, base_manifest, True) for r in rows]

    val_y = np.array([r["label"] for r in val])
    views = VIEWS if config.value_tta else (0,)
    val_images = [load_rgb(base_manifest.resolve(r["path"])) for r in val]
    val_views = [(view, features([_view(image, view) for image in val_images])) for view in views]
    mirror = mirror or (lambda label: label)
    labels = sorted({r["label"] for r in all_train} | set(val_y))
    probe_seed = derive_seed(seed, "combine-value", "probe")
    fits = []  # per draw: (scaler, train features, train labels, baseline, scaled val views)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the cost cap; the fit is still usable
        for train in trains:
            train_x = features_of(real(train))
            scaler = StandardScaler().fit(train_x)
            train_y = np.array([r["label"] for r in train])
            scaled_val = [(view, scaler.transform(x)) for view, x in val_views]
            fits.append((scaler, scaler.transform(train_x), train_y,
                         _probe_f1(scaler.transform(train_x), train_y, scaled_val, val_y, labels, probe_seed,
                                   mirror), scaled_val))
        result.real_train, result.val = len(trains[0]), len(val)
        result.baseline_val_macro_f1 = round(float(np.mean([fit[3] for fit in fits])), 6)
        for branch, entries in todo.items():
            by_type: dict[str, list[Entry]] = {}
            for entry in entries:
                by_type.setdefault(row_type(entry[0]), []).append(entry)
            result.scores[branch] = {}
            for name in sorted(by_type):
                deltas, f1s, seen, pairs = [], [], set(), set()
                for s in range(config.value_probe_seeds):
                    train_index = s % len(fits)
                    scaler, train_s, train_y, baseline, scaled_val = fits[train_index]
                    origins = {r["origin_id"] for r in trains[train_index]}
                    # prefer rows of the sampled real origins, so a capped real set is not topped up with new
                    # galaxies through their augmentations
                    pool = [e for e in by_type[name] if e[0].get("origin_id") in origins] or by_type[name]
                    drawn = _sample(pool, config.value_samples_per_type,
                                    numpy_rng(seed, "combine-value", branch, name, s), key=lambda e: e[0]["id"])
                    pair = (train_index, tuple(e[0]["id"] for e in drawn))
                    if pair in pairs:
                        continue
                    pairs.add(pair)
                    seen.update(pair[1])
                    extra_x = scaler.transform(features_of(drawn))
                    extra_y = np.array([e[0]["label"] for e in drawn])
                    f1 = _probe_f1(np.concatenate([train_s, extra_x]), np.concatenate([train_y, extra_y]),
                                   scaled_val, val_y, labels, probe_seed, mirror)
                    f1s.append(f1)
                    deltas.append(f1 - baseline)
                result.scores[branch][name] = {"value": round(float(np.mean(deltas)), 6),
                                               "val_macro_f1": round(float(np.mean(f1s)), 6),
                                               "images": len(seen), "rows": len(by_type[name]),
                                               "fits": len(pairs)}
    result.seconds = time.perf_counter() - started
    return result
