"""The generate registry (timm pattern): ``register_generator``, ``create_generator(name, **options)``,
``list_generators(pattern)``. Importing this module registers the built-in backends.

Options the factories accept (``None`` ones are dropped so a backend's defaults hold): ``model_path`` (a local
folder; nothing is ever downloaded), ``scheduler`` (embedded: ddim or dpm) and ``device`` (auto, cpu, cuda, mps; every backend).
"""

from __future__ import annotations

from typing import Any, Callable

from flare.core.errors import ConfigError
from flare.core.registry import Registry
from flare.generate.base import GenerationBackend

__all__ = ["GENERATORS", "register_generator", "create_generator", "list_generators"]

GENERATORS = Registry("generate")


def register_generator(name: str, *, description: str = "", default: bool = False,
                       **meta: Any) -> Callable[[Callable[..., GenerationBackend]], Callable[..., GenerationBackend]]:
    """Decorator registering a generator factory under a stable kebab-case ``name``."""
    return GENERATORS.register(name, description=description, default=default, **meta)


def create_generator(name: str, **options: Any) -> GenerationBackend:
    """Build generator ``name`` (``UnknownBackendError`` lists the known ones)."""
    return GENERATORS.create(name, **options)


def list_generators(pattern: str = "*") -> list[str]:
    return GENERATORS.list(pattern)


def _require_model_path(name: str, model_path: str | None) -> str:
    if not model_path:
        raise ConfigError(f"generate.model_path: backend {name!r} needs a local model folder")
    return model_path


@register_generator("embedded", default=True,
                    description="Small pixel-space UNet + MiniLM prompts, trained here on the train split")
def _embedded(model_path: str | None = None, scheduler: str = "ddim", device: str | None = "cpu",
              **_: Any) -> GenerationBackend:
    from flare.generate.embedded import EmbeddedGenerator

    return EmbeddedGenerator(_require_model_path("embedded", model_path), scheduler=scheduler, device=device)


@register_generator("sd", description="A local Stable Diffusion-family checkpoint (diffusers): t2i + img2img")
def _stable_diffusion(model_path: str | None = None, device: str = "cpu", **_: Any) -> GenerationBackend:
    from flare.generate.stable_diffusion import StableDiffusionGenerator

    return StableDiffusionGenerator(_require_model_path("sd", model_path), device=device)


@register_generator("unidiffuser", description="A local UniDiffuser pipeline: t2i + image→caption→image variations")
def _unidiffuser(model_path: str | None = None, device: str = "cpu", **_: Any) -> GenerationBackend:
    from flare.generate.unidiffuser import UniDiffuserGenerator

    return UniDiffuserGenerator(_require_model_path("unidiffuser", model_path), device=device)
