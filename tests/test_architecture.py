"""The import rule of docs/architecture.md, checked on the source: stages stand side by side on core.

Layers (a package may import its own modules and those of the layers it names):

- ``core``: only core.  ``metrics`` and ``executors``: core (and themselves).
- stages (``data``, ``upscale``, ``augment``, ``generate``, ``combine``, ``classify``) and ``report``: core,
  metrics and executors, never another stage. A stage that needs another's work receives it as a component.
- ``cli`` and ``pipeline``: anything (they compose the stages).

Every import counts, at module level or inside a function, so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "flare"
STAGES = ("data", "upscale", "augment", "generate", "combine", "classify", "report")
ALLOWED: dict[str, tuple[str, ...]] = {
    "core": ("core",),
    "metrics": ("core", "metrics"),
    "executors": ("core", "executors"),
    **{stage: ("core", "metrics", "executors", stage) for stage in STAGES},
}


def _package(module: str) -> str | None:
    """``flare.upscale.stage`` → ``upscale``; top-level modules (``flare.pipeline``, ``flare``) → their name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "flare" else ("flare" if module == "flare" else None)


def _module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``source`` (relative imports resolved against ``module``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def violations(sources: dict[str, str]) -> list[str]:
    """Every import that breaks the layer rule, as ``module:line imports target``."""
    out = []
    for module, source in sorted(sources.items()):
        package = _package(module)
        allowed = ALLOWED.get(package or "")
        if allowed is None:  # cli, pipeline, the package root: free to compose
            continue
        for line, target in imported_modules(source, module):
            target_package = _package(target)
            if target_package is None or target_package == "flare" and target == "flare":
                continue  # third-party, or `import flare` for __version__
            if target_package not in allowed:
                out.append(f"{module}:{line} imports {target}")
    return out


def _sources() -> dict[str, str]:
    return {_module_name(p): p.read_text() for p in sorted(SOURCE.rglob("*.py"))}


def test_stages_import_only_core_metrics_and_executors():
    found = violations(_sources())
    assert not found, "imports across the layers of docs/architecture.md:\n" + "\n".join(found)


@pytest.mark.parametrize("module, planted", [
    ("flare.generate.resize", "from flare.upscale.registry import create_upscaler\n"),
    ("flare.classify.images", "def f():\n    from flare.augment import loader\n"),  # a lazy import counts too
    ("flare.core.manifest", "import flare.classify.train\n"),
    ("flare.metrics.scoring", "from ..classify import benchmark\n"),  # relative imports are resolved
])
def test_a_planted_stage_to_stage_import_is_caught(module, planted):
    sources = _sources()
    sources[module] = sources[module] + "\n" + planted
    found = violations(sources)
    assert len(found) == 1 and found[0].startswith(f"{module}:"), found


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _sources()} - {"cli", "pipeline", "flare", "__main__"}
    assert packages <= set(ALLOWED), f"packages without a layer in the import rule: {packages - set(ALLOWED)}"
