"""Stage 3 (diffusion synthesis) with the embedded backend: prompts, the pipeline, training, the stage, the CLI,
and the synthetic-quality table. Tiny sizes: a 16 px UNet with (8, 16) channels trained for one epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError, FlareError
from flare.core.manifest import Manifest
from flare.core.taxonomy import load_taxonomy
from flare.generate.base import FrozenConfig
from flare.generate.prompts import DEFAULT_TEMPLATE, PromptBuilder

torch.set_num_threads(1)

TINY = dict(resolution_px=16, block_out_channels=(8, 16), epochs=1, batch_size=8, checkpoint_every=1)


# ---------------------------------------------------------------------------------------------- prompts, config
def test_prompts_fill_display_names_and_overrides():
    taxonomy = load_taxonomy("sim")
    builder = PromptBuilder(taxonomy, (DEFAULT_TEMPLATE, "a telescope image of a {class}"),
                            {"star": ["a bright point source"]})
    assert builder.prompts_for("edge_on") == ["A realistic image of edge-on disk galaxy in space",
                                              "a telescope image of a edge-on disk galaxy"]
    assert builder.prompt("edge_on", 3) == "a telescope image of a edge-on disk galaxy"
    assert builder.prompts_for("star") == ["a bright point source"]
    with pytest.raises(ConfigError, match="no \\{class\\} placeholder"):
        PromptBuilder(taxonomy, ("no placeholder",))
    with pytest.raises(ConfigError, match="generate.class_prompts: 'comet'"):
        PromptBuilder(taxonomy, (DEFAULT_TEMPLATE,), {"comet": ["x"]})


def test_frozen_config_is_read_only():
    config = FrozenConfig(backend="embedded", resolution_px=32)
    assert config.resolution_px == 32 and dict(config) == {"backend": "embedded", "resolution_px": 32}
    with pytest.raises(AttributeError):
        config.resolution_px = 64


# ---------------------------------------------------------------------------------------------- embedded model
@pytest.fixture(scope="module")
def text_encoder():
    from flare.generate.text_encoder import MiniLMTextEncoder

    return MiniLMTextEncoder()


def test_text_encoder_is_offline_cached_and_distinct(text_encoder):
    embeddings = text_encoder.embed(["A realistic image of star in space", "A realistic image of merging galaxies in space", ""])
    assert embeddings.shape == (3, 1, 384)
    assert torch.allclose(embeddings[0].norm(), torch.tensor(1.0), atol=1e-4)
    assert float((embeddings[0] * embeddings[1]).sum()) < 0.99  # different classes, different conditions
    assert float(embeddings[2].abs().sum()) == 0.0  # the unconditional embedding
    assert len(text_encoder._cache) == 2


@pytest.fixture(scope="module")
def tiny_model(sim_dataset, tmp_path_factory, text_encoder):
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    model_dir = tmp_path_factory.mktemp("embedded") / "model"
    result = train_embedded(sim_dataset, model_dir, EmbeddedTrainingConfig(**TINY), text_encoder=text_encoder)
    assert result.epochs_done == 1 and np.isfinite(result.final_loss)
    return model_dir


def test_training_saves_components_card_and_resumes_to_the_same_weights(sim_dataset, tmp_path, tiny_model, text_encoder):
    from safetensors.torch import load_file

    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    for name in ("unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json",
                 "model_index.json", "README.md", "training.json", "checkpoint/state.json"):
        assert (tiny_model / name).is_file(), name
    assert "classifier-free guidance" in (tiny_model / "README.md").read_text()
    straight = tmp_path / "straight"
    train_embedded(sim_dataset, straight, EmbeddedTrainingConfig(**{**TINY, "epochs": 2}), text_encoder=text_encoder)
    resumed = tmp_path / "resumed"
    train_embedded(sim_dataset, resumed, EmbeddedTrainingConfig(**TINY), text_encoder=text_encoder)
    lines = []
    train_embedded(sim_dataset, resumed, EmbeddedTrainingConfig(**{**TINY, "epochs": 2}), text_encoder=text_encoder,
                   log=lines.append)
    assert any("resuming from epoch 1" in line for line in lines)
    a = load_file(straight / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="other settings"):
        train_embedded(sim_dataset, resumed, EmbeddedTrainingConfig(**{**TINY, "epochs": 3, "learning_rate": 0.1}),
                       text_encoder=text_encoder)


def test_pipeline_same_seed_same_bytes_and_sdedit(tiny_model, text_encoder):
    from flare.generate.embedded import EmbeddedDiffusionPipeline

    pipeline = EmbeddedDiffusionPipeline.from_pretrained(tiny_model, text_encoder=text_encoder)
    prompts = ["A realistic image of star in space", "A realistic image of elliptical galaxy in space"]
    first = pipeline(prompts, [1, 2], guidance_scale=3.0, num_inference_steps=3)
    again = pipeline(prompts, [1, 2], guidance_scale=3.0, num_inference_steps=3)
    other = pipeline(prompts, [3, 4], guidance_scale=3.0, num_inference_steps=3)
    assert first.images[0].shape == (16, 16, 3) and first.images[0].dtype == np.uint8
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first.images, again.images))
    assert first.images[0].tobytes() != other.images[0].tobytes()
    assert first.seeds == [1, 2] and first.params[0]["guidance_scale"] == 3.0
    single = pipeline(prompts[:1], [1], guidance_scale=3.0, num_inference_steps=3)
    assert np.abs(single.images[0].astype(int) - first.images[0].astype(int)).max() <= 1  # batching-independent
    image = np.full((16, 16, 3), 128, np.uint8)
    varied = pipeline(prompts[:1], [5], guidance_scale=3.0, num_inference_steps=4, image=[image], strength=0.25)
    assert varied.params[0]["strength"] == 0.25
    assert np.abs(varied.images[0].astype(int) - 128).mean() < np.abs(first.images[0].astype(int) - 128).mean() + 64
    dpm = EmbeddedDiffusionPipeline.from_pretrained(tiny_model, scheduler="dpm", text_encoder=text_encoder)
    assert type(dpm.scheduler).__name__ == "DPMSolverMultistepScheduler"
    with pytest.raises(ConfigError, match="generate.scheduler"):
        EmbeddedDiffusionPipeline.from_pretrained(tiny_model, scheduler="euler", text_encoder=text_encoder)


def test_device_choice_is_checked_and_recorded(tiny_model, text_encoder, monkeypatch):
    from flare.generate.embedded import EmbeddedGenerator

    backend = EmbeddedGenerator(tiny_model, device="auto")
    assert backend.config["device"] == backend.pipeline.device.type
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="^generate.device: cuda was asked for but no CUDA device is available$"):
        EmbeddedGenerator(tiny_model, device="cuda")
    with pytest.raises(ConfigError, match="generate.device: 'tpu' is not one of"):
        EmbeddedGenerator(tiny_model, device="tpu")


@pytest.mark.gpu
def test_embedded_samples_and_trains_on_cuda_in_bf16(sim_dataset, tiny_model, text_encoder, tmp_path):
    """CUDA path (run with --rungpu): bf16 sampling stays close to the CPU's float32 images, same seeds."""
    from flare.generate.embedded import EmbeddedDiffusionPipeline
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    prompts = ["A realistic image of star in space", "A realistic image of elliptical galaxy in space"]
    cpu = EmbeddedDiffusionPipeline.from_pretrained(tiny_model, text_encoder=text_encoder)
    gpu = EmbeddedDiffusionPipeline.from_pretrained(tiny_model, text_encoder=text_encoder).to("cuda")
    a = cpu(prompts, [1, 2], guidance_scale=3.0, num_inference_steps=5).images
    b = gpu(prompts, [1, 2], guidance_scale=3.0, num_inference_steps=5).images
    assert gpu.device.type == "cuda"
    assert np.abs(np.stack(a).astype(int) - np.stack(b).astype(int)).mean() < 8  # bf16 UNet, float32 scheduler
    result = train_embedded(sim_dataset, tmp_path / "cuda-model", EmbeddedTrainingConfig(**{**TINY, "device": "cuda"}),
                            text_encoder=text_encoder)
    assert result.epochs_done == 1 and np.isfinite(result.final_loss)


# ---------------------------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def generated(sim_dataset, tiny_model, tmp_path_factory):
    from flare.generate.stage import run_generate

    out = tmp_path_factory.mktemp("generated")
    # filter and audit off: these tests count and check every generated row (tests/test_generate_rare.py covers them)
    config = GenerateConfig(model_path=str(tiny_model), per_class=2, variations=1, variation_max_per_class=1, steps=3,
                            filter="none", audit=False)
    return run_generate(sim_dataset, out, config, seed=0), config


def test_generate_rows_are_train_only_typed_and_recorded(generated, sim_dataset):
    from flare.data.leakage import check_leakage

    result, _ = generated
    manifest = result.manifest
    made = manifest.filter(stage="generate")
    assert len(made) == 6 * 2 + 6 * 1
    assert set(made.frame["split"]) == {"train"}
    assert sorted(set(made.frame["operation"])) == ["i2i-variation", "t2i"]
    assert len(manifest) == len(Manifest.read(sim_dataset)) + len(made)
    assert check_leakage(manifest).ok
    for row in made.records():
        params = json.loads(row["params"])
        for key in ("prompt", "guidance_scale", "num_inference_steps", "strength", "seed", "backend_config"):
            assert key in params, key
        assert params["seed"] == row["seed"]
        if row["operation"] == "t2i":
            assert row["origin_id"] == row["id"] and Manifest.parents(row) == [] and params["strength"] is None
        else:
            parent = Manifest.parents(row)[0]
            assert row["origin_id"] == manifest.frame.set_index("id").loc[parent, "origin_id"]
            assert params["strength"] == 0.5
        assert manifest.resolve(row["path"]).is_file()
    assert result.grid_path is not None and result.grid_path.is_file()


def test_same_seed_same_bytes_other_seed_differs(generated, sim_dataset, tmp_path):
    from flare.generate.stage import run_generate

    result, config = generated
    again = run_generate(sim_dataset, tmp_path / "again", config, seed=0, grid=False).manifest.filter(stage="generate")
    other = run_generate(sim_dataset, tmp_path / "other", config.model_copy(update={"variations": 0}), seed=1,
                         grid=False).manifest.filter(stage="generate")
    first = result.manifest.filter(stage="generate").frame.set_index("id")["sha256"]
    assert again.frame.set_index("id")["sha256"].equals(first)
    other_hashes = other.frame.set_index("id")["sha256"]
    assert (other_hashes != first.loc[other_hashes.index]).all()


def test_cli_generate_and_one_line_errors(sim_dataset, tiny_model, tmp_path):
    from flare.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["generate", str(sim_dataset), str(out), "--model-path", str(tiny_model),
                                 "--per-class", "1", "--variations", "0", "--steps", "2", "--filter", "none",
                                 "--no-audit"])
    assert result.exit_code == 0, result.output
    assert "6 generate rows" in result.output and "t2i 6" in result.output
    bad = runner.invoke(app, ["generate", str(sim_dataset), str(tmp_path / "bad"), "--backend", "nope"])
    assert bad.exit_code == 1 and "generate.backend: unknown backend 'nope'" in bad.output
    missing = runner.invoke(app, ["generate", str(sim_dataset), str(tmp_path / "bad2"), "--model-path",
                                  str(tmp_path / "none")])
    assert missing.exit_code == 1 and "holds no trained embedded model" in missing.output


def test_unknown_backend_and_model_path_errors_are_flare_errors():
    from flare.generate.registry import create_generator, list_generators

    assert list_generators() == ["embedded", "sd", "unidiffuser"]
    with pytest.raises(FlareError, match="generate.model_path"):
        create_generator("sd")


# ---------------------------------------------------------------------------------------------- quality and filter
def test_quality_table_and_filter(generated):
    from flare.generate.filtering import filter_synthetic
    from flare.metrics.synthetic import manifold_precision_recall, synthetic_quality

    result, _ = generated
    report = synthetic_quality(result.manifest, epochs=2, resolution_px=16)
    table = report.table.set_index("class")
    assert {"fid", "kid", "precision", "recall", "agreement"} <= set(table.columns)
    assert table.loc["all", "synthetic"] == 18 and table.loc["all:t2i", "synthetic"] == 12
    assert 0 <= table.loc["all", "agreement"] <= 1 and np.isfinite(table.loc["all", "fid"])
    assert report.chance == pytest.approx(1 / 6)
    # the generic ImageNet space sits beside the domain one
    assert {"fid_imagenet", "kid_imagenet", "precision_imagenet", "recall_imagenet", "agreement_imagenet"} <= set(table.columns)
    assert 0 <= table.loc["all", "agreement_imagenet"] <= 1 and np.isfinite(table.loc["all", "fid_imagenet"])
    # each judge's recall on the class's real val images sits beside its agreement
    assert {"real_val_recall", "real_val_recall_imagenet"} <= set(table.columns)
    assert 0 <= table.loc["all", "real_val_recall"] <= 1 and 0 <= table.loc["all", "real_val_recall_imagenet"] <= 1
    kept, dropped = filter_synthetic(result.manifest, method="confidence", threshold=0.2, epochs=2, resolution_px=16)
    assert len(kept) == len(result.manifest) - dropped
    scores = [json.loads(r["params"])["filter"]["score"] for r in kept.filter(stage="generate").records()]
    assert all(s >= 0.2 for s in scores)
    everything, none_dropped = filter_synthetic(result.manifest, method="confidence", threshold=0.0, epochs=2,
                                                resolution_px=16)
    assert none_dropped == 0 and len(everything) == len(result.manifest)
    truth = synthetic_quality(result.manifest, epochs=1, resolution_px=16, reference="truth", generic=False)
    assert truth.table.set_index("class").loc["all", "real"] == table.loc["all", "real"]
    with pytest.raises(ConfigError, match="quality.reference"):
        synthetic_quality(result.manifest, epochs=1, resolution_px=16, reference="hr", generic=False)
    points = np.random.default_rng(0).normal(size=(20, 4))
    assert manifold_precision_recall(points, points) == (1.0, 1.0)
    far_precision, _ = manifold_precision_recall(points, points + 100)
    assert far_precision == 0.0


def test_the_mirror_symmetric_judge_mirrors_its_predictions(sim_dataset):
    """Given the mirror pairs, the generic judge's prediction for a mirrored image is exactly the mirrored
    prediction; without them it is an ordinary probe."""
    from flare.core.dataset import Dataset
    from flare.metrics.synthetic import GenericJudge, generic_extractor, images_to_unit_tensor, load_images

    dataset = Dataset.open(sim_dataset)
    rows = dataset.manifest.filter(split="train")
    images, labels = images_to_unit_tensor(load_images(rows), 32), rows.frame["label"].to_numpy()
    pairs = dataset.taxonomy.mirror_pairs
    mirror = dict(pairs) | {b: a for a, b in pairs}
    judge = GenericJudge(generic_extractor(), images, labels, pairs, seed=0)
    predicted, of_mirrors = judge.predict(images), judge.predict(torch.flip(images, dims=(3,)))
    assert [mirror.get(label, label) for label in predicted] == of_mirrors.tolist()
    assert {"spiral_clockwise", "spiral_anticlockwise"} & set(predicted)  # the pair is predicted at all
    plain = GenericJudge(generic_extractor(), images, labels, (), seed=0)
    assert len(plain.probe.coef_[0]) == len(judge.probe.coef_[0]) and plain.predict(images[:0]).size == 0


def test_pipeline_step_trains_then_generates(sim_dataset, tmp_path):
    """`flare run`'s generate step with no model: trains the embedded model into generate/embedded-model first."""
    from flare.core.config import FlareConfig
    from flare.pipeline import STEPS

    names = [name for name, _ in STEPS]
    assert names.index("generate") == names.index("augment") + 1
    step = dict(STEPS)["generate"]
    config = FlareConfig.model_validate({"generate": {"train_epochs": 1, "train_resolution_px": 16, "per_class": 1,
                                                      "variations": 0, "steps": 2}})
    out = step(config, tmp_path, {"data": sim_dataset})
    assert (out / "embedded-model" / "unet" / "config.json").is_file()
    made = Manifest.read(out).filter(stage="generate")
    # the default filter and audit ran: every generated row is kept or counted as dropped
    report = json.loads((out / "generate_report.json").read_text())
    assert sum(c["generated"] for c in report["classes"].values()) == 6
    assert len(made) == sum(c["kept"] for c in report["classes"].values())
    assert report["filter"]["method"] == "confidence" and (out / "memorisation_audit.json").is_file()
    assert (out / "grid_t2i.png").is_file() or not len(made.filter(operation="t2i"))
