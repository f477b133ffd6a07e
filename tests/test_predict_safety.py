"""``flare predict`` never harms its inputs: sorting refuses folders that hold inputs, keeps every file when names
collide, moves only after a verified copy; odd file names, broken model folders and bad input lists end in a row
error or one line, never a traceback.

Every test snapshots the files around the run and checks that each input still has its original bytes and that
nothing appeared outside the output folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flare.classify import predict as predict_module
from flare.classify.model_io import load_classifier
from flare.classify.predict import run_predict
from flare.cli import app
from flare.core.errors import FlareError
from test_predict import trained  # noqa: F401  (module fixture: a tiny benchmark run with a saved model)

torch.set_num_threads(1)
BAD_NAME = os.fsencode("bad") + b"\xff\xfe" + os.fsencode("name.png")  # not decodable as UTF-8


@pytest.fixture(scope="module")
def model_dir(trained):  # noqa: F811
    workdir, cell = trained
    return workdir / "benchmark" / cell["model_dir"]


def _png(path: Path | bytes, seed: int, tweak: int = 0) -> None:
    """A 40×40 RGB PNG; ``tweak`` changes one pixel, so the bytes differ but the predicted class does not."""
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    pixels[0, 0, 0] = tweak
    target = os.fsdecode(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    Image.fromarray(pixels).save(target, format="PNG")


def _snapshot(*roots: Path) -> dict[bytes, bytes]:
    """Every file under ``roots`` (bytes paths, so any name works) → its bytes."""
    files: dict[bytes, bytes] = {}
    for root in roots:
        for folder, _, names in os.walk(os.fsencode(root)):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as handle:
                    files[path] = handle.read()
    return files


def _assert_safe(before: dict[bytes, bytes], roots: tuple[Path, ...], outputs: tuple[Path, ...] = ()) -> None:
    """Each file seen before the run still has its bytes; each new file lies under one of ``outputs``."""
    after = _snapshot(*roots)
    for path, data in before.items():
        assert path in after, f"{path!r} was removed"
        assert after[path] == data, f"{path!r} was modified"
    allowed = tuple(os.fsencode(out) for out in outputs)
    for path in set(after) - set(before):
        assert any(path == out or path.startswith(out + b"/") for out in allowed), f"{path!r} is outside the outputs"


def _one_line_error(result, field: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a raw exception
    assert field in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("sort, inputs", [
    ("in", ["in"]),                       # OUT is the input folder: it unlinked the originals
    ("in/sorted", ["in"]),                # OUT inside the input folder: the next run would read the copies
    ("in", ["in/a"]),                     # an input folder inside OUT
    ("in/a", ["in/a/one.png"]),           # OUT is the folder of an input file
    ("in/a", ["list.txt"]),               # ... named in a listing
    ("alias", ["in"]),                    # the input folder through a symlink
])
def test_sort_into_an_input_folder_is_refused(model_dir, tmp_path, sort, inputs):
    _png(tmp_path / "in" / "a" / "one.png", 1)
    _png(tmp_path / "in" / "a" / "two.png", 2)
    (tmp_path / "list.txt").write_text("in/a/one.png\n")
    (tmp_path / "alias").symlink_to(tmp_path / "in", target_is_directory=True)
    before = _snapshot(tmp_path, model_dir)
    args = ["predict", str(model_dir), *(str(tmp_path / i) for i in inputs), "--out", str(tmp_path / "out" / "p.csv"),
            "--sort", str(tmp_path / sort)]
    _one_line_error(CliRunner().invoke(app, args), "predict.sort")
    with pytest.raises(FlareError, match="predict.sort"):
        run_predict(model_dir, [tmp_path / i for i in inputs], tmp_path / "out" / "p.csv", sort_into=tmp_path / sort,
                    sort_mode="move")
    _assert_safe(before, (tmp_path, model_dir))  # refused before anything was written, the CSV included


def test_sorting_an_image_onto_itself_keeps_the_original(model_dir, tmp_path):
    """The user's report: ``in/<label>/x.png`` sorted into ``in`` was unlinked, then the copy failed."""
    _png(tmp_path / "probe" / "x.png", 16)
    label = run_predict(model_dir, [tmp_path / "probe"], tmp_path / "probe.csv").loc[0, "fine_label"]
    (tmp_path / "in" / label).mkdir(parents=True)
    (tmp_path / "probe" / "x.png").rename(tmp_path / "in" / label / "x.png")
    before = _snapshot(tmp_path, model_dir)
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(tmp_path / "in"),
                                      "--out", str(tmp_path / "out" / "p.csv"), "--sort", str(tmp_path / "in")])
    _one_line_error(result, "predict.sort")
    _assert_safe(before, (tmp_path, model_dir))


@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink"])
def test_colliding_names_all_arrive_with_stable_names(model_dir, tmp_path, mode):
    for folder in ("a", "b"):  # same names, different bytes, same predicted class
        _png(tmp_path / "in" / folder / "x.png", 3, tweak=1 if folder == "a" else 2)
        _png(tmp_path / "in" / folder / "y.png", 4, tweak=1 if folder == "a" else 2)
    _png(tmp_path / "in" / "a" / "only.png", 5)
    out = tmp_path / "out"
    before = _snapshot(tmp_path, model_dir)
    frame = run_predict(model_dir, [tmp_path / "in"], out / "p.csv", sort_into=out / "sorted", sort_mode=mode)
    _assert_safe(before, (tmp_path, model_dir), (out,))
    csv = pd.read_csv(out / "p.csv", keep_default_na=False)
    assert len(csv) == 5 and (csv["error"] == "").all()
    labels = csv.set_index("path")["fine_label"]
    for name in ("x.png", "y.png"):  # the premise: both copies of a name land in one label folder
        assert labels[str(tmp_path / "in" / "a" / name)] == labels[str(tmp_path / "in" / "b" / name)]
    assert csv["sorted_path"].is_unique and (csv["sorted_path"] != "").all()
    placed = sorted(str(p) for p in (out / "sorted").rglob("*") if p.is_file())
    assert placed == sorted(csv["sorted_path"])  # 5 predictions, 5 files
    for source, target in zip(csv["path"], csv["sorted_path"]):
        assert Path(target).read_bytes() == Path(source).read_bytes()
        assert Path(target).parent.name == csv.set_index("path").loc[source, "fine_label"]
    assert Path(csv.set_index("path").loc[str(tmp_path / "in" / "a" / "only.png"), "sorted_path"]).name == "only.png"
    assert frame["sorted_path"].tolist() == csv["sorted_path"].tolist()
    # stable: a second run into a fresh folder picks the same names, and a re-run into the same folder changes nothing
    again = run_predict(model_dir, [tmp_path / "in"], out / "p2.csv", sort_into=out / "sorted2", sort_mode=mode)
    assert [Path(p).relative_to(out / "sorted2") for p in again["sorted_path"]] == \
           [Path(p).relative_to(out / "sorted") for p in csv["sorted_path"]]
    before = _snapshot(tmp_path, model_dir)
    rerun = run_predict(model_dir, [tmp_path / "in"], out / "p.csv", sort_into=out / "sorted", sort_mode=mode)
    assert rerun["sorted_path"].tolist() == csv["sorted_path"].tolist()
    after = _snapshot(out / "sorted")
    assert {k: v for k, v in before.items() if k.startswith(os.fsencode(out / "sorted") + b"/")} == after


def test_sorting_never_replaces_a_file_already_in_the_sort_folder(model_dir, tmp_path):
    _png(tmp_path / "in" / "x.png", 6)
    out = tmp_path / "out"
    for label in load_classifier(model_dir).classes:  # whatever the prediction, x.png's place is taken
        (out / "sorted" / label).mkdir(parents=True)
        (out / "sorted" / label / "x.png").write_bytes(b"an earlier result")
    before = _snapshot(tmp_path, model_dir)
    frame = run_predict(model_dir, [tmp_path / "in"], out / "p.csv", sort_into=out / "sorted")
    _assert_safe(before, (tmp_path, model_dir), (out,))
    target = Path(frame.loc[0, "sorted_path"])
    assert target.name != "x.png" and target.read_bytes() == (tmp_path / "in" / "x.png").read_bytes()


def test_move_happens_only_after_a_verified_copy(model_dir, tmp_path):
    _png(tmp_path / "in" / "a" / "x.png", 7, tweak=1)
    _png(tmp_path / "in" / "b" / "x.png", 7, tweak=2)
    originals = {p: p.read_bytes() for p in (tmp_path / "in").rglob("*.png")}
    out = tmp_path / "out"
    before = _snapshot(model_dir)
    frame = run_predict(model_dir, [tmp_path / "in"], out / "p.csv", sort_into=out / "sorted", sort_mode="move")
    _assert_safe(before, (model_dir,))
    for source, target in zip(frame["path"], frame["sorted_path"]):
        assert not Path(source).exists()  # moved, as asked explicitly
        assert Path(target).read_bytes() == originals[Path(source)]
    assert set(_snapshot(tmp_path)) == {os.fsencode(p) for p in [*frame["sorted_path"], out / "p.csv"]}


def test_move_keeps_the_source_when_the_copy_does_not_match(model_dir, tmp_path, monkeypatch):
    _png(tmp_path / "in" / "x.png", 8)

    def torn_copy(source, target, *args, **kwargs):  # a copy that lost its tail (disk full, flaky mount...)
        Path(target).write_bytes(Path(source).read_bytes()[:-10])
        return target

    monkeypatch.setattr(predict_module.shutil, "copyfile", torn_copy)
    out = tmp_path / "out"
    before = _snapshot(tmp_path, model_dir)
    with pytest.raises(FlareError, match="predict.sort"):
        run_predict(model_dir, [tmp_path / "in"], out / "p.csv", sort_into=out / "sorted", sort_mode="move")
    _assert_safe(before, (tmp_path, model_dir), (out,))
    assert not [p for p in (out / "sorted").rglob("*") if p.is_file()]  # no torn file under any name
    csv = pd.read_csv(out / "p.csv", keep_default_na=False)  # the predictions are kept
    assert csv.loc[0, "sorted_path"] == "" and "sha256" in csv.loc[0, "sort_error"]


def test_unknown_sort_mode_is_one_line(model_dir, tmp_path):
    _png(tmp_path / "in" / "x.png", 9)
    before = _snapshot(tmp_path, model_dir)
    with pytest.raises(FlareError, match="predict.sort_mode"):
        run_predict(model_dir, [tmp_path / "in"], tmp_path / "out" / "p.csv", sort_into=tmp_path / "out" / "s",
                    sort_mode="rename")
    _assert_safe(before, (tmp_path, model_dir))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_non_utf8_file_name_is_predicted_and_sorted(model_dir, tmp_path, suffix):
    folder = os.fsencode(tmp_path / "in")
    _png(os.path.join(folder, BAD_NAME), 10)
    _png(tmp_path / "in" / "good.png", 11)
    (tmp_path / "list.txt").write_bytes(b"in/" + BAD_NAME + b"\n")
    out = tmp_path / "out"
    before = _snapshot(tmp_path, model_dir)
    for inputs, name in (([tmp_path / "in"], "folder"), ([tmp_path / "list.txt"], "list")):
        result = CliRunner().invoke(app, ["predict", str(model_dir), *map(str, inputs),
                                          "--out", str(out / f"{name}{suffix}"), "--sort", str(out / name)])
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out / f"{name}{suffix}", keep_default_na=False) if suffix == ".csv" \
            else pd.read_parquet(out / f"{name}{suffix}")
        escaped = str(tmp_path / "in" / "bad\\xff\\xfename.png")  # the documented escape: \xNN per undecodable byte
        row = frame.set_index("path").loc[escaped]
        assert row["error"] == "" and row["fine_label"]
        assert row["sorted_path"] == str(out / name / row["fine_label"] / "bad\\xff\\xfename.png")
        assert os.path.isfile(os.path.join(os.fsencode(out / name / row["fine_label"]), BAD_NAME))
    _assert_safe(before, (tmp_path, model_dir), (out,))


def _without_star(config):
    return {**config, "classes": [c for c in config["classes"] if c != "star"]}


@pytest.mark.parametrize("edit, edit_taxonomy, needle", [
    (lambda c: {**c, "classes": [*c["classes"][:-1], "not_a_class"]}, None, "not_a_class"),
    (lambda c: {**c, "classes": c["classes"][:-1]}, None, "missing"),
    (lambda c: {**c, "classes": [*c["classes"], c["classes"][0]]}, None, "repeated"),
    (lambda c: {**c, "task": "macro"}, None, "macro classes"),
    (lambda c: {k: v for k, v in c.items() if k != "spec"}, None, "spec"),
    (lambda c: {**c, "spec": {**c["spec"], "architecture": "no_such_net"}}, None, "does not load"),
    (lambda c: {**c, "spec": {**c["spec"], "kwargs": {**c["spec"]["kwargs"], "channels": [8, 16, 32, 64]}}}, None,
     "size mismatch"),
    (lambda c: None, None, "JSON"),
    (_without_star, lambda t: t.replace("  star: point\n", ""), "6 outputs but 5 classes"),  # taxonomy edited too
    (lambda c: c, lambda t: t.replace("star: point", "star: ../point"), "safe name"),  # a macro label as a folder
    (lambda c: c, lambda t: t + "classes: [unclosed\n", "taxonomy"),
])
def test_a_broken_model_folder_is_one_line(model_dir, tmp_path, edit, edit_taxonomy, needle):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    config = edit(json.loads((broken / "model.json").read_text()))
    (broken / "model.json").write_text("{not json" if config is None else json.dumps(config))
    if edit_taxonomy is not None:
        (broken / "taxonomy.yaml").write_text(edit_taxonomy((broken / "taxonomy.yaml").read_text()))
    _png(tmp_path / "in" / "x.png", 12)
    before = _snapshot(tmp_path, model_dir)
    with pytest.raises(FlareError, match=needle):
        load_classifier(broken)
    result = CliRunner().invoke(app, ["predict", str(broken), str(tmp_path / "in"),
                                      "--out", str(tmp_path / "out" / "p.csv")])
    _one_line_error(result, "predict.model_dir")
    assert needle in result.output
    _assert_safe(before, (tmp_path, model_dir))


def test_missing_and_non_image_inputs(model_dir, tmp_path):
    _png(tmp_path / "in" / "x.png", 13)
    (tmp_path / "notes.md").write_text("not an image")
    (tmp_path / "list.txt").write_text("in/x.png\nin/gone.png\nnotes.md\nin\n")
    out = tmp_path / "out"
    before = _snapshot(tmp_path, model_dir)
    # a path given directly that does not exist: one line, nothing written
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(tmp_path / "in"), str(tmp_path / "gone.png"),
                                      "--out", str(out / "p.csv")])
    _one_line_error(result, "predict.images")
    assert not out.exists()
    # listed entries that are missing, not images or folders become rows with a reason
    frame = run_predict(model_dir, [tmp_path / "list.txt", tmp_path / "notes.md"], out / "p.csv")
    reasons = dict(zip(frame["path"], frame["error"]))
    assert reasons[str(tmp_path / "in" / "x.png")] == ""
    assert reasons[str(tmp_path / "in" / "gone.png")] == "missing file"
    assert "unsupported" in reasons[str(tmp_path / "notes.md")]
    assert reasons[str(tmp_path / "in")] == "not a regular file"
    _assert_safe(before, (tmp_path, model_dir), (out,))


@pytest.mark.parametrize("listing", [b"in/x.png\n\xff\xfe\x00\x01 binary\n", b"in/x.png\n\x00\n"])
def test_a_listing_that_is_not_text_is_one_line(model_dir, tmp_path, listing):
    _png(tmp_path / "in" / "x.png", 14)
    (tmp_path / "list.txt").write_bytes(listing)
    before = _snapshot(tmp_path, model_dir)
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(tmp_path / "list.txt"),
                                      "--out", str(tmp_path / "out" / "p.csv")])
    _one_line_error(result, "predict.images")
    _assert_safe(before, (tmp_path, model_dir))


def test_the_predictions_file_is_never_an_input(model_dir, tmp_path):
    _png(tmp_path / "in" / "x.png", 15)
    (tmp_path / "in" / "old.csv").write_text("keep me\n")
    before = _snapshot(tmp_path, model_dir)
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(tmp_path / "in"), str(tmp_path / "in" / "old.csv"),
                                      "--out", str(tmp_path / "in" / "old.csv")])
    _one_line_error(result, "predict.out")
    _assert_safe(before, (tmp_path, model_dir))
