"""Rule ``value``: types scored by a val probe; seeded and deterministic; a planted useless type is dropped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from flare.combine import combine_datasets, rank_by_value
from flare.core.config import CombineConfig, SimulateConfig
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest, base_images

torch.set_num_threads(1)
# Augment branch: "fresh" is new galaxies of the same survey (as a perfect generator would make) and must be
# kept; "black" is all-black images carrying the real labels. Synthetic branch: "t2i_good" (more new galaxies)
# against "t2i_noise" (uniform noise with labels). α = β = 0.5 of two types keeps one each.
AUGMENT_TYPES = {"fresh": "useful", "black": "useless"}
SYNTHETIC_TYPES = {"t2i_good": "useful", "t2i_noise": "useless"}


def _simulated(folder: Path, seed: int, objects: int = 16) -> Manifest:
    from flare.data.simulate import simulate_survey

    simulate_survey(folder, SimulateConfig(objects_per_class=objects, hr_size_px=48), seed=seed)
    return Manifest.read(folder)


def _rows(out: Path, stage: str, kind: str, images: list[tuple[dict, np.ndarray]]) -> list[dict]:
    """Train-only rows of one planted type; a fresh galaxy is its own origin, a labelled copy keeps its parent's."""
    records = []
    for i, (source, image) in enumerate(images):
        image_id = f"{kind}-{i:04d}"
        path = f"{stage}/{kind}/{image_id}.png"
        origin = image_id if kind in ("fresh", "t2i_good") else source["origin_id"]
        records.append({"id": image_id, "path": path, "sha256": write_image(out / path, image),
                        "label": source["label"], "macro_label": source["macro_label"], "origin_id": origin,
                        "split": "train", "stage": stage, "operation": kind,
                        "params": {"preset": kind} if stage == "augment" else {"type": kind}, "seed": i})
    return records


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A simulated survey (6 classes × 16 objects) plus augment and generate rows of the planted types."""
    root = tmp_path_factory.mktemp("planted")
    real = _simulated(root / "real", seed=0)
    out = root / "data"
    shutil.copytree(root / "real", out)
    train = [(r, load_rgb(real.resolve(r["path"]))) for r in base_images(real).filter(split="train").records()]
    rng = np.random.default_rng(0)
    records = real.records()
    for stage, kinds, seed in (("augment", AUGMENT_TYPES, 1), ("generate", SYNTHETIC_TYPES, 2)):
        extra = _simulated(root / f"extra{seed}", seed=seed)
        fresh = [(r, load_rgb(extra.resolve(r["path"]))) for r in base_images(extra).records()]
        for kind, role in kinds.items():
            if role == "useful":
                images = fresh
            elif kind == "black":
                images = [(r, np.zeros_like(x)) for r, x in train]
            else:
                images = [(r, rng.integers(0, 256, x.shape, dtype=np.uint8)) for r, x in train]
            records += _rows(out, stage, kind, images)
    Manifest.from_records(records, out).write()
    return out


def _report(folder: Path) -> dict:
    return json.loads((folder / "combine_report.json").read_text())


def _useful(kinds: dict[str, str]) -> list[str]:
    return sorted(k for k, role in kinds.items() if role == "useful")


@pytest.mark.parametrize("features", ["imagenet", "pixels"])
def test_value_rule_drops_the_useless_types_and_reports_every_score(planted, tmp_path, features):
    # 2 real train images per class (3 paired draws): a starved probe, where images that carry class
    # information show; the val split (18 images) is the same for every fit
    config = CombineConfig(alpha=0.5, beta=0.5, rule="value", value_features=features, value_max_train=12,
                           value_probe_seeds=3)
    result = combine_datasets(planted, tmp_path / "v", config, seed=0)
    report = _report(tmp_path / "v")["value"]
    assert report["feature_space"].startswith("efficientnet-lite0" if features == "imagenet" else "pixels")
    assert 0 < report["baseline_val_macro_f1"] <= 1
    for branch, kinds in (("augment", AUGMENT_TYPES), ("generate", SYNTHETIC_TYPES)):
        numbers = report["scores"][branch]
        assert sorted(numbers) == sorted(kinds)  # a score for every type
        scores = {name: n["value"] for name, n in numbers.items()}
        assert result.chosen_types[branch] == _useful(kinds), scores
        assert report["kept"][branch] == _useful(kinds)
        assert report["dropped"][branch] == sorted(set(kinds) - set(_useful(kinds)))
        for n in numbers.values():
            assert n["val_macro_f1"] == pytest.approx(report["baseline_val_macro_f1"] + n["value"], abs=1e-5)
    manifest = Manifest.read(tmp_path / "v")
    assert set(manifest.filter(stage="augment").frame["operation"]) == {"fresh"}
    assert set(manifest.filter(stage="generate").frame["operation"]) == {"t2i_good"}


def test_value_rule_is_seeded_and_deterministic(planted, tmp_path):
    # a sample cap below each type's rows, so the two probe seeds draw different samples
    config = CombineConfig(alpha=0.5, beta=0.5, rule="value", value_features="pixels", value_samples_per_type=40)
    first = combine_datasets(planted, tmp_path / "a", config, seed=3)
    second = combine_datasets(planted, tmp_path / "b", config, seed=3)
    assert (tmp_path / "a" / "combine_report.json").read_bytes() == (tmp_path / "b" / "combine_report.json").read_bytes()
    assert first.chosen_types == second.chosen_types
    assert sorted(Manifest.read(tmp_path / "a").ids()) == sorted(Manifest.read(tmp_path / "b").ids())
    scores = _report(tmp_path / "a")["value"]["scores"]
    assert all(n["fits"] == 2 and n["images"] > 40 for branch in scores.values() for n in branch.values())
    combine_datasets(planted, tmp_path / "c", config, seed=4)
    assert _report(tmp_path / "c")["value"]["scores"] != scores  # the seed draws the samples


def test_rank_by_value_counts_and_ties_follow_the_types_rule():
    from flare.combine import choose_types

    values = {"a": 0.1, "b": -0.2, "c": 0.3, "d": 0.0, "e": 0.05}
    assert rank_by_value(values, 0.5, 0, "augment") == ["a", "c", "e"]  # round half up: 3 of 5
    assert rank_by_value(values, 0.0, 0, "augment") == [] and rank_by_value(values, 1.0, 0, "augment") == sorted(values)
    flat = dict.fromkeys(values, 0.0)
    for seed in range(5):
        assert rank_by_value(flat, 0.5, seed, "augment") == choose_types(sorted(values), 0.5, seed, "augment")


def test_value_rule_without_val_falls_back_to_types(planted, tmp_path):
    from flare.combine import choose_types

    folder = tmp_path / "noval"
    shutil.copytree(planted, folder)
    records = [{**r, "split": "test"} if r["split"] == "val" else r for r in Manifest.read(folder).records()]
    Manifest.from_records(records, folder).write()
    result = combine_datasets(folder, tmp_path / "out", CombineConfig(alpha=0.5, rule="value"), seed=1)
    report = _report(tmp_path / "out")["value"]
    assert report["unscored"]["augment"] == "no val split to measure on" and report["scores"] == {}
    assert result.chosen_types["augment"] == choose_types(list(AUGMENT_TYPES), 0.5, 1, "augment")


def test_value_is_the_default_rule():
    assert CombineConfig().rule == "value"


def test_probe_averages_the_views_with_mirror_pairs_swapped_back():
    from flare.combine.value import _probe_f1

    # three classes on three feature axes; "cw" and "acw" are a mirror pair
    rng = np.random.default_rng(0)
    train_x = np.repeat(np.eye(3), 20, axis=0) + rng.normal(0, 0.05, (60, 3))
    train_y = np.array(["acw"] * 20 + ["cw"] * 20 + ["ell"] * 20)
    labels = ["cw"]  # macro-F1 over the one val class: 1 when it is predicted, else 0
    pairs = {"cw": "acw", "acw": "cw"}
    # a clockwise val galaxy: faintly clockwise as it is, clearly anticlockwise in its mirror image (view 4)
    val_views = [(0, np.array([[0.2, 0.4, 0.3]])), (4, np.array([[1.0, 0.0, 0.0]]))]
    val_y = np.array(["cw"])
    assert _probe_f1(train_x, train_y, val_views, val_y, labels, 0, lambda c: pairs.get(c, c)) == 1.0
    # without the swap the mirrored view votes for anticlockwise and wins
    assert _probe_f1(train_x, train_y, val_views, val_y, labels, 0, lambda c: c) == 0.0
    # one view alone is the old single-view probe
    assert _probe_f1(train_x, train_y, val_views[:1], val_y, labels, 0, lambda c: c) == 1.0


def test_value_probe_scores_with_the_eight_views_by_default(planted, tmp_path):
    assert CombineConfig().value_tta is True
    config = CombineConfig(alpha=0.5, beta=0.5, rule="value", value_features="pixels")
    combine_datasets(planted, tmp_path / "tta", config, seed=0)
    combine_datasets(planted, tmp_path / "one", config.model_copy(update={"value_tta": False}), seed=0)
    tta, one = _report(tmp_path / "tta")["value"], _report(tmp_path / "one")["value"]
    assert (tta["tta_views"], one["tta_views"]) == (8, 1)
    assert tta["scores"] != one["scores"]  # the views change what the probe measures


def test_exact_symmetry_types_are_kept_outside_alpha_and_still_scored(planted, tmp_path):
    """A type whose rows record ``params.exact_symmetry`` enters whatever its value (here the planted all-black
    type, so the test can tell); α then ranks the other types. Switched off, the black type is dropped again."""
    folder = tmp_path / "sym"
    shutil.copytree(planted, folder)
    records = []
    for row in Manifest.read(folder).records():
        if row["stage"] == "augment" and row["operation"] == "black":
            row = {**row, "params": {**json.loads(row["params"]), "exact_symmetry": True}}
        records.append(row)
    Manifest.from_records(records, folder).write()
    config = CombineConfig(alpha=0.5, beta=0.5, rule="value", value_features="pixels", value_max_train=12,
                           value_probe_seeds=3)
    kept = combine_datasets(folder, tmp_path / "on", config, seed=0).chosen_types["augment"]
    report = _report(tmp_path / "on")["value"]
    # alpha = 0.5 of the one ranked type (fresh) keeps it; black is kept as a symmetry, and still scored
    assert kept == ["black", "fresh"] and report["kept_as_exact_symmetries"] == ["black"]
    assert sorted(report["scores"]["augment"]) == ["black", "fresh"]
    off = combine_datasets(folder, tmp_path / "off", config.model_copy(update={"value_keep_symmetries": False}),
                           seed=0)
    assert off.chosen_types["augment"] == ["fresh"]
