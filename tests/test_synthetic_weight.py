"""Synthetic training rows: their loss weight, label smoothing on them only, the cap on their share of a batch,
and the record of all three in each benchmark cell."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flare.classify.benchmark import BenchmarkSettings, run_benchmark, settings_from_config
from flare.classify.presets import BenchmarkPreset
from flare.classify.recipe import cap_synthetic_share, epoch_order, training_loss
from flare.classify.registry import get_preset
from flare.classify.variants import synthetic_mask
from flare.core.config import BenchmarkConfig, load_config
from flare.core.errors import ConfigError
from test_benchmark_workdir import build_workdir

torch.set_num_threads(1)
PRESET = BenchmarkPreset(name="t", backbones=("resnet-tiny",), image_size_px=16, epochs=4, batch_size=8)


def _batch(seed: int = 0, rows: int = 12, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, generator=generator)
    targets = torch.arange(rows) % classes
    synthetic = torch.arange(rows) % 3 == 0
    class_weight = torch.tensor([0.5, 1.0, 2.0, 1.5])
    return logits, targets, synthetic, class_weight


def test_weight_one_and_no_smoothing_is_todays_loss_exactly():
    logits, targets, synthetic, class_weight = _batch()
    today = F.cross_entropy(logits, targets, weight=class_weight)
    assert torch.equal(training_loss(logits, targets, class_weight, synthetic, 1.0, 0.0), today)
    assert torch.equal(training_loss(logits, targets, class_weight, torch.zeros_like(synthetic), 0.3, 0.2), today)
    # the written-out formula (taken for any other weight) meets today's loss at weight 1: linear through 0 and 2
    at_zero = training_loss(logits, targets, class_weight, synthetic, 0.0, 0.0)
    at_two = training_loss(logits, targets, class_weight, synthetic, 2.0, 0.0)
    torch.testing.assert_close((at_zero + at_two) / 2, today, rtol=1e-6, atol=1e-7)


def test_a_synthetic_rows_contribution_scales_with_its_weight():
    logits, targets, synthetic, class_weight = _batch(1)
    rows = F.cross_entropy(logits, targets, reduction="none") * class_weight[targets]
    real_part = rows[~synthetic].sum() / class_weight[targets].sum()
    synthetic_part = rows[synthetic].sum() / class_weight[targets].sum()
    for weight in (0.0, 0.25, 0.5, 3.0):
        loss = training_loss(logits, targets, class_weight, synthetic, weight, 0.0)
        torch.testing.assert_close(loss, real_part + weight * synthetic_part, rtol=1e-6, atol=1e-7)
    # weight 0: the synthetic rows get no gradient at all
    leaf = logits.clone().requires_grad_(True)
    training_loss(leaf, targets, class_weight, synthetic, 0.0, 0.1).backward()
    assert torch.count_nonzero(leaf.grad[synthetic]) == 0 and torch.count_nonzero(leaf.grad[~synthetic]) > 0


def test_label_smoothing_applies_to_synthetic_rows_only():
    logits, targets, synthetic, _ = _batch(2)
    loss = training_loss(logits, targets, None, synthetic, 1.0, 0.2)
    expected = (F.cross_entropy(logits[synthetic], targets[synthetic], label_smoothing=0.2, reduction="sum")
                + F.cross_entropy(logits[~synthetic], targets[~synthetic], reduction="sum")) / len(targets)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    # a real row's gradient is the same with or without smoothing; a synthetic row's is not
    grads = []
    for smoothing in (0.0, 0.3):
        leaf = logits.clone().requires_grad_(True)
        training_loss(leaf, targets, None, synthetic, 0.5, smoothing).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0][~synthetic], grads[1][~synthetic], rtol=0, atol=0)
    assert not torch.allclose(grads[0][synthetic], grads[1][synthetic])


@pytest.mark.parametrize("balanced", [False, True])
def test_the_batch_cap_holds_in_every_batch_and_the_draw_is_seeded(balanced):
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10 + [0] * 100 + [1] * 100 + [2] * 100)
    synthetic = np.arange(len(labels)) >= 100  # 300 of 400 rows synthetic: the cap binds
    batch_size, share = 16, 0.25

    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        order = epoch_order(rng, labels, 250, balanced)
        return order, cap_synthetic_share(rng, order, labels, synthetic, share, batch_size)

    order, capped = draw(0)
    assert len(capped) == len(order) == 250  # an epoch keeps its length (the last batch holds 10)
    batches = [capped[s:s + batch_size] for s in range(0, len(capped), batch_size)]
    assert all(synthetic[b].sum() <= int(share * len(b)) for b in batches)
    assert max(synthetic[b].sum() for b in batches[:-1]) == 4  # at the cap, not emptied of synthetic rows
    assert np.array_equal(labels[capped], labels[order])  # a swap keeps the label: class mix as drawn
    assert np.array_equal(draw(0)[1], capped) and not np.array_equal(draw(1)[1], capped)
    assert (~synthetic[capped]).sum() > (~synthetic[order]).sum()  # real rows fill the freed places


def test_no_cap_to_apply_leaves_the_order_and_the_generator_alone():
    labels = np.arange(40) % 4
    cases = [(np.zeros(40, bool), 0.25), (np.arange(40) < 4, 0.5), (np.arange(40) < 30, None),
             (np.arange(40) < 30, 1.0), (np.ones(40, bool), 0.25)]
    # no synthetic rows; under the cap; no cap (None, or a share of 1); no real rows to fill with
    for synthetic, share in cases:
        rng, reference = np.random.default_rng(3), np.random.default_rng(3)
        order = epoch_order(rng, labels, 40, False)
        assert np.array_equal(order, epoch_order(reference, labels, 40, False))
        assert np.array_equal(cap_synthetic_share(rng, order, labels, synthetic, share, 20), order)
        assert rng.integers(1 << 30) == reference.integers(1 << 30)  # nothing else drawn: later views unchanged


def test_a_class_without_real_rows_is_filled_from_any_real_row():
    labels = np.array([0] * 10 + [1] * 10)
    synthetic = labels == 1  # class 1 is synthetic only
    order = np.arange(20)
    capped = cap_synthetic_share(np.random.default_rng(0), order, labels, synthetic, 0.25, 20)
    assert synthetic[capped].sum() == 5 and set(capped[~synthetic[capped]]) <= set(range(10))
    assert (labels[capped] == 0).sum() == 15  # the label mix changes only where no real row of the class exists


def test_synthetic_rows_are_the_generate_rows():
    rows = [{"stage": "upscale"}, {"stage": "augment"}, {"stage": "generate"}, {"stage": None}, {"stage": "ingest"}]
    assert synthetic_mask(rows).tolist() == [False, False, True, False, False]


def test_config_defaults_reach_every_preset_and_switch_off():
    config = BenchmarkConfig()
    assert (config.synthetic_weight, config.synthetic_label_smoothing, config.synthetic_batch_share) == (0.5, 0.1, 0.5)
    preset = get_preset("cpu-frozen")
    assert (preset.synthetic_weight, preset.synthetic_label_smoothing, preset.synthetic_batch_share) == (0.5, 0.1, 0.5)
    off = settings_from_config(BenchmarkConfig(synthetic_weight=1, synthetic_label_smoothing=0,
                                               synthetic_batch_share=None)).preset
    assert (off.synthetic_weight, off.synthetic_label_smoothing, off.synthetic_batch_share) == (1, 0, None)
    assert load_config(overrides=["benchmark.synthetic_weight=2"]).benchmark.synthetic_weight == 2
    with pytest.raises(ConfigError, match="benchmark.synthetic_label_smoothing"):
        load_config(overrides=["benchmark.synthetic_label_smoothing=1.5"])


def _curve(result) -> list[tuple[float, float]]:
    return [(h["train_loss"], h["val_macro_f1"]) for h in result.history]


def _probe(preset: BenchmarkPreset, synthetic: np.ndarray | None, seed: int = 0):
    import timm

    from flare.classify.probe import train_linear_head

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3, layers=(1, 1, 1, 1),
                              channels=(8, 8, 8, 8), stem_width=8).eval()
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    features = rng.normal(size=(60, 8)).astype(np.float32) + labels[:, None]
    torch.manual_seed(seed)
    return train_linear_head(model, features, labels, features[:30], labels[:30], 3, preset, seed=seed,
                             real_train_images=20, synthetic=synthetic)


def test_linear_probe_respects_the_cap_records_it_and_switches_off_exactly():
    synthetic = np.arange(60) >= 20  # 40 of 60 rows synthetic
    capped = replace(PRESET, train_mode="frozen", epochs=3, synthetic_batch_share=0.25)
    result = _probe(capped, synthetic)
    recipe = result.recipe
    settings = (recipe["synthetic_weight"], recipe["synthetic_label_smoothing"], recipe["synthetic_batch_share"])
    assert settings == (0.5, 0.1, 0.25)
    assert 0 < result.synthetic_share <= 0.25  # 2 of every 8 at most; the pool holds 2/3
    assert _curve(_probe(capped, synthetic)) == _curve(result)  # seeded: the same batches, the same curve
    off = replace(PRESET, train_mode="frozen", epochs=3, synthetic_weight=1.0, synthetic_label_smoothing=0.0,
                  synthetic_batch_share=None)
    marked, unmarked = _probe(off, synthetic), _probe(off, None)
    assert _curve(marked) == _curve(unmarked)  # switched off = training that knows no synthetic row
    assert torch.equal(marked.model.get_classifier().weight, unmarked.model.get_classifier().weight)
    assert marked.synthetic_share > 0.25  # uncapped: about the pool's 2/3
    assert unmarked.synthetic_share == 0


def test_full_training_respects_the_cap():
    from flare.classify.registry import create_classifier
    from flare.classify.train import train_classifier

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 3, 16, 16), dtype=np.uint8)
    labels = np.arange(24) % 3
    synthetic = np.arange(24) >= 8
    preset = replace(PRESET, epochs=2, synthetic_batch_share=0.25)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create_classifier("resnet-tiny", num_classes=3, image_size_px=16)
        results.append(train_classifier(model, images, labels, images[:6], labels[:6], 3, preset, seed=0,
                                        real_train_images=16, synthetic=synthetic))
    assert _curve(results[0]) == _curve(results[1]) and results[0].synthetic_share == results[1].synthetic_share
    assert 0 < results[0].synthetic_share <= 0.25 and results[0].recipe["synthetic_batch_share"] == 0.25


def test_each_cell_json_records_the_synthetic_recipe(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path / "w", stages=("upscale", "generate"))
    preset = replace(get_preset("cpu-tiny").with_overrides(samples_per_epoch=48, batch_size=16, epochs=2,
                                                           image_size_px=32),
                     synthetic_weight=0.3, synthetic_label_smoothing=0.05, synthetic_batch_share=0.25)
    run_benchmark(workdir, BenchmarkSettings(preset=preset, methods=["Raw_HR", "T2I_Aug"], tasks=["fine"],
                                             features=False, save_models="none"), log=lambda _: None)
    cells = workdir / "benchmark" / "cells"
    mixed = json.loads((cells / "T2I_Aug__resnet-tiny__fine__seed0.json").read_text())
    real = json.loads((cells / "Raw_HR__resnet-tiny__fine__seed0.json").read_text())
    for cell in (mixed, real):
        recipe = cell["recipe"]
        settings = (recipe["synthetic_weight"], recipe["synthetic_label_smoothing"], recipe["synthetic_batch_share"])
        assert settings == (0.3, 0.05, 0.25)
        assert cell["preset"]["synthetic_batch_share"] == 0.25
    assert "generate" in mixed["train_stages"] and 0 < mixed["synthetic_share_realised"] <= 0.25
    assert real["synthetic_share_realised"] == 0
