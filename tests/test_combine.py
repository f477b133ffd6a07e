"""Combination: α/β type selection counts, per-sample ratio, per-class targets, ImageFolder layout, leakage, lazy."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flare.augment.loader import load_row_image, render_rows
from flare.augment.stage import augment_dataset, export_lazy
from flare.combine import choose_types, combine_datasets, take_count
from flare.core.config import AugmentConfig, CombineConfig
from flare.core.errors import LeakageError
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest, base_images
from flare.data.leakage import check_leakage

torch.set_num_threads(1)
PRESETS = ["color_jitter", "resized_crop", "noise", "psf_blur"]  # random presets: K variants each
K = 2
SYNTHETIC_TYPES = {"t2i": 3, "i2i-variation": 2}


@pytest.fixture(scope="module")
def augmented(sim_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug")
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS), seed=0)
    return out


@pytest.fixture(scope="module")
def synthetic(sim_dataset, tmp_path_factory) -> Path:
    """A stand-in for the generate stage: a few train-only rows of two types per class."""
    out = tmp_path_factory.mktemp("synthetic")
    train = base_images(Manifest.read(sim_dataset)).filter(split="train").records()
    rng = np.random.default_rng(0)
    records = []
    for label in sorted({r["label"] for r in train}):
        for kind, count in SYNTHETIC_TYPES.items():
            for i in range(count):
                image_id = f"gen-{label}-{kind}-{i}"
                path = f"generate/{label}/{image_id}.png"
                digest = write_image(out / path, rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
                records.append({"id": image_id, "path": path, "sha256": digest, "label": label,
                                "origin_id": image_id, "split": "train", "stage": "generate", "operation": kind,
                                "params": {"type": kind}, "seed": i})
    Manifest.from_records(records, out).write()
    return out


def _count_rows(manifest: Manifest, stage: str) -> int:
    return len(manifest.filter(stage=stage))


def test_type_rule_counts_match_alpha_beta_k(sim_dataset, augmented, synthetic, tmp_path):
    n_train = len(base_images(Manifest.read(sim_dataset)).filter(split="train"))
    n_classes = len({r["label"] for r in base_images(Manifest.read(sim_dataset)).filter(split="train").records()})
    result = combine_datasets(augmented, tmp_path / "c", CombineConfig(alpha=0.5, beta=1.0, rule="types"), seed=4,
                              synthetic=synthetic)
    manifest = Manifest.read(tmp_path / "c")
    assert take_count(0.5, len(PRESETS)) == 2 and take_count(0.5, 5) == 3  # round half up
    assert _count_rows(manifest, "augment") == n_train * K * 2
    assert _count_rows(manifest, "generate") == n_classes * sum(SYNTHETIC_TYPES.values())
    assert len(result.chosen_types["augment"]) == 2 and set(result.chosen_types["augment"]) <= set(PRESETS)
    assert set(manifest.filter(stage="augment").frame["operation"]) == set(result.chosen_types["augment"])
    assert result.chosen_types["generate"] == sorted(SYNTHETIC_TYPES)
    # β = 0.5 of two synthetic types keeps one whole type.
    half = combine_datasets(augmented, tmp_path / "h", CombineConfig(alpha=0.25, beta=0.5, rule="types"), seed=4,
                            synthetic=synthetic)
    kept = half.chosen_types["generate"]
    assert len(kept) == 1 and half.counts["generate"] == n_classes * SYNTHETIC_TYPES[kept[0]]
    assert half.counts["augment"] == n_train * K * 1
    # Same seed → same selection; the rule is the documented one.
    again = combine_datasets(augmented, tmp_path / "c2", CombineConfig(alpha=0.5, beta=1.0, rule="types"), seed=4,
                             synthetic=synthetic)
    assert again.chosen_types == result.chosen_types
    assert sorted(Manifest.read(tmp_path / "c2").ids()) == sorted(manifest.ids())
    assert result.chosen_types["augment"] == choose_types(PRESETS, 0.5, 4, "augment")
    choices = {tuple(choose_types(PRESETS, 0.5, s, "augment")) for s in range(12)}
    assert len(choices) > 1


def test_samples_rule_and_per_class_target(sim_dataset, augmented, synthetic, tmp_path):
    available = _count_rows(Manifest.read(augmented), "augment")
    result = combine_datasets(augmented, tmp_path / "s", CombineConfig(alpha=0.3, beta=0.0, rule="samples"), seed=1,
                              synthetic=synthetic)
    assert result.counts["augment"] == int(np.floor(0.3 * available + 0.5)) and result.counts["generate"] == 0
    target = 4
    result = combine_datasets(augmented, tmp_path / "t", CombineConfig(alpha=1.0, beta=1.0, per_class_target=target),
                              seed=1, synthetic=synthetic)
    train = Manifest.read(tmp_path / "t").filter(split="train").frame
    real = Counter(base_images(Manifest.read(sim_dataset)).filter(split="train").frame["label"])
    per_class = Counter(train["label"])
    for label, count in real.items():
        assert per_class[label] == max(count, target)


def test_imagefolder_layout_val_test_unchanged_and_no_leakage(sim_dataset, augmented, synthetic, tmp_path):
    out = tmp_path / "folder"
    combine_datasets(augmented, out, CombineConfig(), seed=0, synthetic=synthetic)
    manifest = Manifest.read(out)
    assert check_leakage(manifest).ok
    source = {r["id"]: r for r in base_images(Manifest.read(sim_dataset)).records()}
    for row in manifest.records():
        assert Path(row["path"]).parts[:2] == (row["split"], row["label"])
        data = manifest.resolve(row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        if row["split"] != "train":
            assert row["id"] in source and row["stage"] not in ("augment", "generate")
            assert row["origin_id"] == source[row["id"]]["origin_id"]
    held_out = set(manifest.frame.loc[manifest.frame["split"] != "train", "origin_id"])
    made = manifest.frame[manifest.frame["stage"].isin(["augment", "generate"])]
    assert len(made) and not (set(made["origin_id"]) & held_out)
    assert Counter(manifest.frame["split"])["val"] == sum(1 for r in source.values() if r["split"] == "val")
    torchvision = pytest.importorskip("torchvision")
    folder = torchvision.datasets.ImageFolder(str(out / "train"))
    assert len(folder) == len(manifest.filter(split="train"))
    assert json.loads((out / "combine_report.json").read_text())["counts"]["train"] == len(folder)


def test_alpha_only_without_synthetic_branch(augmented, tmp_path):
    result = combine_datasets(augmented, tmp_path / "a", CombineConfig(alpha=1.0, beta=1.0), seed=0)
    assert result.counts["generate"] == 0 and result.counts["augment"] == _count_rows(Manifest.read(augmented), "augment")
    assert result.chosen_types["generate"] == []


def test_refuses_synthetic_image_outside_train(augmented, synthetic, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(synthetic, bad)
    records = Manifest.read(bad).records()
    records[0]["split"] = "test"
    Manifest.from_records(records, bad).write()
    with pytest.raises(LeakageError):
        combine_datasets(augmented, tmp_path / "x", CombineConfig(), seed=0, synthetic=bad)


def test_lazy_combine_export_matches_materialised(sim_dataset, augmented, tmp_path):
    lazy = tmp_path / "lazy"
    augment_dataset(sim_dataset, lazy, AugmentConfig(k=K, presets=PRESETS, mode="lazy"), seed=0)
    eager_out, lazy_out = tmp_path / "eager-c", tmp_path / "lazy-c"
    combine_datasets(augmented, eager_out, CombineConfig(alpha=0.5), seed=2)
    # rule value (the default) scores lazy recipes through the renderer: the same pixels, the same kept types
    combine_datasets(lazy, lazy_out, CombineConfig(alpha=0.5), seed=2, render=load_row_image)
    eager, recipes = Manifest.read(eager_out), Manifest.read(lazy_out)
    assert sorted(eager.ids()) == sorted(recipes.ids())
    lazy_rows = recipes.filter(stage="augment").records()
    eager_rows = {r["id"]: r for r in eager.records()}
    # The loader renders recipes from the combined folder (parents are its real train images).
    for row, pixels in zip(lazy_rows, render_rows(recipes, lazy_rows)):
        assert np.array_equal(pixels, load_rgb(eager.resolve(eager_rows[row["id"]]["path"])))
    exported = export_lazy(lazy_out)
    for row in exported.filter(stage="augment").records():
        assert row["sha256"] == eager_rows[row["id"]]["sha256"] and exported.resolve(row["path"]).is_file()
    assert check_leakage(exported).ok


def test_cli_and_pipeline_step_without_generate(augmented, synthetic, tmp_path):
    from flare.cli import app
    from flare.core.config import FlareConfig
    from flare.pipeline import STEPS

    result = CliRunner().invoke(app, ["combine", str(augmented), str(tmp_path / "cli"), "--alpha", "0.5",
                                      "--beta", "1.0", "--synthetic", str(synthetic)])
    assert result.exit_code == 0, result.output
    assert "combined into" in result.output and Manifest.exists(tmp_path / "cli")
    step = dict(STEPS)["combine"]
    out = step(FlareConfig(), tmp_path, {"data": augmented, "augment": augmented})
    assert _count_rows(Manifest.read(out), "generate") == 0 and _count_rows(Manifest.read(out), "augment") > 0
