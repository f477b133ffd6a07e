"""A fake ``flare run`` work folder built from the simulated survey, for the benchmark, predict and report tests.

data/ = the simulated survey; upscale/ = its HR truth as stage ``upscale`` rows; augment/ = one 180° rotation
per train image (chirality-safe); generate/ = two noisy copies per class; combine/ = a mix of both. The real
stages write these folders in a real run; the benchmark only reads manifests, so this is all it needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest, derived_id

__all__ = ["build_workdir"]


def _stage_rows(base: Manifest, out: Path, stage: str, transform, select) -> list[dict]:
    rows = []
    for row in select(base.records()):
        image = transform(load_rgb(base.resolve(row["path"])), row)
        new_id = derived_id(row["id"], stage, 0)
        path = Path(stage) / row["label"] / f"{new_id}.png"
        digest = write_image(out / path, image)
        rows.append({**{k: row[k] for k in ("label", "macro_label", "origin_id", "split")}, "id": new_id,
                     "path": str(path), "sha256": digest, "stage": stage, "operation": f"test-{stage}",
                     "parent_ids": [row["id"]], "seed": 0})
    return rows


def build_workdir(sim_dataset: Path, workdir: Path, stages=("upscale", "augment", "generate", "combine")) -> Path:
    """Write the stage folders named in ``stages`` under ``workdir`` (data/ always)."""
    taxonomy = sim_dataset / "taxonomy.yaml"
    data = Manifest.read(sim_dataset).rebase(workdir / "data")
    data.write()
    shutil.copy(taxonomy, workdir / "data" / "taxonomy.yaml")
    if "upscale" not in stages:
        return workdir
    up_dir = workdir / "upscale"
    source = Manifest.read(sim_dataset)
    hr_rows = []
    for row in source.records():  # the HR truth stands in for a perfect upscaler
        image = load_rgb(source.resolve(row["truth_path"]))
        new_id = derived_id(row["id"], "upscale", 0)
        path = Path("hr") / row["label"] / f"{new_id}.png"
        digest = write_image(up_dir / path, image)
        hr_rows.append({**{k: row[k] for k in ("label", "macro_label", "origin_id", "split")}, "id": new_id,
                        "path": str(path), "sha256": digest, "stage": "upscale", "operation": "truth",
                        "parent_ids": [row["id"]]})
    upscaled = data.rebase(up_dir).append(hr_rows)
    upscaled.write()
    shutil.copy(taxonomy, up_dir / "taxonomy.yaml")
    hr = upscaled.filter(stage="upscale")
    train_only = lambda rows: [r for r in rows if r["split"] == "train"]  # noqa: E731
    made = {}
    if "augment" in stages:
        rows = _stage_rows(hr, workdir / "augment", "augment", lambda im, r: np.ascontiguousarray(im[::-1, ::-1]),
                           train_only)
        made["augment"] = rows
        upscaled.rebase(workdir / "augment").append(rows).write()
    if "generate" in stages:
        rng = np.random.default_rng(0)

        def noisy(image, row):
            return np.clip(image.astype(int) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)

        def two_per_class(rows):
            picked, seen = [], {}
            for r in train_only(rows):
                if seen.get(r["label"], 0) < 2:
                    picked.append(r)
                    seen[r["label"]] = seen.get(r["label"], 0) + 1
            return picked

        rows = _stage_rows(hr, workdir / "generate", "generate", noisy, two_per_class)
        made["generate"] = rows
        upscaled.rebase(workdir / "generate").append(rows).write()
    if "combine" in stages:
        combined = upscaled.rebase(workdir / "combine")
        for stage, rows in made.items():
            moved = [{**r, "path": str((workdir / stage / r["path"]).resolve())} for r in rows[: max(1, len(rows) // 2)]]
            combined = combined.append(moved)
        combined.write()
    for name in stages:
        if (workdir / name).is_dir():
            shutil.copy(taxonomy, workdir / name / "taxonomy.yaml")
    return workdir


def test_build_workdir_makes_every_stage(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path)
    for name in ("data", "upscale", "augment", "generate", "combine"):
        assert Manifest.exists(workdir / name), name
    augment = Manifest.read(workdir / "augment")
    assert set(augment.filter(stage="augment").frame["split"]) == {"train"}
