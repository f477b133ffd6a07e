"""The benchmark: train each backbone on each method's training set, for each task and seed; score test and
out-of-domain sets; summarise with mean ± std over seeds and paired differences between methods.

One JSON file per cell (method × backbone × task × seed) under ``cells/``, written atomically: an interrupted
benchmark re-run skips finished cells. Macro is scored by collapsing fine probabilities (``macro_mode=collapse``)
or by training on macro labels (``direct``). Output folder layout::

    cells/<cell>.json   models/<cell>/ (first seed)   features/<cell>.npz   cache/*.npz
    results.json        results.csv                   features.json         DONE
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from flare.classify.backbones import build_backbone, is_pretrained, load_local_weights
from flare.classify.images import ImageTensorCache, RowRenderer
from flare.classify.model_io import save_classifier
from flare.classify.presets import BenchmarkPreset
from flare.classify.probe import FeatureCache, head_probabilities, train_linear_head, tta_probabilities
from flare.classify.registry import get_preset
from flare.classify.train import TrainResult, infer_views, train_classifier
from flare.core.dataset import Dataset
from flare.core.device import select_device
from flare.core.errors import FlareError
from flare.core.files import atomic_output, prepare_output_dir
from flare.core.manifest import Manifest, base_images
from flare.core.seeding import derive_seed
from flare.core.symmetry import mirror_permutation
from flare.core.taxonomy import Taxonomy
from flare.metrics.features import embed_features
from flare.classify.label_mapping import LabelMapping, load_label_mapping
from flare.metrics.classification import mean_std, paired_differences
from flare.metrics.scoring import score_probabilities
from flare.classify.variants import METHODS, MethodData, method_datasets, real_train_count, synthetic_mask
from flare.classify.comparison import compare_methods, method_intervals

__all__ = ["BenchmarkSettings", "run_benchmark", "settings_from_config", "summarise_cells", "dataset_taxonomy",
           "cell_name"]

FEATURE_METHODS = ("Raw", "Raw_Aug", "T2I_Aug", "FLARE")
# How synthetic rows are trained on; set as given, because None (no batch-share cap) is a value here
SYNTHETIC_FIELDS = ("synthetic_weight", "synthetic_label_smoothing", "synthetic_batch_share")


@dataclass
class BenchmarkSettings:
    preset: BenchmarkPreset
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    tasks: list[str] = field(default_factory=lambda: ["fine", "macro"])
    seeds: list[int] = field(default_factory=lambda: [0])
    macro_mode: str = "collapse"  # "collapse": score macro from the fine model; "direct": train on macro labels
    pretrained: str | None = None
    ood: list[LabelMapping] = field(default_factory=list)
    device: str = "auto"
    save_models: str = "first-seed"  # "first-seed", "all" or "none"
    features: bool = True

    @property
    def trained_tasks(self) -> list[str]:
        tasks = []
        if "fine" in self.tasks or self.macro_mode == "collapse":
            tasks.append("fine")
        if "macro" in self.tasks and self.macro_mode == "direct":
            tasks.append("macro")
        return tasks


def settings_from_config(config: Any, ood_mappings: list[str] | None = None) -> BenchmarkSettings:
    """Settings from a :class:`flare.core.config.BenchmarkConfig` section plus mapping files."""
    preset = get_preset(config.preset).with_overrides(
        backbones=config.backbones, image_size_px=config.image_size_px, epochs=config.epochs,
        samples_per_epoch=getattr(config, "samples_per_epoch", None), batch_size=getattr(config, "batch_size", None),
        learning_rate=getattr(config, "learning_rate", None), class_balance=getattr(config, "class_balance", None),
        train_mode=getattr(config, "train_mode", None), tta=getattr(config, "tta", None))
    preset = replace(preset, **{name: getattr(config, name) for name in SYNTHETIC_FIELDS if hasattr(config, name)})
    mappings = [load_label_mapping(p) for p in [*getattr(config, "ood", []), *(ood_mappings or [])]]
    return BenchmarkSettings(preset=preset, methods=list(config.methods), tasks=list(config.tasks),
                             seeds=list(config.seeds), macro_mode=getattr(config, "macro_mode", "collapse"),
                             pretrained=config.pretrained, ood=mappings, device=getattr(config, "device", "auto"),
                             features=getattr(config, "features", True))


def cell_name(method: str, backbone: str, task: str, seed: int) -> str:
    return f"{method}__{backbone}__{task}__seed{seed}"


def dataset_taxonomy(workdir: Path) -> Taxonomy:
    """The run's taxonomy: that of its first stage folder (every stage carries its input's taxonomy forward)."""
    for name in ("data", "upscale", "augment", "generate", "combine"):
        if Dataset.exists(workdir / name):
            return Dataset.open(workdir / name).taxonomy
    raise FlareError(f"benchmark: no dataset folder under {workdir}")


def _write_json(path: Path, data: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=float))


@dataclass
class _OODSet:
    mapping: LabelMapping
    manifest: Manifest
    rows: list[dict[str, Any]]
    fine_true: list[str | None]
    macro_true: list[str]


def _load_ood(mapping: LabelMapping, taxonomy: Taxonomy) -> _OODSet:
    if not mapping.dataset:
        raise FlareError(f"label mapping {mapping.name!r}: no dataset folder given (key `dataset`)")
    manifest = base_images(Manifest.read(mapping.dataset))
    rows, fine_true, macro_true = [], [], []
    for row in manifest.records():
        targets = mapping.targets(row["label"], taxonomy)
        if targets is None:
            continue
        rows.append(row)
        fine_true.append(targets[0])
        macro_true.append(targets[1])
    return _OODSet(mapping, manifest, rows, fine_true, macro_true)


def _labels(rows: list[dict[str, Any]], task: str, taxonomy: Taxonomy) -> list[str]:
    """Training targets: the fine label, or its macro class. ``taxonomy.macro`` rejects unknown labels."""
    macro = [taxonomy.macro(r["label"]) for r in rows]
    return macro if task == "macro" else [r["label"] for r in rows]


def run_benchmark(workdir: str | Path, settings: BenchmarkSettings, out: str | Path | None = None,
                  log: Callable[[str], None] = print, render: RowRenderer | None = None) -> dict[str, Any]:
    """Run every missing cell, then summarise; returns the summary written to ``results.json``.

    ``render`` draws rows that have no file (lazy augmentations; ``pipeline.py`` and the CLI pass
    ``flare.augment.loader.load_row_image``)."""
    workdir = Path(workdir)
    out = Path(out) if out else workdir / "benchmark"
    prepare_output_dir(out)
    notes: list[str] = []
    methods = method_datasets(workdir, settings.methods, notes)
    for note in notes:
        log(f"[benchmark] {note}")
    if not methods:
        raise FlareError(f"benchmark: no method has a dataset under {workdir} (run `flare run` or the stages first)")
    taxonomy = dataset_taxonomy(workdir)
    preset = settings.preset
    if preset.train_mode == "frozen":
        scratch = [b for b in preset.backbones if not is_pretrained(b)]
        if scratch:
            raise FlareError(f"benchmark.train_mode: frozen needs a pretrained backbone; {', '.join(scratch)} "
                             "starts from random weights (use e.g. efficientnet-lite0-imagenet)")
    cache = ImageTensorCache(preset.image_size_px, out / "cache", render=render)
    ood_sets = [_load_ood(m, taxonomy) for m in settings.ood]
    device = select_device(settings.device, "benchmark.device")
    first_seed = settings.seeds[0] if settings.seeds else 0
    real_train = real_train_count(workdir)
    feature_caches: dict[str, FeatureCache] = {}
    for method, data in methods.items():
        for backbone in preset.backbones:
            for task in settings.trained_tasks:
                for seed in settings.seeds:
                    name = cell_name(method, backbone, task, seed)
                    file = out / "cells" / f"{name}.json"
                    if file.is_file():
                        log(f"[benchmark] {name}: done already")
                        continue
                    log(f"[benchmark] {name}: training on {len(data.train)} images")
                    keep = seed == first_seed
                    if preset.train_mode == "frozen" and backbone not in feature_caches:
                        feature_caches[backbone] = FeatureCache(build_backbone(backbone, 2, preset.image_size_px)[0],
                                                                backbone, preset.image_size_px, out / "cache", device,
                                                                preset.eval_batch_size)
                    cell = _run_cell(data, backbone, task, seed, settings, taxonomy, cache, ood_sets, device, out,
                                     save_model=settings.save_models == "all" or (keep and settings.save_models == "first-seed"),
                                     save_features=keep and settings.features and preset.train_mode == "full",
                                     real_train=real_train, features=feature_caches.get(backbone))
                    _write_json(file, cell)
                    test = cell["metrics"]["test"]
                    log(f"[benchmark] {name}: test accuracy {test.get(task, test['macro'])['accuracy']:.3f} "
                        f"macro-F1 {test.get(task, test['macro'])['macro_f1']:.3f} ({cell['seconds']:.0f} s)")
    summary = summarise_cells(out, notes=notes, taxonomy=taxonomy, settings=settings)
    (out / "DONE").write_text("ok\n")
    return summary


def _run_cell(data: MethodData, backbone: str, task: str, seed: int, settings: BenchmarkSettings,
              taxonomy: Taxonomy, cache: ImageTensorCache, ood_sets: list[_OODSet], device: torch.device, out: Path,
              save_model: bool, save_features: bool, real_train: int,
              features: FeatureCache | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    preset = settings.preset
    classes = taxonomy.fine_classes if task == "fine" else taxonomy.macro_classes
    index = {c: i for i, c in enumerate(classes)}
    # fine: a mirrored image of class i is class perm[i]; macro classes hold both chiralities (identity)
    perm = mirror_permutation(classes, taxonomy.mirror if task == "fine" else (lambda c: c))
    tta_perm = perm if preset.tta else None
    train_rows, val_rows, test_rows = data.train.records(), data.val.records(), data.test.records()
    if not val_rows or not test_rows:
        raise FlareError(f"benchmark: {data.method} has {len(val_rows)} val and {len(test_rows)} test images; "
                         "both splits must be non-empty")
    train_labels = np.array([index[l] for l in _labels(train_rows, task, taxonomy)])
    val_labels = np.array([index[l] for l in _labels(val_rows, task, taxonomy)])
    train_images = cache.load(data.train, train_rows)
    val_images = cache.load(data.val, val_rows)
    test_images = cache.load(data.test, test_rows)
    # The same initial weights for every method (paired comparison): the init seed ignores the method.
    torch.manual_seed(derive_seed(seed, "classify-init", backbone, task))
    model, spec = build_backbone(backbone, len(classes), preset.image_size_px)
    initialised_from = spec["initialised_from"]
    if settings.pretrained:
        load_local_weights(model, settings.pretrained)
        initialised_from = f"local weights {Path(settings.pretrained).name}"
    name = cell_name(data.method, backbone, task, seed)
    common = dict(real_train_images=real_train, mirror_perm=perm, online=data.online, classes=classes,
                  synthetic=synthetic_mask(train_rows))
    test_features = None
    if features is not None:  # frozen backbone: cached features, a linear head
        def feats(manifest: Manifest, rows: list[dict[str, Any]], images: np.ndarray, all_views: bool) -> np.ndarray:
            keys = [cache.key(manifest, r) for r in rows]
            return features.all_views(keys, images, name) if all_views else features.features(keys, images, 0, name)

        def predict(manifest: Manifest, rows: list[dict[str, Any]], images: np.ndarray) -> np.ndarray:
            head = result.model.get_classifier()
            if preset.tta:
                return tta_probabilities(head, feats(manifest, rows, images, True), perm)
            return head_probabilities(head, feats(manifest, rows, images, False))

        result: TrainResult = train_linear_head(
            model, feats(data.train, train_rows, train_images, data.online), train_labels,
            feats(data.val, val_rows, val_images, False), val_labels, len(classes), preset, seed, **common)
        val_probs = predict(data.val, val_rows, val_images)
        probabilities = predict(data.test, test_rows, test_images)
    else:
        result = train_classifier(model, train_images, train_labels, val_images, val_labels, len(classes), preset,
                                  seed, device, description=name, **common)

        def predict(manifest: Manifest, rows: list[dict[str, Any]], images: np.ndarray) -> np.ndarray:
            return infer_views(result.model, images, tta_perm, preset.eval_batch_size, device,
                               description=f"{name}: {rows[0]['split'] if rows else ''}")[0]

        val_probs = predict(data.val, val_rows, val_images)
        probabilities, test_features = infer_views(result.model, test_images, tta_perm, preset.eval_batch_size,
                                                   device, with_features=save_features, description=f"{name}: test")
    fine_true = [r["label"] for r in test_rows]
    macro_true = [taxonomy.macro(r["label"]) for r in test_rows]
    val_scores = score_probabilities(val_probs, classes, task, taxonomy, [r["label"] for r in val_rows],
                                     [taxonomy.macro(r["label"]) for r in val_rows])
    metrics = {"val": val_scores,
               "test": score_probabilities(probabilities, classes, task, taxonomy, fine_true, macro_true,
                                           with_predictions=True)}
    for ood in ood_sets:
        ood_images = cache.load(ood.manifest, ood.rows)
        metrics[f"ood:{ood.mapping.name}"] = score_probabilities(predict(ood.manifest, ood.rows, ood_images), classes,
                                                                 task, taxonomy, ood.fine_true, ood.macro_true)
    if save_features and test_features is not None:
        with atomic_output(out / "features" / f"{name}.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, features=test_features.astype(np.float32), labels=np.array(fine_true))
    model_dir = None
    if save_model:
        model_dir = out / "models" / name
        save_classifier(model_dir, result.model, backbone=backbone, spec=spec, classes=classes, task=task,
                        taxonomy=taxonomy, image_size_px=preset.image_size_px,
                        extra={"trained_on": data.method, "seed": seed, "initialised_from": initialised_from,
                               "best_epoch": result.best_epoch, "tta": preset.tta, "recipe": result.recipe})
    train_counts: dict[str, int] = {}
    for row in train_rows:
        train_counts[row["label"]] = train_counts.get(row["label"], 0) + 1
    return {
        "cell": name, "method": data.method, "backbone": backbone, "task": task, "seed": seed,
        "preset": preset.to_dict(), "recipe": result.recipe, "initialised_from": initialised_from,
        "device": str(device), "n_train": len(train_rows), "n_val": len(val_rows), "n_test": len(test_rows),
        "n_real_train": real_train, "online": data.online,
        "train_counts": dict(sorted(train_counts.items())),
        "train_stages": sorted({r["stage"] for r in train_rows}),
        # a property of the training set under the recipe, like train_counts (the recipe holds the settings)
        "synthetic_share_realised": round(result.synthetic_share, 4),
        "best_epoch": result.best_epoch, "history": result.history,
        "epochs_run": len(result.history), "train_seconds": result.seconds,
        "seconds": time.perf_counter() - started, "metrics": metrics,
        "test_ids": [r["id"] for r in test_rows], "test_origins": [r["origin_id"] for r in test_rows],
        "test_predictions": [classes[i] for i in probabilities.argmax(1)],
        "model_dir": str(model_dir.relative_to(out)) if model_dir else None,
    }


def summarise_cells(out: str | Path, notes: list[str] | None = None, taxonomy: Taxonomy | None = None,
                    settings: BenchmarkSettings | None = None) -> dict[str, Any]:
    """Aggregate every cell JSON under ``out/cells`` into ``results.json``/``results.csv`` (+ ``features.json``)."""
    out = Path(out)
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    groups: dict[tuple, dict[int, dict[str, Any]]] = {}
    by_method: dict[tuple, list[dict[str, Any]]] = {}
    for cell in cells:
        by_method.setdefault((cell["method"], cell["backbone"], cell["task"]), []).append(cell)
        for evaluation, scored in cell["metrics"].items():
            for scored_task, metrics in scored.items():
                key = (cell["method"], cell["backbone"], cell["task"], evaluation, scored_task)
                groups.setdefault(key, {})[cell["seed"]] = metrics
    rows = []
    for (method, backbone, trained, evaluation, scored_task), per_seed in sorted(groups.items()):
        seeds = sorted(per_seed)
        classes = next(iter(per_seed.values()))["classes"]
        confusion = np.sum([np.array(per_seed[s]["confusion"]) for s in seeds], axis=0).tolist() if seeds else []
        per_class = {}
        for c in classes:
            values = [per_seed[s]["per_class_f1"][c] for s in seeds if c in per_seed[s]["per_class_f1"]]
            if values:
                per_class[c] = mean_std(values)
        rows.append({
            "method": method, "backbone": backbone, "trained_task": trained, "evaluation": evaluation,
            "task": scored_task, "seeds": seeds,
            **{metric: mean_std([per_seed[s][metric] for s in seeds]) for metric in ("accuracy", "balanced_accuracy", "macro_f1")},
            "per_seed": {str(s): {m: per_seed[s][m] for m in ("accuracy", "balanced_accuracy", "macro_f1")} for s in seeds},
            "per_class_f1": per_class, "confusion_sum": confusion, "classes": classes,
            "ci95": method_intervals(by_method[(method, backbone, trained)], scored_task) if evaluation == "test" else {},
        })
    differences = []
    for baseline in ("Raw_Aug", "Raw_HR", "Raw_HR_online", "Raw_LR"):
        keys = sorted({(r["backbone"], r["trained_task"], r["evaluation"], r["task"]) for r in rows})
        for backbone, trained, evaluation, scored_task in keys:
            for metric in ("accuracy", "macro_f1"):
                scores = {r["method"]: {int(s): v[metric] for s, v in r["per_seed"].items()} for r in rows
                          if (r["backbone"], r["trained_task"], r["evaluation"], r["task"]) == (backbone, trained, evaluation, scored_task)}
                if baseline not in scores:
                    continue
                for method, summary in paired_differences(scores, baseline).items():
                    differences.append({"method": method, "baseline": baseline, "backbone": backbone,
                                        "trained_task": trained, "evaluation": evaluation, "task": scored_task,
                                        "metric": metric, **summary})
    summary = {
        "cells": len(cells), "rows": rows, "paired_differences": differences, "notes": list(notes or []),
        "comparison": compare_methods(cells),
        "recipe": cells[0].get("recipe") if cells else None,
        "preset": cells[0]["preset"] if cells else (settings.preset.to_dict() if settings else None),
        "initialised_from": sorted({c["initialised_from"] for c in cells}),
        "seconds_total": float(sum(c["seconds"] for c in cells)),
        "taxonomy": taxonomy.to_dict() if taxonomy else None,
        "train_counts": {c["method"]: c["train_counts"] for c in cells},
    }
    _write_json(out / "results.json", summary)
    _write_csv(out / "results.csv", rows)
    if settings is None or settings.features:
        _write_json(out / "features.json", _feature_summary(out, cells))
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    flat = [{"method": r["method"], "backbone": r["backbone"], "trained_task": r["trained_task"],
             "evaluation": r["evaluation"], "task": r["task"], "seeds": len(r["seeds"]),
             **{f"{m}_{k}": r[m][k] for m in ("accuracy", "balanced_accuracy", "macro_f1") for k in ("mean", "std")}}
            for r in rows]
    with atomic_output(path) as tmp:
        pd.DataFrame(flat).to_csv(tmp, index=False)


def _feature_summary(out: Path, cells: list[dict[str, Any]]) -> dict[str, Any]:
    """t-SNE + cluster scores for Raw (Raw_HR, else Raw_LR), Raw_Aug, T2I_Aug and FLARE (first backbone/seed)."""
    with_features = [c for c in cells if (out / "features" / f"{c['cell']}.npz").is_file() and c["task"] == "fine"]
    if not with_features:
        return {}
    backbone = sorted({c["backbone"] for c in with_features})[0]
    chosen: dict[str, dict[str, Any]] = {}
    for cell in sorted(with_features, key=lambda c: c["seed"]):
        if cell["backbone"] != backbone:
            continue
        label = "Raw" if cell["method"] in ("Raw_HR", "Raw_LR") else cell["method"]
        if label == "Raw" and "Raw" in chosen and chosen["Raw"]["method"] == "Raw_HR":
            continue
        if label in FEATURE_METHODS and (label not in chosen or (label == "Raw" and cell["method"] == "Raw_HR")):
            chosen[label] = cell
    result: dict[str, Any] = {"backbone": backbone}
    for label in FEATURE_METHODS:
        if label not in chosen:
            continue
        cell = chosen[label]
        with np.load(out / "features" / f"{cell['cell']}.npz") as stored:
            features, labels = stored["features"], [str(l) for l in stored["labels"]]
        result[label] = {"method": cell["method"], "seed": cell["seed"], **embed_features(features, labels, cell["seed"])}
    return result
