"""The augment stage: counts, train-only, label swaps, unsafe classes, replay, lazy mode and its loader, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import fpng
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flare.augment.loader import load_row_image, make_loader, render_rows
from flare.augment.stage import augment_dataset, export_lazy, replay_dataset
from flare.core.config import AugmentConfig
from flare.core.errors import ConfigError
from flare.core.io import load_rgb
from flare.core.manifest import Manifest, base_images
from flare.data.leakage import check_leakage

torch.set_num_threads(1)
PRESETS = ["hflip", "flip_color_jitter", "perspective", "rot90", "noise"]
K = 2


@pytest.fixture(scope="module")
def augmented(sim_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("augmented")
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS, batch_size=7), seed=3)
    return out


@pytest.fixture(scope="module")
def lazy(sim_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lazy")
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS, mode="lazy"), seed=3)
    return out


def test_counts_train_only_and_recorded_params(sim_dataset, augmented):
    manifest = Manifest.read(augmented)
    train = base_images(Manifest.read(sim_dataset)).filter(split="train")
    rows = manifest.filter(stage="augment").records()
    # hflip has one distinct outcome; every other preset gives K variants.
    assert len(rows) == len(train) * (1 + K * (len(PRESETS) - 1))
    assert {r["split"] for r in rows} == {"train"}
    parents = {r["id"]: r for r in manifest.records()}
    for row in rows:
        params = json.loads(row["params"])
        parent = parents[json.loads(row["parent_ids"])[0]]
        assert parent["split"] == "train" and row["origin_id"] == parent["origin_id"]
        assert params["preset"] == row["operation"] and params["recipe"] and row["seed"] is not None
        assert params["encode"] == {"format": "png", "encoder": "fpng", "fpng_version": fpng.__version__}
        assert manifest.resolve(row["path"]).is_file() and row["sha256"]
    assert check_leakage(manifest).ok


def test_mirrored_variants_swap_spiral_labels(augmented):
    manifest = Manifest.read(augmented)
    swaps = {"spiral_clockwise": "spiral_anticlockwise", "spiral_anticlockwise": "spiral_clockwise"}
    seen_mirrored = seen_kept = 0
    for row in manifest.filter(stage="augment").records():
        params = json.loads(row["params"])
        parent_label = params["parent_label"]
        if params["mirrored"]:
            assert row["label"] == swaps.get(parent_label, parent_label)
            seen_mirrored += parent_label in swaps
        else:
            assert row["label"] == parent_label
            seen_kept += parent_label in swaps and row["operation"] == "rot90"
    assert seen_mirrored and seen_kept  # flips swapped spirals; quarter turns kept them


def test_hflip_pixels_are_the_mirror_of_the_parent(augmented):
    manifest = Manifest.read(augmented)
    lookup = {r["id"]: r for r in manifest.records()}
    row = manifest.filter(operation="hflip").records()[0]
    parent = lookup[json.loads(row["parent_ids"])[0]]
    assert np.array_equal(load_rgb(manifest.resolve(row["path"])), load_rgb(manifest.resolve(parent["path"]))[:, ::-1])


def test_replay_regenerates_identical_bytes(augmented, tmp_path):
    manifest = Manifest.read(augmented)
    rows = manifest.filter(stage="augment").records()
    for row in rows:
        manifest.resolve(row["path"]).unlink()
    report = replay_dataset(augmented)
    assert report.ok and report.rendered == len(rows)
    for row in rows:
        data = manifest.resolve(row["path"]).read_bytes()
        import hashlib

        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    # A record that does not match its recipe is reported, and its file is left alone.
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(augmented, broken)
    records = Manifest.read(broken).records()
    target = next(r for r in records if r["stage"] == "augment")
    target["sha256"] = "0" * 64
    Manifest.from_records(records, broken).write()
    report = replay_dataset(broken, check_only=True)
    assert report.mismatched == [target["id"]]


def test_lazy_mode_and_loader_give_materialised_pixels(augmented, lazy):
    eager, recipes = Manifest.read(augmented), Manifest.read(lazy)
    lazy_rows = recipes.filter(stage="augment").records()
    assert lazy_rows and all(r["sha256"] == "" for r in lazy_rows)
    assert not any(recipes.resolve(r["path"]).exists() for r in lazy_rows)
    eager_rows = {r["id"]: r for r in eager.filter(stage="augment").records()}
    assert set(eager_rows) == {r["id"] for r in lazy_rows}
    for row, pixels in zip(lazy_rows, render_rows(recipes, lazy_rows)):
        assert np.array_equal(pixels, load_rgb(eager.resolve(eager_rows[row["id"]]["path"])))
    assert np.array_equal(load_row_image(recipes, lazy_rows[0]),
                          load_rgb(eager.resolve(eager_rows[lazy_rows[0]["id"]]["path"])))
    # The DataLoader path (batched rendering in collate) gives the same pixels.
    loader = make_loader(lazy, batch_size=9, shuffle=True, seed=0)
    checked = 0
    for batch in loader:
        assert batch["images"].dtype == torch.uint8 and batch["labels"].dtype == torch.int64
        for image_id, image in zip(batch["ids"], batch["images"]):
            if image_id in eager_rows:
                expected = load_rgb(eager.resolve(eager_rows[image_id]["path"]))
                assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)
                checked += 1
    assert checked == len(lazy_rows)
    assert len(loader.dataset) == len(lazy_rows) + len(base_images(recipes).filter(split="train"))


def test_export_lazy_matches_materialised_bytes(augmented, lazy, tmp_path):
    import shutil

    copy = tmp_path / "lazy-copy"
    shutil.copytree(lazy, copy)
    manifest = export_lazy(copy)
    eager = {r["id"]: r for r in Manifest.read(augmented).filter(stage="augment").records()}
    for row in manifest.filter(stage="augment").records():
        assert row["sha256"] == eager[row["id"]]["sha256"]
        assert json.loads(row["params"])["materialised"] is True


def test_unsafe_preset_is_skipped_for_its_class(sim_dataset, tmp_path):
    config = AugmentConfig(k=1, presets=["hflip", "rot90"], unsafe={"hflip": ["star", "elliptical"]}, mode="lazy")
    manifest = augment_dataset(sim_dataset, tmp_path / "out", config, seed=0)
    rows = manifest.filter(stage="augment").records()
    assert not [r for r in rows if r["operation"] == "hflip" and json.loads(r["params"])["parent_label"] in ("star", "elliptical")]
    assert [r for r in rows if r["operation"] == "rot90" and r["label"] == "star"]
    with pytest.raises(ConfigError):
        augment_dataset(sim_dataset, tmp_path / "bad", AugmentConfig(presets=["no-such-preset"]))


def test_same_seed_same_manifest_different_seed_differs(sim_dataset, tmp_path):
    config = AugmentConfig(k=1, presets=["color_jitter"], mode="lazy")
    first = augment_dataset(sim_dataset, tmp_path / "a", config, seed=1).filter(stage="augment").frame
    second = augment_dataset(sim_dataset, tmp_path / "b", config, seed=1).filter(stage="augment").frame
    third = augment_dataset(sim_dataset, tmp_path / "c", config, seed=2).filter(stage="augment").frame
    assert first["params"].tolist() == second["params"].tolist()
    assert first["params"].tolist() != third["params"].tolist()


def test_cli_run_default_command_and_replay(sim_dataset, tmp_path):
    from flare.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["augment", str(sim_dataset), str(out), "--k", "1", "--presets", "hflip,rot90"])
    assert result.exit_code == 0, result.output
    assert "augment rows" in result.output
    result = runner.invoke(app, ["augment", "replay", str(out)])
    assert result.exit_code == 0 and "identical bytes" in result.output
    result = runner.invoke(app, ["augment", str(sim_dataset), str(tmp_path / "x"), "--presets", "nope"])
    assert result.exit_code == 1 and "augment.presets" in result.output


@pytest.mark.shared_data
def test_gz1_horizontal_flip_swaps_spiral_chirality(shared_dir, tmp_path):
    """A handful of real GZ1 spirals: a flipped clockwise spiral is labelled anticlockwise and vice versa."""
    from flare.core.taxonomy import load_taxonomy

    gz1 = shared_dir / "datasets" / "gz1"
    records = []
    for label in ("spiral_clockwise", "spiral_anticlockwise", "elliptical"):
        for path in sorted((gz1 / label).glob("*.jpeg"))[:2]:
            records.append({"id": path.stem, "path": str(path), "label": label, "origin_id": path.stem,
                            "split": "train", "stage": "ingest", "operation": "reference",
                            "macro_label": load_taxonomy("gz1").macro(label)})
    dataset = tmp_path / "gz1-few"
    dataset.mkdir()
    Manifest.from_records(records, dataset).write()
    load_taxonomy("gz1").save(dataset / "taxonomy.yaml")
    manifest = augment_dataset(dataset, tmp_path / "out", AugmentConfig(k=1, presets=["hflip", "rot90"], workers=1))
    flips = manifest.filter(stage="augment", operation="hflip").records()
    expected = {"spiral_clockwise": "spiral_anticlockwise", "spiral_anticlockwise": "spiral_clockwise",
                "elliptical": "elliptical"}
    assert len(flips) == 6
    for row in flips:
        parent_label = json.loads(row["params"])["parent_label"]
        assert row["label"] == expected[parent_label]
        assert Path(row["path"]).parts[1] == row["label"]
        parent = gz1 / parent_label / f"{json.loads(row['parent_ids'])[0]}.jpeg"
        assert np.array_equal(load_rgb(manifest.resolve(row["path"])), load_rgb(parent)[:, ::-1])
    for row in manifest.filter(stage="augment", operation="rot90").records():
        assert row["label"] == json.loads(row["params"])["parent_label"]
    assert check_leakage(manifest).ok


@pytest.mark.parametrize("options", [{"format": "jpeg", "quality": 90}, {"format": "png", "png_encoder": "pillow"},
                                     {"format": "png", "png_encoder": "imagecodecs"},
                                     {"format": "webp", "webp_lossless": True}])
def test_replay_is_byte_identical_for_every_format(sim_dataset, tmp_path, options):
    out = tmp_path / "fmt"
    config = AugmentConfig(k=1, presets=["color_jitter", "perspective"], **options)
    manifest = augment_dataset(sim_dataset, out, config, seed=5)
    rows = manifest.filter(stage="augment").records()
    suffix = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}[options["format"]]
    assert rows and all(r["path"].endswith(suffix) for r in rows)
    for row in rows:
        manifest.resolve(row["path"]).unlink()
    assert replay_dataset(out).ok
    assert all(manifest.resolve(r["path"]).is_file() for r in rows)


def test_rerun_reuses_recorded_files_and_redoes_changed_ones(sim_dataset, tmp_path):
    out = tmp_path / "rerun"
    config = AugmentConfig(k=1, presets=["color_jitter"])
    first = {r["id"]: r for r in augment_dataset(sim_dataset, out, config, seed=0).filter(stage="augment").records()}
    victim = next(iter(first.values()))
    Manifest.read(out).resolve(victim["path"]).write_bytes(b"corrupt")
    again = {r["id"]: r for r in augment_dataset(sim_dataset, out, config, seed=0).filter(stage="augment").records()}
    assert {k: v["sha256"] for k, v in again.items()} == {k: v["sha256"] for k, v in first.items()}
    assert replay_dataset(out, check_only=True).ok
    changed = augment_dataset(sim_dataset, out, config, seed=1).filter(stage="augment").records()
    assert {r["sha256"] for r in changed} != {r["sha256"] for r in first.values()}
    assert replay_dataset(out, check_only=True).ok
