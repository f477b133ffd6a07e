"""Stage 1 at other binning factors than ×4 (issue 18): the degradation SR trains under is the dataset's own,
`flare upscale train` builds a model of the dataset's factor, and `flare upscale run` runs it (and bicubic) at it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flare.cli import app
from flare.core.config import SimulateConfig, UpscaleConfig
from flare.core.degrade import DegradeConfig
from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.data.simulate import simulate_survey, survey_degradation
from flare.upscale.stage import resolve_scale, upscale_dataset
from flare.upscale.training import TrainConfig, dataset_degradation, default_patch_hr_px, recorded_degradation

X8_SURVEY = SimulateConfig(objects_per_class=4, classes=["elliptical", "star"], hr_size_px=64, factor=8)


@pytest.fixture(scope="module")
def x8_dataset(tmp_path_factory) -> Path:
    """A tiny ×8 simulated survey: 2 classes × 4 objects, HR 64 px, LR 8 px."""
    out = tmp_path_factory.mktemp("sim-x8")
    simulate_survey(out, X8_SURVEY, seed=0)
    return out


def _invoke(arguments: list[str]) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output


def _sides(dataset: Path, stage: str) -> set[tuple[int, int]]:
    manifest = Manifest.read(dataset)
    return {load_rgb(manifest.resolve(r["path"])).shape[:2] for r in manifest.filter(stage=stage).records()}


def test_the_simulated_sky_trains_under_its_own_degradation(sim_dataset, x8_dataset):
    # sim_dataset (conftest): SimulateConfig(objects_per_class=6, hr_size_px=48); its PSF, sky and gain are not
    # the default model's, so reading the default back would show here.
    recorded = dataset_degradation(Manifest.read(sim_dataset))
    assert recorded == survey_degradation(SimulateConfig(objects_per_class=6, hr_size_px=48))
    assert recorded != DegradeConfig() and recorded.psf_fwhm_px == pytest.approx(np.sqrt(1.0 - 0.25 ** 2) / 0.1)
    assert (recorded.sky_level, recorded.gain) == (4.0, 1.0)
    x8 = dataset_degradation(Manifest.read(x8_dataset))
    assert x8 == survey_degradation(X8_SURVEY) and x8.factor == 8


def test_a_dataset_recording_no_degradation_gets_the_default_model_and_bicubic_x4(sim_dataset):
    manifest = Manifest.read(sim_dataset)
    ingested = Manifest(manifest.frame.assign(stage="ingest", params="{}"), manifest.root)
    assert recorded_degradation(ingested) is None and dataset_degradation(ingested) == DegradeConfig()
    assert resolve_scale(UpscaleConfig(), "bicubic", ingested) is None  # the backend's own default: ×4
    assert resolve_scale(UpscaleConfig(), "bicubic", manifest) == 4
    assert resolve_scale(UpscaleConfig(scale=2), "bicubic", manifest) == 2
    assert resolve_scale(UpscaleConfig(), "swinir-trained", manifest) is None  # a network runs at its own scale


def test_default_patch_keeps_x4_and_gives_x8_one_lr_window():
    assert default_patch_hr_px(4) == 96 == TrainConfig().patch_hr_px  # ×4 as before
    assert default_patch_hr_px(2) == 96 and default_patch_hr_px(8) == 64
    x8 = TrainConfig.with_width(8, scale=8)
    assert x8.patch_hr_px == 64 and x8.architecture.scale == 8 and x8.architecture.img_size == 8
    assert TrainConfig.with_width(8, scale=8, patch_hr_px=128).architecture.img_size == 16


def test_upscale_train_and_run_at_x8(x8_dataset, tmp_path):
    model = tmp_path / "model"
    _invoke(["upscale", "train", str(x8_dataset), str(model), "--steps", "2", "--batch-size", "2",
             "--embed-dim", "8", "--device", "cpu"])
    saved = json.loads((model / "config.json").read_text())
    assert saved["swinir"]["scale"] == 8 and saved["swinir"]["img_size"] == 8
    assert saved["training"]["train"]["patch_hr_px"] == 64 and saved["training"]["degradation"]["factor"] == 8
    out = tmp_path / "up"
    _invoke(["upscale", "run", str(x8_dataset), str(out), "--backend", "swinir-trained", "--weights", str(model),
             "--device", "cpu"])
    assert _sides(x8_dataset, "simulate") == {(8, 8)} and _sides(out, "upscale") == {(64, 64)}
    rows = Manifest.read(out).filter(stage="upscale").records()
    assert {r["operation"] for r in rows} == {"upscale-x8"} and {r["backend"] for r in rows} == {"swinir-trained"}


def test_bicubic_runs_at_the_recorded_factor_unless_told(x8_dataset, tmp_path):
    default = upscale_dataset(x8_dataset, tmp_path / "default", UpscaleConfig(backend="bicubic"))
    assert _sides(tmp_path / "default", "upscale") == {(64, 64)}  # the dataset's ×8
    assert {json.loads(r["params"])["scale"] for r in default.filter(stage="upscale").records()} == {8}
    upscale_dataset(x8_dataset, tmp_path / "x4", UpscaleConfig(backend="bicubic", scale=4))
    assert _sides(tmp_path / "x4", "upscale") == {(32, 32)}


def test_evaluate_sr_scores_bicubic_at_the_recorded_factor(x8_dataset):
    from flare.core.errors import FlareError
    from flare.upscale.evaluation import evaluate_sr

    scores, per_image = evaluate_sr(x8_dataset, ["bicubic"], split=None)
    assert scores[0].images == len(per_image) == 8 and np.isfinite(scores[0].psnr_db)
    with pytest.raises(FlareError, match="differs from truth"):  # told ×4 on an ×8 set: the shape check still holds
        evaluate_sr(x8_dataset, ["bicubic"], options={"bicubic": {"scale": 4}}, split=None)
