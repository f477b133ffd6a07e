"""Preset sets: ``astro`` (the default: sky symmetries and observing conditions, colour kept) and ``paper`` (the
original work's five types). Sets expand as documented; the astro set never changes a pixel's colour while the
paper set's colour jitter does; every mirroring preset swaps mirror-pair labels; recorded params replay."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flare.augment import apply_recipes, create_preset, list_presets, recipe_mirrors
from flare.augment.base import TRANSFORMS
from flare.augment.geometric import D4_VIEWS, ShiftScale
from flare.augment.photometric import BrightnessContrast
from flare.augment.registry import AUGMENT_REGISTRY, ORIGINAL_PRESETS
from flare.augment.stage import augment_dataset, replay_dataset
from flare.core.config import AugmentConfig, FlareConfig, load_config
from flare.core.io import load_rgb
from flare.core.manifest import Manifest

torch.set_num_threads(1)
ASTRO = list(AugmentConfig.PRESET_SETS["astro"])
PAPER = list(AugmentConfig.PRESET_SETS["paper"])
SEEDS = range(25)
SIZE = 24


# --------------------------------------------------------------------------------------------- expansion

def test_sets_expand_to_their_members_in_order():
    assert AugmentConfig().presets == ASTRO == ["d4", "shift_scale", "psf_blur", "noise", "brightness_contrast"]
    assert FlareConfig().augment.presets == ASTRO
    assert AugmentConfig(presets=["paper"]).presets == PAPER == ORIGINAL_PRESETS
    assert AugmentConfig(presets=["hflip", "rot90"]).presets == ["hflip", "rot90"]  # explicit names, as before
    # A set among names: its members in place, a preset named twice runs once.
    assert AugmentConfig(presets=["rot90", "astro", "noise"]).presets == ["rot90", *ASTRO]
    assert AugmentConfig(presets=["astro", "paper"]).presets == ASTRO + PAPER
    config = AugmentConfig()
    config.presets = ["paper"]  # assignment is validated too
    assert config.presets == PAPER
    # The validated (expanded) list validates to itself: config.yaml and a step's record stay the same.
    assert AugmentConfig.model_validate(AugmentConfig().model_dump()).presets == ASTRO
    assert load_config(overrides=["augment.presets=[paper]"]).augment.presets == PAPER


def test_which_set_ran_is_told_by_the_preset_names():
    """No preset is in two sets, so an augment row's ``operation`` (or config.yaml's list) names its set."""
    members = [name for names in AugmentConfig.PRESET_SETS.values() for name in names]
    assert len(members) == len(set(members))
    assert set(members) <= set(list_presets())
    assert not set(AugmentConfig.PRESET_SETS) & set(list_presets())  # a set name is never a preset name
    assert {AugmentConfig.preset_set_of(n) for n in ASTRO} == {"astro"}
    assert {AugmentConfig.preset_set_of(n) for n in PAPER} == {"paper"}
    assert AugmentConfig.preset_set_of("rot90") is None
    assert AugmentConfig().preset_sets() == ["astro"]
    assert AugmentConfig(presets=["paper", "rot90"]).preset_sets() == ["paper"]
    assert AugmentConfig(presets=["hflip", "noise"]).preset_sets() == []


def test_backends_lists_the_set_of_every_augmentation_preset():
    from flare.cli import app

    result = CliRunner().invoke(app, ["backends"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line.split("│")[3].strip()
            for line in result.output.splitlines() if line.count("│") >= 4 and line.split("│")[1].strip() == "augment"}
    assert {name: rows[name] for name in ASTRO} == {name: "astro *" for name in ASTRO}
    assert {name: rows[name] for name in PAPER} == {name: "paper" for name in PAPER}
    assert rows["rot90"] == rows["vflip"] == "-"


def test_cli_presets_take_a_set_name(sim_dataset, tmp_path):
    from flare.cli import app

    out = tmp_path / "paper"
    result = CliRunner().invoke(app, ["augment", str(sim_dataset), str(out), "--k", "1", "--presets", "paper",
                                      "--mode", "lazy"])
    assert result.exit_code == 0, result.output
    operations = set(Manifest.read(out).filter(stage="augment").frame["operation"])
    assert operations == set(PAPER)


# --------------------------------------------------------------------------------------------------- colour

def _render_float(images: torch.Tensor, recipe: list[dict]) -> torch.Tensor:
    """A recipe on float images, without the uint8 round trip (so colour can be compared to float precision)."""
    for step in recipe:
        images = TRANSFORMS[step["name"]].apply(images, [step["params"]] * len(images))
    return images


def _chromaticity(images: torch.Tensor) -> torch.Tensor:
    return images / images.sum(dim=1, keepdim=True).clamp(min=1e-12)


def _one_colour_galaxy(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random brightness profile (smooth blob + pixel noise) of one random colour: ``(1, 3, H, W)`` in (0, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centre = rng.uniform(SIZE * 0.3, SIZE * 0.7, 2)
    profile = 0.2 + 0.7 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * (SIZE / 5) ** 2))
    profile = profile * rng.uniform(0.85, 1.0, profile.shape)
    colour = rng.uniform(0.2, 1.0, 3)
    image = torch.from_numpy((colour[:, None, None] * profile[None]).astype(np.float32))[None]
    return image, torch.from_numpy(colour.astype(np.float32) / colour.sum())


def _colour_kept(output: torch.Tensor, colour: torch.Tensor) -> bool:
    """Every output pixel neither black nor clipped has the chromaticity (so the hue) ``colour``."""
    lit = (output.amax(dim=1) < 1.0 - 1e-6) & (output.sum(dim=1) > 1e-3)
    error = (_chromaticity(output) - colour.reshape(1, 3, 1, 1)).abs().amax(dim=1)
    return bool(lit.any()) and error[lit].max().item() < 1e-4


@pytest.mark.parametrize("name", [n for n in ASTRO if n != "noise"])
def test_astro_presets_keep_the_colour_of_every_pixel(name):
    preset = create_preset(name)
    for seed in SEEDS:
        image, colour = _one_colour_galaxy(seed)
        output = _render_float(image, preset.recipe(seed, SIZE, SIZE, seed))
        assert _colour_kept(output, colour), (name, seed)


def test_astro_noise_is_zero_mean_in_every_channel():
    """Noise is drawn per band, as in a shallower exposure: a pixel's colour scatters, but the galaxy's colour
    (its mean over pixels) stays; the colour jitter moves that too."""
    noise, jitter = create_preset("noise"), create_preset("color_jitter")
    moved = 0
    for seed in SEEDS:
        image, colour = _one_colour_galaxy(seed)
        big = torch.nn.functional.interpolate(image, scale_factor=4, mode="nearest")  # more pixels, same colour
        output = _render_float(big, noise.recipe(seed, SIZE * 4, SIZE * 4, seed))
        assert not torch.equal(output, big)
        mean_colour = output.sum(dim=(2, 3)) / output.sum()
        assert (mean_colour[0] - colour).abs().max().item() < 3e-3, seed
        jittered = _render_float(big, jitter.recipe(seed, SIZE * 4, SIZE * 4, seed))
        moved += (jittered.sum(dim=(2, 3)) / jittered.sum() - colour).abs().max().item() > 3e-3
    assert moved >= len(SEEDS) * 0.8


@pytest.mark.parametrize("name", ["color_jitter", "flip_color_jitter"])
def test_paper_colour_jitter_changes_pixel_colours(name):
    """The same check fails for the paper set's jitter: this is what the astro set leaves out."""
    preset = create_preset(name)
    changed = sum(not _colour_kept(_render_float(image, preset.recipe(seed, SIZE, SIZE, seed)), colour)
                  for seed in SEEDS for image, colour in [_one_colour_galaxy(seed)])
    assert changed == len(SEEDS)


def test_colour_jitter_contrast_alone_moves_colours_towards_grey_and_brightness_contrast_does_not():
    """Why a new transform: torchvision's contrast adds one grey offset to R, G and B, which changes a pixel's
    saturation; the astro brightness/contrast scales the three by one factor."""
    from flare.augment.photometric import ColorJitter

    image, colour = _one_colour_galaxy(0)
    contrast_only = {"order": [1, 0, 2, 3], "brightness": None, "contrast": 0.9, "saturation": None, "hue": None}
    assert not _colour_kept(ColorJitter.apply(image, [contrast_only]), colour)
    assert _colour_kept(BrightnessContrast.apply(image, [{"brightness": 1.0, "contrast": 0.9}]), colour)


def _random_colours(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(0.02, 0.98, (1, 3, SIZE, SIZE)).astype(np.float32))


def test_pixelwise_astro_steps_keep_each_pixels_own_colour_on_random_colour_images():
    """D4 views move pixels and brightness/contrast scales each in place: every output pixel has exactly the
    colour of the input pixel it comes from, whatever the colour of its neighbours."""
    d4, levels = create_preset("d4"), create_preset("brightness_contrast")
    for seed in SEEDS:
        image = _random_colours(seed)
        recipe = d4.recipe(seed, SIZE, SIZE, seed)
        k, mirror = recipe[0]["params"]["k"], recipe[0]["params"]["mirror"]
        expected = torch.rot90(image.flip(-1) if mirror else image, k, dims=(-2, -1))
        assert torch.equal(_render_float(image, recipe), expected)
        output = _render_float(image, levels.recipe(seed, SIZE, SIZE, seed))
        lit = output.amax(dim=1) < 1.0 - 1e-6
        error = (_chromaticity(output) - _chromaticity(image)).abs().amax(dim=1)
        assert lit.any() and error[lit].max().item() < 1e-5, seed
        assert not torch.equal(output, image)


@pytest.mark.parametrize("name", ["shift_scale", "psf_blur"])
def test_resampling_astro_steps_treat_every_channel_alike_on_random_colour_images(name):
    """A shift, scale change or blur mixes neighbouring pixels, never channels: each output channel is the same
    operator applied to that channel alone (so a one-colour region keeps its colour)."""
    preset = create_preset(name)
    for seed in SEEDS:
        image = _random_colours(seed)
        recipe = preset.recipe(seed, SIZE, SIZE, seed)
        output = _render_float(image, recipe)
        for channel in range(3):
            alone = _render_float(image[:, channel:channel + 1].expand(1, 3, SIZE, SIZE).contiguous(), recipe)
            assert torch.equal(output[:, channel], alone[:, 0]), (name, seed, channel)


def test_shift_scale_moves_and_scales_as_recorded():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(0, 1, (1, 3, SIZE, SIZE)).astype(np.float32))
    same = ShiftScale.apply(image, [{"scale": 1.0, "shift_x_px": 0.0, "shift_y_px": 0.0}])
    assert torch.equal(same, image)
    moved = ShiftScale.apply(image, [{"scale": 1.0, "shift_x_px": 1.0, "shift_y_px": 0.0}])
    assert torch.equal(moved[..., 1:], image[..., :-1])  # content moved one pixel right
    assert torch.equal(moved[..., 0], image[..., 1])  # the edge is reflected, not black
    for seed in SEEDS:
        params = create_preset("shift_scale").recipe(seed, SIZE, SIZE, 0)[0]["params"]
        assert 0.9 <= params["scale"] <= 1.1 and max(abs(params["shift_x_px"]), abs(params["shift_y_px"])) <= 0.5


def test_d4_covers_the_group_and_mirrors_half_of_it():
    preset = create_preset("d4")
    views = [tuple(preset.recipe(v, SIZE, SIZE, v)[0]["params"].values()) for v in range(7)]
    assert sorted(views) == sorted(D4_VIEWS) and len(set(views)) == 7 and preset.max_variants == 7
    assert sum(recipe_mirrors(preset.recipe(v, SIZE, SIZE, v)) for v in range(7)) == 4
    # The first K variants alternate mirrored and turned views.
    assert [recipe_mirrors(preset.recipe(v, SIZE, SIZE, v)) for v in range(4)] == [True, False, True, False]
    # A non-square image only gets the views that keep its shape.
    image = torch.zeros((3, SIZE, SIZE + 4), dtype=torch.uint8)
    for v in range(7):
        recipe = preset.recipe(v, SIZE, SIZE + 4, v)
        assert recipe[0]["params"]["k"] % 2 == 0
        assert apply_recipes([image], [recipe])[0].shape == image.shape


# ----------------------------------------------------------------------------------------- labels, replay

def test_every_mirroring_preset_swaps_mirror_pair_labels(sim_dataset, tmp_path):
    """Every preset, K = 7: a row is mirrored exactly when its recipe mirrors the image, and a mirrored
    spiral takes its mirror pair's label; the presets registered as mirroring do mirror spirals."""
    config = AugmentConfig(k=7, presets=["astro", "paper", "rot90", "vflip"], mode="lazy")
    rows = augment_dataset(sim_dataset, tmp_path / "all", config, seed=0).filter(stage="augment").records()
    swaps = {"spiral_clockwise": "spiral_anticlockwise", "spiral_anticlockwise": "spiral_clockwise"}
    mirrored_spirals: dict[str, int] = {}
    for row in rows:
        params = json.loads(row["params"])
        assert params["mirrored"] == recipe_mirrors(params["recipe"])
        expected = swaps.get(params["parent_label"], params["parent_label"]) if params["mirrored"] else params["parent_label"]
        assert row["label"] == expected, row["id"]
        if params["mirrored"] and params["parent_label"] == "spiral_clockwise":
            mirrored_spirals[row["operation"]] = mirrored_spirals.get(row["operation"], 0) + 1
    mirroring = {name for name in config.presets if AUGMENT_REGISTRY.get(name).meta["mirrors"]}
    assert mirroring == {"d4", "hflip", "flip_color_jitter", "vflip"}
    assert set(mirrored_spirals) == mirroring


def test_rows_record_whether_they_are_exact_sky_symmetries(sim_dataset, tmp_path):
    """Only quarter turns, flips and D4 views are exact symmetries (combine keeps them outside α): every row
    of those presets says so, no row of a preset that resamples, blurs, adds noise or changes colour does."""
    config = AugmentConfig(k=3, presets=["astro", "paper", "rot90", "vflip"], mode="lazy")
    rows = augment_dataset(sim_dataset, tmp_path / "all", config, seed=0).filter(stage="augment").records()
    flags: dict[str, set[bool]] = {}
    for row in rows:
        flags.setdefault(row["operation"], set()).add(json.loads(row["params"])["exact_symmetry"])
    assert {name for name, seen in flags.items() if seen == {True}} == {"d4", "hflip", "rot90", "vflip"}
    assert all(seen == {False} for name, seen in flags.items() if name not in {"d4", "hflip", "rot90", "vflip"})


def test_d4_pixels_are_the_recorded_view_of_the_parent(sim_dataset, tmp_path):
    manifest = augment_dataset(sim_dataset, tmp_path / "d4", AugmentConfig(k=7, presets=["d4"], workers=1), seed=0)
    lookup = {r["id"]: r for r in manifest.records()}
    rows = [r for r in manifest.filter(stage="augment").records() if json.loads(r["params"])["parent_label"]
            == "spiral_clockwise"]
    assert len(rows) == 7 * len({json.loads(r["parent_ids"])[0] for r in rows})
    for row in rows:
        view = json.loads(row["params"])["recipe"][0]["params"]
        parent = load_rgb(manifest.resolve(lookup[json.loads(row["parent_ids"])[0]]["path"]))
        expected = np.rot90(parent[:, ::-1] if view["mirror"] else parent, view["k"])
        assert np.array_equal(load_rgb(manifest.resolve(row["path"])), expected)
        assert row["label"] == ("spiral_anticlockwise" if view["mirror"] else "spiral_clockwise")


def test_astro_set_replays_to_identical_bytes(sim_dataset, tmp_path):
    out = tmp_path / "astro"
    manifest = augment_dataset(sim_dataset, out, AugmentConfig(k=2, batch_size=5), seed=4)
    rows = manifest.filter(stage="augment").records()
    assert {r["operation"] for r in rows} == set(ASTRO)
    for row in rows:
        manifest.resolve(row["path"]).unlink()
    report = replay_dataset(out)
    assert report.ok and report.rendered == len(rows)
    # Recorded params (read back from the manifest's JSON) render the same pixels in any batch.
    images = [torch.from_numpy(load_rgb(manifest.resolve(r["path"]))).permute(2, 0, 1) for r in rows[:12]]
    parents = {r["id"]: r for r in manifest.records()}
    sources = [torch.from_numpy(load_rgb(manifest.resolve(parents[json.loads(r["parent_ids"])[0]]["path"])))
               .permute(2, 0, 1) for r in rows[:12]]
    recipes = [json.loads(r["params"])["recipe"] for r in rows[:12]]
    for rendered, single, expected in zip(apply_recipes(sources, recipes), apply_recipes(sources[::-1], recipes[::-1])[::-1],
                                          images):
        assert torch.equal(rendered, single) and torch.equal(rendered, expected)
