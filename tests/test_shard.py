"""Static sharding: ``i/N`` parsing, hash selection by origin, and merging shard outputs."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from flare.core.config import ExecutorConfig
from flare.core.errors import ConfigError, ManifestError
from flare.core.files import output_is_valid, sha256_file
from flare.core.manifest import MANIFEST_NAME, Manifest
from flare.core.shard import Shard, merge_manifests, parse_shard, select_shard, shard_index
from flare.executors.demo_worker import run_demo_stage


def _rows(n: int, per_origin: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"img-{i:04d}" for i in range(n)],
                         "origin_id": [f"origin-{i // per_origin:04d}" for i in range(n)]})


@pytest.mark.parametrize("text, expected", [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2)),
                                            (None, None), ("", None)])
def test_parse_shard_accepts(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text, message", [("2/2", "0..1"), ("1-2", "form i/N"), ("a/b", "form i/N"),
                                           ("0/0", "at least 1"), ("-1/2", "form i/N")])
def test_parse_shard_rejects_with_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_shard(text)
    assert "\n" not in str(info.value)


def test_shards_partition_rows_and_keep_origins_together():
    rows = _rows(200, per_origin=4)
    shards = [select_shard(rows, f"{i}/3") for i in range(3)]
    ids = [set(s["id"]) for s in shards]
    assert sum(len(s) for s in ids) == len(rows) and set().union(*ids) == set(rows["id"])
    assert all(len(s) > 30 for s in ids)  # roughly balanced
    for shard in shards:  # no origin is split between shards
        for other in shards:
            if other is not shard:
                assert not set(shard["origin_id"]) & set(other["origin_id"])


def test_shard_membership_does_not_depend_on_position():
    rows = _rows(120)
    before = set(select_shard(rows, "1/4")["id"])
    shuffled = rows.sample(frac=1.0, random_state=3)
    grown = pd.concat([_rows(10).assign(id=lambda f: "new-" + f["id"], origin_id=lambda f: "new-" + f["origin_id"]),
                       shuffled])
    after = set(select_shard(grown, "1/4")["id"])
    assert before == {i for i in after if not i.startswith("new-")}
    assert shard_index("origin-0001", 4) == shard_index("origin-0001", 4)


def test_select_shard_falls_back_to_id():
    rows = pd.DataFrame({"id": [f"x{i}" for i in range(50)]})
    halves = [set(select_shard(rows, f"{i}/2")["id"]) for i in range(2)]
    assert halves[0].isdisjoint(halves[1]) and len(halves[0] | halves[1]) == 50


def test_executor_shard_reaches_map_batches(sim_dataset, tmp_path):
    manifest = run_demo_stage(sim_dataset, tmp_path / "s0", executor=ExecutorConfig(shard="0/2"))
    made = manifest.filter(stage="demo")
    expected = select_shard(Manifest.read(sim_dataset).frame, "0/2")
    assert 0 < len(made) < len(expected) * 2 and sorted(made.frame["origin_id"]) == sorted(expected["origin_id"])


def test_sharded_runs_merged_equal_an_unsharded_run(sim_dataset, tmp_path):
    whole = tmp_path / "whole"
    run_demo_stage(sim_dataset, whole, seed=5)
    for i in range(2):
        run_demo_stage(sim_dataset, tmp_path / f"part{i}", seed=5, shard=f"{i}/2")
    merged = tmp_path / "merged"
    merge_manifests([tmp_path / "part0", tmp_path / "part1"], merged)
    assert (merged / MANIFEST_NAME).read_bytes() == (whole / MANIFEST_NAME).read_bytes()
    for row in Manifest.read(merged).filter(stage="demo").records():
        assert sha256_file(merged / row["path"]) == row["sha256"] == sha256_file(whole / row["path"])
    # merging again (files already in place) is idempotent
    merge_manifests([tmp_path / "part0", tmp_path / "part1"], merged)
    assert (merged / MANIFEST_NAME).read_bytes() == (whole / MANIFEST_NAME).read_bytes()


def test_merge_reference_mode_keeps_files_in_place(sim_dataset, tmp_path):
    for i in range(2):
        run_demo_stage(sim_dataset, tmp_path / f"part{i}", shard=f"{i}/2")
    merged = merge_manifests([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged", files="reference")
    assert not (tmp_path / "merged" / "demo").exists()
    rows = merged.filter(stage="demo").records()
    assert rows and all(merged.resolve(r["path"]).is_file() for r in rows)


def test_merge_refuses_conflicting_rows(sim_dataset, tmp_path):
    run_demo_stage(sim_dataset, tmp_path / "a", seed=1)
    run_demo_stage(sim_dataset, tmp_path / "b", seed=2)  # same ids, other seeds and pixels
    with pytest.raises(ManifestError, match="differs in column") as info:
        merge_manifests([tmp_path / "a", tmp_path / "b"], tmp_path / "merged", files="reference")
    assert "\n" not in str(info.value)


def test_merge_refuses_a_file_clash(sim_dataset, tmp_path):
    run_demo_stage(sim_dataset, tmp_path / "a", seed=1)
    run_demo_stage(sim_dataset, tmp_path / "b", seed=2)
    shutil.copytree(tmp_path / "b" / "demo", tmp_path / "merged" / "demo")
    with pytest.raises(ManifestError, match="different content"):
        merge_manifests([tmp_path / "a"], tmp_path / "merged")


def test_merge_cli(sim_dataset, tmp_path):
    from flare.cli import app

    for i in range(2):
        run_demo_stage(sim_dataset, tmp_path / f"part{i}", shard=f"{i}/2")
    result = CliRunner().invoke(app, ["data", "merge-manifests", str(tmp_path / "merged"),
                                      str(tmp_path / "part0"), str(tmp_path / "part1")])
    assert result.exit_code == 0, result.output
    assert len(Manifest.read(tmp_path / "merged").filter(stage="demo")) == len(Manifest.read(sim_dataset))
    bad = CliRunner().invoke(app, ["data", "merge-manifests", str(tmp_path / "m2"), str(tmp_path / "absent")])
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_output_is_valid_detects_partial_and_corrupt_files(sim_dataset, tmp_path):
    good = next((sim_dataset / "lr").rglob("*.png"))
    assert output_is_valid(good) and output_is_valid(good, sha256_file(good))
    assert not output_is_valid(good, "0" * 64)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert not output_is_valid(truncated)
    assert output_is_valid(truncated, decode=False)
    (tmp_path / "empty.png").write_bytes(b"")
    assert not output_is_valid(tmp_path / "empty.png") and not output_is_valid(tmp_path / "absent.png")


def test_stage_cli_shard_option(sim_dataset, tmp_path):
    """`flare upscale --shard i/N` runs one shard; a bad value is refused before any work."""
    pytest.importorskip("flare.upscale.stage")
    from flare.cli import app

    runner = CliRunner()
    for i in range(2):
        result = runner.invoke(app, ["upscale", "run", str(sim_dataset), str(tmp_path / f"s{i}"),
                                     "--backend", "bicubic", "--shard", f"{i}/2"])
        assert result.exit_code == 0, result.output
    made = [Manifest.read(tmp_path / f"s{i}").filter(stage="upscale").frame for i in range(2)]
    expected = [select_shard(Manifest.read(sim_dataset).frame, f"{i}/2") for i in range(2)]
    for frame, rows in zip(made, expected):
        assert sorted(frame["origin_id"]) == sorted(rows["origin_id"]) and len(frame)
    bad = runner.invoke(app, ["upscale", "run", str(sim_dataset), str(tmp_path / "bad"), "--shard", "2/2"])
    assert bad.exit_code == 2 and "0..1" in bad.output and not (tmp_path / "bad").exists()


def test_merge_carries_the_taxonomy_and_refuses_two(sim_dataset, tmp_path):
    for i in range(2):
        run_demo_stage(sim_dataset, tmp_path / f"part{i}", shard=f"{i}/2")
        shutil.copyfile(sim_dataset / "taxonomy.yaml", tmp_path / f"part{i}" / "taxonomy.yaml")
    merge_manifests([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged")
    assert (tmp_path / "merged" / "taxonomy.yaml").read_bytes() == (sim_dataset / "taxonomy.yaml").read_bytes()
    (tmp_path / "part1" / "taxonomy.yaml").write_text("other: taxonomy\n")
    with pytest.raises(ManifestError, match="different taxonomy"):
        merge_manifests([tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged2")
