"""One generic name → factory registry, instantiated once per stage (the timm pattern).

A stage's ``registry.py`` creates ``Registry("upscale")`` and offers ``register_upscaler``, ``create_upscaler``
and ``list_upscalers`` as thin wrappers; each backend module registers its factories with the decorator, and
the stage package's ``__init__`` imports those modules. Names are stable kebab-case.

A factory's signature is its list of options: :meth:`Registry.create` rejects an option the factory does not
name (a typo, or a setting that backend does not have, fails loudly instead of being ignored).
"""

from __future__ import annotations

import fnmatch
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

from flare.core.errors import ConfigError, UnknownBackendError

__all__ = ["Registry", "RegistryEntry", "all_registries"]

_REGISTRIES: dict[str, "Registry"] = {}


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    default: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> tuple[str, ...] | None:
        """The keyword options the factory takes, from its signature; None when it takes ``**kwargs``."""
        parameters = inspect.signature(self.factory).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        return tuple(p.name for p in parameters
                     if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


class Registry:
    """Maps backend names to factories for one stage."""

    def __init__(self, stage: str):
        self.stage = stage
        self._entries: dict[str, RegistryEntry] = {}
        _REGISTRIES[stage] = self

    def register(self, name: str, *, description: str = "", default: bool = False, **meta: Any):
        """Decorator: register ``factory`` under ``name`` (warns on overwrite, as timm does)."""

        def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                warnings.warn(f"{self.stage} backend {name!r} registered twice; the later one wins", stacklevel=2)
            doc = (factory.__doc__ or "").strip().splitlines()
            self._entries[name] = RegistryEntry(name, factory, description or (doc[0] if doc else ""), default, meta)
            return factory

        return wrap

    def create(self, name: str, **options: Any) -> Any:
        """Build backend ``name``; ``None`` options are dropped so the backend's own defaults hold.

        Raises ConfigError naming the options the factory does not take, and the ones it does.
        """
        entry = self.get(name)
        options = {k: v for k, v in options.items() if v is not None}
        accepted = entry.options
        unknown = [] if accepted is None else sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(f"{self.stage}.backend: {name} has no option {', '.join(unknown)}; "
                              f"it takes {', '.join(accepted) or 'none'}")
        return entry.factory(**options)

    def supported_options(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """The part of ``options`` that backend ``name`` takes, for a stage whose config section holds the
        settings of every backend (``upscale.tile_px`` means nothing to ``bicubic``)."""
        accepted = self.get(name).options
        return dict(options) if accepted is None else {k: v for k, v in options.items() if k in accepted}

    def get(self, name: str) -> RegistryEntry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownBackendError(f"{self.stage}.backend: unknown backend {name!r}; one of {known}") from None

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[RegistryEntry]:
        return [self._entries[n] for n in self.list()]

    @property
    def default_name(self) -> str | None:
        return next((e.name for e in self._entries.values() if e.default), None)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def all_registries() -> dict[str, Registry]:
    """Every registry created so far, keyed by stage (import the stage packages first)."""
    return dict(_REGISTRIES)
