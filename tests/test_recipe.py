"""The shared training recipe: budget, schedule, class balance, online views and TTA, and the linear probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flare.classify.presets import BenchmarkPreset
from flare.classify.recipe import budget, class_weights, epoch_order, warmup_cosine
from flare.classify.train import apply_views, infer_views
from flare.core.symmetry import VIEWS, apply_view, mirror_permutation, view_mirrors
from flare.core.taxonomy import load_taxonomy

PRESET = BenchmarkPreset(name="t", backbones=("resnet-tiny",), image_size_px=16, epochs=4, batch_size=8)


def test_budget_is_the_same_for_every_pool_at_one_data_size():
    small, large = budget(PRESET, real_train_images=100), budget(PRESET, real_train_images=100)
    assert small.total_steps == large.total_steps == 4 * 13
    assert budget(PRESET.with_overrides(samples_per_epoch=16), 100).steps_per_epoch == 2


def test_warmup_then_cosine_to_zero():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_cosine(optimizer, total_steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))  # decays monotonically after the warm-up
    assert rates[-1] < 0.01


def test_class_weights_and_balanced_order():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    weights = class_weights(labels, 4)
    assert weights[3] == 0 and weights[2] == pytest.approx(100 / (3 * 1)) and weights[0] == pytest.approx(100 / 270)
    order = epoch_order(np.random.default_rng(0), labels, 3000, balanced=True)
    counts = np.bincount(labels[order], minlength=3)
    assert len(order) == 3000 and counts.min() > 900  # each class about a third
    plain = epoch_order(np.random.default_rng(0), labels, 250, balanced=False)
    assert sorted(plain[:100].tolist()) == list(range(100))  # whole permutations back to back


def test_views_form_the_dihedral_group_and_mirrors_swap_chirality():
    image = np.arange(2 * 3 * 5 * 5, dtype=np.uint8).reshape(2, 3, 5, 5)
    outputs = {apply_view(image, v).tobytes() for v in VIEWS}
    assert len(outputs) == 8 and np.array_equal(apply_view(image, 0), image)
    assert [view_mirrors(v) for v in VIEWS] == [False] * 4 + [True] * 4
    taxonomy = load_taxonomy("gz1")
    classes = taxonomy.fine_classes
    perm = mirror_permutation(classes, taxonomy.mirror)
    cw, acw = classes.index("spiral_clockwise"), classes.index("spiral_anticlockwise")
    assert perm[cw] == acw and perm[acw] == cw and perm[classes.index("merger")] == classes.index("merger")
    _, labels = apply_views(image, np.array([cw, cw]), np.array([1, 5]), perm)
    assert labels.tolist() == [cw, acw]  # a quarter turn keeps the label, a mirrored view swaps it


def test_tta_is_invariant_under_every_view_of_the_input():
    """For any network, TTA of a rotated/mirrored image equals TTA of the image, classes permuted back."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=4, layers=(1, 1, 1, 1),
                              channels=(8, 8, 8, 8), stem_width=8).eval()
    perm = np.array([1, 0, 2, 3])  # classes 0 and 1 are a mirror pair
    images = np.random.default_rng(0).integers(0, 256, size=(3, 3, 16, 16), dtype=np.uint8)
    reference, _ = infer_views(model, images, perm)
    plain, _ = infer_views(model, apply_view(images, 5), None)
    for view in VIEWS:
        moved, _ = infer_views(model, apply_view(images, view), perm)
        expected = reference[:, perm] if view_mirrors(view) else reference
        np.testing.assert_allclose(moved, expected, atol=1e-5)
    assert not np.allclose(plain, reference, atol=1e-3)  # without TTA a view does change the output


def test_linear_probe_folds_into_the_model(tmp_path):
    """The head trained on standardised features, folded in, gives the same probabilities from images."""
    import timm

    from flare.classify.probe import FeatureCache, head_probabilities, train_linear_head

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3, layers=(1, 1, 1, 1),
                              channels=(8, 8, 8, 8), stem_width=8).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 3, 16, 16), dtype=np.uint8)
    labels = np.arange(30) % 3
    cache = FeatureCache(model, "tiny", 16, tmp_path, torch.device("cpu"))
    keys = [f"row{i}" for i in range(30)]
    features = cache.features(keys, images)
    assert list(tmp_path.glob("features-tiny-16px-view0-*.npz"))
    preset = PRESET.with_overrides(train_mode="frozen", epochs=5, learning_rate=1e-2)
    result = train_linear_head(model, features, labels, features, labels, 3, preset, seed=0, real_train_images=30)
    from flare.classify.train import infer

    from_images, _ = infer(result.model, images)
    np.testing.assert_allclose(from_images, head_probabilities(result.model.get_classifier(), features), atol=1e-5)
    assert len(result.history) >= 1 and result.recipe["train_mode"] == "frozen"
