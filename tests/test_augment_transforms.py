"""Augmentation transforms: sample-then-apply, batch-independent pixels, serialisation, torchvision semantics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flare.augment import apply_recipes, create_preset, list_presets, recipe_mirrors
from flare.augment.base import transform_from_dict
from flare.augment.geometric import RandomPerspective, RandomResizedCrop
from flare.augment.photometric import ColorJitter, shift_hue
from flare.augment.registry import ORIGINAL_PRESETS
from flare.core.errors import ConfigError, ManifestError

torch.set_num_threads(1)


def _images(count: int = 5, size: int = 32) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    # A smooth blob plus noise, so that every transform visibly changes something.
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((xx - size * 0.4) ** 2 + (yy - size * 0.6) ** 2) / (2 * (size / 6) ** 2))
    out = []
    for _ in range(count):
        colour = rng.uniform(0.3, 1.0, 3)
        image = blob[None] * colour[:, None, None] * 220 + rng.uniform(0, 30, (3, size, size))
        out.append(torch.from_numpy(image.clip(0, 255).astype(np.uint8)))
    return out


def test_registry_lists_original_and_astronomy_presets():
    names = list_presets()
    for name in ORIGINAL_PRESETS + ["rot90", "vflip", "noise", "psf_blur"]:
        assert name in names
    from flare.cli.backends import load_all_registries

    assert "hflip" in load_all_registries()["augment"].list()


@pytest.mark.parametrize("name", list_presets())
def test_preset_contract_same_seed_same_bytes_batch_independent(name):
    preset = create_preset(name)
    images = _images()
    recipes = [preset.recipe(seed=100 + i, height_px=32, width_px=32, variant=i) for i in range(len(images))]
    again = [preset.recipe(seed=100 + i, height_px=32, width_px=32, variant=i) for i in range(len(images))]
    assert recipes == again
    # Parameters survive a JSON round trip (that is what the manifest stores).
    assert json.loads(json.dumps(recipes)) == recipes
    batched = apply_recipes(images, recipes)
    singles = [apply_recipes([image], [recipe])[0] for image, recipe in zip(images, recipes)]
    reversed_batch = apply_recipes(images[::-1], recipes[::-1])[::-1]
    for a, b, c, original in zip(batched, singles, reversed_batch, images):
        assert a.dtype == torch.uint8 and a.shape == original.shape
        assert torch.equal(a, b) and torch.equal(a, c)
    # Something changed for at least one image (perspective has p = 0.5 per variant).
    assert any(not torch.equal(a, o) for a, o in zip(batched, images))


def test_transform_round_trip_from_dict():
    preset = create_preset("flip_color_jitter")
    for transform in preset.transforms:
        rebuilt = transform_from_dict(transform.to_dict())
        assert rebuilt.to_dict() == transform.to_dict()
    with pytest.raises(ConfigError):
        transform_from_dict({"name": "no-such-transform"})
    with pytest.raises(ManifestError):
        apply_recipes(_images(1), [[{"name": "no-such-transform", "params": {}}]])


def test_mirroring_rules():
    image = _images(1)[0]
    flip = create_preset("hflip").recipe(0, 32, 32, 0)
    assert recipe_mirrors(flip)
    assert torch.equal(apply_recipes([image], [flip])[0], image.flip(-1))
    assert recipe_mirrors(create_preset("vflip").recipe(0, 32, 32, 0))
    for name in ("rot90", "resized_crop", "perspective", "color_jitter", "noise", "psf_blur"):
        assert not recipe_mirrors(create_preset(name).recipe(0, 32, 32, 0)), name
    rot = create_preset("rot90")
    ks = [rot.recipe(s, 32, 32, v)[0]["params"]["k"] for v, s in enumerate((5, 6, 7))]
    assert sorted(ks) == [1, 2, 3] and rot.max_variants == 3
    assert create_preset("hflip").max_variants == 1 and create_preset("color_jitter").max_variants is None
    # flip + jitter flips with p = 0.5: the recorded flag decides the mirroring.
    flags = {recipe_mirrors(create_preset("flip_color_jitter").recipe(s, 32, 32, 0)) for s in range(20)}
    assert flags == {True, False}


def test_color_jitter_matches_torchvision_functional():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    x = torch.stack(_images(2)).float() / 255
    params = {"order": [0, 1, 2, 3], "brightness": 1.3, "contrast": 0.8, "saturation": 1.2, "hue": 0.15}
    mine = ColorJitter.apply(x, [params, params])
    ref = tvf.adjust_hue(tvf.adjust_saturation(tvf.adjust_contrast(tvf.adjust_brightness(x, 1.3), 0.8), 1.2), 0.15)
    assert (mine - ref).abs().max().item() < 1e-3


def test_hue_shift_matches_torchvision_on_ties_greys_and_every_channel_order():
    """The maximum channel is chosen arithmetically (sign + lerp); ties, greys and black must follow
    torchvision's rule (R before G before B) across the whole colour wheel."""
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    levels = [0, 1, 37, 128, 200, 254, 255]
    colours = torch.tensor([[r, g, b] for r in levels for g in levels for b in levels], dtype=torch.float32) / 255
    image = colours.T.reshape(1, 3, 1, -1)
    for shift in (-0.5, -0.31, -0.02, 0.0, 0.125, 0.4, 0.5):
        mine = shift_hue(image, torch.tensor(shift).reshape(1, 1, 1, 1))
        ref = tvf.adjust_hue(image, shift)
        assert (mine - ref).abs().max().item() < 1e-5, shift


def test_resized_crop_matches_torchvision_functional():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    x = torch.stack(_images(1)).float() / 255
    params = RandomResizedCrop().sample(np.random.default_rng(3), 32, 32, 0)
    assert 0.70 * 32 * 32 <= params["height"] * params["width"] <= 0.95 * 32 * 32
    mine = RandomResizedCrop.apply(x, [params])
    ref = tvf.resized_crop(x, params["top"], params["left"], params["height"], params["width"], [32, 32],
                           antialias=False)
    assert (mine - ref).abs().max().item() < 1e-3


def test_perspective_matches_torchvision_functional():
    """Same homography convention as torchvision (pixel centres at +0.5); zeros outside (``fill=None``)."""
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    from torchvision.transforms import InterpolationMode

    x = torch.stack(_images(2, size=40)).float()[..., :36] / 255  # not square: x and y must not be swapped
    for seed in range(3):
        params = RandomPerspective(distortion_scale=0.3, p=1.0).sample(np.random.default_rng(seed), 40, 36, 0)
        mine = RandomPerspective.apply(x, [params, params])
        ref = tvf.perspective(x, params["startpoints"], params["endpoints"],
                              interpolation=InterpolationMode.BILINEAR, fill=None)
        assert (mine - ref).abs().max().item() < 1e-4, seed


def test_noise_and_blur_are_photometric_only():
    image = _images(1)[0]
    noisy = apply_recipes([image], [create_preset("noise").recipe(1, 32, 32, 0)])[0]
    blurred = apply_recipes([image], [create_preset("psf_blur").recipe(1, 32, 32, 0)])[0]
    assert not torch.equal(noisy, image) and not torch.equal(blurred, image)
    # A blur lowers the pixel-to-pixel variation; the mean level barely moves.
    assert blurred.float().diff(dim=-1).abs().mean() < image.float().diff(dim=-1).abs().mean()
    assert abs(blurred.float().mean() - image.float().mean()) < 2.0


def test_pixels_do_not_depend_on_thread_count():
    """Odd sizes put pixels in the vector loops' scalar tails, where a thread split could change last bits."""
    rng = np.random.default_rng(1)
    images = [torch.from_numpy(rng.integers(0, 255, (3, 197, 201), dtype=np.uint8)) for _ in range(3)]
    recipes = {name: [create_preset(name).recipe(s, 197, 201, s) for s in range(3)] for name in list_presets()}
    previous = torch.get_num_threads()
    try:
        rendered = {}
        for threads in (1, 3):
            torch.set_num_threads(threads)
            rendered[threads] = {name: apply_recipes(images, r) for name, r in recipes.items()}
    finally:
        torch.set_num_threads(previous)
    for name in recipes:
        assert all(torch.equal(a, b) for a, b in zip(rendered[1][name], rendered[3][name])), name
