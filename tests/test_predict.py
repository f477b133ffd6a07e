"""``flare predict`` on a model the benchmark saved: it reproduces the benchmark's test metrics from its CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from typer.testing import CliRunner

from flare.classify.model_io import load_classifier
from flare.classify.registry import get_preset
from flare.cli import app
from flare.core.manifest import Manifest
from flare.core.taxonomy import load_taxonomy
from flare.classify.benchmark import BenchmarkSettings, run_benchmark
from flare.metrics.classification import classification_metrics
from test_benchmark_workdir import build_workdir

torch.set_num_threads(1)
CELL = "Raw_HR__resnet-tiny__fine__seed0"


@pytest.fixture(scope="module")
def trained(sim_dataset, tmp_path_factory):
    workdir = build_workdir(sim_dataset, tmp_path_factory.mktemp("work"), stages=("upscale",))
    preset = get_preset("cpu-tiny").with_overrides(samples_per_epoch=48, batch_size=16, epochs=3, image_size_px=32)
    run_benchmark(workdir, BenchmarkSettings(preset=preset, methods=["Raw_HR"], features=False), log=lambda _: None)
    cell = json.loads((workdir / "benchmark" / "cells" / f"{CELL}.json").read_text())
    return workdir, cell


def test_model_folder_is_self_contained(trained):
    workdir, cell = trained
    folder = workdir / "benchmark" / cell["model_dir"]
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors", "taxonomy.yaml"]
    classifier = load_classifier(folder)
    assert classifier.task == "fine" and classifier.image_size_px == 32
    assert classifier.classes == load_taxonomy(workdir / "data" / "taxonomy.yaml").fine_classes
    assert classifier.config["initialised_from"] == "from scratch"


def test_predict_csv_reproduces_the_benchmark_test_metrics(trained, tmp_path):
    workdir, cell = trained
    test = Manifest.read(workdir / "upscale").filter(stage="upscale", split="test")
    listing = tmp_path / "test.txt"
    listing.write_text("\n".join(str(test.resolve(p)) for p in test.frame["path"]) + "\n")
    out, sorted_dir = tmp_path / "pred.csv", tmp_path / "sorted"
    result = CliRunner().invoke(app, ["predict", str(workdir / "benchmark" / cell["model_dir"]), str(listing),
                                      "--out", str(out), "--sort", str(sorted_dir)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, keep_default_na=False)
    truth = dict(zip([str(test.resolve(p)) for p in test.frame["path"]], test.frame["label"]))
    frame["truth"] = frame["path"].map(truth)
    classes = load_classifier(workdir / "benchmark" / cell["model_dir"]).classes
    metrics = classification_metrics(frame["truth"].tolist(), frame["fine_label"].tolist(), classes)
    expected = cell["metrics"]["test"]["fine"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert metrics[key] == pytest.approx(expected[key])
    assert metrics["confusion"] == expected["confusion"]
    probabilities = frame[[f"prob_{c}" for c in classes]].to_numpy()
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert (frame["low_confidence"].astype(str).str.lower() == (frame["fine_probability"] < 0.5).astype(str).str.lower()).all()
    assert set(frame["macro_label"]) <= {"smooth", "disk", "irregular", "point"}
    placed = sorted(p.relative_to(sorted_dir).parts[0] for p in sorted_dir.rglob("*.png"))
    assert placed == sorted(frame["fine_label"])


def test_predict_tta_reproduces_the_benchmark_tta_test_metrics(trained, tmp_path):
    workdir, _ = trained
    preset = get_preset("cpu-tiny").with_overrides(samples_per_epoch=48, batch_size=16, epochs=3, image_size_px=32,
                                                   tta=True)
    run_benchmark(workdir, BenchmarkSettings(preset=preset, methods=["Raw_HR_online"], features=False),
                  tmp_path / "bench", log=lambda _: None)
    cell = json.loads((tmp_path / "bench" / "cells" / "Raw_HR_online__resnet-tiny__fine__seed0.json").read_text())
    assert cell["recipe"]["tta"]
    model_dir = tmp_path / "bench" / cell["model_dir"]
    test = Manifest.read(workdir / "upscale").filter(stage="upscale", split="test")
    listing = tmp_path / "test.txt"
    listing.write_text("\n".join(str(test.resolve(p)) for p in test.frame["path"]) + "\n")
    by_path = dict(zip([str(test.resolve(p)) for p in test.frame["path"]], test.frame["id"]))
    expected = dict(zip(cell["test_ids"], cell["test_predictions"]))
    predicted = {}
    for flag in ("--tta", "--no-tta"):
        out = tmp_path / f"pred{flag}.csv"
        result = CliRunner().invoke(app, ["predict", str(model_dir), str(listing), "--out", str(out), flag])
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out, keep_default_na=False)
        predicted[flag] = dict(zip(frame["path"].map(by_path), frame["fine_label"]))
        probabilities = frame[[c for c in frame if c.startswith("prob_")]].to_numpy()
        predicted[flag + "p"] = probabilities
    assert predicted["--tta"] == expected  # image for image, the benchmark's TTA predictions
    classes = load_classifier(model_dir).classes
    truth = dict(zip(test.frame["id"], test.frame["label"]))
    ids = sorted(predicted["--tta"])
    metrics = classification_metrics([truth[i] for i in ids], [predicted["--tta"][i] for i in ids], classes)
    assert metrics["macro_f1"] == pytest.approx(cell["metrics"]["test"]["fine"]["macro_f1"])
    assert not np.allclose(predicted["--tta" + "p"], predicted["--no-tta" + "p"])  # the views do change the numbers


def test_predict_reads_fits_and_flags_bad_files(trained, tmp_path):
    workdir, cell = trained
    images = tmp_path / "images"
    images.mkdir()
    data = np.random.default_rng(0).normal(10, 2, (40, 40)).astype(np.float32)
    data[18:22, 18:22] += 200
    fits.PrimaryHDU(data).writeto(images / "source.fits")
    (images / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "pred.parquet"
    result = CliRunner().invoke(app, ["predict", str(workdir / "benchmark" / cell["model_dir"]), str(images),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out).set_index("path")
    assert frame.loc[str(images / "source.fits"), "error"] == ""
    assert frame.loc[str(images / "source.fits"), "fine_label"] in load_taxonomy(workdir / "data" / "taxonomy.yaml").fine_classes
    assert "corrupt" in frame.loc[str(images / "broken.png"), "error"] or "decodable" in frame.loc[str(images / "broken.png"), "error"]


def test_predict_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path)])
    assert result.exit_code == 1
    assert "predict.model_dir" in result.output and "Traceback" not in result.output
