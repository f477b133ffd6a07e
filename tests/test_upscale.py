"""Stage 1 (super-resolution): registry, interpolation contract, tiling, the stage and its CLI, SR metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flare.core.config import UpscaleConfig
from flare.core.errors import ConfigError, UnknownBackendError
from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.upscale import create_upscaler, list_upscalers
from flare.upscale.base import UpscalerInfo
from flare.upscale.network import NetworkUpscaler
from flare.upscale.registry import register_upscaler
from flare.upscale.stage import flux_ratio, resolve_backend, upscale_dataset
from flare.upscale.swinir_model import ResidualSwinIR, SwinIRConfig, build_model, save_model
from flare.upscale.tiling import blend_ramp, tile_starts

torch.set_num_threads(1)

TINY_SWINIR = SwinIRConfig(embed_dim=8, depths=(1,), num_heads=(2,), window_size=4, mlp_ratio=2.0, img_size=8)


def _smooth_image(size: int = 24, seed: int = 0) -> np.ndarray:
    """A sky-like test image: a blurred blob plus noise, uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    blob = 180 * np.exp(-((yy - size / 2) ** 2 + (xx - size / 2.5) ** 2) / (2 * (size / 6) ** 2))
    image = blob[:, :, None] * np.array([1.0, 0.8, 0.6]) + rng.normal(10, 3, (size, size, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def test_registry_lists_every_backend_and_rejects_unknown():
    names = list_upscalers()
    for expected in ("bicubic", "lanczos", "realesrgan-x4plus", "swinir", "file", "swinir-trained"):
        assert expected in names
    with pytest.raises(UnknownBackendError, match="bicubic"):
        create_upscaler("no-such-upscaler")


@pytest.mark.parametrize("name", ["bicubic", "lanczos"])
def test_interpolation_contract(name):
    backend = create_upscaler(name, scale=4)
    image = _smooth_image()
    out = backend.upscale(image)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    assert np.array_equal(out, backend.upscale(image))  # deterministic
    assert abs(flux_ratio(out, image) - 1.0) < 0.02  # interpolation keeps flux
    assert backend.config["backend"] == name and backend.model_hash == ""


def test_scale_two_and_batching_match_single_images():
    backend = create_upscaler("bicubic", scale=2)
    images = [_smooth_image(16, seed) for seed in range(3)] + [_smooth_image(20, 9)]
    together = backend.upscale_many(images)
    assert [o.shape for o in together] == [(32, 32, 3)] * 3 + [(40, 40, 3)]
    for image, out in zip(images, together):
        assert np.array_equal(out, backend.upscale(image))


def test_tile_starts_cover_and_blend_ramp():
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))
    assert tile_starts(20, 32, 8) == [0]
    ramp = blend_ramp(16, 4, at_start=True, at_end=False)
    assert ramp[0] == 1.0 and ramp[-1] < 0.2 and (ramp > 0).all()


def _random_residual_swinir() -> ResidualSwinIR:
    model = build_model(TINY_SWINIR, seed=0)
    torch.nn.init.normal_(model.swinir.upsample[0].weight, std=0.05)  # a non-trivial residual
    return model.eval()


def test_tiled_matches_untiled_within_tolerance():
    """Stated tolerance: tiles of 16 LR px overlapping by 8 differ from whole-image inference by ≤ 0.1 level
    on average and ≤ 2 levels (of 255) anywhere; without overlap the seams are far worse."""
    model = _random_residual_swinir()
    info = UpscalerInfo(name="tiny", scale=4)
    image = _smooth_image(40)
    whole = NetworkUpscaler(model, info, tile_px=64, tile_overlap_px=0, device="cpu").upscale(image)
    tiled = NetworkUpscaler(model, info, tile_px=16, tile_overlap_px=8, device="cpu").upscale(image)
    difference = np.abs(whole.astype(int) - tiled.astype(int))
    assert whole.shape == tiled.shape == (160, 160, 3)
    assert difference.mean() <= 0.1 and difference.max() <= 2
    no_blend = NetworkUpscaler(model, info, tile_px=16, tile_overlap_px=0, device="cpu").upscale(image)
    assert np.abs(whole.astype(int) - no_blend.astype(int)).mean() > 10 * difference.mean()


def test_untrained_residual_swinir_is_bicubic():
    """The residual design: SwinIR's last convolution starts at zero, so the untrained model = bicubic."""
    model = build_model(TINY_SWINIR, seed=0).eval()
    lr = torch.rand(1, 3, 12, 12)
    expected = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(model(lr), expected, atol=1e-5)


def test_upscale_dataset_appends_rows_and_resumes(sim_dataset, tmp_path):
    out = tmp_path / "up"
    manifest = upscale_dataset(sim_dataset, out, UpscaleConfig(backend="bicubic"))
    source = Manifest.read(sim_dataset)
    upscaled = manifest.filter(stage="upscale")
    assert len(upscaled) == len(source.filter(stage="simulate")) and len(manifest) == 2 * len(upscaled)
    parents = {r["id"]: r for r in source.records()}
    for row in upscaled.records():
        parent = parents[Manifest.parents(row)[0]]
        assert (row["split"], row["origin_id"], row["label"]) == (parent["split"], parent["origin_id"], parent["label"])
        assert row["backend"] == "bicubic" and row["truth_path"]
        assert manifest.resolve(row["truth_path"]).is_file()
        image = load_rgb(manifest.resolve(row["path"]))
        assert image.shape[0] == 48  # 12 px LR × 4
        params = json.loads(row["params"])
        assert abs(params["flux_ratio_vs_input"] - 1) < 0.05 and "flux_warning" not in params
    # Resume: a corrupt output is rewritten, the rest kept; the manifest is byte-identical.
    first = (out / "manifest.parquet").read_bytes()
    victim = manifest.resolve(upscaled.records()[0]["path"])
    victim.write_bytes(b"not a png")
    upscale_dataset(sim_dataset, out, UpscaleConfig(backend="bicubic"))
    assert (out / "manifest.parquet").read_bytes() == first


@pytest.fixture
def darkening_backend():
    """A test-only backend that loses 30 % of the flux, registered for one test and removed after."""
    from flare.upscale.interpolation import InterpolationUpscaler
    from flare.upscale.registry import UPSCALERS

    class Darkening(InterpolationUpscaler):
        def upscale_batch(self, images):
            return super().upscale_batch(images * 0.7)

    @register_upscaler("test-darkening", description="test only: loses 30 % of the flux")
    def _darkening(scale: int = 4, **_):
        return Darkening("bicubic", scale)

    yield "test-darkening"
    UPSCALERS._entries.pop("test-darkening", None)


def test_flux_losing_backend_is_flagged(sim_dataset, tmp_path, darkening_backend):
    manifest = upscale_dataset(sim_dataset, tmp_path / "dark", UpscaleConfig(backend=darkening_backend))
    params = json.loads(manifest.filter(stage="upscale").records()[0]["params"])
    assert "flux_warning" in params and params["flux_ratio_vs_input"] < 0.8


def test_auto_prefers_a_trained_model_and_falls_back_to_bicubic(sim_dataset, tmp_path):
    assert resolve_backend(UpscaleConfig(), sim_dataset) == ("bicubic", None)
    model_dir = tmp_path / "model"
    save_model(build_model(TINY_SWINIR), model_dir, {}, "card")
    assert resolve_backend(UpscaleConfig(weights=str(model_dir)), sim_dataset) == ("swinir-trained", str(model_dir))
    backend = create_upscaler("swinir-trained", weights=str(model_dir), device="cpu")
    assert backend.scale == 4 and len(backend.model_hash) == 64
    with pytest.raises(ConfigError, match="upscale.weights"):
        create_upscaler("swinir-trained")


def test_cli_upscale_and_backends(sim_dataset, tmp_path):
    from typer.testing import CliRunner

    from flare.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["upscale", str(sim_dataset), str(tmp_path / "o"), "--backend", "lanczos"])
    assert result.exit_code == 0, result.output
    assert set(Manifest.read(tmp_path / "o").filter(stage="upscale").frame["backend"]) == {"lanczos"}
    result = runner.invoke(app, ["upscale", str(sim_dataset), str(tmp_path / "p"), "--backend", "nope"])
    assert result.exit_code == 1 and "unknown backend" in result.output
    listing = runner.invoke(app, ["backends"])
    assert "realesrgan-x4plus" in listing.output and "swinir-trained" in listing.output


def test_hallucination_count_sees_an_invented_source():
    from flare.metrics.sr import hallucinated_sources, score_image

    rng = np.random.default_rng(0)
    truth = np.clip(rng.normal(20, 2, (64, 64, 3)), 0, 255).astype(np.uint8)
    output = truth.copy()
    yy, xx = np.mgrid[:64, :64]
    output = np.clip(output + (120 * np.exp(-((yy - 40) ** 2 + (xx - 20) ** 2) / 4.0))[:, :, None], 0, 255).astype(np.uint8)
    assert hallucinated_sources(truth, truth)[0] == 0
    assert hallucinated_sources(output, truth)[0] == 1
    scores = score_image(output, truth)
    assert scores["flux_output"] > scores["flux_truth"] and scores["psnr_db"] < 60


def test_evaluate_sr_on_simulated_truth(sim_dataset):
    from flare.metrics.sr import scores_table
    from flare.upscale.evaluation import evaluate_sr

    scores, per_image = evaluate_sr(sim_dataset, ["bicubic", "lanczos"], split=None, max_images=6)
    assert [s.backend for s in scores] == ["bicubic", "lanczos"] and len(per_image) == 12
    assert all(np.isfinite(s.psnr_db) and 0 < s.ssim <= 1 and 0.8 < s.flux_ratio < 1.2 for s in scores)
    assert "| bicubic |" in scores_table(scores)


def test_pipeline_upscale_step_uses_auto_bicubic(sim_dataset, tmp_path):
    from flare.core.config import FlareConfig
    from flare.pipeline import STEPS

    names = [name for name, _ in STEPS]
    assert names[names.index("data") + 1] == "upscale"
    step = dict(STEPS)["upscale"]
    out = step(FlareConfig(), tmp_path, {"data": sim_dataset})
    assert set(Manifest.read(out).filter(stage="upscale").frame["backend"]) == {"bicubic"}


def test_a_knot_inside_a_truth_galaxy_is_not_a_hallucination():
    """A knot that sep splits off in the output, 24 px from the galaxy's centroid but inside the galaxy's
    footprint in the truth (where it is fainter and not deblended), is real: centroid matching alone would
    count it as invented."""
    from flare.metrics.sr import MATCH_RADIUS_PX, detect_sources, hallucinated_sources

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    galaxy = 150 * np.exp(-((yy - 48) ** 2 / (2 * 16.0 ** 2) + (xx - 48) ** 2 / (2 * 6.0 ** 2)))
    knot = 120 * np.exp(-((yy - 24) ** 2 + (xx - 48) ** 2) / 3.0)
    as_rgb = lambda image: np.repeat(np.clip(image, 0, 255)[:, :, None], 3, axis=2).astype(np.uint8)  # noqa: E731
    truth = as_rgb(galaxy + 0.3 * knot + rng.normal(10, 2, (96, 96)))
    output = as_rgb(galaxy + knot + rng.normal(10, 1, (96, 96)))
    found, reference = detect_sources(output, 5.0), detect_sources(truth, 3.0)
    assert len(found) == 2 and len(reference) == 1  # the knot is a separate source only in the output
    assert np.sqrt(((found[:, None] - reference[None]) ** 2).sum(axis=2)).min(axis=1).max() > MATCH_RADIUS_PX
    assert hallucinated_sources(output, truth)[0] == 0
