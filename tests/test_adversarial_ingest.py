"""Ingest under crafted, hostile or merely unusual input: every case ends in a manifest row, a quarantine row
with a true reason or a one-line error, and nothing appears, changes or disappears outside the output folder.

Every input is built here, inside ``tmp_path``. Each test snapshots ``tmp_path`` (minus the output folder)
before the run and compares after it.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image
from typer.testing import CliRunner

from flare.cli import app
from flare.core.errors import ConfigError, FlareError, ImageReadError
from flare.core.io import ReadOptions, read_image
from flare.core.taxonomy import load_taxonomy
from flare.data.ingest import ingest


def _png(path: Path, seed: int, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _snapshot(parent: Path, out: Path) -> dict[bytes, tuple]:
    """Every entry under ``parent`` except ``out``: kind, and for files size + mtime + bytes' hash.

    Bytes paths, so that a non-UTF-8 name is listed too; links are not followed.
    """
    root, skip = os.fsencode(str(parent)), os.fsencode(str(out))
    entries: dict[bytes, tuple] = {}
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(folder, d) != skip]
        for name in dirnames + filenames:
            full = os.path.join(folder, name)
            if full == skip:
                continue
            info = os.lstat(full)
            kind = stat.S_IFMT(info.st_mode)
            detail: tuple = ()
            if stat.S_ISREG(kind) and os.access(full, os.R_OK):
                with open(full, "rb") as handle:
                    detail = (info.st_size, info.st_mtime_ns, hash(handle.read()))
            elif stat.S_ISLNK(kind):
                detail = (os.readlink(full),)
            entries[os.path.relpath(full, root)] = (kind, *detail)
    return entries


@contextlib.contextmanager
def nothing_outside(parent: Path, out: Path):
    """Assert that the run changed nothing under ``parent`` except inside ``out``."""
    before = _snapshot(parent, out)
    yield
    assert _snapshot(parent, out) == before


def _reasons(out: Path) -> dict[str, str]:
    """quarantine.csv as {file name: reason} (it must be UTF-8)."""
    with open(out / "quarantine.csv", encoding="utf-8", newline="") as handle:
        return {os.path.basename(row["path"]): row["reason"] for row in csv.DictReader(handle)}


# ------------------------------------------------------------------------------------ finding 4: origins


def test_numbered_files_in_every_class_folder_are_all_ingested(tmp_path):
    # The usual ImageFolder export: each class folder holds 0.png, 1.png, ... with different content.
    source, out = tmp_path / "src", tmp_path / "out"
    for offset, label in enumerate(("elliptical", "spiral")):
        for index in range(6):
            _png(source / label / f"{index}.png", seed=100 * offset + index)
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0)
    frame = result.manifest.frame
    assert len(frame) == 12 and result.quarantined == [] and result.label_conflicts == []
    assert set(frame["origin_id"]) == {f"{label}/{i}" for label in ("elliptical", "spiral") for i in range(6)}
    assert frame["id"].is_unique
    assert _reasons(out) == {}


def test_same_name_across_classes_conflicts_only_when_the_bytes_are_equal(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    _png(source / "a" / "0.png", seed=1)
    (source / "b").mkdir()
    (source / "b" / "0.png").write_bytes((source / "a" / "0.png").read_bytes())  # one image, two labels
    _png(source / "a" / "1.png", seed=2)
    _png(source / "b" / "1.png", seed=3)  # same name, different image: not a conflict
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0)
    assert sorted(result.manifest.frame["origin_id"]) == ["a/1", "b/1"]
    assert result.quarantined == [(str(source / "a" / "0.png"), "filed under two labels: a, b"),
                                  (str(source / "b" / "0.png"), "filed under two labels: a, b")]
    assert [len(c["paths"]) for c in result.label_conflicts] == [2]


def test_origin_from_stem_treats_the_file_name_as_the_object_id(tmp_path):
    # GZ1-like: the file name is the sky object's id, so one name under two labels is a real conflict.
    source, out = tmp_path / "src", tmp_path / "out"
    _png(source / "elliptical" / "587722981742215240.png", seed=1)
    _png(source / "elliptical" / "42.png", seed=2)
    _png(source / "merger" / "42.png", seed=3)
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0, origin_from="stem")
    assert list(result.manifest.frame["origin_id"]) == ["587722981742215240"]
    reason = "origin 42 filed under two labels: elliptical, merger"
    assert result.quarantined == [(str(source / "elliptical" / "42.png"), reason),
                                  (str(source / "merger" / "42.png"), reason)]
    with pytest.raises(ConfigError, match="origin_from"):
        ingest(source, tmp_path / "out2", origin_from="name")
    assert not (tmp_path / "out2").exists()


def test_output_folder_inside_the_source_is_refused(tmp_path):
    source = tmp_path / "src"
    _png(source / "a" / "x.png", seed=1)
    for out in (source / "out", source / "a" / "out", source):
        with nothing_outside(tmp_path, out):
            with pytest.raises(FlareError, match="inside the source") as caught:
                ingest(source, out, seed=0)
        assert "\n" not in str(caught.value)
    assert not (source / "out").exists() and not (source / "a" / "out").exists()


def test_null_labels_and_null_origins_in_parquet_and_csv(tmp_path):
    out = tmp_path / "out"
    for index in range(4):
        _png(tmp_path / "imgs" / f"im{index}.png", seed=index)
    pd.DataFrame({"path": ["imgs/im0.png", "imgs/im1.png", "imgs/im2.png", "imgs/im3.png", None],
                  "label": [None, float("nan"), "star", "galaxy", "star"],
                  "origin": [None, None, None, float("nan"), "x"]}).to_parquet(tmp_path / "list.parquet")
    with nothing_outside(tmp_path, out):
        result = ingest(tmp_path / "list.parquet", out, seed=0)
    frame = result.manifest.frame
    # Null origins fall back to the path: im2 and im3 are two objects, not one object "nan" with two labels.
    assert sorted(frame["label"]) == ["galaxy", "star"]
    assert sorted(frame["origin_id"]) == ["imgs/im2", "imgs/im3"]
    reasons = dict(result.quarantined)
    assert reasons == {"imgs/im0.png": "no label", "imgs/im1.png": "no label", "list.parquet row 5": "no path"}

    with open(tmp_path / "list.csv", "w", newline="") as handle:
        handle.write("path,label\nimgs/im0.png,\nimgs/im1.png,  \nimgs/im2.png,star\n")
    with nothing_outside(tmp_path, tmp_path / "out_csv"):
        result = ingest(tmp_path / "list.csv", tmp_path / "out_csv", seed=0)
    assert dict(result.quarantined) == {"imgs/im0.png": "no label", "imgs/im1.png": "no label"}
    assert list(result.manifest.frame["label"]) == ["star"]


def test_csv_origin_never_becomes_a_path_outside_the_output(tmp_path):
    # The origin column is data: an origin such as "../../../../x" must not steer where a converted image goes.
    out = tmp_path / "deep" / "er" / "out"
    out.parent.mkdir(parents=True)  # deep enough for "../../../.." from images/<label>/ to climb out of it
    image = tmp_path / "imgs" / "grey.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8)).save(image)
    pd.DataFrame({"path": ["imgs/grey.png"], "label": ["star"], "origin": ["../../../../escaped"]}).to_csv(
        tmp_path / "list.csv", index=False)
    with nothing_outside(tmp_path, out):
        result = ingest(tmp_path / "list.csv", out, seed=0)
    row = result.manifest.records()[0]
    assert row["origin_id"] == "../../../../escaped" and row["operation"] == "convert"
    assert out.resolve() in result.manifest.resolve(row["path"]).resolve().parents


def test_one_symlink_policy_for_folders_and_csv(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    secret = _png(tmp_path / "outside" / "secret.png", seed=9)
    _png(source / "a" / "real.png", seed=1)
    os.symlink(secret, source / "a" / "leaves.png")
    os.symlink(source / "a" / "real.png", source / "a" / "stays.png")  # inside the source: an ordinary file
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0)
    assert _reasons(out) == {"leaves.png": f"unsafe path: it leaves the source {str(source)!r}"}
    assert list(result.manifest.frame["origin_id"]) == ["a/real"]
    assert result.duplicates == [[str(source / "a" / "real.png"), str(source / "a" / "stays.png")]]

    # The same link listed in a CSV is refused with the same reason.
    (source / "list.csv").write_text("path,label\na/leaves.png,a\na/real.png,a\n")
    with nothing_outside(tmp_path, tmp_path / "out_csv"):
        result = ingest(source / "list.csv", tmp_path / "out_csv", seed=0)
    assert dict(result.quarantined) == {"a/leaves.png": f"unsafe path: it leaves the source {str(source)!r}"}


def test_skipped_folders_are_reported_with_reasons(tmp_path, monkeypatch):
    source, out = tmp_path / "src", tmp_path / "out"
    _png(source / "a" / "x.png", seed=1)
    _png(tmp_path / "elsewhere" / "y.png", seed=2)
    _png(source / "locked" / "z.png", seed=3)
    os.symlink(tmp_path / "elsewhere", source / "linked")  # a class folder that is a link
    os.symlink(tmp_path / "elsewhere", source / "a" / "sub")  # a sub-folder that is a link
    locked = source / "locked"
    locked.chmod(0)
    try:
        with nothing_outside(tmp_path, out):
            if os.access(locked, os.R_OK):
                # Running as root: chmod does not stop root from listing the folder, so the denial the OS
                # would give any other user is simulated at the one call that lists folders.
                real_scandir = os.scandir

                def scandir(path="."):
                    if Path(os.fsdecode(path)) == locked:
                        raise PermissionError(13, "Permission denied", str(path))
                    return real_scandir(path)

                monkeypatch.setattr(os, "scandir", scandir)
            result = ingest(source, out, seed=0)
            monkeypatch.undo()
    finally:
        locked.chmod(0o755)
    expected = {str(source / "linked"): "symlinked folder not followed",
                str(source / "a" / "sub"): "symlinked folder not followed",
                str(locked): "unreadable folder: permission denied"}
    assert dict(result.skipped_folders) == expected
    assert {path: reason for path, reason in result.quarantined} == expected
    report = json.loads((out / "ingest_report.json").read_text())
    assert {entry["path"]: entry["reason"] for entry in report["skipped_folders"]} == expected
    assert list(result.manifest.frame["origin_id"]) == ["a/x"]


# ------------------------------------------------------------------------------------ finding 5: file names


def test_non_utf8_names_are_quarantined_with_the_name_escaped(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    _png(source / "a" / "good.png", seed=1)
    folder = os.fsencode(str(source / "a"))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder + b"/bad\xff\xfename.png")
    os.symlink(b"bad\xff\xfename.png", folder + b"/alias.png")  # a UTF-8 link to it: its target can't be recorded
    os.mkdir(os.fsencode(str(source)) + b"/cl\xe9ss")  # a Latin-1 class folder name
    Image.fromarray(np.ones((16, 16, 3), np.uint8)).save(os.fsencode(str(source)) + b"/cl\xe9ss/x.png")
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0)
    assert list(result.manifest.frame["id"]) == ["good"]
    reasons = _reasons(out)  # opens as UTF-8: the names are escaped, not raw bytes
    assert reasons == {"bad\\xff\\xfename.png": "file name is not valid UTF-8 (rename it)",
                       "alias.png": "link target's name is not valid UTF-8 (rename it)",
                       "cl\\xe9ss": "folder name is not valid UTF-8 (rename it)"}
    json.loads((out / "ingest_report.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ finding 6: FITS bombs


def _gzipped_zero_fits(path: Path, side: int) -> None:
    """An 8-bit side × side FITS of zeros, gzipped, streamed: the array is never allocated here."""
    header = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", side), ("NAXIS2", side)])
    remaining = side * side + (-(side * side)) % 2880  # data padded to whole 2880-byte blocks
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(header.tostring().encode("ascii"))
        while remaining:
            handle.write(chunk[: min(remaining, len(chunk))])
            remaining -= min(remaining, len(chunk))


# Peak RSS from VmHWM (this process's own address space): getrusage's ru_maxrss survives exec, so a child of
# a big pytest process would report the parent's peak (seen: 1 GB in the full suite, 186 MB alone).
_CHILD = """
import json, re, sys
from pathlib import Path
from flare.data.ingest import ingest
result = ingest(sys.argv[1], sys.argv[2], seed=0)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"quarantined": dict(result.quarantined), "ids": list(result.manifest.frame["id"]),
                  "max_rss_mb": peak_kb / 1024}))
"""


def test_fits_decompression_bombs_are_quarantined_from_the_header(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    (source / "radio").mkdir(parents=True)
    _gzipped_zero_fits(source / "radio" / "bomb.fits.gz", 8000)
    assert (source / "radio" / "bomb.fits.gz").stat().st_size < 100_000  # ~62 KB on disk, 64 MB of pixels
    tiled = fits.CompImageHDU(np.zeros((8000, 8000), np.uint8), compression_type="GZIP_1", tile_shape=(1000, 8000))
    fits.HDUList([fits.PrimaryHDU(), tiled]).writeto(source / "radio" / "bomb.fits.fz")
    del tiled
    fits.PrimaryHDU(np.random.default_rng(0).normal(10, 1, (32, 32)).astype(np.float32)).writeto(
        source / "radio" / "fine.fits")
    with nothing_outside(tmp_path, out):
        # A child process, so that its peak RSS is the ingest's alone.
        child = subprocess.run([sys.executable, "-c", _CHILD, str(source), str(out)], capture_output=True,
                               text=True, timeout=300, env={**os.environ, "FLARE_PROGRESS": "0"})
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["ids"] == ["fine"]
    assert set(report["quarantined"]) == {str(source / "radio" / name) for name in ("bomb.fits.gz", "bomb.fits.fz")}
    for reason in report["quarantined"].values():
        assert reason == ("too large: 8000x8000 FITS image at BITPIX 8 needs about 4.2 GB to read, "
                                 "over the read budget of 2.0 GB (max_read_bytes)"), reason
    assert report["max_rss_mb"] < 500, report


def test_small_tile_compressed_fits_is_read(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    (source / "radio").mkdir(parents=True)
    data = np.random.default_rng(0).normal(100, 5, (40, 40)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data)]).writeto(source / "radio" / "tile.fits.fz")
    with nothing_outside(tmp_path, out):
        result = ingest(source, out, seed=0)
    assert result.quarantined == []
    row = result.manifest.records()[0]
    assert (row["id"], row["origin_id"], row["backend"]) == ("tile", "radio/tile", "astropy")


def test_read_budget_covers_high_bit_rasters_and_fits(tmp_path):
    Image.fromarray(np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)).save(tmp_path / "deep.png")
    fits.PrimaryHDU(np.zeros((256, 256), np.int16)).writeto(tmp_path / "deep.fits")
    small = ReadOptions(max_read_bytes=1_000_000)
    with pytest.raises(ImageReadError, match=r"too large: 256x256 .* over the read budget of 1.0 MB"):
        read_image(tmp_path / "deep.png", small)
    with pytest.raises(ImageReadError, match=r"too large: 256x256 FITS image at BITPIX 16 .* 1.0 MB"):
        read_image(tmp_path / "deep.fits", small)
    assert read_image(tmp_path / "deep.png")[0].shape == (256, 256, 3)  # the default budget reads them
    assert read_image(tmp_path / "deep.fits")[0].shape == (256, 256, 3)


# ------------------------------------------------------------------------------------ finding 8: ingest


def test_empty_or_broken_table_is_one_line_error_and_keeps_the_previous_output(tmp_path):
    out = tmp_path / "out"
    _png(tmp_path / "imgs" / "a.png", seed=1)
    (tmp_path / "good.csv").write_text("path,label\nimgs/a.png,star\n")
    ingest(tmp_path / "good.csv", out, seed=0)
    produced = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "latin1.csv").write_bytes("path,label\nimgs/a.png,\xe9toile\n".encode("latin-1"))
    cases = {"empty.csv": "data.source: 'empty.csv' is empty (no header row)",
             "broken.parquet": "data.source: 'broken.parquet' cannot be read as Parquet",
             "latin1.csv": "data.source: 'latin1.csv' is not UTF-8 text"}
    for name, message in cases.items():
        with nothing_outside(tmp_path, out):
            with pytest.raises(ConfigError) as caught:
                ingest(tmp_path / name, out, seed=0)
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == produced  # the good run's files are intact


def test_tiny_image_reason_states_the_policy(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    _png(source / "a" / "ok.png", seed=1)
    _png(source / "a" / "tiny1x1.png", seed=2, size=1)
    with nothing_outside(tmp_path, out):
        ingest(source, out, seed=0)
    assert _reasons(out) == {"tiny1x1.png": "too small: 1x1 px; images with a side under 8 px are quarantined "
                                            "(data.min_side_px)"}


def test_fits_with_a_zero_length_axis_is_an_empty_image(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    (source / "radio").mkdir(parents=True)
    fits.PrimaryHDU(np.zeros((0, 16), np.float32)).writeto(source / "radio" / "zero_dim.fits")
    with nothing_outside(tmp_path, out):
        ingest(source, out, seed=0)
    assert _reasons(out) == {"zero_dim.fits": "empty image: NAXIS2 = 0 in HDU 0"}


def test_unreadable_file_is_reported_as_permission_denied(tmp_path, monkeypatch):
    source, out = tmp_path / "src", tmp_path / "out"
    locked_png = _png(source / "a" / "locked.png", seed=1)
    locked_fits = source / "a" / "locked.fits"
    fits.PrimaryHDU(np.ones((16, 16), np.float32)).writeto(locked_fits)
    _png(source / "a" / "ok.png", seed=2)
    locked = {locked_png, locked_fits}
    for path in locked:
        path.chmod(0)
    with nothing_outside(tmp_path, out):
        if all(os.access(path, os.R_OK) for path in locked):
            # Running as root: chmod 000 does not stop root from reading, so the denial any other user would
            # get is simulated where the readers (Pillow, astropy) open files.
            real_open = builtins.open

            def denying_open(file, *args, **kwargs):
                if isinstance(file, (str, os.PathLike)) and Path(file) in locked:
                    raise PermissionError(13, "Permission denied", str(file))
                return real_open(file, *args, **kwargs)

            monkeypatch.setattr(builtins, "open", denying_open)
        result = ingest(source, out, seed=0)
        monkeypatch.undo()
    assert _reasons(out) == {"locked.png": "unreadable: permission denied",
                             "locked.fits": "unreadable: permission denied"}
    assert list(result.manifest.frame["id"]) == ["ok"]


def _gz1_source(source: Path) -> None:
    for index, label in enumerate(("elliptical", "edge_on", "merger")):
        _png(source / label / f"58772298174221524{index}.png", seed=index)


def test_taxonomy_preset_is_resolved_before_the_output_is_created(tmp_path, monkeypatch):
    # `flare data ingest SRC gz1/ingested --taxonomy gz1`: creating gz1/ first made "gz1" look like a path.
    _gz1_source(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    with nothing_outside(tmp_path, tmp_path / "gz1"):
        result = CliRunner().invoke(app, ["data", "ingest", "src", "gz1/ingested", "--taxonomy", "gz1"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_parquet(tmp_path / "gz1" / "ingested" / "manifest.parquet")["macro_label"]) == \
        {"smooth", "disk", "irregular"}


def test_folder_named_like_a_preset_does_not_shadow_it(tmp_path, monkeypatch):
    _gz1_source(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gz1" / "ingested").mkdir(parents=True)  # left by an earlier run
    with nothing_outside(tmp_path, tmp_path / "gz1" / "ingested"):
        result = ingest("src", "gz1/ingested", seed=0, taxonomy="gz1")
    assert result.manifest.frame["macro_label"].tolist() == ["disk", "smooth", "irregular"]
    assert load_taxonomy("gz1").name == "gz1"
    (tmp_path / "gz1.yaml").write_text("name: mine\nclasses: {a: b}\n")
    assert load_taxonomy("gz1.yaml").name == "mine"  # a .yaml path is a file
    (tmp_path / "sim").write_text("name: own\nclasses: {c: d}\n")
    assert load_taxonomy("sim").name == "own"  # an existing file is the file
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="'folder' is a folder"):
        load_taxonomy("folder")


def test_bad_taxonomy_or_labels_create_nothing(tmp_path):
    source, out = tmp_path / "src", tmp_path / "new" / "out"
    _png(source / "not_a_gz1_class" / "x.png", seed=1)
    with nothing_outside(tmp_path, out):
        with pytest.raises(ConfigError, match="not in taxonomy 'gz1'"):
            ingest(source, out, seed=0, taxonomy="gz1")
        with pytest.raises(ConfigError, match="nope"):
            ingest(source, out, seed=0, taxonomy="nope")
    assert not (tmp_path / "new").exists()
