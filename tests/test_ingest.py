"""Ingestion: every supported format is read, every kind of bad file is quarantined with a reason, nothing
valid is lost, duplicates and label conflicts are reported."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from flare.core.config import DataConfig
from flare.core.io import ReadOptions, read_image
from flare.core.manifest import Manifest
from flare.data.ingest import ingest

RNG = np.random.default_rng(0)


def _rgb(size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(size, size, 3), dtype=np.uint8)


def _good_files(root):
    """One valid file per supported format and colour mode; returns {name: expected label}."""
    made = {}
    a, b = root / "alpha_class", root / "beta_class"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    Image.fromarray(_rgb(seed=1)).save(a / "rgb.png")
    Image.fromarray(_rgb(seed=2)).save(a / "rgb.jpg", quality=90)
    Image.fromarray(_rgb(seed=3)[:, :, 0]).save(a / "grey.png")
    Image.fromarray(np.dstack([_rgb(seed=4), np.full((32, 32), 128, np.uint8)])).save(a / "rgba.png")
    Image.fromarray(_rgb(seed=5)).convert("P", palette=Image.ADAPTIVE).save(a / "palette.png")
    Image.fromarray(_rgb(seed=6)).convert("CMYK").save(a / "cmyk.jpg")
    Image.fromarray(_rgb(seed=7)).save(b / "lossless.webp", lossless=True)
    Image.fromarray((np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60)).save(b / "sixteen.png")
    Image.fromarray((np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 50)).save(b / "sixteen.tif")
    Image.fromarray(np.linspace(-1, 5, 32 * 32, dtype=np.float32).reshape(32, 32)).save(b / "float.tif")
    # FITS: unsigned 16-bit stored as int16 + BZERO=32768, float with NaN/inf, a 3-plane cube, a named extension.
    fits.PrimaryHDU(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 40).writeto(b / "uint16.fits")
    with_nan = np.random.default_rng(8).normal(10, 2, (32, 32)).astype(np.float32)
    with_nan[3:6, 3:6] = np.nan
    with_nan[10, 10] = np.inf
    fits.PrimaryHDU(with_nan).writeto(b / "float_nan.fits")
    fits.PrimaryHDU(np.random.default_rng(9).random((3, 32, 32)).astype(np.float32)).writeto(b / "cube.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(with_nan, name="SCI")]).writeto(b / "ext.fits")
    for path in list(a.iterdir()) + list(b.iterdir()):
        made[path.name] = path.parent.name
    return made


def _bad_files(folder):
    """At least fifteen kinds of bad file; returns {name: expected reason fragment}."""
    folder.mkdir(parents=True, exist_ok=True)
    good_png = folder.parent / "_good.png"
    Image.fromarray(_rgb(64, seed=10)).save(good_png)
    png_bytes = good_png.read_bytes()
    good_png.unlink()
    jpg = folder.parent / "_good.jpg"
    Image.fromarray(_rgb(64, seed=11)).save(jpg, quality=95)
    jpg_bytes = jpg.read_bytes()
    jpg.unlink()
    fits_file = folder.parent / "_good.fits"
    fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(fits_file)
    fits_bytes = fits_file.read_bytes()
    fits_file.unlink()
    bad = {
        "empty.png": (b"", "empty"),
        "truncated.png": (png_bytes[: len(png_bytes) // 2], "truncated"),
        "truncated.jpg": (jpg_bytes[: len(jpg_bytes) // 3], "truncated"),
        "random.png": (RNG.integers(0, 255, 500, dtype=np.uint8).tobytes(), "not a decodable image"),
        "text.jpg": (b"this is not a picture\n" * 10, "not a decodable image"),
        "notes.txt": (b"hello", "unsupported file type"),
        "corrupt.tif": (b"II*\x00" + b"\xff" * 64, "decodable"),
        "corrupt.webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 20, "corrupt"),
        "corrupt.bmp": (b"BM" + b"\x00" * 30, "corrupt"),
        "garbage.fits": (RNG.integers(0, 255, 3000, dtype=np.uint8).tobytes(), "FITS"),
        "truncated.fits": (fits_bytes[:2000], "FITS"),
    }
    for name, (data, _) in bad.items():
        (folder / name).write_bytes(data)
    # Generated with libraries: a decompression bomb (by our limit), a too-small image, header-only FITS,
    # an all-NaN FITS, a table-only FITS, a broken symbolic link.
    Image.fromarray(np.zeros((2000, 2000, 3), np.uint8)).save(folder / "bomb.png")
    Image.fromarray(_rgb(4)).save(folder / "tiny.png")
    fits.PrimaryHDU().writeto(folder / "header_only.fits")
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(folder / "all_nan.fits")
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table_only.fits")
    os.symlink(folder / "does_not_exist.png", folder / "broken_link.png")
    reasons = {name: fragment for name, (_, fragment) in bad.items()}
    reasons.update({"bomb.png": "too large", "tiny.png": "too small", "header_only.fits": "no image HDU",
                    "all_nan.fits": "all NaN", "table_only.fits": "no image HDU", "broken_link.png": "missing"})
    return reasons


def test_every_supported_format_is_read(tmp_path):
    good = _good_files(tmp_path / "src")
    result = ingest(tmp_path / "src", tmp_path / "out", DataConfig(min_side_px=8), seed=0)
    assert result.quarantined == []
    frame = result.manifest.frame
    assert len(frame) == len(good)
    for row in result.manifest.records():
        array = np.asarray(Image.open(result.manifest.resolve(row["path"])))
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, row["id"]
    # JPEG and PNG RGB need no conversion and are referenced in place; the rest were converted to PNG.
    ops = dict(zip(frame["id"], frame["operation"]))
    assert ops["rgb"] == "reference" and ops["rgb"] == ops.get("rgb")
    assert ops["cmyk"] == "convert" and ops["float_nan"] == "convert" and ops["sixteen"] == "convert"


def test_bad_file_corpus_is_quarantined_and_nothing_valid_is_lost(tmp_path):
    good = _good_files(tmp_path / "src")
    reasons = _bad_files(tmp_path / "src" / "alpha_class")
    assert len(reasons) >= 15
    result = ingest(tmp_path / "src", tmp_path / "out", DataConfig(max_pixels=1_000_000), seed=0)
    quarantined = {os.path.basename(path): reason for path, reason in result.quarantined}
    assert set(quarantined) == set(reasons)
    for name, fragment in reasons.items():
        assert fragment.lower() in quarantined[name].lower(), (name, quarantined[name])
    assert len(result.manifest) == len(good)  # every valid file survived
    with open(tmp_path / "out" / "quarantine.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(reasons) and all(row["reason"] for row in rows)


def test_duplicates_and_conflicting_labels_are_reported(tmp_path):
    source = tmp_path / "src"
    for label in ("one", "two"):
        (source / label).mkdir(parents=True)
    Image.fromarray(_rgb(seed=1)).save(source / "one" / "a.png")
    (source / "one" / "a_copy.png").write_bytes((source / "one" / "a.png").read_bytes())  # same label: kept once
    Image.fromarray(_rgb(seed=2)).save(source / "one" / "b.png")
    (source / "two" / "b_again.png").write_bytes((source / "one" / "b.png").read_bytes())  # two labels: flagged
    Image.fromarray(_rgb(seed=3)).save(source / "two" / "c.png")
    result = ingest(source, tmp_path / "out", seed=0)
    assert sorted(result.manifest.frame["id"]) == ["a", "c"]
    assert len(result.duplicates) == 2
    assert any(conflict.get("labels") == ["one", "two"] for conflict in result.label_conflicts)
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["exact_duplicates"] == 2 and report["label_conflicts"] == 1 and len(report["label_conflict_details"]) == 1
    assert any("two labels" in reason for _, reason in result.quarantined)


def test_csv_source_with_origins_and_unsafe_entries(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for index in range(6):
        Image.fromarray(_rgb(seed=index)).save(folder / f"im{index}.png")
    rows = [{"path": f"imgs/im{i}.png", "label": "star" if i % 2 else "galaxy", "origin": f"obj{i // 2}"}
            for i in range(6)]
    rows.append({"path": "../../etc/passwd", "label": "star", "origin": ""})
    rows.append({"path": "imgs/im0.png", "label": "bad/label", "origin": ""})
    with open(tmp_path / "list.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "origin"])
        writer.writeheader()
        writer.writerows(rows)
    result = ingest(tmp_path / "list.csv", tmp_path / "out", seed=0)
    reasons = dict(result.quarantined)
    assert "unsafe path" in reasons["../../etc/passwd"]
    assert "unsafe or empty label" in reasons["imgs/im0.png"]
    frame = result.manifest.frame
    # obj0..obj2 each hold a star and a galaxy image → origin filed under two labels, flagged and held back
    assert len(frame) == 0 or set(frame["origin_id"]).isdisjoint({"obj0", "obj1", "obj2"})
    assert len([c for c in result.label_conflicts if "origin_id" in c]) == 3


def test_fits_reading_choices_are_recorded(tmp_path):
    data = np.random.default_rng(0).normal(100, 5, (40, 40))
    data[20, 20] = 5000  # a bright source: needs a stretch
    data[0, 0] = np.nan
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")]).writeto(tmp_path / "x.fits")
    array, info = read_image(tmp_path / "x.fits", ReadOptions(fits_hdu="SCI", stretch="asinh", interval="zscale"))
    assert array.shape == (40, 40, 3) and array.dtype == np.uint8
    assert info["masked_nonfinite"] == 1 and info["stretch"] == "asinh" and info["interval"] == "zscale"
    linear, _ = read_image(tmp_path / "x.fits", ReadOptions(stretch="linear", interval="minmax"))
    asinh, _ = read_image(tmp_path / "x.fits", ReadOptions(stretch="asinh", interval="minmax"))
    assert asinh.mean() > linear.mean()  # asinh lifts faint structure that a linear min-max crushes
    with pytest.raises(Exception, match="HDU 'NOPE' not found"):
        read_image(tmp_path / "x.fits", ReadOptions(fits_hdu="NOPE"))


def test_grey_and_alpha_policies(tmp_path):
    Image.fromarray(_rgb()[:, :, 0]).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([_rgb(), np.zeros((32, 32), np.uint8)])).save(tmp_path / "clear.png")
    grey, _ = read_image(tmp_path / "grey.png", ReadOptions(grey_policy="keep"))
    assert grey.ndim == 2
    with pytest.raises(Exception, match="grey"):
        read_image(tmp_path / "grey.png", ReadOptions(grey_policy="reject"))
    flattened, info = read_image(tmp_path / "clear.png")
    assert flattened.max() == 0 and "flattened on black" in info["converted"]  # fully transparent → black sky
    with pytest.raises(Exception, match="alpha"):
        read_image(tmp_path / "clear.png", ReadOptions(alpha_policy="reject"))


def test_reingest_is_idempotent(tmp_path):
    _good_files(tmp_path / "src")
    ingest(tmp_path / "src", tmp_path / "out", seed=3)
    first = (tmp_path / "out" / "manifest.parquet").read_bytes()
    ingest(tmp_path / "src", tmp_path / "out", seed=3)
    assert (tmp_path / "out" / "manifest.parquet").read_bytes() == first
    assert Manifest.read(tmp_path / "out").frame["split"].notna().all()
