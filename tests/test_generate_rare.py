"""Rare-class synthesis (``generate.per_class: balance``), the real-data confidence filter and the memorisation
audit (near-copies of train images are found and dropped). A stand-in generator that memorises one class
drives the stage end to end, so no diffusion model is trained here."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flare.core.config import GenerateConfig
from flare.core.errors import ConfigError
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest
from flare.core.taxonomy import load_taxonomy
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput

torch.set_num_threads(1)

LONG_TAIL = {"elliptical": 20, "spiral_clockwise": 12, "edge_on": 10, "star": 6, "merger": 3,
             "spiral_anticlockwise": 1}


def _toy_manifest(counts: dict[str, int]) -> Manifest:
    """Train rows only (plan_jobs reads no pixels), plus one val row per class."""
    rows = []
    for label, n in counts.items():
        for i in range(n + 1):
            rid = f"{label}-{i:03d}"
            rows.append({"id": rid, "path": f"x/{rid}.png", "label": label, "origin_id": rid, "stage": "simulate",
                         "split": "train" if i < n else "val"})
    return Manifest.from_records(rows, "/nonexistent")


# ---------------------------------------------------------------------------------------------- balance
def test_balance_fills_rare_classes_to_the_median_and_skips_common_ones():
    from flare.generate.stage import balance_counts, plan_jobs

    taxonomy = load_taxonomy("sim")
    manifest = _toy_manifest(LONG_TAIL)
    config = GenerateConfig(balance_min=0, variations=0)
    assert config.per_class == "balance" and config.balance_target == "median"  # the defaults
    jobs = plan_jobs(manifest, taxonomy, config, seed=0)
    made = Counter(jobs["label"])
    target = 8  # median of 20, 12, 10, 6, 3, 1
    for label, real in LONG_TAIL.items():
        assert made.get(label, 0) == max(target - real, 0), label
    assert made["elliptical"] == 0 and made["merger"] == 5 and made["spiral_anticlockwise"] == 7
    # the default floor: every class gets balance_min (8), rare ones still up to the target
    floored = Counter(plan_jobs(manifest, taxonomy, GenerateConfig(variations=0), seed=0)["label"])
    assert floored["elliptical"] == 8 and floored["spiral_anticlockwise"] == 8 and floored["star"] == 8
    assert balance_counts(LONG_TAIL, "balance", "max", 0)["merger"] == {"real": 3, "target": 20, "t2i": 17}
    assert balance_counts(LONG_TAIL, "balance", 11, 0)["spiral_clockwise"]["t2i"] == 0
    assert balance_counts({"a": 3, "b": 4}, "balance", "median", 0) == {"a": {"real": 3, "target": 4, "t2i": 1},
                                                                       "b": {"real": 4, "target": 4, "t2i": 0}}
    fixed = Counter(plan_jobs(manifest, taxonomy, GenerateConfig(per_class=2, variations=0), seed=0)["label"])
    assert set(fixed.values()) == {2} and len(fixed) == 6
    with pytest.raises(ValueError):
        GenerateConfig(per_class="lots")
    with pytest.raises(ValueError):
        GenerateConfig(balance_target=0)
    # a balanced set with no floor plans nothing and still runs
    assert len(plan_jobs(_toy_manifest({"star": 4, "merger": 4}), taxonomy,
                         GenerateConfig(balance_min=0, variations=0), seed=0)) == 0


# ---------------------------------------------------------------------------------------------- a memorising generator
class Memoriser(GenerationBackend):
    """Stand-in backend: for ``copy_label``'s prompt it returns a train image of that class (rotated, as a
    generator trained on rotated views may); for every other prompt a smooth random image of its seed."""

    name = "memoriser"

    def __init__(self, copies: dict[str, list[np.ndarray]], side: int):
        self.copies, self.side = copies, side
        self.config = FrozenConfig(backend="memoriser")

    def _make(self, prompt: str, seed: int) -> np.ndarray:
        for key, images in self.copies.items():
            if key in prompt:
                return np.ascontiguousarray(np.rot90(images[seed % len(images)], seed % 4))
        rng = np.random.default_rng(seed)
        coarse = rng.integers(0, 256, (3, 3, 3)).astype(np.uint8)
        from PIL import Image
        return np.asarray(Image.fromarray(coarse).resize((self.side, self.side), Image.Resampling.BICUBIC))

    def text_to_image(self, prompts, seeds, *, guidance_scale, num_inference_steps):
        return GenerationOutput([self._make(p, s) for p, s in zip(prompts, seeds)], list(seeds),
                                [{"seed": s, "prompt": p} for p, s in zip(prompts, seeds)])

    def variation(self, images, prompts, seeds, *, strength, guidance_scale, num_inference_steps):
        return GenerationOutput([np.ascontiguousarray(i) for i in images], list(seeds),
                                [{"seed": s, "prompt": p, "strength": strength} for p, s in zip(prompts, seeds)])


@pytest.fixture()
def long_tail_dataset(sim_dataset, tmp_path):
    """The simulated survey with merger cut to 2 train objects and star to 3 (the others keep theirs)."""
    source = Manifest.read(sim_dataset)
    frame = source.frame
    keep = []
    for label, group in frame.groupby("label"):
        train = group[group["split"] == "train"].sort_values("id")
        cap = {"merger": 2, "star": 3}.get(label, len(train))
        keep += train["id"].tolist()[:cap] + group.loc[group["split"] != "train", "id"].tolist()
    out = tmp_path / "long-tail"
    Manifest(frame[frame["id"].isin(keep)].reset_index(drop=True), source.root).rebase(out).write()
    shutil.copy(sim_dataset / "taxonomy.yaml", out / "taxonomy.yaml")
    return out


@pytest.fixture()
def memoriser(monkeypatch, long_tail_dataset):
    """``backend: memoriser`` copies the rare merger class's train images."""
    import flare.generate.registry as registry

    manifest = Manifest.read(long_tail_dataset)
    mergers = manifest.filter(split="train", label="merger")
    copies = {"merging": [load_rgb(mergers.resolve(p)) for p in sorted(mergers.frame["path"])]}
    side = copies["merging"][0].shape[0]
    original = registry.create_generator
    monkeypatch.setattr(registry, "create_generator",
                        lambda name, **kw: Memoriser(copies, side) if name == "memoriser" else original(name, **kw))
    return long_tail_dataset


def test_stage_balances_audits_and_reports(memoriser, tmp_path):
    from flare.generate.filtering import AUDIT_NAME
    from flare.generate.stage import REPORT_NAME, run_generate

    config = GenerateConfig(backend="memoriser", variations=1, variation_max_per_class=1, balance_min=1,
                            filter="none", upscale=False)
    out = tmp_path / "gen"
    result = run_generate(memoriser, out, config, seed=0, grid=False)
    report = json.loads((out / REPORT_NAME).read_text())
    classes = report["classes"]
    real = {label: c["real"] for label, c in classes.items()}
    target = int(np.ceil(np.median(list(real.values()))))
    assert real["merger"] == 2 and real["star"] == 3 and target > 3
    for label, c in classes.items():
        assert c["target"] == target and c["t2i_planned"] == max(target - c["real"], 1), label
        assert c["variations_planned"] == 1
        assert c["kept"] == c["generated"] - c["dropped_filter"] - c["dropped_audit"]
    # every merger t2i image is a (rotated) copy of a train merger: all dropped; the random ones all kept
    assert classes["merger"]["dropped_audit"] == classes["merger"]["t2i_planned"]
    assert sum(c["dropped_audit"] for label, c in classes.items() if label != "merger") == 0
    audit = json.loads((out / AUDIT_NAME).read_text())
    assert audit["per_class"]["merger"]["dropped"] == classes["merger"]["t2i_planned"]
    assert audit["quantile"] == config.audit_quantile and set(audit["spaces"]) == {"pixel", "efficientnet-lite0-imagenet"}
    # variations here return their parent unchanged: flagged as near-copies, kept (they start from a train image)
    assert audit["near_copies"] == audit["dropped"] + 6
    first = audit["closest_pairs"][0]
    assert first["near_copy"] and first["pixel_distance"] == 0.0 and first["closeness"] == 0.0
    assert (out / first["synthetic_path"]).is_file() and Manifest.read(out).resolve(first["train_path"]).is_file()
    made = result.manifest.filter(stage="generate")
    assert "merger" not in set(made.filter(operation="t2i").frame["label"])
    for row in made.records():
        params = json.loads(row["params"])
        assert set(params["audit"]) >= {"nearest_train_id", "pixel_distance", "closeness", "near_copy"}
    assert report["filter"]["method"] == "none" and report["audit"]["dropped"] == classes["merger"]["t2i_planned"]
    # same config + seed: byte-identical audit, report and manifest
    again = tmp_path / "again"
    run_generate(memoriser, again, config, seed=0, grid=False)
    for name in (AUDIT_NAME, REPORT_NAME, "manifest.parquet"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------- the audit alone
def _with_synthetic(dataset: Path, out: Path, images: list[tuple[str, str, np.ndarray]]) -> Manifest:
    """``dataset``'s rows plus one generate row per ``(id, label, image)``, written under ``out``."""
    manifest = Manifest.read(dataset).rebase(out)
    rows = []
    for rid, label, image in images:
        path = Path("generated") / f"{rid}.png"
        digest = write_image(out / path, image)
        rows.append({"id": rid, "path": str(path), "sha256": digest, "label": label, "origin_id": rid,
                     "split": "train", "stage": "generate", "operation": "t2i", "seed": 0})
    return manifest.append(rows)


def test_planted_copies_are_flagged_and_new_objects_kept(sim_dataset, tmp_path):
    from flare.generate.filtering import audit_synthetic, judge_synthetic

    real = Manifest.read(sim_dataset)
    train = real.filter(split="train").frame.sort_values("id")
    test = real.filter(split="test").frame.sort_values("id")
    planted = [(f"copy-{i}", r.label, load_rgb(real.resolve(r.path))) for i, r in enumerate(train.head(3).itertuples())]
    r = train.iloc[5]
    planted.append(("copy-mirrored", r["label"], np.ascontiguousarray(load_rgb(real.resolve(r["path"]))[:, ::-1])))
    fresh = [(f"new-{i}", r.label, load_rgb(real.resolve(r.path))) for i, r in enumerate(test.itertuples())]
    manifest = _with_synthetic(sim_dataset, tmp_path / "d", planted + fresh)
    result = audit_synthetic(manifest, quantile=0.01)
    rows = result.rows.set_index("id")
    for rid, *_ in planted:
        assert rows.loc[rid, "near_copy"] and rows.loc[rid, "drop"], rid
        assert rows.loc[rid, "pixel_distance"] == 0.0
    assert rows.loc["copy-0", "nearest_train_id"] == train.iloc[0]["id"]
    # real test objects are new objects: none is as close to a train image as a copy
    assert not rows.loc[[rid for rid, *_ in fresh], "near_copy"].any()
    assert result.summary["dropped"] == 4 and result.summary["n_heldout"] == len(real.filter(split="val"))
    space = result.summary["spaces"]["pixel"]
    assert space["threshold"] == pytest.approx(space["heldout_quantiles"]["q0.01"], abs=1e-6)
    # judge: the near-copies leave the manifest, the new objects stay with their audit numbers
    judged = judge_synthetic(manifest, GenerateConfig(filter="none"), seed=0)
    kept = set(judged.manifest.filter(stage="generate").frame["id"])
    assert kept == {rid for rid, *_ in fresh} and judged.dropped_audit == {rid for rid, *_ in planted}
    # deterministic
    assert audit_synthetic(manifest, quantile=0.01).summary == result.summary
    # without the Lite0 weights: pixels only, said in the notes, copies still caught
    import flare.core.pretrained as pretrained

    original = pretrained.is_installed
    try:
        pretrained.is_installed = lambda name: False
        pixel_only = audit_synthetic(manifest)
    finally:
        pretrained.is_installed = original
    assert list(pixel_only.summary["spaces"]) == ["pixel"]
    assert any("pixel space only" in note for note in pixel_only.summary["notes"])
    # (appearance alone is a weaker test: on this tiny 12 px sky a new object may also fall below the threshold)
    assert set(pixel_only.rows.loc[pixel_only.rows["drop"], "id"]) >= {rid for rid, *_ in planted}


def test_memorisation_rule_on_arrays():
    from flare.metrics.memorisation import audit_near_copies, nearest_neighbours

    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8))
    heldout = rng.normal(size=(40, 8))
    synthetic = np.concatenate([train[:2], train[2:3] + 1e-3, rng.normal(size=(5, 8))])
    distances, index = nearest_neighbours(synthetic, train)
    assert distances[0] == 0.0 and index.tolist()[:3] == [0, 1, 2]
    audit = audit_near_copies({"a": (train, heldout, synthetic), "b": (train * 2, heldout * 2, synthetic * 2)})
    assert audit.near_copy.tolist() == [True, True, True, False, False, False, False, False]
    assert audit.closest(2).tolist() == [0, 1]
    # a copy in one space only is not a near-copy
    shuffled = synthetic.copy()
    shuffled[0] = heldout[0] * 3
    assert not audit_near_copies({"a": (train, heldout, synthetic), "b": (train, heldout, shuffled)}).near_copy[0]
    with pytest.raises(ValueError):
        audit_near_copies({"a": (train, heldout[:0], synthetic)})


# ---------------------------------------------------------------------------------------------- the filter
def test_filter_drops_low_confidence_and_records_tau(sim_dataset, tmp_path, monkeypatch):
    import flare.generate.filtering as filtering

    real = Manifest.read(sim_dataset)
    train = real.filter(split="train").frame.sort_values("id").head(4)
    images = [(f"syn-{i}", r.label, load_rgb(real.resolve(r.path))[::-1]) for i, r in enumerate(train.itertuples())]
    manifest = _with_synthetic(sim_dataset, tmp_path / "d", images)
    confidences = {"syn-0": 0.9, "syn-1": 0.49, "syn-2": 0.5, "syn-3": 0.1}

    def fake_scores(manifest, **_):
        ids = [rid for rid, *_ in images]
        frame = pd.DataFrame({"id": ids, "label": [lbl for _, lbl, _ in images], "operation": "t2i",
                              "confidence": [confidences[i] for i in ids], "predicted": "star", "outlier_z": 0.0})
        return None, None, None, None, frame, 0.75

    monkeypatch.setattr(filtering, "score_synthetic", fake_scores)
    judged = filtering.judge_synthetic(manifest, GenerateConfig(audit=False, filter_threshold=0.5,
                                                                filter_space="domain"), seed=0)
    assert judged.dropped_filter == {"syn-1", "syn-3"}
    assert judged.filter == {"method": "confidence", "threshold": 0.5, "judge": "domain",
                             "classifier_val_balanced_accuracy": 0.75,
                             "chance": pytest.approx(1 / 6, abs=1e-6), "skill": pytest.approx(0.7, abs=1e-6),
                             "min_skill": 0.25, "dropped": 2}
    kept = {r["id"]: json.loads(r["params"]) for r in judged.manifest.filter(stage="generate").records()}
    assert set(kept) == {"syn-0", "syn-2"}
    assert kept["syn-2"]["filter"] == {"method": "confidence", "score": 0.5, "threshold": 0.5}
    assert set(pd.read_csv(tmp_path / "d" / filtering.FILTERED_OUT_NAME)["id"]) == {"syn-1", "syn-3"}
    assert GenerateConfig().filter == "confidence" and GenerateConfig().filter_threshold == 0.5
    with pytest.raises(ConfigError, match="generate.filter"):
        filtering.score_filter(manifest, method="vibes")
    # a classifier at chance on real val cannot judge images: the filter keeps everything and says why
    monkeypatch.setattr(filtering, "score_synthetic", lambda m, **kw: fake_scores(m)[:5] + (0.2,))
    blind = filtering.judge_synthetic(manifest, GenerateConfig(audit=False, filter_space="domain"), seed=0)
    assert blind.dropped_filter == set() and "too close to chance" in blind.filter["skipped"]
    assert len(blind.manifest) == len(manifest)
    # nothing held out: the audit says why it did not run and drops nothing
    train_only = Manifest(manifest.frame[manifest.frame["split"] == "train"].reset_index(drop=True), manifest.root)
    skipped = filtering.judge_synthetic(train_only, GenerateConfig(filter="none"), seed=0)
    assert skipped.audit is None and "no real val or test" in skipped.audit_skipped
    assert len(skipped.manifest) == len(train_only)


@pytest.mark.parametrize("space", ["generic", "domain"])
def test_filter_on_a_real_classifier_keeps_only_confident_rows(sim_dataset, tmp_path, space):
    """The real score path of each judge: real train images re-fed as synthetic are mostly recognised, grey
    images are not; every kept row clears τ."""
    from flare.generate.filtering import judge_synthetic

    real = Manifest.read(sim_dataset)
    train = real.filter(split="train").frame.sort_values("id")
    grey = np.full_like(load_rgb(real.resolve(train.iloc[0]["path"])), 128)
    images = [(f"syn-{i}", r.label, load_rgb(real.resolve(r.path))) for i, r in enumerate(train.itertuples())]
    images += [(f"grey-{label}", label, grey) for label in sorted(set(train["label"]))]
    manifest = _with_synthetic(sim_dataset, tmp_path / "d", images)
    # min skill 0: this checks the score path, whatever the tiny survey's classifier reaches on its 6 val images
    judged = judge_synthetic(manifest, GenerateConfig(audit=False, filter_threshold=0.5, filter_min_skill=0,
                                                      filter_space=space), seed=0)
    assert judged.filter["judge"] == space
    kept = judged.manifest.filter(stage="generate").records()
    if space == "generic":  # a linear head on 1280 features fits its own train images (the small CNN does not)
        assert len(kept) >= len(train) // 2
    assert all(json.loads(r["params"])["filter"]["score"] >= 0.5 for r in kept)
    assert len(kept) + len(judged.dropped_filter) == len(images)
    greys = {rid for rid, *_ in images if rid.startswith("grey")}
    assert len(greys & judged.dropped_filter) >= 5  # one grey image cannot be 5 classes at p >= 0.5
    assert 0 <= judged.filter["classifier_val_balanced_accuracy"] <= 1


def test_the_generic_judge_is_the_default_when_lite0_is_installed():
    from flare.core.pretrained import is_installed
    from flare.generate.filtering import filter_judge_space

    assert GenerateConfig().filter_space == "auto"
    assert filter_judge_space("auto") == ("generic" if is_installed("efficientnet-lite0-imagenet") else "domain")
    with pytest.raises(ConfigError, match="filter_space"):
        filter_judge_space("vibes")
