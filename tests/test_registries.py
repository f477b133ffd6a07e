"""The four stage registries share one shape: names, defaults and options, and one-line errors for options a
backend does not take."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flare.cli.backends import load_all_registries
from flare.core.errors import ConfigError
from flare.core.registry import Registry

# What `flare backends` listed before the registries were restructured: name → is the default.
EXPECTED = {
    "upscale": {"bicubic": True, "file": False, "lanczos": False, "realesrgan-x4plus": False, "swinir": False,
                "swinir-trained": False},
    # the default is a preset set (AugmentConfig.PRESET_SETS["astro"]), not one preset
    "augment": {"brightness_contrast": False, "color_jitter": False, "d4": False, "flip_color_jitter": False,
                "hflip": False, "noise": False, "perspective": False, "psf_blur": False, "resized_crop": False,
                "rot90": False, "shift_scale": False, "vflip": False},
    "generate": {"embedded": True, "sd": False, "unidiffuser": False},
    "classify": {"densenet121": False, "efficientnet-b0": False, "googlenet": False, "preset-cpu-small": False,
                 "preset-cpu-tiny": False, "preset-paper": False, "resnet-tiny": False, "resnet18": True,
                 "resnet50": False, "vit-base": False, "vit-tiny": False,
                 # added with the proof issue: packaged ImageNet backbones and the recipe's presets
                 "efficientnet-lite0-imagenet": False, "efficientnet-lite1-imagenet": False,
                 "efficientnet-lite2-imagenet": False, "preset-cpu-frozen": False, "preset-cpu-scratch": False},
}


def test_every_stage_lists_the_same_backends():
    registries = load_all_registries()
    for stage, expected in EXPECTED.items():
        entries = registries[stage].entries()
        assert {e.name: e.default for e in entries} == expected, stage
        assert all(e.description for e in entries), stage


def test_built_in_factories_name_every_option_they_take():
    """No factory swallows options with ``**kwargs``: its signature is its list of options."""
    registries = load_all_registries()
    for stage in EXPECTED:
        for entry in registries[stage].entries():
            assert entry.options is not None, f"{stage} {entry.name} takes **kwargs"


def test_unknown_option_is_one_line_naming_it_and_the_accepted_ones():
    registry = Registry("test-options")

    @registry.register("one")
    def make(size: int = 3, colour: str = "red"):
        return size, colour

    assert registry.create("one", size=None, colour="blue") == (3, "blue")  # None still keeps the default
    with pytest.raises(ConfigError) as error:
        registry.create("one", sise=4, shape="round")
    message = str(error.value)
    assert message == "test-options.backend: one has no option shape, sise; it takes size, colour"
    assert "\n" not in message


@pytest.mark.parametrize("create, name, option", [
    ("flare.upscale:create_upscaler", "bicubic", "tile_px"),
    ("flare.upscale:create_upscaler", "realesrgan-x4plus", "weights"),
    ("flare.augment:create_preset", "hflip", "p"),
    ("flare.generate.registry:create_generator", "sd", "scheduler"),  # checked before diffusers loads anything
])
def test_each_stage_rejects_an_option_its_backend_lacks(create, name, option):
    import importlib

    module, function = create.split(":")
    with pytest.raises(ConfigError, match=f"{name} has no option {option}; it takes"):
        getattr(importlib.import_module(module), function)(name, **{option: 1})


def test_a_stage_passes_a_backend_only_the_settings_it_takes():
    from flare.upscale.registry import UPSCALERS

    settings = {"scale": 4, "weights": "model", "tile_px": 64, "tile_overlap_px": 8, "device": "cpu"}
    assert UPSCALERS.supported_options("bicubic", settings) == {"scale": 4}
    assert "weights" not in UPSCALERS.supported_options("realesrgan-x4plus", settings)
    assert UPSCALERS.supported_options("swinir", settings) == settings


def test_classify_presets_and_backbones_go_through_the_registry():
    from flare.classify.registry import CLASSIFY_REGISTRY, create_classifier, get_preset, list_classifiers, list_presets

    assert list_presets() == ["cpu-frozen", "cpu-scratch", "cpu-small", "cpu-tiny", "paper"]
    assert list_presets("cpu-s*") == ["cpu-scratch", "cpu-small"]
    assert get_preset("cpu-tiny") is CLASSIFY_REGISTRY.create("preset-cpu-tiny")
    assert get_preset("paper").backbones == ("resnet50", "googlenet", "densenet121", "vit-base")
    assert "preset-paper" not in list_classifiers() and "resnet18" in list_classifiers()
    with pytest.raises(ConfigError, match="is a preset, not a backbone"):
        create_classifier("preset-paper", num_classes=2, image_size_px=32)


def test_importing_the_stages_registers_everything_without_heavy_optional_imports():
    code = ("import sys, flare.upscale, flare.augment, flare.generate, flare.classify\n"
            "from flare.core.registry import all_registries\n"
            "print(sorted(all_registries()), [m for m in ('diffusers', 'spandrel', 'timm', 'ray') "
            "if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['augment', 'classify', 'generate', 'upscale'] []"
