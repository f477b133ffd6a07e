"""The generate registry (timm pattern): ``register_generator``, ``create_generator(name, **options)``,
``list_generators(pattern)``.

Only the registry lives here; each backend module registers its own factory (``embedded.py``,
``stable_diffusion.py``, ``unidiffuser.py``) and ``import flare.generate`` loads them. A factory's signature
names its options (``None`` ones are dropped so a backend's defaults hold): ``model_path`` (a local folder;
nothing is ever downloaded) and ``device`` (auto, cpu, cuda, mps) for every backend, ``scheduler`` (ddim or dpm)
for ``embedded``.
"""

from __future__ import annotations

from typing import Any, Callable

from flare.core.registry import Registry
from flare.generate.base import GenerationBackend

__all__ = ["GENERATORS", "register_generator", "create_generator", "list_generators"]

GENERATORS = Registry("generate")


def register_generator(name: str, *, description: str = "", default: bool = False,
                       **meta: Any) -> Callable[[Callable[..., GenerationBackend]], Callable[..., GenerationBackend]]:
    """Decorator registering a generator factory under a stable kebab-case ``name``."""
    return GENERATORS.register(name, description=description, default=default, **meta)


def create_generator(name: str, **options: Any) -> GenerationBackend:
    """Build generator ``name`` (UnknownBackendError lists the known ones; ConfigError an option it lacks)."""
    return GENERATORS.create(name, **options)


def list_generators(pattern: str = "*") -> list[str]:
    return GENERATORS.list(pattern)
