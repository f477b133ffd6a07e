"""Core: config validation and overrides, manifest round trips and atomic writes, taxonomy, registry, seeds."""

from __future__ import annotations

import os

import pytest
import yaml

from flare.core.config import FlareConfig, apply_overrides, default_config_yaml, load_config
from flare.core.errors import ConfigError, ManifestError, UnknownBackendError
from flare.core.files import TEMP_PREFIX, atomic_output, safe_join
from flare.core.manifest import Manifest, derived_id
from flare.core.registry import Registry
from flare.core.seeding import derive_seed
from flare.core.taxonomy import Taxonomy, load_taxonomy


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("override, message", [
    ("upscale.scale=3", "upscale.scale: Input should be 2, 4 or 8, got 3"),
    ("data.stretch=cubic", "data.stretch: Input should be 'linear', 'asinh', 'log' or 'sqrt', got 'cubic'"),
    ("combine.alpha=1.5", "combine.alpha: Input should be less than or equal to 1, got 1.5"),
    ("data.split.train=0.9", "data.split: train + val + test must be 1.0, got 1.2"),
    ("simulate.hr_size_px=50", "simulate: hr_size_px (50) must be divisible by factor (4)"),
    ("nonsense.key=1", "nonsense: unknown key"),
])
def test_bad_values_give_one_line_naming_the_field(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == message and "\n" not in str(info.value)


def test_precedence_defaults_file_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 5\nupscale:\n  backend: lanczos\n  scale: 2\n")
    config = load_config(path, ["upscale.scale=4"])
    assert (config.seed, config.upscale.backend, config.upscale.scale) == (5, "lanczos", 4)
    assert config.augment.k == FlareConfig().augment.k


def test_default_config_yaml_round_trips_and_is_commented():
    text = default_config_yaml()
    assert "# one of: percentile, zscale, minmax" in text
    assert FlareConfig.model_validate(yaml.safe_load(text)) == FlareConfig()


def test_apply_overrides_parses_yaml_scalars():
    assert apply_overrides({}, ["a.b=3", "a.c=[1, 2]", "d=true"]) == {"a": {"b": 3, "c": [1, 2]}, "d": True}
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["novalue"])


def test_bad_yaml_file_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


# ---------------------------------------------------------------- manifest
def _records(n=3):
    return [{"id": f"img{i}", "path": f"images/img{i}.png", "label": "a", "origin_id": f"o{i}", "stage": "ingest",
             "params": {"x": i}, "seed": i, "parent_ids": []} for i in range(n)]


def test_manifest_round_trip_sorted_and_idempotent(tmp_path):
    manifest = Manifest.from_records(reversed(_records()), tmp_path)
    path = manifest.write()
    first = path.read_bytes()
    loaded = Manifest.read(tmp_path)
    assert loaded.ids() == ["img0", "img1", "img2"]
    assert loaded.params(loaded.records()[1]) == {"x": 1}
    loaded.append(_records()).write()  # re-running a finished step changes nothing
    assert path.read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_manifest_append_replaces_rows_with_the_same_id(tmp_path):
    manifest = Manifest.from_records(_records(), tmp_path)
    child = {"id": derived_id("img0", "augment", 1), "path": "x.png", "label": "a", "origin_id": "o0",
             "stage": "augment", "parent_ids": ["img0"]}
    grown = manifest.append([child]).append([{**child, "seed": 9}])
    assert len(grown) == 4 and grown.filter(stage="augment").records()[0]["seed"] == 9
    assert Manifest.parents(grown.filter(stage="augment").records()[0]) == ["img0"]


def test_manifest_rejects_missing_columns_unknown_columns_and_bad_files(tmp_path):
    with pytest.raises(ManifestError, match="lacks required column 'label'"):
        Manifest.from_records([{"id": "x", "path": "p", "origin_id": "o", "stage": "s"}], tmp_path)
    with pytest.raises(ManifestError, match="unknown columns"):
        Manifest.from_records([{**_records(1)[0], "colour": "red"}], tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet"):
        Manifest.read(tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        Manifest.read(tmp_path / "nowhere")


def test_rebase_keeps_paths_valid(tmp_path):
    (tmp_path / "a" / "images").mkdir(parents=True)
    (tmp_path / "a" / "images" / "img0.png").write_bytes(b"x")
    manifest = Manifest.from_records(_records(1), tmp_path / "a")
    moved = manifest.rebase(tmp_path / "b")
    assert moved.resolve(moved.records()[0]["path"]).resolve() == (tmp_path / "a" / "images" / "img0.png").resolve()


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert not target.exists() and os.listdir(tmp_path) == []


def test_safe_join_refuses_escape(tmp_path):
    assert safe_join(tmp_path, "a/b.png") == (tmp_path / "a" / "b.png").resolve()
    with pytest.raises(Exception, match="unsafe path"):
        safe_join(tmp_path, "../etc/passwd")
    with pytest.raises(Exception, match="unsafe path"):
        safe_join(tmp_path, "/etc/passwd")


# ---------------------------------------------------------------- taxonomy, registry, seeds
def test_presets_and_mirror_pairs():
    gz1 = load_taxonomy("gz1")
    assert gz1.macro_classes == ["disk", "irregular", "smooth"]
    assert gz1.mirror("spiral_clockwise") == "spiral_anticlockwise"
    assert gz1.mirror("spiral_anticlockwise") == "spiral_clockwise" and gz1.mirror("merger") == "merger"
    spacenet = load_taxonomy("spacenet")
    assert len(spacenet.fine_classes) == 8 and len(spacenet.macro_classes) == 4
    assert spacenet.macro("planet") == spacenet.macro("asteroid") == "Celestial Bodies"
    assert spacenet.with_overrides({"comet": "Celestial Bodies"}).macro("comet") == "Celestial Bodies"


def test_taxonomy_yaml_round_trip_and_errors(tmp_path):
    gz1 = load_taxonomy("gz1")
    gz1.save(tmp_path / "t.yaml")
    assert load_taxonomy(tmp_path / "t.yaml") == gz1
    with pytest.raises(ConfigError, match="not a file nor one of the presets"):
        load_taxonomy("nope")
    with pytest.raises(ConfigError, match="mirror_pairs"):
        Taxonomy("x", {"a": "m"}, (("a", "b"),))
    with pytest.raises(ConfigError, match="safe name"):
        Taxonomy("x", {"../a": "m"})


def test_registry_create_list_and_unknown():
    registry = Registry("test-stage")

    @registry.register("alpha-one", default=True)
    def make(size=3):
        """An example backend."""
        return ("alpha", size)

    assert registry.create("alpha-one", size=None) == ("alpha", 3)  # None options keep the backend's default
    assert registry.list("alpha*") == ["alpha-one"] and registry.default_name == "alpha-one"
    assert registry.get("alpha-one").description == "An example backend."
    with pytest.raises(UnknownBackendError, match="test-stage.backend: unknown backend 'beta'; one of alpha-one"):
        registry.create("beta")


def test_derived_seeds_depend_only_on_keys():
    assert derive_seed(0, "augment", "img1", 2) == derive_seed(0, "augment", "img1", 2)
    assert len({derive_seed(0, "augment", "img1", v) for v in range(100)}) == 100
    assert derive_seed(1, "augment", "img1", 2) != derive_seed(0, "augment", "img1", 2)
