"""Geometric transforms: flips, quarter turns, the D4 views, small shifts and scale changes, random resized crop
and random perspective (torchvision semantics).

Resampling is bilinear at pixel centres: a separable gather-and-blend resize for crops, ``F.grid_sample`` for
warps (its CPU kernel computes every output pixel with the same vector code, whatever the batch or threads),
so the same parameters give the same pixels whatever the batch or thread count. Flips, quarter turns and the
D4 views only move pixels and work on uint8 directly. Which ones mirror the image (and so swap mirror-pair
labels, e.g. clockwise ↔ anticlockwise spirals): horizontal and vertical flips do, and so do the four mirrored
D4 views; a quarter turn does not (a rotation keeps a spiral's sense of winding); shifts, scale changes, crops
and mild perspective warps do not.

The geometric presets are registered at the end of this module (``hflip``, ``vflip``, ``rot90``, ``d4``,
``shift_scale``, ``resized_crop``, ``perspective``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flare.augment.base import AugmentTransform, Preset
from flare.augment.registry import register_preset
from flare.core.errors import ConfigError

__all__ = ["HorizontalFlip", "VerticalFlip", "Rot90", "DihedralView", "ShiftScale", "RandomResizedCrop",
           "RandomPerspective", "perspective_matrix", "D4_VIEWS"]


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augment.{name}.p: {p} is not within 0..1")


def _flip_chosen(images: torch.Tensor, params: Sequence[dict[str, Any]], dim: int) -> torch.Tensor:
    chosen = [i for i, p in enumerate(params) if p["flip"]]
    if len(chosen) == len(params):
        return images.flip(dim)
    if chosen:
        images = images.clone()
        images[chosen] = images[chosen].flip(dim)
    return images


class HorizontalFlip(AugmentTransform):
    """Mirror left ↔ right with probability ``p`` (default 1: every variant is flipped)."""

    name = "hflip"
    pixel_exact = True
    exact_symmetry = True

    def __init__(self, p: float = 1.0):
        _check_probability(self.name, p)
        self.p = float(p)

    @property
    def max_outcomes(self) -> int | None:  # type: ignore[override]
        return 1 if self.p in (0.0, 1.0) else None

    def sample(self, rng, height_px, width_px, variant):
        return {"flip": bool(rng.random() < self.p)}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        return _flip_chosen(images, params, -1)

    @staticmethod
    def mirrors(params: dict[str, Any]) -> bool:
        return bool(params["flip"])

    @staticmethod
    def is_identity(params: dict[str, Any]) -> bool:
        return not params["flip"]


class VerticalFlip(HorizontalFlip):
    """Mirror top ↔ bottom with probability ``p`` (default 1)."""

    name = "vflip"

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        return _flip_chosen(images, params, -2)


class Rot90(AugmentTransform):
    """Turn by k × 90° anticlockwise; variant v gets k = v mod 3 + 1, so three variants cover all turns.

    A rotation does not mirror: a spiral keeps its label. Non-square images only get k = 2 (shape kept).
    """

    name = "rot90"
    max_outcomes = 3
    pixel_exact = True
    exact_symmetry = True

    def __init__(self) -> None:
        pass

    def sample(self, rng, height_px, width_px, variant):
        return {"k": int(variant % 3 + 1) if height_px == width_px else 2}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = images.clone()
        for k in {int(p["k"]) for p in params}:
            chosen = [i for i, p in enumerate(params) if int(p["k"]) == k]
            out[chosen] = torch.rot90(images[chosen], k, dims=(-2, -1))
        return out


# The seven views of the square's symmetry group D4 other than the identity, as (quarter turns k, mirrored):
# the image is mirrored left ↔ right first, then turned k × 90° anticlockwise ((2, True) is a vertical flip).
# Mirrored and unmirrored views alternate, so any K ≤ 7 variants keep both kinds.
D4_VIEWS: tuple[tuple[int, bool], ...] = ((0, True), (1, False), (2, True), (3, False), (1, True), (2, False),
                                          (3, True))
# The views that keep a non-square image's shape (k even).
_D4_SHAPE_KEEPING = tuple(view for view in D4_VIEWS if view[0] % 2 == 0)


class DihedralView(AugmentTransform):
    """One of the 7 non-identity views of D4 (quarter turns × mirror): exact symmetries of the sky.

    Variant v gets view ``D4_VIEWS[v mod 7]``, so 7 variants cover the group. A mirrored view swaps mirror-pair
    labels; a turn alone keeps them. Non-square images only get the 3 views that keep their shape.
    Params: ``k`` (quarter turns anticlockwise) and ``mirror`` (left ↔ right mirror, applied first).
    """

    name = "d4"
    max_outcomes = len(D4_VIEWS)
    pixel_exact = True
    exact_symmetry = True

    def __init__(self) -> None:
        pass

    def sample(self, rng, height_px, width_px, variant):
        views = D4_VIEWS if height_px == width_px else _D4_SHAPE_KEEPING
        k, mirror = views[variant % len(views)]
        return {"k": int(k), "mirror": bool(mirror)}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        out = torch.empty_like(images)
        views = [(int(p["k"]) % 4, bool(p["mirror"])) for p in params]
        for k, mirror in sorted(set(views)):
            chosen = [i for i, view in enumerate(views) if view == (k, mirror)]
            picked = images[chosen]
            out[chosen] = torch.rot90(picked.flip(-1) if mirror else picked, k, dims=(-2, -1))
        return out

    @staticmethod
    def mirrors(params: dict[str, Any]) -> bool:
        return bool(params["mirror"])

    @staticmethod
    def is_identity(params: dict[str, Any]) -> bool:
        return int(params["k"]) % 4 == 0 and not params["mirror"]


def _shift_scale_taps(size: int, scale: float, shift_px: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear taps (as :func:`_linear_taps`) of a scale about the image centre then a shift, along one axis.

    Output pixel centre i + 0.5 shows the source point c + (i + 0.5 − c) / scale − shift (c = size / 2).
    Points beyond the edge are reflected about the edge pixels' centres (the sky continues; no black band).
    """
    centre = size / 2.0
    position = (torch.arange(size, dtype=torch.float64) + 0.5 - centre) / scale + centre - 0.5 - shift_px
    last = size - 1
    if last > 0:
        position = torch.remainder(position, 2.0 * last)
        position = torch.where(position > last, 2.0 * last - position, position)
    else:
        position = torch.zeros_like(position)
    first = torch.floor(position).clamp(max=max(last - 1, 0))
    weight = (position - first).to(torch.float32).reshape(-1, 1)
    first = first.to(torch.int64)
    return first, (first + 1).clamp(max=last), 1.0 - weight, weight


class ShiftScale(AugmentTransform):
    """A small scale change about the centre and a sub-pixel shift, resampled bilinearly at the input size.

    What the same galaxy looks like at a slightly other distance and pointing. The scale is drawn from
    ``scale`` (>1 enlarges), each shift from ``[−max_shift_px, max_shift_px]``. Params: ``scale``,
    ``shift_x_px`` (positive: content moves right), ``shift_y_px`` (positive: down).
    """

    name = "shift_scale"

    def __init__(self, scale: Sequence[float] = (0.9, 1.1), max_shift_px: float = 0.5):
        if not 0 < scale[0] <= scale[1]:
            raise ConfigError(f"augment.shift_scale.scale: {list(scale)} must satisfy 0 < low <= high")
        if max_shift_px < 0:
            raise ConfigError(f"augment.shift_scale.max_shift_px: {max_shift_px} must be >= 0")
        self.scale = [float(scale[0]), float(scale[1])]
        self.max_shift_px = float(max_shift_px)

    def sample(self, rng, height_px, width_px, variant):
        return {"scale": float(rng.uniform(*self.scale)),
                "shift_x_px": float(rng.uniform(-self.max_shift_px, self.max_shift_px)),
                "shift_y_px": float(rng.uniform(-self.max_shift_px, self.max_shift_px))}

    @staticmethod
    def is_identity(params: dict[str, Any]) -> bool:
        return params["scale"] == 1.0 and params["shift_x_px"] == 0.0 and params["shift_y_px"] == 0.0

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        height, width = images.shape[-2:]
        out = torch.empty_like(images)
        for i, p in enumerate(params):
            out[i] = _resample_separable(images[i], _shift_scale_taps(height, p["scale"], p["shift_y_px"]),
                                         _shift_scale_taps(width, p["scale"], p["shift_x_px"]))
        return out


class RandomResizedCrop(AugmentTransform):
    """Crop a random area fraction in ``scale`` with aspect ratio in ``ratio``, resized back to the input size.

    Sampling follows ``torchvision.transforms.RandomResizedCrop.get_params`` (10 tries, then a centre crop).
    Params: ``top``, ``left``, ``height``, ``width`` of the crop in pixels.
    """

    name = "resized_crop"

    def __init__(self, scale: Sequence[float] = (0.75, 0.90), ratio: Sequence[float] = (3 / 4, 4 / 3)):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ConfigError(f"augment.resized_crop.scale: {list(scale)} must satisfy 0 < low <= high <= 1")
        self.scale = [float(scale[0]), float(scale[1])]
        self.ratio = [float(ratio[0]), float(ratio[1])]

    def sample(self, rng, height_px, width_px, variant):
        area = height_px * width_px
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width_px and 0 < h <= height_px:
                top = int(rng.integers(0, height_px - h + 1))
                left = int(rng.integers(0, width_px - w + 1))
                return {"top": top, "left": left, "height": h, "width": w}
        side = int(round(math.sqrt(area * self.scale[1])))
        h, w = min(side, height_px), min(side, width_px)
        return {"top": (height_px - h) // 2, "left": (width_px - w) // 2, "height": h, "width": w}

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        height, width = images.shape[-2:]
        out = torch.empty_like(images)
        for i, p in enumerate(params):
            crop = images[i, :, p["top"]:p["top"] + p["height"], p["left"]:p["left"] + p["width"]]
            out[i] = _resize_bilinear(crop, height, width)
        return out


@functools.lru_cache(maxsize=4096)
def _linear_taps(source_size: int, target_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """First and second source index, and their weights, of each target pixel (pixel centres, edge replicated)
    as ``(target_size, 1)`` columns. Cached: a dataset has few crop sizes; the tensors are never written."""
    position = (torch.arange(target_size, dtype=torch.float64) + 0.5) * (source_size / target_size) - 0.5
    position = position.clamp(0, source_size - 1)
    first = torch.floor(position)
    weight = (position - first).to(torch.float32).reshape(-1, 1)
    first = first.to(torch.int64)
    return first, (first + 1).clamp(max=source_size - 1), 1.0 - weight, weight


def _resize_bilinear(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Separable bilinear resize of ``(C, h, w)``, as ``F.interpolate(align_corners=False)`` without antialias."""
    return _resample_separable(image, _linear_taps(image.shape[-2], height), _linear_taps(image.shape[-1], width))


def _resample_separable(image: torch.Tensor, vertical: tuple[torch.Tensor, ...], horizontal: tuple[torch.Tensor, ...]
                        ) -> torch.Tensor:
    """Bilinear resampling of ``(C, h, w)`` with per-axis taps ``(first, second, first weight, second weight)``.

    Written with gathers, multiplications and additions only: ``F.interpolate``'s CPU kernel changes its last
    bits with the thread count, these operations do not. Both passes gather whole rows (the horizontal one
    on the transposed image): gathering columns is about 15× slower on a CPU.
    """
    top, bottom, top_weight, bottom_weight = vertical
    rows = image.index_select(-2, top).mul_(top_weight).add_(image.index_select(-2, bottom).mul_(bottom_weight))
    columns = rows.transpose(-1, -2).contiguous()  # (C, w, height)
    left, right, left_weight, right_weight = horizontal
    out = columns.index_select(-2, left).mul_(left_weight).add_(columns.index_select(-2, right).mul_(right_weight))
    return out.transpose(-1, -2)


def perspective_matrix(startpoints: Sequence[Sequence[float]], endpoints: Sequence[Sequence[float]]) -> np.ndarray:
    """3×3 homography (float64) mapping output coordinates (``endpoints``) to input coordinates (``startpoints``)."""
    rows, rhs = [], []
    for (sx, sy), (ex, ey) in zip(startpoints, endpoints):
        rows.append([ex, ey, 1, 0, 0, 0, -sx * ex, -sx * ey])
        rows.append([0, 0, 0, ex, ey, 1, -sy * ex, -sy * ey])
        rhs += [sx, sy]
    coefficients = np.linalg.solve(np.asarray(rows, dtype=np.float64), np.asarray(rhs, dtype=np.float64))
    return np.append(coefficients, 1.0).reshape(3, 3)


class RandomPerspective(AugmentTransform):
    """With probability ``p``, move each corner inwards by up to ``distortion_scale`` × half the side.

    Sampling follows ``torchvision.transforms.RandomPerspective.get_params``; the uncovered area is black.
    Params: ``apply`` (bool), ``startpoints`` and ``endpoints`` (four ``[x, y]`` corners, pixels).
    """

    name = "perspective"

    def __init__(self, distortion_scale: float = 0.2, p: float = 0.5):
        _check_probability(self.name, p)
        if not 0 <= distortion_scale <= 1:
            raise ConfigError(f"augment.perspective.distortion_scale: {distortion_scale} is not within 0..1")
        self.distortion_scale = float(distortion_scale)
        self.p = float(p)

    def sample(self, rng, height_px, width_px, variant):
        apply = bool(rng.random() < self.p)
        half_h, half_w = height_px // 2, width_px // 2
        bound_h = int(self.distortion_scale * half_h) + 1
        bound_w = int(self.distortion_scale * half_w) + 1

        def draw(low: int, high: int) -> int:
            return int(rng.integers(low, high))

        endpoints = [[draw(0, bound_w), draw(0, bound_h)],
                     [draw(width_px - bound_w, width_px), draw(0, bound_h)],
                     [draw(width_px - bound_w, width_px), draw(height_px - bound_h, height_px)],
                     [draw(0, bound_w), draw(height_px - bound_h, height_px)]]
        startpoints = [[0, 0], [width_px - 1, 0], [width_px - 1, height_px - 1], [0, height_px - 1]]
        return {"apply": apply, "startpoints": startpoints, "endpoints": endpoints}

    @staticmethod
    def is_identity(params: dict[str, Any]) -> bool:
        return not params["apply"]

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        chosen = [i for i, p in enumerate(params) if p["apply"]]
        if not chosen:
            return images
        _, _, height, width = images.shape
        # torchvision's convention: the homography maps pixel centres (x + 0.5, y + 0.5) of the output to
        # points of the input in the same edge-based coordinates, which grid_sample wants as 2 s / size − 1.
        xs = torch.arange(width, dtype=torch.float32).add_(0.5)
        ys = torch.arange(height, dtype=torch.float32).add_(0.5).reshape(-1, 1)
        grid = torch.empty((len(chosen), height, width, 2), dtype=torch.float32)
        for position, i in enumerate(chosen):
            m = perspective_matrix(params[i]["startpoints"], params[i]["endpoints"]).astype(np.float32).tolist()
            # Each term of the homography is separable: a row of x terms plus a column of y terms.
            denominator = (xs * m[2][0]) + (ys * m[2][1] + m[2][2])
            for axis, size in ((0, width), (1, height)):
                numerator = (xs * m[axis][0]) + (ys * m[axis][1] + m[axis][2])
                grid[position, :, :, axis] = numerator.div_(denominator).mul_(2.0 / size).sub_(1.0)
        # Black outside, like torchvision.
        source = images if len(chosen) == len(params) else images[chosen]
        warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if len(chosen) == len(params):
            return warped
        out = images.clone()
        out[chosen] = warped
        return out


# ---------------------------------------------------------------------------------------------- presets

@register_preset("hflip", mirrors=True)
def hflip() -> Preset:
    """Horizontal flip (always; one distinct variant). Swaps mirror-pair labels."""
    return Preset("hflip", (HorizontalFlip(p=1.0),))


@register_preset("resized_crop", mirrors=False)
def resized_crop(scale_low: float = 0.75, scale_high: float = 0.90) -> Preset:
    """Random resized crop, area scale 0.75–0.90, aspect 3/4–4/3, back to the input size."""
    return Preset("resized_crop", (RandomResizedCrop(scale=(scale_low, scale_high)),))


@register_preset("perspective", mirrors=False)
def perspective(distortion_scale: float = 0.2, p: float = 0.5) -> Preset:
    """Random perspective, distortion 0.2, p 0.5 (black fill)."""
    return Preset("perspective", (RandomPerspective(distortion_scale=distortion_scale, p=p),))


@register_preset("rot90", mirrors=False)
def rot90() -> Preset:
    """Quarter turns k = 1, 2, 3 (three distinct variants). Labels are kept: a rotation does not mirror."""
    return Preset("rot90", (Rot90(),))


@register_preset("vflip", mirrors=True)
def vflip() -> Preset:
    """Vertical flip (always; one distinct variant). Swaps mirror-pair labels."""
    return Preset("vflip", (VerticalFlip(p=1.0),))


@register_preset("d4", mirrors=True)
def d4() -> Preset:
    """The 7 non-identity D4 views (quarter turns × mirror), exact sky symmetries. Mirrored views swap labels."""
    return Preset("d4", (DihedralView(),))


@register_preset("shift_scale", mirrors=False)
def shift_scale(scale_low: float = 0.9, scale_high: float = 1.1, max_shift_px: float = 0.5) -> Preset:
    """Scale 0.9–1.1 about the centre and a shift of up to ±0.5 px per axis (bilinear, edges reflected)."""
    return Preset("shift_scale", (ShiftScale(scale=(scale_low, scale_high), max_shift_px=max_shift_px),))
