"""Augmentation transforms that sample their parameters, then apply them as a pure function (kornia's pattern).

A transform has two halves:

* ``sample(rng, height_px, width_px, variant) -> dict``: draws plain-JSON parameters from a NumPy generator;
* ``apply(images, params_list) -> images``: a *static* pure function of float32 ``(B, 3, H, W)`` images in
  [0, 1] and one parameter dict per image. It never draws random numbers, so the manifest's recorded
  parameters are all that replay and lazy loading need.

A :class:`Preset` is a named sequence of transforms. Its *recipe* for one variant is a JSON list of
``{"name", "options", "params"}`` steps; :func:`apply_recipes` renders any batch of recipes, grouping images
whose recipes share the same steps so that each step runs batched.

Pixels are a pure function of (image, params) whatever the batch or thread count: every step uses only
element-wise IEEE operations (no fused kernels, no convolutions or reductions whose summation order could
depend on batching); the few reductions (image means, percentiles) run per image in NumPy float64.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from flare.core.errors import ConfigError, ManifestError

__all__ = ["AugmentTransform", "Preset", "TRANSFORMS", "transform_from_dict", "apply_recipes",
           "recipe_mirrors"]

# Transform classes by name, filled by ``__init_subclass__`` (albumentations' SERIALIZABLE_REGISTRY idea).
TRANSFORMS: dict[str, type["AugmentTransform"]] = {}

# float32 1.5 * 2**23: for 0 <= v <= 255, v + this lands in [2**23, 2**24), where float32 spacing is 1, so the
# addition rounds v half to even (as ``round_``) and the integer is the low byte of the sum's bits.
_ROUNDING_MAGIC = 12582912.0
_LOW_BYTE = 0 if sys.byteorder == "little" else 3
# Values per conversion chunk: ~0.5 MB of float32 stays in L2 across the passes (one 192 px image).
_CHUNK_VALUES = 1 << 17


class AugmentTransform:
    """Base class: set ``name``; implement ``sample`` and the static ``apply``.

    Attributes:
        name: stable snake_case name written to the manifest.
        max_outcomes: number of distinct outcomes when deterministic (a flip has 1), else ``None``.
    """

    name: ClassVar[str] = ""
    max_outcomes: int | None = None  # a class attribute or a property
    pixel_exact: ClassVar[bool] = False  # True: only moves pixels (works on uint8, no float round trip)
    # True: an exact symmetry of the sky (an element of D4: a galaxy seen this way is as real as the original,
    # mirror pairs swapped); rows made only of such steps record ``params.exact_symmetry``
    exact_symmetry: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            TRANSFORMS[cls.name] = cls

    def options(self) -> dict[str, Any]:
        """Constructor arguments (serialisable); ``type(self)(**options)`` rebuilds the transform."""
        return dict(vars(self))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options()}

    def sample(self, rng: np.random.Generator, height_px: int, width_px: int, variant: int) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def apply(images: torch.Tensor, params: Sequence[dict[str, Any]]) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def mirrors(params: dict[str, Any]) -> bool:
        """Whether this step, with these parameters, mirrors the image (reverses a spiral's chirality)."""
        return False

    @staticmethod
    def is_identity(params: dict[str, Any]) -> bool:
        """Whether this step, with these parameters, leaves every pixel as it is (a flip or warp drawn not to
        happen); :func:`apply_recipes` then skips it, so a no-op recipe costs a copy, not a float round trip."""
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"


def transform_from_dict(data: dict[str, Any]) -> AugmentTransform:
    try:
        cls = TRANSFORMS[data["name"]]
    except KeyError:
        raise ConfigError(f"augment: unknown transform {data.get('name')!r}; one of {', '.join(sorted(TRANSFORMS))}") from None
    return cls(**data.get("options", {}))


@dataclass(frozen=True)
class Preset:
    """A named sequence of transforms; one call to :meth:`recipe` describes one augmented variant."""

    name: str
    transforms: tuple[AugmentTransform, ...]
    description: str = ""

    @property
    def max_variants(self) -> int | None:
        """Distinct outcomes of a deterministic preset (hflip: 1, rot90: 3); ``None`` when random."""
        counts = [t.max_outcomes for t in self.transforms]
        if any(c is None for c in counts):
            return None
        return int(np.prod(counts)) if counts else 1

    def recipe(self, seed: int, height_px: int, width_px: int, variant: int) -> list[dict[str, Any]]:
        """Sample every step's parameters from ``numpy.random.default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        return [{**t.to_dict(), "params": t.sample(rng, height_px, width_px, variant)} for t in self.transforms]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "transforms": [t.to_dict() for t in self.transforms]}


def recipe_is_exact_symmetry(recipe: Sequence[dict[str, Any]]) -> bool:
    """True when every step of the recipe is an exact sky symmetry (quarter turns, flips, D4 views)."""
    return bool(recipe) and all(TRANSFORMS[step["name"]].exact_symmetry for step in recipe)


def recipe_mirrors(recipe: Sequence[dict[str, Any]]) -> bool:
    """True when the recipe mirrors the image an odd number of times."""
    flips = sum(bool(TRANSFORMS[step["name"]].mirrors(step["params"])) for step in recipe)
    return flips % 2 == 1


def apply_recipes(images: torch.Tensor | Sequence[torch.Tensor], recipes: Sequence[Sequence[dict[str, Any]]]) -> list[torch.Tensor]:
    """Render recipes on uint8 ``(3, H, W)`` images; returns uint8 ``(3, H, W)`` tensors in input order.

    Images with the same (non-identity) recipe steps and the same size are stacked and rendered in one batched
    call per step. The results are channels-last in memory, so ``t.permute(1, 2, 0)`` is already the
    contiguous ``(H, W, 3)`` array an encoder wants (no extra copy per image).
    """
    if len(images) != len(recipes):
        raise ManifestError(f"augment: {len(images)} images but {len(recipes)} recipes")
    for recipe in recipes:
        for step in recipe:
            if step.get("name") not in TRANSFORMS:
                raise ManifestError(f"augment: recipe step {step.get('name')!r} is not a known transform")
    steps = [[step for step in recipe if not TRANSFORMS[step["name"]].is_identity(step["params"])]
             for recipe in recipes]
    groups: dict[tuple, list[int]] = {}
    for index, (image, recipe) in enumerate(zip(images, steps)):
        groups.setdefault((tuple(step["name"] for step in recipe), tuple(image.shape)), []).append(index)
    out: list[torch.Tensor | None] = [None] * len(recipes)
    for (signature, shape), indices in groups.items():
        exact = all(TRANSFORMS[name].pixel_exact for name in signature)
        # One pass per image converts (and, for float, scales) into the batch; the float batch is ours to
        # change in place.
        batch = torch.empty((len(indices), *shape), dtype=torch.uint8 if exact else torch.float32)
        if exact:
            for position, index in enumerate(indices):
                batch[position].copy_(images[index])
        else:
            _to_unit_float(batch, [images[index] for index in indices])
        for step_index, name in enumerate(signature):
            batch = TRANSFORMS[name].apply(batch, [steps[i][step_index]["params"] for i in indices])
        interleaved = np.empty((len(indices), shape[1], shape[2], shape[0]), dtype=np.uint8)
        if exact:
            planes = batch.numpy()
            for channel in range(shape[0]):
                # Plane by plane: a strided copy per channel is ~5× faster than one permuted copy.
                np.copyto(interleaved[..., channel], planes[:, channel])
        else:
            _to_interleaved_uint8(batch, interleaved)
        rendered = torch.from_numpy(interleaved).permute(0, 3, 1, 2)
        for position, index in enumerate(indices):
            out[index] = rendered[position]
    return out  # type: ignore[return-value]


def _to_unit_float(batch: torch.Tensor, images: Sequence[torch.Tensor]) -> None:
    """Fill the float32 batch with ``image / 255``. NumPy's divide casts each uint8 image in cache-sized
    buffers and divides in the same pass (torch's copy-then-``div_`` is two passes, the second over the whole
    batch, out of cache); both compute the float32 IEEE quotient, so the values are the same."""
    planes = batch.numpy()
    for position, image in enumerate(images):
        np.divide(image.numpy(), np.float32(255.0), out=planes[position], dtype=np.float32)


def _to_interleaved_uint8(batch: torch.Tensor, interleaved: np.ndarray) -> None:
    """Write ``round_half_even(clamp(batch, 0, 1) * 255)`` as uint8 into channels-last ``interleaved``.

    Hand-written instead of ``clamp_ -> mul_(255) -> round_`` and a float-to-uint8 cast: adding
    ``_ROUNDING_MAGIC`` rounds exactly as ``round_`` does and leaves the integer in the low byte, so the
    interleaving copy moves bytes without a cast, and running the passes chunk by chunk keeps them in cache
    (0.11 -> 0.08 ms per 192 px output, one thread). NaN still gives 0, as the cast did on x86: a NaN made by
    arithmetic (or ``float('nan')``) has a zero low byte; only a hand-made NaN payload would differ. Consumes
    ``batch``.
    """
    batch = batch.contiguous()
    per_chunk = max(1, _CHUNK_VALUES // max(1, batch[0].numel()))
    for start in range(0, batch.shape[0], per_chunk):
        chunk = batch[start:start + per_chunk]
        chunk.clamp_(0.0, 1.0).mul_(255.0).add_(_ROUNDING_MAGIC)
        low = chunk.numpy().view(np.uint8)[..., _LOW_BYTE::4]
        for channel in range(batch.shape[1]):
            np.copyto(interleaved[start:start + per_chunk, ..., channel], low[:, channel])
