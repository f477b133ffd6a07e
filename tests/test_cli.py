"""The CLI is a thin layer: help, backends, config init/check, simulate, ingest, one-line errors."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from flare.cli import app
from flare.core.manifest import Manifest

runner = CliRunner()


def test_help_lists_the_stage_groups():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("data", "config", "backends", "run"):
        assert name in result.output


def test_backends_prints_a_table():
    result = runner.invoke(app, ["backends"])
    assert result.exit_code == 0 and "stage" in result.output and "backend" in result.output


def test_config_init_writes_a_valid_commented_file(tmp_path):
    path = tmp_path / "flare.yaml"
    assert runner.invoke(app, ["config", "init", str(path)]).exit_code == 0
    assert yaml.safe_load(path.read_text())["combine"]["alpha"] == 0.5
    again = runner.invoke(app, ["config", "init", str(path)])
    assert again.exit_code == 1 and "exists" in again.output
    check = runner.invoke(app, ["config", "check", str(path), "--set", "upscale.scale=3"])
    assert check.exit_code == 1 and "upscale.scale: Input should be 2, 4 or 8, got 3" in check.output


def test_data_simulate_then_ingest_its_lr_folder(tmp_path):
    result = runner.invoke(app, ["data", "simulate", str(tmp_path / "sim"), "--per-class", "2",
                                 "--set", "simulate.hr_size_px=32", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert len(Manifest.read(tmp_path / "sim")) == 12
    result = runner.invoke(app, ["data", "ingest", str(tmp_path / "sim" / "lr"), str(tmp_path / "ing"),
                                 "--taxonomy", "sim"])
    assert result.exit_code == 0, result.output
    frame = Manifest.read(tmp_path / "ing").frame
    assert len(frame) == 12 and set(frame["macro_label"]) == {"smooth", "disk", "irregular", "point"}


def test_missing_source_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["data", "ingest", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "neither a folder of class folders nor a CSV/Parquet file" in result.output
    assert "Traceback" not in result.output
