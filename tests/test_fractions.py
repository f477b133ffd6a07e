"""Data-efficiency runs: nested stratified train subsets, stages re-run on the subset, one efficiency table."""

from __future__ import annotations

import json

import pandas as pd

from flare.core.dataset import Dataset
from flare.core.manifest import Manifest
from flare.data.split import train_subset_origins, write_train_subset


def _frame(n_per_class: dict[str, int]) -> pd.DataFrame:
    rows = []
    for label, n in n_per_class.items():
        for i in range(n):
            split = "train" if i < int(0.7 * n) else ("val" if i % 2 else "test")
            rows.append({"origin_id": f"{label}-{i}", "label": label, "split": split})
    return pd.DataFrame(rows)


def test_subsets_are_nested_stratified_and_seeded():
    frame = _frame({"a": 200, "b": 40, "c": 3})
    train = frame[frame["split"] == "train"]
    small, medium, full = (train_subset_origins(frame, f, seed=3) for f in (0.1, 0.25, 1.0))
    assert small < medium < full and full == set(train["origin_id"])
    labels = train.set_index("origin_id")["label"]
    assert labels[list(medium)].value_counts().to_dict() == {"a": 35, "b": 7, "c": 1}  # ceil(0.25 n_c), ≥ 1
    assert train_subset_origins(frame, 0.25, seed=3) == medium
    assert train_subset_origins(frame, 0.25, seed=4) != medium
    assert not set(frame[frame["split"] != "train"]["origin_id"]) & small  # never a val/test origin


def test_subset_folder_keeps_val_and_test_whole_and_points_at_the_parent(sim_dataset, tmp_path):
    parent = Dataset.open(sim_dataset)
    kept = write_train_subset(sim_dataset, tmp_path / "sub", 0.5, seed=0)
    subset = Dataset.open(tmp_path / "sub")  # passes the containment rule
    frame, whole = subset.manifest.frame, parent.manifest.frame
    assert kept == int((frame["split"] == "train").sum()) < int((whole["split"] == "train").sum())
    for split in ("val", "test"):
        assert sorted(frame[frame["split"] == split]["id"]) == sorted(whole[whole["split"] == split]["id"])
    row = subset.manifest.records()[0]
    assert subset.manifest.resolve(row["path"]).is_file()
    assert not any((tmp_path / "sub").rglob("*.png"))  # nothing copied


def test_pipeline_runs_each_fraction_in_its_own_folder_and_writes_the_curves(tmp_path):
    from flare.core.config import load_config
    from flare.pipeline import fraction_folder, run_pipeline

    config = load_config(None, [
        "simulate.objects_per_class=10", "generate.per_class=2", "generate.variation_max_per_class=1",
        "generate.train_epochs=1", "generate.filter=none", "benchmark.epochs=2", "benchmark.tasks=[fine]",
        "benchmark.methods=[Raw_HR,Raw_HR_online,FLARE]", "benchmark.train_fractions=[0.5,1.0]",
        "benchmark.features=false", "augment.k=1"])
    result = run_pipeline(config, tmp_path / "work", log=lambda _: None)
    work = result.workdir
    sub = fraction_folder(work, 0.5)
    assert Manifest.exists(sub / "combine") and (sub / "benchmark" / "DONE").is_file()
    full_train = Manifest.read(work / "data").filter(split="train")
    half_train = Manifest.read(sub / "data").filter(split="train")
    assert set(half_train.frame["origin_id"]) < set(full_train.frame["origin_id"])
    # stage 3 of the subset run saw only the subset's origins
    generated = Manifest.read(sub / "generate").filter(stage="generate")
    assert len(generated)
    summary = json.loads((work / "benchmark" / "efficiency.json").read_text())
    assert summary["fractions"] == [0.5, 1.0]
    curves = {(c["method"], c["task"]): c for c in summary["curves"]}
    points = curves[("FLARE", "fine")]["points"]
    assert [p["fraction"] for p in points] == [0.5, 1.0]
    assert points[0]["n_real_train"] == len(half_train) and points[1]["n_real_train"] == len(full_train)
    assert {"low", "high"} <= set(points[0]["ci95"]["macro_f1"])
    assert set(summary["comparison"]) == {"0.5", "1"}
    again = run_pipeline(config, work, log=lambda _: None)
    assert "fractions" in again.skipped
