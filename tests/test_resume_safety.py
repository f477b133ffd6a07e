"""Resume safety: torn generate sidecars are re-made, a changed config is caught before it lies, one run per
work folder at a time, an output path that is a file and out-of-bounds config values are one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flare.cli import app
from flare.core.config import GenerateConfig, load_config
from flare.core.errors import ConfigError, FlareError
from flare.core.manifest import MANIFEST_NAME

runner = CliRunner()


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- finding 7: sidecars
@pytest.fixture(scope="module")
def tiny_model(sim_dataset, tmp_path_factory):
    import torch

    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    torch.set_num_threads(1)
    model_dir = tmp_path_factory.mktemp("embedded") / "model"
    train_embedded(sim_dataset, model_dir, EmbeddedTrainingConfig(resolution_px=16, block_out_channels=(8, 16),
                                                                   epochs=1, batch_size=8, checkpoint_every=1))
    return model_dir


def test_truncated_sidecar_is_remade_on_resume(sim_dataset, tiny_model, tmp_path):
    from flare.generate.stage import run_generate

    out = tmp_path / "gen"
    config = GenerateConfig(model_path=str(tiny_model), per_class=1, variations=0, steps=2)
    run_generate(sim_dataset, out, config, seed=0, grid=False)
    reference = (out / MANIFEST_NAME).read_bytes()
    sidecars = sorted((out / "generated").rglob("*.json"))
    assert sidecars
    torn, image = sidecars[0], sidecars[0].with_suffix(".png")
    whole = torn.read_text()
    torn.write_text(whole[: len(whole) // 2])  # a crash mid-write of the old, non-atomic sidecar
    (out / MANIFEST_NAME).unlink()  # the crash came before the manifest
    run_generate(sim_dataset, out, config, seed=0, grid=False)
    assert torn.read_text() == whole and image.is_file()
    assert (out / MANIFEST_NAME).read_bytes() == reference


# ---------------------------------------------------------------------------------------------- finding 7: stale config
TINY_SKY = ["--set", "simulate.objects_per_class=6", "--set", "simulate.hr_size_px=32",
            "--set", "simulate.classes=[elliptical, star]", "--set", "upscale.backend=bicubic"]


@pytest.fixture()
def two_steps(monkeypatch):
    """Only the data and upscale steps (the real ones), so a whole `flare run` takes a second."""
    import flare.pipeline as pipeline

    monkeypatch.setattr(pipeline, "STEPS", [step for step in pipeline.STEPS if step[0] in ("data", "upscale")])


def _run(workdir: Path, *extra: str):
    return runner.invoke(app, ["run", "--workdir", str(workdir), *TINY_SKY, *extra])


def test_changed_seed_reports_stale_steps_and_keeps_config(two_steps, tmp_path):
    workdir = tmp_path / "work"
    first = _run(workdir)
    assert first.exit_code == 0, first.output
    assert (workdir / "data" / "flare_step.json").is_file() and (workdir / "upscale" / "flare_step.json").is_file()
    config_before = (workdir / "config.yaml").read_bytes()
    manifest_before = (workdir / "upscale" / MANIFEST_NAME).read_bytes()

    again = _run(workdir)  # same config: everything is done
    assert again.exit_code == 0 and again.output.count("already done") == 2, again.output

    changed = _run(workdir, "--seed", "1")
    assert changed.exit_code == 1, changed.output
    lines = _error_lines(changed)
    assert len(lines) == 1 and "data" in lines[0] and "upscale" in lines[0] and "--rerun-stale" in lines[0], lines
    assert "Traceback" not in changed.output
    assert (workdir / "config.yaml").read_bytes() == config_before
    assert (workdir / "upscale" / MANIFEST_NAME).read_bytes() == manifest_before

    rerun = _run(workdir, "--seed", "1", "--rerun-stale")
    assert rerun.exit_code == 0, rerun.output
    assert "already done" not in rerun.output
    assert (workdir / "data.stale-1" / MANIFEST_NAME).is_file()  # moved aside, not deleted
    assert (workdir / "upscale.stale-1" / MANIFEST_NAME).read_bytes() == manifest_before
    assert (workdir / "upscale.stale-1" / "config.yaml").read_bytes() == config_before  # what made it
    assert yaml.safe_load((workdir / "config.yaml").read_text())["seed"] == 1
    assert _run(workdir, "--seed", "1").output.count("already done") == 2


def test_downstream_change_leaves_upstream_alone(two_steps, tmp_path):
    workdir = tmp_path / "work"
    assert _run(workdir).exit_code == 0
    changed = _run(workdir, "--set", "upscale.format=webp")
    assert changed.exit_code == 1
    line = _error_lines(changed)[0]
    assert "upscale" in line and "data" not in line.split("stale")[0].replace("upscale", ""), line
    rerun = _run(workdir, "--set", "upscale.format=webp", "--rerun-stale")
    assert rerun.exit_code == 0, rerun.output
    assert "[data] already done" in rerun.output and (workdir / "upscale.stale-1").is_dir()
    assert not (workdir / "data.stale-1").exists()


def test_workdir_from_an_older_flare_is_treated_as_matching(two_steps, tmp_path):
    workdir = tmp_path / "work"
    assert _run(workdir).exit_code == 0
    for record in workdir.glob("*/flare_step.json"):
        record.unlink()
    again = _run(workdir)
    assert again.exit_code == 0 and again.output.count("already done") == 2, again.output
    assert (workdir / "data" / "flare_step.json").is_file()  # recorded now
    assert _run(workdir, "--seed", "2").exit_code == 1  # and checked from then on


# ---------------------------------------------------------------------------------------------- finding 7: the lock
def test_second_run_refuses_while_a_live_pid_holds_the_lock(two_steps, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (workdir / ".flare.lock").write_text(f"{holder.pid}\n")
        result = _run(workdir)
        assert result.exit_code == 1, result.output
        lines = _error_lines(result)
        assert len(lines) == 1 and str(holder.pid) in lines[0], lines
        assert not (workdir / "data").exists()
        assert (workdir / ".flare.lock").read_text().strip() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_pids_lock_is_taken_over(two_steps, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (workdir / ".flare.lock").write_text(f"{gone.pid}\n")
    result = _run(workdir)
    assert result.exit_code == 0, result.output
    assert "stale lock" in result.output and str(gone.pid) in result.output
    assert not (workdir / ".flare.lock").exists()  # released at the end


def test_lock_is_released_after_a_failed_run(two_steps, tmp_path, monkeypatch):
    import flare.pipeline as pipeline

    def boom(*_):
        raise FlareError("boom")

    monkeypatch.setattr(pipeline, "STEPS", [("data", boom)])
    workdir = tmp_path / "work"
    assert _run(workdir).exit_code == 1
    assert not (workdir / ".flare.lock").exists()


# ---------------------------------------------------------------------------------------------- finding 8
def test_workdir_that_is_a_file_is_one_line(tmp_path):
    file = tmp_path / "not-a-folder"
    file.write_text("keep me\n")
    result = runner.invoke(app, ["run", "--workdir", str(file)])
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and "not a folder" in lines[0] and "Traceback" not in result.output, lines
    assert file.read_text() == "keep me\n"


def test_prepare_output_dir(tmp_path):
    from flare.core.files import prepare_output_dir

    assert prepare_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FlareError, match="not a folder"):
        prepare_output_dir(tmp_path / "file")
    with pytest.raises(FlareError, match="not a folder"):
        prepare_output_dir(tmp_path / "file" / "below")


@pytest.mark.parametrize("key, value, message", [
    ("simulate.objects_per_class", 1e20, "simulate.objects_per_class: "),  # passed before: a float with no fraction
    ("simulate.objects_per_class", 1e6, "simulate.objects_per_class: Input should be less than or equal to 100000"),
    ("simulate.hr_size_px", 8192, "simulate.hr_size_px: Input should be less than or equal to 4096"),
    ("augment.k", 5000, "augment.k: Input should be less than or equal to 1000"),
    ("generate.per_class", 10**6, "generate.per_class: Input should be less than or equal to 100000"),
    ("workdir", "/", "workdir: must not be a file-system root"),
    ("workdir", "~", "workdir: must not be your home folder itself"),
])
def test_config_bounds_are_one_line_errors(tmp_path, key, value, message):
    path = tmp_path / "run.yaml"
    section, _, name = key.rpartition(".")
    path.write_text(yaml.safe_dump({section: {name: value}} if section else {name: value}))
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and message in lines[0], lines
    with pytest.raises(ConfigError, match="^" + message.split(":")[0]):
        load_config(path)


def test_sane_workdirs_still_pass(tmp_path):
    assert load_config(overrides={"workdir": str(tmp_path / "w")}).workdir == str(tmp_path / "w")
    assert load_config(overrides={"workdir": "flare-work"}).workdir == "flare-work"


@pytest.mark.parametrize("command", ["upscale", "augment", "combine"])
def test_stage_output_that_is_a_file_is_one_line(command, sim_dataset, tmp_path):
    from flare.augment.stage import augment_dataset
    from flare.combine import combine_datasets
    from flare.core.errors import FlareError
    from flare.upscale.stage import upscale_dataset

    file = tmp_path / "out-file"
    file.write_text("keep me\n")
    run = {"upscale": lambda: upscale_dataset(sim_dataset, file),
           "augment": lambda: augment_dataset(sim_dataset, file),
           "combine": lambda: combine_datasets(sim_dataset, file)}[command]
    with pytest.raises(FlareError, match="is not a folder"):
        run()
    assert file.read_text() == "keep me\n"
