"""The upscale registry (timm pattern): ``register_upscaler``, ``create_upscaler(name, **options)``,
``list_upscalers(pattern)``.

Only the registry lives here; each backend module registers its own factories (``interpolation.py``,
``network.py``, ``realesrgan.py``, ``swinir_model.py``) and the package ``__init__`` imports them (importing
this module imports the package first, so they are always there). A backend measured on GZ1 registers its
total-flux ratio as ``measured_flux_ratio`` meta; the stage warns when a run's ratio strays from 1.
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
    """Build backend ``name`` (UnknownBackendError names the known ones; ConfigError an option it lacks)."""
    return UPSCALERS.create(name, **options)


def list_upscalers(pattern: str = "*") -> list[str]:
    return UPSCALERS.list(pattern)
