"""The benchmark on a fake run folder: every method, resume, skipped stages, aggregation, out-of-domain scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from flare.classify.registry import create_classifier, get_preset, list_classifiers, list_presets
from flare.core.errors import ConfigError, FlareError
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest
from flare.core.taxonomy import load_taxonomy
from flare.classify.benchmark import BenchmarkSettings, run_benchmark
from flare.classify.label_mapping import load_label_mapping
from flare.metrics.classification import classification_metrics, collapse_probabilities, mean_std, paired_differences
from test_benchmark_workdir import build_workdir

torch.set_num_threads(1)
TINY = get_preset("cpu-tiny").with_overrides(samples_per_epoch=48, batch_size=16, epochs=3, image_size_px=32)


@pytest.fixture(scope="module")
def benchmark_run(sim_dataset, tmp_path_factory):
    workdir = build_workdir(sim_dataset, tmp_path_factory.mktemp("work"))
    summary = run_benchmark(workdir, BenchmarkSettings(preset=TINY, seeds=[0, 1]), log=lambda _: None)
    return workdir, summary


def test_metrics_on_known_values():
    metrics = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c", "d"])
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert metrics["per_class_f1"]["a"] == pytest.approx(2 / 3)
    assert "d" not in metrics["per_class_f1"]  # absent classes do not drag macro-F1 down
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert metrics["confusion"][0] == [1, 1, 0, 0]
    collapsed = collapse_probabilities(np.array([[0.2, 0.3, 0.5]]), ["x", "y", "z"], {"x": "P", "y": "Q", "z": "Q"}, ["P", "Q"])
    assert collapsed.tolist() == [[0.2, 0.8]]
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(np.sqrt(2)), "n": 2}
    diffs = paired_differences({"base": {0: 0.5, 1: 0.6}, "new": {0: 0.7, 1: 0.5}}, "base")
    assert diffs["new"]["mean"] == pytest.approx(0.05) and diffs["new"]["wins"] == 1


def test_registry_lists_backbones_and_presets():
    assert {"resnet-tiny", "resnet18", "efficientnet-b0", "densenet121", "vit-tiny", "googlenet"} <= set(list_classifiers())
    assert list_presets() == ["cpu-frozen", "cpu-scratch", "cpu-small", "cpu-tiny", "paper"]
    model = create_classifier("resnet-tiny", num_classes=3, image_size_px=32)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(FlareError, match="unknown backend"):
        create_classifier("resnet-huge", num_classes=3, image_size_px=32)
    with pytest.raises(ConfigError, match="benchmark.preset"):
        get_preset("laptop")


def test_every_method_trains_and_is_aggregated_over_seeds(benchmark_run):
    workdir, summary = benchmark_run
    cells = sorted(p.stem for p in (workdir / "benchmark" / "cells").glob("*.json"))
    assert len(cells) == 12 and summary["cells"] == 12
    methods = {r["method"] for r in summary["rows"]}
    assert methods == {"Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug", "FLARE"}
    cell = json.loads((workdir / "benchmark" / "cells" / "Raw_Aug__resnet-tiny__fine__seed0.json").read_text())
    assert cell["train_stages"] == ["augment", "upscale"]
    assert cell["n_train"] == 48 and cell["n_test"] == 6  # 24 HR train + 24 augmentations; test = real HR
    assert cell["initialised_from"] == "from scratch"
    raw_lr = json.loads((workdir / "benchmark" / "cells" / "Raw_LR__resnet-tiny__fine__seed1.json").read_text())
    assert raw_lr["train_stages"] == ["simulate"]
    for row in summary["rows"]:
        assert row["seeds"] == [0, 1]
        values = [row["per_seed"][s]["accuracy"] for s in ("0", "1")]
        assert row["accuracy"]["mean"] == pytest.approx(np.mean(values))
        assert row["accuracy"]["std"] == pytest.approx(np.std(values, ddof=1))
    macro = [r for r in summary["rows"] if r["task"] == "macro" and r["evaluation"] == "test"]
    assert len(macro) == 6 and all(r["trained_task"] == "fine" for r in macro)  # collapsed from fine
    assert any(d["method"] == "FLARE" and d["baseline"] == "Raw_Aug" for d in summary["paired_differences"])
    assert (workdir / "benchmark" / "results.csv").is_file() and (workdir / "benchmark" / "DONE").is_file()
    features = json.loads((workdir / "benchmark" / "features.json").read_text())
    assert {"Raw", "Raw_Aug", "T2I_Aug", "FLARE"} <= set(features)
    assert features["Raw"]["method"] == "Raw_HR" and len(features["FLARE"]["x"]) == 6


def test_cells_record_the_recipe_the_val_curve_and_the_comparison(benchmark_run):
    workdir, summary = benchmark_run
    cell = json.loads((workdir / "benchmark" / "cells" / "Raw_HR_online__resnet-tiny__fine__seed0.json").read_text())
    recipe = cell["recipe"]
    assert recipe["steps"] == 3 * 3 and recipe["class_balance"] == "weighted-loss"  # 3 epochs x ceil(48/16)
    assert recipe["online_views"] and cell["online"] and recipe["model_choice"] == "best val macro-F1"
    assert [h["epoch"] for h in cell["history"]] == list(range(1, cell["epochs_run"] + 1))
    assert all({"step", "lr", "val_macro_f1", "train_loss"} <= set(h) for h in cell["history"])
    assert 1 <= cell["best_epoch"] <= cell["epochs_run"]
    assert {"fine", "macro"} <= set(cell["metrics"]["val"])
    test = cell["metrics"]["test"]["fine"]
    assert len(test["predicted"]) == len(test["true"]) == cell["n_test"]
    # every method at this data size gets the same optimiser steps, whatever its pool
    steps = {json.loads(p.read_text())["recipe"]["steps"] for p in (workdir / "benchmark" / "cells").glob("*.json")}
    assert steps == {9}
    entry = next(e for e in summary["comparison"] if e["task"] == "fine")
    val = entry["best_baseline"]["val_scores"]
    assert entry["best_baseline"]["method"] == max(sorted(val), key=val.get) and "FLARE" not in val
    diff = entry["flare_vs"][entry["best_baseline"]["method"]]
    assert diff["seeds"] == [0, 1] and diff["ci95"]["macro_f1"]["low"] <= diff["ci95"]["macro_f1"]["high"]
    assert entry["headline"].startswith("FLARE") and entry["best_baseline"]["method"] in entry["headline"]
    row = next(r for r in summary["rows"] if r["evaluation"] == "test" and r["method"] == "FLARE")
    assert row["ci95"]["macro_f1"]["low"] <= row["macro_f1"]["mean"] <= row["ci95"]["macro_f1"]["high"] + 1e-9


def test_oracle_hr_runs_where_there_is_truth_and_is_noted_where_not(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path / "w", stages=("upscale",))
    settings = BenchmarkSettings(preset=TINY, methods=["Raw_LR", "Raw_HR", "Oracle_HR"], features=False)
    summary = run_benchmark(workdir, settings, log=lambda _: None)
    cell = json.loads((workdir / "benchmark" / "cells" / "Oracle_HR__resnet-tiny__fine__seed0.json").read_text())
    assert cell["n_train"] == 24 and cell["n_test"] == 6
    headroom = next(e for e in summary["comparison"] if e["task"] == "fine")["headroom"]
    assert headroom["gap"] == pytest.approx(headroom["oracle_hr"] - headroom["raw_lr"])
    no_truth = tmp_path / "n"
    build_workdir(sim_dataset, no_truth, stages=("upscale",))
    manifest = Manifest.read(no_truth / "data")
    manifest.frame["truth_path"] = ""
    manifest.write()
    summary = run_benchmark(no_truth, settings, log=lambda _: None)
    assert "Oracle_HR" not in {r["method"] for r in summary["rows"]}
    assert any(n.startswith("Oracle_HR: skipped") for n in summary["notes"])


def test_frozen_pretrained_backbone_with_tta(sim_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_CACHE", str(tmp_path / "cache"))
    workdir = build_workdir(sim_dataset, tmp_path / "w", stages=("upscale",))
    preset = get_preset("cpu-frozen").with_overrides(image_size_px=32, epochs=4)
    summary = run_benchmark(workdir, BenchmarkSettings(preset=preset, methods=["Raw_HR", "Raw_HR_online"],
                                                       features=False), log=lambda _: None)
    cell = json.loads((workdir / "benchmark" / "cells"
                       / "Raw_HR_online__efficientnet-lite0-imagenet__fine__seed0.json").read_text())
    assert cell["initialised_from"].startswith("ImageNet, EfficientNet-Lite0")
    assert cell["recipe"]["train_mode"] == "frozen" and cell["recipe"]["tta"]
    caches = list((workdir / "benchmark" / "cache").glob("features-efficientnet-lite0-imagenet-32px-view*"))
    assert len({p.name.split("-view")[1][0] for p in caches}) == 8  # all 8 views cached
    assert summary["initialised_from"] == [cell["initialised_from"]]
    with pytest.raises(FlareError, match="frozen needs a pretrained backbone"):
        run_benchmark(workdir, BenchmarkSettings(preset=preset.with_overrides(backbones=["resnet-tiny"])),
                      tmp_path / "b", log=lambda _: None)


def test_rerun_skips_finished_cells(benchmark_run, monkeypatch):
    workdir, summary = benchmark_run
    import flare.classify.benchmark as benchmark

    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(benchmark, "train_classifier", fail)
    again = run_benchmark(workdir, BenchmarkSettings(preset=TINY, seeds=[0, 1]), log=lambda _: None)
    assert again["rows"] == summary["rows"]


def test_missing_stage_folders_are_skipped_with_a_note(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path, stages=("upscale",))
    lines: list[str] = []
    summary = run_benchmark(workdir, BenchmarkSettings(preset=TINY, methods=["Raw_HR", "Raw_Aug", "FLARE"]),
                            log=lines.append)
    assert {r["method"] for r in summary["rows"]} == {"Raw_HR"}
    assert any("Raw_Aug: skipped" in n for n in summary["notes"]) and any("FLARE: skipped" in n for n in summary["notes"])
    with pytest.raises(FlareError, match="no method"):
        run_benchmark(tmp_path / "empty", BenchmarkSettings(preset=TINY), log=lambda _: None)


def test_same_seed_gives_identical_weights(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path / "w", stages=())
    settings = BenchmarkSettings(preset=TINY, methods=["Raw_LR"], features=False)
    digests = []
    for name in ("a", "b"):
        run_benchmark(workdir, settings, tmp_path / name, log=lambda _: None)
        digests.append((tmp_path / name / "models" / "Raw_LR__resnet-tiny__fine__seed0" / "model.safetensors").read_bytes())
    assert digests[0] == digests[1]


def _other_survey(sim_dataset: Path, out: Path) -> Path:
    """The simulated sky relabelled as another survey would label it (its own class names)."""
    names = {"elliptical": "smooth_galaxy", "spiral_clockwise": "spiral", "spiral_anticlockwise": "spiral",
             "edge_on": "disk_edge", "merger": "interacting", "star": "point_source"}
    source = Manifest.read(sim_dataset)
    records = []
    for row in source.records():
        path = Path("images") / f"{row['id']}.png"
        digest = write_image(out / path, load_rgb(source.resolve(row["truth_path"])))
        records.append({"id": row["id"], "path": str(path), "sha256": digest, "label": names[row["label"]],
                        "origin_id": row["origin_id"], "split": row["split"], "stage": "ingest"})
    Manifest.from_records(records, out).write()
    return out


def test_label_mapped_out_of_domain_evaluation_of_a_macro_model(sim_dataset, tmp_path):
    other = _other_survey(sim_dataset, tmp_path / "other")
    mapping_file = tmp_path / "other.yaml"
    mapping_file.write_text(yaml.safe_dump({"name": "other", "dataset": "other", "classes": {
        "smooth_galaxy": "elliptical", "spiral": "disk", "disk_edge": "edge_on", "interacting": "irregular",
        "point_source": "ignore"}}))
    mapping = load_label_mapping(mapping_file)
    assert mapping.dataset == str(other.resolve())
    workdir = build_workdir(sim_dataset, tmp_path / "w", stages=("upscale",))
    settings = BenchmarkSettings(preset=TINY, methods=["Raw_HR"], tasks=["macro"], macro_mode="direct",
                                 ood=[mapping], features=False)
    summary = run_benchmark(workdir, settings, log=lambda _: None)
    cell = json.loads((workdir / "benchmark" / "cells" / "Raw_HR__resnet-tiny__macro__seed0.json").read_text())
    ood = cell["metrics"]["ood:other"]
    assert "fine" not in ood  # a macro model is scored on macro only
    assert ood["macro"]["n"] == 30  # 36 objects, the 6 stars ignored
    assert ood["macro"]["support"]["irregular"] == 6 and ood["macro"]["support"]["disk"] == 18
    assert any(r["evaluation"] == "ood:other" for r in summary["rows"])
    taxonomy = load_taxonomy(workdir / "data" / "taxonomy.yaml")
    assert mapping.targets("spiral", taxonomy) == (None, "disk")
    assert mapping.targets("smooth_galaxy", taxonomy) == ("elliptical", "smooth")
    with pytest.raises(ConfigError, match="not mapped"):
        mapping.targets("quasar", taxonomy)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"classes": {"x": "nebula"}}))
    with pytest.raises(ConfigError, match="neither a fine class"):
        load_label_mapping(bad).targets("x", taxonomy)


def test_cli_benchmark_on_a_workdir(sim_dataset, tmp_path):
    from typer.testing import CliRunner

    from flare.cli import app

    workdir = build_workdir(sim_dataset, tmp_path, stages=())
    args = ["benchmark", str(workdir), "--method", "Raw_LR", "--method", "Raw_Aug", "--epochs", "1",
            "--set", "benchmark.samples_per_epoch=16", "--set", "benchmark.features=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Raw_Aug: skipped" in result.output
    assert (workdir / "benchmark" / "cells" / "Raw_LR__resnet-tiny__fine__seed0.json").is_file()
    bad = CliRunner().invoke(app, ["benchmark", str(workdir), "--preset", "laptop"])
    assert bad.exit_code == 1 and "benchmark.preset" in bad.output


def test_flare_run_ends_with_benchmark_and_report(sim_dataset, tmp_path):
    from flare.core.config import load_config
    from flare.pipeline import STEPS, run_pipeline

    names = [name for name, _ in STEPS]
    assert names[-3:] == ["benchmark", "fractions", "report"]
    workdir = build_workdir(sim_dataset, tmp_path)  # every earlier stage is done already, so only ours run
    config = load_config(overrides={"workdir": str(workdir), "benchmark.samples_per_epoch": 16,
                                    "benchmark.methods": ["Raw_HR", "FLARE"]})
    result = run_pipeline(config, log=lambda _: None)
    assert "benchmark" not in result.skipped and "report" not in result.skipped
    assert (workdir / "benchmark" / "DONE").is_file() and (workdir / "report" / "report.html").is_file()
    again = run_pipeline(config, log=lambda _: None)
    assert {"benchmark", "report"} <= set(again.skipped)


def test_local_pretrained_weights_skip_a_different_head(tmp_path):
    from safetensors.torch import save_file

    from flare.classify.backbones import build_backbone, load_local_weights

    torch.manual_seed(1)
    source, _ = build_backbone("resnet-tiny", 10, 32)
    file = tmp_path / "imagenet-like.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(file))
    torch.manual_seed(2)
    target, _ = build_backbone("resnet-tiny", 6, 32)
    left = load_local_weights(target, file)
    assert left == ["fc.bias", "fc.weight"]
    assert torch.equal(target.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])
    with pytest.raises(ConfigError, match="benchmark.pretrained"):
        load_local_weights(target, tmp_path / "missing.safetensors")


def _buildable() -> list[str]:
    """Every backbone, less packaged-weight ones whose optional package is absent (tests/test_pretrained.py
    checks that those fail with one line)."""
    from flare.core.pretrained import PRETRAINED, is_installed

    return [n for n in list_classifiers() if n not in PRETRAINED or is_installed(n)]


@pytest.mark.parametrize("name", _buildable())
def test_every_backbone_classifies_and_gives_features(name):
    from flare.classify.train import infer

    torch.manual_seed(0)
    model = create_classifier(name, num_classes=3, image_size_px=80)
    probabilities, features = infer(model, np.zeros((2, 3, 80, 80), np.uint8), with_features=True)
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert features.ndim == 2 and features.shape[0] == 2 and features.shape[1] >= 8


def test_synth_only_trains_on_generated_rows_alone_and_t2i_aug_adds_them_to_the_real_ones(sim_dataset, tmp_path):
    from flare.classify.variants import method_datasets

    workdir = build_workdir(sim_dataset, tmp_path)
    data = method_datasets(workdir, ["T2I_Aug", "Synth_Only"])
    synthetic, mixed = data["Synth_Only"].train.frame, data["T2I_Aug"].train.frame
    assert len(synthetic) and set(synthetic["stage"]) == {"generate"}
    assert set(mixed["stage"]) == {"generate", "upscale"} and len(mixed) > len(synthetic)
    assert data["Synth_Only"].test.frame["id"].tolist() == data["T2I_Aug"].test.frame["id"].tolist()
