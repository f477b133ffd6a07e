"""``generate.chirality: mirror``: the second class of a mirror pair (anticlockwise) is made as the mirror image of
a sample for the first class's prompt (clockwise); a variation mirrors its parent in and the result back. A
stand-in backend that draws an asymmetric, prompt- and seed-dependent image drives the stage, so no diffusion
model is trained here."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError
from flare.core.io import load_rgb
from flare.core.manifest import Manifest
from flare.core.symmetry import mirrored_classes
from flare.core.taxonomy import load_taxonomy
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput

def _drawing(prompt: str, seed: int, side: int) -> np.ndarray:
    """An image no mirror maps to itself: a ramp, a corner mark and a prompt- and seed-dependent colour."""
    rng = np.random.default_rng([seed, sum(map(ord, prompt))])
    image = np.zeros((side, side, 3), np.uint8)
    image[..., 0] = np.arange(side, dtype=np.uint8)[None, :] * 15
    image[:3, :3] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image


class Sketcher(GenerationBackend):
    """t2i: :func:`_drawing` of (prompt, seed); a variation: the parent with a mark in its top-left corner."""

    name = "sketcher"

    def __init__(self, side: int):
        self.side = side  # the dataset's image side, so the stage writes the drawing unresized
        self.config = FrozenConfig(backend="sketcher")

    def text_to_image(self, prompts, seeds, *, guidance_scale, num_inference_steps):
        return GenerationOutput([_drawing(p, s, self.side) for p, s in zip(prompts, seeds)], list(seeds),
                                [{"seed": s, "prompt": p} for p, s in zip(prompts, seeds)])

    def variation(self, images, prompts, seeds, *, strength, guidance_scale, num_inference_steps):
        marked = []
        for image in images:
            image = np.array(image)
            image[:2, :2] = 255
            marked.append(image)
        return GenerationOutput(marked, list(seeds), [{"seed": s, "prompt": p} for p, s in zip(prompts, seeds)])


def _toy_manifest(counts: dict[str, int]) -> Manifest:
    rows = [{"id": f"{label}-{i:03d}", "path": f"x/{label}-{i:03d}.png", "label": label,
             "origin_id": f"{label}-{i:03d}", "stage": "simulate", "split": "train"}
            for label, n in counts.items() for i in range(n)]
    return Manifest.from_records(rows, "/nonexistent")


def test_mirrored_classes_needs_both_classes_of_a_pair():
    pairs = (("spiral_clockwise", "spiral_anticlockwise"),)
    assert mirrored_classes(["elliptical", "spiral_anticlockwise", "spiral_clockwise"], pairs) == {
        "spiral_anticlockwise": "spiral_clockwise"}
    assert mirrored_classes(["elliptical", "spiral_anticlockwise"], pairs) == {}


def test_plan_prompts_the_canonical_class_for_the_mirrored_one():
    from flare.generate.stage import plan_jobs

    taxonomy = load_taxonomy("gz1")
    manifest = _toy_manifest({"elliptical": 20, "spiral_clockwise": 4, "spiral_anticlockwise": 3, "merger": 2})
    jobs = plan_jobs(manifest, taxonomy, GenerateConfig(variations=1, balance_min=0), seed=0)
    anticlockwise = jobs[jobs["label"] == "spiral_anticlockwise"]
    assert Counter(anticlockwise["operation"]) == {"t2i": 1, "i2i-variation": 3}
    assert (anticlockwise["sampled_label"] == "spiral_clockwise").all() and anticlockwise["mirrored"].all()
    assert (anticlockwise["prompt"] == "A realistic image of clockwise spiral galaxy in space").all()
    others = jobs[jobs["label"] != "spiral_anticlockwise"]
    assert not others["mirrored"].any() and (others["sampled_label"] == others["label"]).all()
    # the mirrored class keeps its own ids, seeds and count: its images are new draws, not copies of clockwise ones
    assert anticlockwise["id"].str.contains("anticlockwise").all()
    assert len(set(anticlockwise["seed"]) & set(jobs.loc[jobs["label"] == "spiral_clockwise", "seed"])) == 0
    learnt = plan_jobs(manifest, taxonomy, GenerateConfig(variations=1, balance_min=0, chirality="learn"), seed=0)
    assert not learnt["mirrored"].any()
    assert (learnt.loc[learnt["label"] == "spiral_anticlockwise", "prompt"]
            == "A realistic image of anticlockwise spiral galaxy in space").all()


@pytest.fixture()
def sketcher(monkeypatch, sim_dataset):
    import flare.generate.registry as registry

    first = Manifest.read(sim_dataset).filter(split="train")
    side = load_rgb(first.resolve(first.frame["path"].iloc[0])).shape[0]
    original = registry.create_generator
    monkeypatch.setattr(registry, "create_generator",
                        lambda name, **kw: Sketcher(side) if name == "sketcher" else original(name, **kw))
    return side


def test_stage_mirrors_samples_and_variations_into_the_pair_class(sim_dataset, sketcher, tmp_path):
    from flare.generate.stage import REPORT_NAME, run_generate

    config = GenerateConfig(backend="sketcher", per_class=2, variations=1, variation_max_per_class=2,
                            filter="none", audit=False, upscale=False)
    result = run_generate(sim_dataset, tmp_path / "gen", config, seed=0, grid=False)
    rows = result.manifest.filter(stage="generate")
    frame = rows.frame
    mirrored = frame[frame["label"] == "spiral_anticlockwise"]
    assert len(mirrored) == 4
    for row in mirrored.to_dict("records"):
        params = json.loads(row["params"])
        assert params["mirrored"] is True and params["sampled_label"] == "spiral_clockwise"
        assert params["prompt"] == "A realistic image of clockwise spiral galaxy in space"
        image = load_rgb(rows.resolve(row["path"]))
        if row["operation"] == "t2i":
            # exactly the mirror image of what the backend draws for the clockwise prompt and this seed
            np.testing.assert_array_equal(image, _drawing(params["prompt"], row["seed"], sketcher)[:, ::-1])
        else:
            # the parent was mirrored in and the result back: the variation's mark sits in the top-right corner
            source = Manifest.read(sim_dataset)
            parent = source.frame.set_index("id").loc[json.loads(row["parent_ids"])[0]]
            expected = np.array(load_rgb(source.resolve(parent["path"])))
            expected[:2, -2:] = 255
            np.testing.assert_array_equal(image, expected)
    for row in frame[frame["label"] != "spiral_anticlockwise"].to_dict("records"):
        assert json.loads(row["params"])["mirrored"] is False
    report = json.loads((tmp_path / "gen" / REPORT_NAME).read_text())
    assert report["chirality"] == {"rule": "mirror", "mirrored": {"spiral_anticlockwise": "spiral_clockwise"}}


def test_a_model_that_learnt_by_mirroring_refuses_learn_sampling(sim_dataset, tmp_path):
    from flare.generate.embedded import trained_mirrors
    from flare.generate.stage import run_generate

    model = tmp_path / "model"
    model.mkdir()
    assert trained_mirrors(model) == {}  # no training.json: a model that learnt every prompt
    (model / "training.json").write_text(json.dumps({"mirrored_classes": {"spiral_anticlockwise": "spiral_clockwise"}}))
    assert trained_mirrors(model) == {"spiral_anticlockwise": "spiral_clockwise"}
    with pytest.raises(ConfigError, match="chirality: mirror"):
        run_generate(sim_dataset, tmp_path / "gen", GenerateConfig(model_path=str(model), chirality="learn"), seed=0)
