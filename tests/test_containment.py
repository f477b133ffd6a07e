"""No path from a manifest ever leaves its root: crafted manifests are refused with one line naming the row,
and nothing is written outside the output folder (or anywhere else under the test's tmp_path)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flare.augment.stage import augment_dataset, export_lazy, replay_dataset
from flare.cli import app
from flare.combine.stage import combine_datasets
from flare.core.config import AugmentConfig, SimulateConfig, UpscaleConfig
from flare.core.errors import FlareError, ManifestError
from flare.core.manifest import Manifest
from flare.core.shard import merge_manifests
from flare.data.leakage import check_leakage
from flare.data.simulate import simulate_survey
from flare.upscale.stage import upscale_dataset

ID_RULE = "is not a safe file name (no '/', '\\', control characters or leading '.', at most 200 characters)"
AUG = AugmentConfig(presets=["hflip"], k=1, png_encoder="pillow", workers=1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "sim"
    simulate_survey(out, SimulateConfig(objects_per_class=2, hr_size_px=32), seed=0)
    return out


@pytest.fixture
def sim(pristine, tmp_path) -> Path:
    """A fresh copy of a small simulated survey inside this test's tmp_path."""
    target = tmp_path / "sim"
    shutil.copytree(pristine, target)
    return target


def _edit(root: Path, row_id: str, **columns) -> None:
    manifest = Manifest.read(root)
    records = [({**r, **columns} if r["id"] == row_id else r) for r in manifest.records()]
    Manifest.from_records(records, manifest.root).write()


def _listing(tmp_path: Path, exclude: Path | None = None) -> set[str]:
    out = set()
    for path in tmp_path.rglob("*"):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        out.add(str(path.relative_to(tmp_path)))
    return out


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


FIRST = "sim-edge_on-0000"


# ---------------------------------------------------------------- finding 1: id / label with ../


def _run_stage(stage: str, sim: Path, out: Path) -> None:
    if stage == "augment":
        augment_dataset(sim, out, AUG)
    else:
        upscale_dataset(sim, out, UpscaleConfig(backend="bicubic"))


@pytest.mark.parametrize("stage", ["augment", "upscale"])
@pytest.mark.parametrize("column, bad", [("id", "../../../PWNED_id"), ("label", "../../PWNED_label")])
def test_id_or_label_with_dotdot_is_refused_and_nothing_is_written(sim, tmp_path, stage, column, bad):
    _edit(sim, FIRST, **{column: bad})
    out = tmp_path / "out"
    before = _listing(tmp_path, out)
    with pytest.raises(ManifestError) as exc:
        _run_stage(stage, sim, out)
    if column == "id":
        assert _one_line(exc) == f"manifest: row {bad!r} of {str(sim)!r}: id {bad!r} {ID_RULE}"
    else:
        assert _one_line(exc).startswith(f"manifest: row {FIRST!r} of {str(sim)!r}: label {bad!r} is not one of ")
    assert _listing(tmp_path, out) == before
    assert not list(tmp_path.parent.glob("PWNED*"))


def test_label_outside_a_given_taxonomy_is_refused(sim):
    _edit(sim, FIRST, label="not_a_class")
    from flare.core.dataset import Dataset

    with pytest.raises(ManifestError, match=re.escape(f"row {FIRST!r}") + ".*label 'not_a_class' is not one of"):
        Dataset.open(sim)


def test_safe_join_guards_the_writers_even_without_the_check(sim, tmp_path):
    """A row that slipped past the read check still cannot make a stage write outside its output."""
    from flare.augment.stage import AugmentWorker
    from flare.upscale.stage import UpscaleWorker

    row = Manifest.read(sim).records()[0]
    row = {**row, "id": "../../../PWNED_id", "label": "../../PWNED_label"}
    worker = AugmentWorker(str(tmp_path / "out"), ["hflip"], 1, 0, "lazy", {"format": "png", "encoder": "pillow"})
    with pytest.raises(FlareError, match="unsafe path"):
        worker._plan(row, 32, 32)
    upscaler = UpscaleWorker("bicubic", {"scale": 2}, str(tmp_path / "out"))
    with pytest.raises(FlareError, match="unsafe path"):
        upscaler._output_path(row)


@pytest.fixture
def augmented(sim, tmp_path) -> Path:
    out = tmp_path / "aug"
    augment_dataset(sim, out, AUG)
    return out


@pytest.fixture
def lazy(sim, tmp_path) -> Path:
    out = tmp_path / "lazy"
    augment_dataset(sim, out, AUG.model_copy(update={"mode": "lazy"}))
    return out


def _augment_row(root: Path) -> str:
    return Manifest.read(root).filter(stage="augment").ids()[0]


@pytest.mark.parametrize("which", ["replay", "export"])
def test_replay_and_export_refuse_a_path_that_leaves_the_dataset(augmented, lazy, tmp_path, which):
    root = augmented if which == "replay" else lazy
    row_id = _augment_row(root)
    bad = "../../PWNED_replay.png"
    _edit(root, row_id, path=bad)
    before = _listing(tmp_path, root)
    with pytest.raises(ManifestError) as exc:
        replay_dataset(root) if which == "replay" else export_lazy(root)
    assert _one_line(exc) == f"manifest: row {row_id!r} of {str(root)!r}: path {bad!r} leaves the dataset folder"
    assert _listing(tmp_path, root) == before


def test_replay_refuses_a_bad_id(augmented, tmp_path):
    row_id = _augment_row(augmented)
    _edit(augmented, row_id, id="../x")
    with pytest.raises(ManifestError, match=re.escape(f"row '../x' of {str(augmented)!r}: id '../x' {ID_RULE}")):
        replay_dataset(augmented, check_only=True)


# ---------------------------------------------------------------- finding 2: paths out of the dataset, bytes


def test_combine_refuses_an_absolute_path_outside_the_dataset(sim, tmp_path):
    _edit(sim, FIRST, path="/etc/passwd", split="val")
    out = tmp_path / "combined"
    before = _listing(tmp_path, out)
    with pytest.raises(ManifestError) as exc:
        combine_datasets(sim, out)
    assert _one_line(exc) == f"manifest: row {FIRST!r} of {str(sim)!r}: path '/etc/passwd' leaves the dataset folder"
    assert _listing(tmp_path, out) == before
    assert not out.exists()


def test_combine_refuses_a_relative_path_outside_the_dataset(sim, tmp_path):
    secret = tmp_path / "secret.png"
    shutil.copyfile(sim / "lr" / "star" / "sim-star-0000.png", secret)
    _edit(sim, FIRST, path="../secret.png", split="val")
    with pytest.raises(ManifestError, match=re.escape(f"path '../secret.png' leaves the dataset folder")):
        combine_datasets(sim, tmp_path / "combined")


def test_combine_verifies_the_bytes_it_copies(sim, tmp_path):
    """Ingest rows may reference source files in place (absolute paths); combine checks their sha256."""
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"not an image of this dataset")
    _edit(sim, FIRST, path=str(secret), stage="ingest", operation="reference", split="val")
    out = tmp_path / "combined"
    with pytest.raises(ManifestError) as exc:
        combine_datasets(sim, out)
    assert _one_line(exc) == (f"combine: image {str(secret)!r} of row {FIRST!r} does not match its recorded "
                              f"sha256 (the file changed since the manifest was written)")
    assert not list(out.rglob("*.txt")) and not list(out.rglob(f"{FIRST}*"))


def test_combine_of_a_swapped_file_is_refused(sim, tmp_path):
    shutil.copyfile(sim / "lr" / "star" / "sim-star-0000.png", sim / "lr" / "edge_on" / f"{FIRST}.png")
    with pytest.raises(ManifestError, match=re.escape(f"of row {FIRST!r} does not match its recorded sha256")):
        combine_datasets(sim, tmp_path / "combined")


def test_check_leakage_rehashes_and_finds_a_swapped_test_image(sim):
    victim = "sim-star-0001"
    _edit(sim, victim, split="test")
    manifest = Manifest.read(sim)
    assert check_leakage(manifest).ok
    shutil.copyfile(sim / "lr" / "star" / "sim-star-0000.png", sim / "lr" / "star" / f"{victim}.png")
    report = check_leakage(manifest)
    assert not report.ok
    assert report.content_mismatches == [victim]
    assert list(report.duplicates_in_several_splits.values()) == [["test", "train"]]
    assert f"file of {victim} differs from its recorded sha256" in report.lines()
    assert check_leakage(manifest, rehash=False).ok  # the old, manifest-only check cannot see it
    result = CliRunner().invoke(app, ["data", "check-leakage", str(sim)])
    assert result.exit_code == 1
    assert victim in result.output and "differs from its recorded sha256" in result.output
    result = CliRunner().invoke(app, ["data", "check-leakage", "--no-rehash", str(sim)])
    assert result.exit_code == 0, result.output


def test_check_leakage_refuses_a_row_that_leaves(sim):
    _edit(sim, FIRST, truth_path="../../etc/shadow")
    with pytest.raises(ManifestError) as exc:
        check_leakage(Manifest.read(sim))
    assert _one_line(exc) == (f"manifest: row {FIRST!r} of {str(sim)!r}: truth_path '../../etc/shadow' "
                              f"leaves the dataset folder")
    result = CliRunner().invoke(app, ["data", "check-leakage", str(sim)])
    assert result.exit_code != 0 and "leaves the dataset folder" in result.output


def test_merge_refuses_a_row_that_leaves(sim, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copyfile(sim / "lr" / "star" / "sim-star-0000.png", outside)
    _edit(sim, FIRST, path="../outside.png")
    out = tmp_path / "merged"
    before = _listing(tmp_path, out)
    with pytest.raises(ManifestError) as exc:
        merge_manifests([sim], out)
    assert _one_line(exc) == f"manifest: row {FIRST!r} of {str(sim)!r}: path '../outside.png' leaves the dataset folder"
    assert _listing(tmp_path, out) == before
    assert not list(out.rglob("*.png")) if out.exists() else True


# ---------------------------------------------------------------- what FLARE writes is accepted


def test_every_stage_output_passes_the_check(sim, tmp_path):
    up = tmp_path / "up"
    upscale_dataset(sim, up, UpscaleConfig(backend="bicubic"))
    aug = tmp_path / "aug2"
    augment_dataset(up, aug, AUG)
    combined = tmp_path / "combined"
    combine_datasets(aug, combined)
    for root in (sim, up, aug, combined):
        Manifest.read(root).validate()
        assert check_leakage(Manifest.read(root)).ok
    assert replay_dataset(aug, check_only=True).ok


# ------------------------------------------------- the commands that read a manifest: generate, benchmark, report


def _workdir_with_a_bad_row(sim: Path, tmp_path: Path, **columns) -> Path:
    """A `flare run` work folder whose data step holds ``sim`` with one row edited."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.move(str(sim), workdir / "data")
    _edit(workdir / "data", FIRST, **columns)
    return workdir


@pytest.mark.parametrize("command", ["generate", "benchmark", "report"])
@pytest.mark.parametrize("columns, column", [({"path": "../../outside.png"}, "path"), ({"id": "../PWNED_id"}, "id")])
def test_generate_benchmark_and_report_refuse_a_row_that_leaves(sim, tmp_path, command, columns, column):
    from flare.classify.benchmark import BenchmarkSettings, run_benchmark
    from flare.classify.registry import get_preset
    from flare.core.config import GenerateConfig
    from flare.generate.stage import run_generate
    from flare.report.html import build_report

    (tmp_path / "outside.png").write_bytes(b"not an image of this dataset")
    workdir = _workdir_with_a_bad_row(sim, tmp_path, **columns)
    out = tmp_path / "out"
    before = _listing(tmp_path, exclude=out)
    run = {"generate": lambda: run_generate(workdir / "data", out, GenerateConfig(per_class=1, variations=0)),
           "benchmark": lambda: run_benchmark(workdir, BenchmarkSettings(preset=get_preset("cpu-tiny")), out,
                                              log=lambda _: None),
           "report": lambda: build_report(workdir, out / "report.html")}[command]
    with pytest.raises(ManifestError) as raised:
        run()
    assert FIRST in _one_line(raised) or "PWNED" in str(raised.value)
    assert column in str(raised.value)
    assert _listing(tmp_path, exclude=out) == before
    assert not list(out.rglob("*.png")) if out.exists() else True
