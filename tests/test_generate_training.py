"""Training the embedded generator: D4 views with mirror-pair labels swapped, class-balanced epochs, determinism.
Tiny sizes: a 16 px UNet with (8, 16) channels trained for one epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError
from flare.core.symmetry import apply_view, view_mirrors
from flare.core.taxonomy import load_taxonomy

torch.set_num_threads(1)

TINY = dict(resolution_px=16, block_out_channels=(8, 16), epochs=1, batch_size=8, checkpoint_every=1)
CLASSES = ["elliptical", "spiral_anticlockwise", "spiral_clockwise"]


def _asymmetric_batch(n: int) -> torch.Tensor:
    """``n`` copies of an image no D4 view maps to itself or to another view (distinct pixel values)."""
    image = torch.arange(3 * 5 * 5, dtype=torch.float32).reshape(3, 5, 5)
    return image.expand(n, 3, 5, 5).clone()


def test_d4_views_swap_the_mirror_pair_label():
    from flare.generate.train_embedded import trainable_mirror_permutation, training_views

    perm = trainable_mirror_permutation(CLASSES, load_taxonomy("gz1"))
    assert perm.tolist() == [0, 2, 1]
    clockwise, anticlockwise = CLASSES.index("spiral_clockwise"), CLASSES.index("spiral_anticlockwise")
    clean = _asymmetric_batch(64)
    labels = torch.tensor([clockwise] * 32 + [CLASSES.index("elliptical")] * 32)
    images, swapped, views = training_views(clean, labels, "d4", perm, torch.Generator().manual_seed(0))
    assert set(views.tolist()) == set(range(8))  # all eight views occur in 64 draws
    for image, original, label, new_label, view in zip(images, clean, labels, swapped, views):
        assert torch.equal(image, torch.from_numpy(apply_view(original.numpy(), int(view))))
        if int(label) == clockwise:
            # a mirrored clockwise spiral is an anticlockwise one; a rotated one stays clockwise
            assert int(new_label) == (anticlockwise if view_mirrors(int(view)) else clockwise)
        else:
            assert int(new_label) == int(label)  # no mirror pair: the label never changes


def test_rot90_views_never_mirror_and_an_untrained_mirror_pair_keeps_rotations_only():
    from flare.generate.train_embedded import trainable_mirror_permutation, training_views

    clean = _asymmetric_batch(64)
    perm = trainable_mirror_permutation(CLASSES, load_taxonomy("gz1"))
    labels = torch.full((64,), CLASSES.index("spiral_clockwise"))
    _, swapped, views = training_views(clean, labels, "rot90", perm, torch.Generator().manual_seed(0))
    assert views.max() < 4 and torch.equal(swapped, labels)
    # clockwise trained without its anticlockwise pair: a mirrored view would be mislabelled, so none is drawn
    lone = ["elliptical", "spiral_clockwise"]
    perm = trainable_mirror_permutation(lone, load_taxonomy("gz1"))
    assert perm.tolist() == [0, -1]
    labels = torch.tensor([0, 1] * 32)
    _, swapped, views = training_views(clean, labels, "d4", perm, torch.Generator().manual_seed(0))
    assert views[labels == 1].max() < 4 and views[labels == 0].max() >= 4
    assert torch.equal(swapped, labels)
    with pytest.raises(ConfigError, match="train_views"):
        training_views(clean, labels, "d8", perm, torch.Generator().manual_seed(0))


def test_balanced_epoch_draws_classes_near_evenly_and_is_seeded():
    from flare.generate.train_embedded import epoch_order

    label_index = [0] * 2600 + [1] * 60 + [2] * 30 + [3] * 400  # GZ1-like imbalance
    order = epoch_order(label_index, "balanced", torch.Generator().manual_seed(3))
    assert len(order) == len(label_index)
    drawn = np.bincount(np.asarray(label_index)[order.numpy()], minlength=4)
    expected = len(label_index) / 4
    assert np.all(np.abs(drawn - expected) < 0.15 * expected), drawn
    assert torch.equal(order, epoch_order(label_index, "balanced", torch.Generator().manual_seed(3)))
    assert not torch.equal(order, epoch_order(label_index, "balanced", torch.Generator().manual_seed(4)))
    uniform = epoch_order(label_index, "uniform", torch.Generator().manual_seed(3))
    assert sorted(uniform.tolist()) == list(range(len(label_index)))  # each image once
    with pytest.raises(ConfigError, match="train_sampling"):
        epoch_order(label_index, "oversample", torch.Generator())


def test_defaults_and_config_reach_the_training_config():
    from flare.generate.train_embedded import EmbeddedTrainingConfig

    assert (GenerateConfig().train_views, GenerateConfig().train_sampling) == ("d4", "balanced")
    assert (EmbeddedTrainingConfig().views, EmbeddedTrainingConfig().sampling) == ("d4", "balanced")
    made = EmbeddedTrainingConfig.from_config(GenerateConfig(train_views="rot90", train_sampling="uniform"), seed=1)
    assert (made.views, made.sampling) == ("rot90", "uniform")


def test_training_is_deterministic_for_a_seed_and_records_its_views(sim_dataset, tmp_path):
    from safetensors.torch import load_file

    from flare.generate.text_encoder import MiniLMTextEncoder
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    encoder = MiniLMTextEncoder()

    def weights(name: str, **settings):
        model = tmp_path / name
        train_embedded(sim_dataset, model, EmbeddedTrainingConfig(**{**TINY, **settings}), text_encoder=encoder)
        return model, load_file(model / "unet" / "diffusion_pytorch_model.safetensors")

    model, first = weights("a")
    _, again = weights("b")
    _, uniform = weights("c", sampling="uniform")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], uniform[k]) for k in first)
    summary = json.loads((model / "training.json").read_text())
    assert (summary["config"]["views"], summary["config"]["sampling"], summary["config"]["chirality"]) == (
        "d4", "balanced", "mirror")
    assert "views d4" in (model / "README.md").read_text()
    assert summary["mirrored_classes"] == {"spiral_anticlockwise": "spiral_clockwise"}  # chirality: mirror
    assert "spiral_anticlockwise" not in summary["class_prompts"]  # its prompt is never learnt
    learnt, learnt_weights = weights("d", chirality="learn")
    assert json.loads((learnt / "training.json").read_text())["mirrored_classes"] == {}
    assert not all(torch.equal(first[k], learnt_weights[k]) for k in first)


def test_mirror_chirality_learns_the_first_class_of_a_pair_from_both():
    from flare.generate.train_embedded import training_views, view_rule

    taxonomy = load_taxonomy("gz1")  # mirror pair [spiral_clockwise, spiral_anticlockwise]
    perm, always = view_rule(CLASSES, taxonomy, "mirror")
    elliptical, anticlockwise, clockwise = (CLASSES.index(c) for c in
                                            ("elliptical", "spiral_anticlockwise", "spiral_clockwise"))
    assert always.tolist() == [False, True, False] and perm[anticlockwise] == clockwise and perm[clockwise] == -1
    clean = _asymmetric_batch(96)
    labels = torch.tensor([elliptical, anticlockwise, clockwise] * 32)
    images, new_labels, views = training_views(clean, labels, "d4", perm, torch.Generator().manual_seed(0), always)
    for image, original, view in zip(images, clean, views):
        assert torch.equal(image, torch.from_numpy(apply_view(original.numpy(), int(view))))
    # every anticlockwise image is shown mirrored, so it is a clockwise one; clockwise ones are never mirrored
    assert views[labels == anticlockwise].min() >= 4 and views[labels == clockwise].max() < 4
    assert set(views[labels == elliptical].tolist()) == set(range(8))  # achiral classes keep all 8 views
    assert (new_labels != anticlockwise).all() and torch.equal(new_labels[labels != anticlockwise],
                                                               labels[labels != anticlockwise])
    # rot90 views still mirror the second class of the pair into the first
    _, new_labels, views = training_views(clean, labels, "rot90", perm, torch.Generator().manual_seed(1), always)
    assert views[labels == anticlockwise].min() >= 4 and views[labels != anticlockwise].max() < 4
    # learn: the old rule (both prompts, mirrored views relabelled), nothing forced
    perm, always = view_rule(CLASSES, taxonomy, "learn")
    assert perm.tolist() == [0, 2, 1] and not always.any()
    # a pair with one class trained has nothing to mirror from: that class keeps rotations only
    perm, always = view_rule(["elliptical", "spiral_anticlockwise"], taxonomy, "mirror")
    assert perm.tolist() == [0, -1] and not always.any()
    with pytest.raises(ConfigError, match="chirality"):
        view_rule(CLASSES, taxonomy, "ignore")


def test_time_conditioning_trains_saves_and_samples(sim_dataset, tmp_path):
    """``condition_on_time``: the prompt also reaches the timestep embedding; the saved model says so and the
    pipeline feeds it the prompt on both paths (one prompt's sample differs from another's at the same seed)."""
    from flare.generate.embedded import EmbeddedDiffusionPipeline
    from flare.generate.text_encoder import MiniLMTextEncoder
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    encoder = MiniLMTextEncoder()
    model = tmp_path / "timed"
    train_embedded(sim_dataset, model, EmbeddedTrainingConfig(**TINY, condition_on_time=True), text_encoder=encoder)
    pipeline = EmbeddedDiffusionPipeline.from_pretrained(model, text_encoder=encoder)
    assert pipeline.unet.config.class_embed_type == "projection"
    assert "timestep embedding" in (model / "README.md").read_text()
    out = pipeline(["A realistic image of elliptical galaxy in space", "A realistic image of star in space"], [5, 5],
                   num_inference_steps=3)
    assert out.images[0].shape == (16, 16, 3) and not np.array_equal(out.images[0], out.images[1])
