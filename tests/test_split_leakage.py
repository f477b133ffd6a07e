"""Origin-level splits, and the leakage check (library and CLI)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from flare.cli import app
from flare.core.manifest import Manifest
from flare.data.leakage import check_leakage
from flare.data.split import assign_splits


def _frame(n_origins=30, images_per_origin=3):
    rows = [{"origin_id": f"o{i}", "label": ["a", "b", "c"][i % 3]} for i in range(n_origins)
            for _ in range(images_per_origin)]
    return pd.DataFrame(rows)


def test_split_keeps_origins_together_and_is_stratified_and_seeded():
    frame = _frame()
    splits = assign_splits(frame, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    frame["split"] = splits
    assert (frame.groupby("origin_id")["split"].nunique() == 1).all()
    per_class = frame.drop_duplicates("origin_id").groupby(["label", "split"]).size().unstack()
    assert (per_class["train"] == 6).all() and (per_class["val"] == 2).all() and (per_class["test"] == 2).all()
    assert splits.equals(assign_splits(_frame(), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1))
    assert not splits.equals(assign_splits(_frame(), {"train": 0.6, "val": 0.2, "test": 0.2}, seed=2))


def test_rare_class_still_reaches_every_split():
    frame = pd.DataFrame([{"origin_id": f"r{i}", "label": "rare"} for i in range(3)])
    assert set(assign_splits(frame, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)) == {"train", "val", "test"}


def _leaky_manifest(tmp_path):
    records = [
        {"id": "x1", "path": "x1.png", "label": "a", "origin_id": "obj1", "split": "train", "stage": "ingest",
         "sha256": "h1"},
        {"id": "x2", "path": "x2.png", "label": "a", "origin_id": "obj1", "split": "test", "stage": "ingest",
         "sha256": "h2"},
        {"id": "x3", "path": "x3.png", "label": "a", "origin_id": "obj3", "split": "val", "stage": "ingest",
         "sha256": "h1"},
        {"id": "x4", "path": "x4.png", "label": "a", "origin_id": "obj4", "split": "test", "stage": "augment",
         "sha256": "h4"},
    ]
    manifest = Manifest.from_records(records, tmp_path)
    manifest.write()
    return manifest


def test_hand_made_leaky_split_fails_with_the_offending_origins(tmp_path):
    report = check_leakage(_leaky_manifest(tmp_path))
    assert not report.ok
    assert report.origins_in_several_splits == {"obj1": ["test", "train"]}
    assert list(report.duplicates_in_several_splits.values()) == [["train", "val"]]
    assert report.generated_outside_train == ["x4"]
    result = CliRunner().invoke(app, ["data", "check-leakage", str(tmp_path)])
    assert result.exit_code == 1
    assert "obj1" in result.output and "x4" in result.output


def test_tool_made_split_passes(sim_dataset):
    assert check_leakage(Manifest.read(sim_dataset)).ok
    result = CliRunner().invoke(app, ["data", "check-leakage", str(sim_dataset)])
    assert result.exit_code == 0, result.output
