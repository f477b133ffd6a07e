"""The upscale registry (timm pattern): ``register_upscaler``, ``create_upscaler(name, **options)``,
``list_upscalers(pattern)``. Importing this module registers every built-in backend.

Options every factory accepts (``None`` ones are dropped so a backend's defaults hold): ``scale``, ``weights``
(file or model folder), ``tile_px``, ``tile_overlap_px``, ``device``.
"""

from __future__ import annotations

from typing import Any, Callable

from flare.core.registry import Registry
from flare.upscale.base import UpscaleBackend

__all__ = ["UPSCALERS", "register_upscaler", "create_upscaler", "list_upscalers"]

UPSCALERS = Registry("upscale")


def register_upscaler(name: str, *, description: str = "", default: bool = False,
                      **meta: Any) -> Callable[[Callable[..., UpscaleBackend]], Callable[..., UpscaleBackend]]:
    """Decorator registering an upscaler factory under a stable kebab-case ``name``."""
    return UPSCALERS.register(name, description=description, default=default, **meta)


def create_upscaler(name: str, **options: Any) -> UpscaleBackend:
    """Build backend ``name`` (raises UnknownBackendError naming the known ones)."""
    return UPSCALERS.create(name, **options)


def list_upscalers(pattern: str = "*") -> list[str]:
    return UPSCALERS.list(pattern)


# Registering the built-in backends (each module's import registers its names).
from flare.upscale import backends as _backends  # noqa: E402,F401
