"""Datasets that travel: Hugging Face metadata of ImageFolder trees, Parquet and WebDataset shards (combine and
materialised augmentation), their resume after SIGKILL, and every reader of a row's image on shard rows.

``datasets`` (dev extra) reads local files only here: ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` are set and its
cache lives in the test's temp folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flare.augment.base import apply_recipes
from flare.augment.loader import is_lazy, load_row_image
from flare.augment.stage import augment_dataset, render_rows, replay_dataset
from flare.combine import combine_datasets
from flare.core.config import AugmentConfig, CombineConfig, ExecutorConfig
from flare.core.errors import ConfigError
from flare.core.files import TEMP_PREFIX
from flare.core.hf_columns import METADATA_NAME, ExportColumns
from flare.core.image_shards import (ROW_GROUP_ROWS, image_exists, image_sha256, read_image_bytes, shard_members,
                                     split_member)
from flare.core.io import load_rgb, write_image
from flare.core.manifest import MANIFEST_NAME, SPLITS, Manifest, base_images
from flare.core.shard import merge_manifests
from flare.core.taxonomy import load_taxonomy
from flare.data.leakage import check_leakage

torch.set_num_threads(1)
PRESETS = ["color_jitter", "hflip", "resized_crop"]
K = 2
SMALL_SHARD_MB = 0.005  # a few parents' variants per shard at 12 px: many shards from the tiny survey


@pytest.fixture(scope="session")
def hf(tmp_path_factory):
    """``datasets``, offline, with its caches in a temp folder."""
    home = tmp_path_factory.mktemp("hf-home")
    settings = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(home),
                "HF_DATASETS_CACHE": str(home / "datasets")}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)  # read when datasets is first imported
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    yield datasets
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def augmented(sim_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug-files")
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS), seed=0)
    return out


@pytest.fixture(scope="module")
def with_synthetic(augmented, tmp_path_factory) -> Path:
    """The augmented folder plus a few train-only ``generate`` rows (a stand-in for stage 3)."""
    out = tmp_path_factory.mktemp("with-synthetic")
    manifest = Manifest.read(augmented).rebase(out)
    rng = np.random.default_rng(0)
    records = []
    for index, parent in enumerate(base_images(manifest).filter(split="train").records()[::4]):
        image_id = f"gen-{parent['label']}-{index}"
        path = f"generate/{parent['label']}/{image_id}.png"
        digest = write_image(out / path, rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
        records.append({"id": image_id, "path": path, "sha256": digest, "label": parent["label"],
                        "origin_id": image_id, "split": "train", "stage": "generate", "operation": "t2i",
                        "params": {"type": "t2i"}, "seed": index})
    manifest.append(records).write(out)
    (out / "taxonomy.yaml").write_bytes((augmented / "taxonomy.yaml").read_bytes())
    return out


def _by_id(manifest: Manifest, split: str) -> dict[str, dict]:
    return {r["id"]: r for r in manifest.filter(split=split).records()}


def _assert_rows_match(rows: list[dict], manifest: Manifest, split: str, label_names: list[str]) -> None:
    """Each loaded row equals its manifest row in id, provenance and pixels; every manifest row is loaded once."""
    expected = _by_id(manifest, split)
    assert sorted(r["id"] for r in rows) == sorted(expected)
    for row in rows:
        record = expected[row["id"]]
        assert row["is_synthetic"] == (record["stage"] == "generate")
        assert (row["origin_id"], row["stage"], row["operation"], row["split"]) == (
            record["origin_id"], record["stage"], record["operation"], record["split"])
        assert label_names[row["label"]] == record["label"] and row["seed"] == record["seed"]
        assert row["sha256"] == record["sha256"]
        pixels = np.asarray(row["image"].convert("RGB"))
        assert np.array_equal(pixels, load_rgb(manifest.resolve(record["path"])))


# ------------------------------------------------------------------------------------------- ImageFolder


def test_imagefolder_metadata_loads_with_datasets_row_for_row(with_synthetic, hf, tmp_path):
    out = tmp_path / "combined"
    combine_datasets(with_synthetic, out, CombineConfig(alpha=0.5, beta=1.0), seed=0)
    manifest = Manifest.read(out)
    assert len(manifest.filter(stage="generate")) and len(manifest.filter(stage="augment"))
    loaded = hf.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "validation", "test"}
    names = loaded["train"].features["label"].names
    assert names == load_taxonomy(out / "taxonomy.yaml").fine_classes  # a ClassLabel, as without metadata
    for split, name in zip(SPLITS, ("train", "validation", "test")):
        _assert_rows_match(list(loaded[name]), manifest, split, names)
    # torchvision still sees the class folders only
    torchvision = pytest.importorskip("torchvision")
    folder = torchvision.datasets.ImageFolder(str(out / "train"))
    assert len(folder) == len(manifest.filter(split="train")) and folder.classes == names


def test_exporting_lazy_recipes_refreshes_the_metadata(sim_dataset, tmp_path):
    from flare.augment.stage import export_lazy

    lazy = tmp_path / "lazy"
    augment_dataset(sim_dataset, lazy, AugmentConfig(k=K, presets=PRESETS, mode="lazy"), seed=0)
    out = tmp_path / "combined"
    combine_datasets(lazy, out, CombineConfig(alpha=1.0), seed=0)
    before = pq.read_table(out / "train" / METADATA_NAME).column("id").to_pylist()
    assert not any("__augment" in i for i in before)  # recipes have no file yet, so no metadata row
    export_lazy(out)
    after = pq.read_table(out / "train" / METADATA_NAME).column("id").to_pylist()
    assert sorted(after) == sorted(Manifest.read(out).filter(split="train").ids())


# ------------------------------------------------------------------------------------------- combine shards


@pytest.mark.parametrize("layout", ["parquet", "webdataset"])
def test_combined_shards_load_with_datasets_streaming(layout, with_synthetic, hf, tmp_path):
    out = tmp_path / layout
    result = combine_datasets(with_synthetic, out, CombineConfig(layout=layout, shard_size_mb=0.02), seed=0)
    manifest = Manifest.read(out)
    assert len(result.shards) > 3 and sorted(os.listdir(out / "shards")) == sorted(result.shards)
    assert not (out / "train").exists()
    for row in manifest.records():  # every row says where its bytes are, and core reads them
        container, member = split_member(row["path"])
        assert str(container).startswith("shards/") and member == f"{row['id']}.png"
        assert image_sha256(manifest.resolve(row["path"])) == row["sha256"]
    names = load_taxonomy(out / "taxonomy.yaml").fine_classes
    if layout == "parquet":
        stream = hf.load_dataset("parquet", data_dir=str(out / "shards"), streaming=True)
        assert set(stream) == {"train", "validation", "test"}
        assert stream["train"].features["label"].names == names
        for split, name in zip(SPLITS, ("train", "validation", "test")):
            _assert_rows_match(list(stream[name]), manifest, split, names)
        for shard in result.shards:  # pyarrow reads them as plain tables, in row groups sized for streaming
            metadata = pq.ParquetFile(out / "shards" / shard).metadata
            assert all(metadata.row_group(i).num_rows <= ROW_GROUP_ROWS for i in range(metadata.num_row_groups))
        table = pq.read_table(out / "shards" / result.shards[0])
        assert table.column_names[:3] == ["image", "label", "macro_label"]
        assert [field.name for field in table.column("image").type] == ["bytes", "path"]
    else:
        loaded = hf.load_dataset("webdataset", data_dir=str(out / "shards"), streaming=True)
        for split, name in zip(SPLITS, ("train", "validation", "test")):
            rows = [{**sample["json"], "image": sample["png"], "label": sample["cls"]} for sample in loaded[name]]
            _assert_rows_match(rows, manifest, split, names)


def test_combine_rerun_keeps_complete_shards_and_redoes_the_rest(with_synthetic, tmp_path):
    out = tmp_path / "c"
    config = CombineConfig(layout="parquet", shard_size_mb=0.02)
    result = combine_datasets(with_synthetic, out, config, seed=0)
    shards = out / "shards"
    first = {name: (shards / name).read_bytes() for name in result.shards}
    stamps = {name: (shards / name).stat().st_mtime_ns for name in result.shards}
    manifest_bytes = (out / MANIFEST_NAME).read_bytes()
    time.sleep(0.02)
    (shards / result.shards[1]).unlink()
    (shards / result.shards[2]).write_bytes(first[result.shards[2]][:100])  # torn by hand
    (shards / "train-00000-of-00099.parquet").write_bytes(b"stale shard of another plan")
    again = combine_datasets(with_synthetic, out, config, seed=0)
    assert again.shards == result.shards and sorted(os.listdir(shards)) == sorted(result.shards)
    assert {name: (shards / name).read_bytes() for name in result.shards} == first
    kept = [name for name in result.shards if (shards / name).stat().st_mtime_ns == stamps[name]]
    assert sorted(set(result.shards) - set(kept)) == sorted(result.shards[1:3])  # only those two were written
    assert (out / MANIFEST_NAME).read_bytes() == manifest_bytes


def test_replay_checks_combined_shards_but_never_rebuilds_them_from_augment_rows_alone(augmented, tmp_path,
                                                                                     monkeypatch):
    import flare.augment.stage as stage

    out = tmp_path / "c"
    combine_datasets(augmented, out, CombineConfig(alpha=1.0, layout="parquet", shard_size_mb=0.02), seed=0)
    before = _shard_bytes(out)
    report = replay_dataset(out)
    assert report.ok and report.rendered == len(Manifest.read(out).filter(stage="augment"))
    assert _shard_bytes(out) == before
    # Even a shard taken for incomplete is not rewritten: it holds real images too, which recipes cannot make.
    monkeypatch.setattr(stage, "complete_shard", lambda *args: None)
    assert replay_dataset(out).ok and _shard_bytes(out) == before


# ------------------------------------------------------------------------------------------- augment shards


@pytest.fixture(scope="module")
def augmented_parquet(sim_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug-parquet")
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS, layout="parquet",
                                                    shard_size_mb=SMALL_SHARD_MB), seed=0)
    return out


def test_augment_shards_hold_the_replayed_recipe_bytes(augmented, augmented_parquet):
    manifest = Manifest.read(augmented_parquet)
    rows = manifest.filter(stage="augment").records()
    files = {r["id"]: r["sha256"] for r in Manifest.read(augmented).filter(stage="augment").records()}
    assert {r["id"]: r["sha256"] for r in rows} == files  # the same PNG bytes as the files layout
    containers = sorted({str(split_member(r["path"])[0]) for r in rows})
    assert len(containers) > 3 and not (augmented_parquet / "augment").exists()
    for row, recipe_pixels in zip(rows, render_rows(manifest, rows)):  # decoded shard bytes == replay
        data = read_image_bytes(manifest.resolve(row["path"]))
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), recipe_pixels)
    assert replay_dataset(augmented_parquet, check_only=True).ok
    # every parent's variants sit in one shard, shards in id order
    parents = [Manifest.parents(r)[0] for r in sorted(rows, key=lambda r: r["path"])]
    assert parents == sorted(parents)


def test_replay_rebuilds_a_missing_shard_byte_for_byte(augmented_parquet, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(augmented_parquet, copy)
    shard = sorted((copy / "shards").iterdir())[1]
    original = shard.read_bytes()
    shard.unlink()
    report = replay_dataset(copy)
    assert report.ok and report.rendered == len(Manifest.read(copy).filter(stage="augment"))
    assert shard.read_bytes() == original


def test_same_config_same_shard_bytes_whatever_the_executor(sim_dataset, augmented_parquet, tmp_path):
    config = AugmentConfig(k=K, presets=PRESETS, layout="parquet", shard_size_mb=SMALL_SHARD_MB, workers=1)
    augment_dataset(sim_dataset, tmp_path / "t", config, seed=0,
                    executor=ExecutorConfig(workers=2, local_pool="thread"))
    assert _shard_bytes(tmp_path / "t") == _shard_bytes(augmented_parquet)
    assert (tmp_path / "t" / MANIFEST_NAME).read_bytes() == (augmented_parquet / MANIFEST_NAME).read_bytes()


def test_rendering_runs_torch_on_one_thread_and_restores_the_count(sim_dataset, augmented_parquet, tmp_path,
                                                                   monkeypatch):
    """The stage's worker threads are its parallelism: each torch op runs on one intra-op thread while it renders
    (the caller's count comes back afterwards), and the bytes are those of a one-thread run."""
    import flare.augment.stage as stage

    seen = []

    def counting(images, recipes):
        seen.append(torch.get_num_threads())
        return apply_recipes(images, recipes)

    monkeypatch.setattr(stage, "apply_recipes", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        augment_dataset(sim_dataset, tmp_path / "t", AugmentConfig(k=K, presets=PRESETS, layout="parquet",
                                                                   shard_size_mb=SMALL_SHARD_MB), seed=0)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1} and after == 2
    assert _shard_bytes(tmp_path / "t") == _shard_bytes(augmented_parquet)


def test_webdataset_layout_same_rows_as_parquet(sim_dataset, augmented_parquet, tmp_path):
    import tarfile

    out = tmp_path / "wds"
    augment_dataset(sim_dataset, out, AugmentConfig(k=K, presets=PRESETS, layout="webdataset",
                                                   shard_size_mb=SMALL_SHARD_MB), seed=0)
    tar_rows = Manifest.read(out).filter(stage="augment").records()
    parquet_rows = {r["id"]: r for r in Manifest.read(augmented_parquet).filter(stage="augment").records()}
    assert {r["id"]: r["sha256"] for r in tar_rows} == {i: r["sha256"] for i, r in parquet_rows.items()}
    assert all(load_rgb(out / r["path"]).shape == (12, 12, 3) for r in tar_rows[:5])
    with tarfile.open(sorted((out / "shards").iterdir())[0]) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
    assert [m.name.split(".")[-1] for m in members[:3]] == ["png", "json", "cls"]


def test_readers_of_a_row_read_shard_rows(augmented_parquet, tmp_path):
    """Everything downstream reads through core: the loader, the benchmark's image cache, leakage, merge."""
    from flare.classify import images

    manifest = Manifest.read(augmented_parquet)
    rows = manifest.filter(stage="augment").records()[:6]
    for row in rows:
        assert not is_lazy(manifest, row) and image_exists(manifest.resolve(row["path"]))
        pixels = load_row_image(manifest, row)
        assert np.array_equal(pixels, images.load_row_image(manifest, row, render=load_row_image))
    assert check_leakage(manifest, rehash=True).ok
    merged = merge_manifests([augmented_parquet], tmp_path / "merged")
    assert sorted(os.listdir(tmp_path / "merged" / "shards")) == sorted(os.listdir(augmented_parquet / "shards"))
    row = merged.filter(stage="augment").records()[0]
    assert image_sha256(merged.resolve(row["path"])) == row["sha256"]


def test_combine_reads_its_sources_from_shards(augmented, augmented_parquet, tmp_path):
    from_files = combine_datasets(augmented, tmp_path / "a", CombineConfig(alpha=1.0), seed=0).manifest
    from_shards = combine_datasets(augmented_parquet, tmp_path / "b", CombineConfig(alpha=1.0), seed=0).manifest
    assert (from_files.frame[["id", "path", "sha256"]].equals(from_shards.frame[["id", "path", "sha256"]]))
    for row in from_shards.records():
        assert (tmp_path / "b" / row["path"]).read_bytes() == (tmp_path / "a" / row["path"]).read_bytes()


def test_layout_needs_materialised_images(sim_dataset, tmp_path):
    with pytest.raises(ConfigError, match="augment.layout"):
        augment_dataset(sim_dataset, tmp_path / "x", AugmentConfig(layout="parquet", mode="lazy"), seed=0)


def test_export_columns_of_a_synthetic_row():
    columns = ExportColumns(load_taxonomy("sim"))
    row = {"id": "g", "label": "star", "macro_label": "", "origin_id": "g", "split": "train", "stage": "generate",
           "operation": "t2i", "seed": None, "sha256": "ab"}
    values = columns.values(row)
    assert values["is_synthetic"] is True and values["seed"] is None
    assert columns.fine_classes[values["label"]] == "star"
    assert columns.macro_classes[values["macro_label"]] == load_taxonomy("sim").macro("star")


def test_cli_layout_options(augmented, sim_dataset, tmp_path):
    from flare.cli import app

    result = CliRunner().invoke(app, ["combine", str(augmented), str(tmp_path / "c"), "--layout", "parquet"])
    assert result.exit_code == 0, result.output
    # rich wraps the line at the terminal's width wherever the tmp path's length puts the break
    assert "parquet shards" in " ".join(result.output.split()) and (tmp_path / "c" / "shards").is_dir()
    result = CliRunner().invoke(app, ["augment", str(sim_dataset), str(tmp_path / "a"), "--k", "1",
                                      "--presets", "hflip", "--layout", "webdataset"])
    assert result.exit_code == 0, result.output
    assert "webdataset" in result.output and len(os.listdir(tmp_path / "a" / "shards")) == 1


# ------------------------------------------------------------------------------------------- SIGKILL mid-shard

SCRIPT = textwrap.dedent('''
    import sys
    from flare.augment.stage import augment_dataset
    from flare.core.config import AugmentConfig

    if __name__ == "__main__":
        source, out, layout = sys.argv[1], sys.argv[2], sys.argv[3]
        augment_dataset(source, out, AugmentConfig(k=2, presets=["color_jitter", "hflip", "resized_crop"],
                                                   layout=layout, shard_size_mb=float(sys.argv[4]), workers=1),
                        seed=0)
''')


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").iterdir())}


@pytest.mark.parametrize("layout, seed", [("parquet", 0), ("parquet", 1), ("webdataset", 2)])
def test_sigkill_mid_shard_then_rerun_gives_the_uninterrupted_shards(layout, seed, sim_dataset, augmented_parquet,
                                                                     tmp_path):
    reference = augmented_parquet
    if layout != "parquet":
        reference = tmp_path / "reference"
        augment_dataset(sim_dataset, reference, AugmentConfig(k=K, presets=PRESETS, layout=layout,
                                                              shard_size_mb=SMALL_SHARD_MB), seed=0)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    arguments = [sys.executable, str(script), str(sim_dataset), str(out), layout, str(SMALL_SHARD_MB)]
    env = dict(os.environ, FLARE_PROGRESS="0", OMP_NUM_THREADS="1")
    process = subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    # Kill once a random number of shards is complete, or the moment a shard is being written.
    target, deadline = random.Random(seed).randint(1, 4), time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        shards = out / "shards"
        names = [p.name for p in shards.iterdir()] if shards.is_dir() else []
        if any(n.startswith(TEMP_PREFIX) for n in names) or len(names) >= target:
            break
        time.sleep(0.002)
    killed = process.poll() is None
    if killed:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert killed, "the stage finished before it could be killed; make the survey larger"
    assert not (out / MANIFEST_NAME).exists()
    rerun = subprocess.run(arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert rerun.returncode == 0, rerun.stdout.decode()[-3000:]
    assert _shard_bytes(out) == _shard_bytes(reference)
    assert (out / MANIFEST_NAME).read_bytes() == (reference / MANIFEST_NAME).read_bytes()
    assert not list(out.rglob(TEMP_PREFIX + "*")) and not (out / ".flare-parts").exists()
    assert {m for c in _shard_bytes(out) for m in shard_members(out / "shards" / c)} == {
        split_member(r["path"])[1] for r in Manifest.read(out).filter(stage="augment").records()}
