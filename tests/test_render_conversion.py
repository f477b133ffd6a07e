"""The float <-> uint8 conversion of :func:`apply_recipes` gives exactly the bytes of the original code: uint8 -> float
copy then ``div_(255)``; ``clamp_(0, 1).mul_(255).round_()`` then a per-channel unsafe cast into channels-last
uint8. Those two conversions are frozen below as the reference, for every preset, several batch sizes and edge values."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest
import torch

from flare.augment import apply_recipes, create_preset, list_presets
from flare.augment import base
from flare.augment.base import _to_interleaved_uint8, _to_unit_float

torch.set_num_threads(1)


def _reference_to_float(images: Sequence[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    """The original input conversion, verbatim."""
    batch = torch.empty((len(images), *shape), dtype=torch.float32)
    for position, image in enumerate(images):
        batch[position].copy_(image)
    batch.div_(255.0)
    return batch


def _reference_to_uint8(batch: torch.Tensor) -> np.ndarray:
    """The original output conversion, verbatim: (B, C, H, W) float -> (B, H, W, C) uint8."""
    planes = batch.clamp_(0.0, 1.0).mul_(255.0).round_().numpy()
    interleaved = np.empty((batch.shape[0], batch.shape[2], batch.shape[3], batch.shape[1]), dtype=np.uint8)
    with np.errstate(invalid="ignore"):  # NaN: the cast warns (and gives 0)
        for channel in range(batch.shape[1]):
            np.copyto(interleaved[..., channel], planes[:, channel], casting="unsafe")
    return interleaved


def _reference_apply_recipes(images: Sequence[torch.Tensor], recipes: Sequence[Sequence[dict[str, Any]]]) -> list[torch.Tensor]:
    """``apply_recipes`` with its two conversions swapped back for the original code above: the grouping and
    the transforms are shared, so any difference in bytes is the conversions'."""

    def old_to_unit_float(batch: torch.Tensor, batch_images: Sequence[torch.Tensor]) -> None:
        batch.copy_(_reference_to_float(batch_images, tuple(batch.shape[1:])))

    def old_to_interleaved_uint8(batch: torch.Tensor, interleaved: np.ndarray) -> None:
        interleaved[...] = _reference_to_uint8(batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "_to_unit_float", old_to_unit_float)
        patch.setattr(base, "_to_interleaved_uint8", old_to_interleaved_uint8)
        return base.apply_recipes(images, recipes)


def _random_images(count: int, height: int, width: int, seed: int) -> list[torch.Tensor]:
    """Half full-range noise, half a smooth blob with mild noise (so crops and jitter see structure too)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = []
    for i in range(count):
        if i % 2:
            blob = np.exp(-((xx - width * rng.uniform(0.3, 0.7)) ** 2 + (yy - height * 0.5) ** 2) / (2 * (height / 5) ** 2))
            image = blob[None] * rng.uniform(0.3, 1.0, (3, 1, 1)) * 240 + rng.uniform(0, 20, (3, height, width))
            out.append(torch.from_numpy(image.clip(0, 255).astype(np.uint8)))
        else:
            out.append(torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8)))
    return out


def _edge_floats() -> torch.Tensor:
    """Every k/255 and (k + 0.5)/255 with four float32 neighbours each side (the values whose product with 255
    lands exactly on .5 among them), 0, 1, -0.0, subnormals, out-of-range, huge, ±inf and NaN of both signs."""
    centres = np.concatenate([np.arange(256) / 255.0, (np.arange(256) + 0.5) / 255.0]).astype(np.float32)
    values = [centres]
    up = down = centres
    for _ in range(4):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
        values += [up, down]
    special = np.array([0.0, -0.0, 1.0, 1e-45, -1e-45, 1e-38, -0.001, -0.5, -1.0, 1.001, 2.0, 1e30, -1e30,
                        3.4e38, -3.4e38, np.inf, -np.inf, np.nan, -np.nan], dtype=np.float32)
    flat = np.concatenate(values + [special]).astype(np.float32)
    # Negative NaN as x86 arithmetic makes it (0/0), next to the positive one float('nan') gives.
    flat = np.concatenate([flat, (torch.zeros(1) / torch.zeros(1)).numpy()])
    return torch.from_numpy(flat)


def test_edge_values_include_exact_halves_and_nan():
    edge = _edge_floats()
    scaled = (edge * 255.0).numpy()
    scaled = scaled[np.isfinite(scaled)]
    exact_halves = scaled - np.floor(scaled) == 0.5
    assert exact_halves.sum() >= 100  # ties to even are exercised, not just near misses
    assert np.isnan(edge.numpy()).sum() >= 3 and np.signbit(edge.numpy()[np.isnan(edge.numpy())]).any()


@pytest.mark.parametrize("chunk_values", [1, 7, 1 << 17])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_output_conversion_matches_reference_on_edge_values(batch_size, chunk_values, monkeypatch):
    monkeypatch.setattr(base, "_CHUNK_VALUES", chunk_values)
    edge = _edge_floats()
    rng = np.random.default_rng(batch_size)
    height, width = 9, 11
    per_batch = batch_size * 3 * height * width
    # Every edge value at several positions (channels and images differ), the rest random in [-0.2, 1.2].
    for offset in range(0, len(edge), per_batch // 2):
        values = torch.from_numpy(rng.uniform(-0.2, 1.2, per_batch).astype(np.float32))
        part = edge[offset:offset + per_batch // 2]
        slots = torch.from_numpy(rng.permutation(per_batch)[:len(part)])
        values[slots] = part
        batch = values.reshape(batch_size, 3, height, width)
        expected = _reference_to_uint8(batch.clone())
        got = np.empty_like(expected)
        _to_interleaved_uint8(batch.clone(), got)
        assert np.array_equal(got, expected)


def test_output_conversion_matches_reference_on_random_floats_and_layouts():
    rng = np.random.default_rng(1)
    for shape in [(4, 3, 64, 64), (2, 3, 1, 5), (5, 3, 128, 129)]:
        batch = torch.from_numpy(rng.uniform(-0.3, 1.3, shape).astype(np.float32))
        # A batch that is not contiguous (a transform may hand one back) converts the same.
        transposed = batch.transpose(2, 3).contiguous().transpose(2, 3)
        expected = _reference_to_uint8(batch.clone())
        got = np.empty_like(expected)
        _to_interleaved_uint8(transposed, got)
        assert np.array_equal(got, expected)


def test_input_conversion_matches_reference_for_every_byte():
    # Every uint8 value, in contiguous and permuted (an (H, W, 3) array's view) images: bit-identical floats.
    values = torch.arange(256, dtype=torch.uint8).repeat(3 * 16 * 16 // 256).reshape(3, 16, 16)
    images = [values, values.flip(0), torch.from_numpy(values.permute(1, 2, 0).contiguous().numpy()).permute(2, 0, 1)]
    expected = _reference_to_float(images, (3, 16, 16))
    got = torch.empty_like(expected)
    _to_unit_float(got, images)
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.parametrize("batch_size", [1, 4, 9])
def test_apply_recipes_matches_reference_for_every_preset(name, batch_size):
    preset = create_preset(name)
    for height, width in [(32, 32), (40, 56)]:
        images = _random_images(batch_size, height, width, seed=batch_size * 7 + height)
        recipes = [preset.recipe(seed=300 + i, height_px=height, width_px=width, variant=i) for i in range(batch_size)]
        got = apply_recipes(images, recipes)
        expected = _reference_apply_recipes(images, recipes)
        for a, b in zip(got, expected):
            assert a.dtype == torch.uint8 and a.stride() == b.stride()
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", list_presets())
def test_apply_recipes_matches_reference_across_chunks_and_views(name):
    # 128 px: two images per conversion chunk, so five images end on a partial chunk; inputs are permuted
    # views of (H, W, 3) arrays, as ``render_rows`` passes them.
    preset = create_preset(name)
    images = [torch.from_numpy(t.permute(1, 2, 0).contiguous().numpy()).permute(2, 0, 1)
              for t in _random_images(5, 128, 128, seed=11)]
    recipes = [preset.recipe(seed=500 + i, height_px=128, width_px=128, variant=i) for i in range(5)]
    got = apply_recipes(images, recipes)
    expected = _reference_apply_recipes(images, recipes)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
