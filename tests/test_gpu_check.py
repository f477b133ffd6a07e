"""benchmarks/gpu_check.py, the prepared GPU check: its CPU dry run covers every section, and the run goes on
past a failing section and stops starting sections once its budget is spent.

The dry run is the whole script end to end in a subprocess (tiny sizes, about 40 s on the 2-core machine);
the CUDA run itself happens only on a lent GPU machine (docs/scaling.md, "GPU check").
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PAPER_BACKBONES = ["resnet50", "googlenet", "densenet121", "vit-base"]


def _load_module():
    """The script as a module (loaded once; registered first: its dataclasses look their module up)."""
    name = "flare_benchmarks_gpu_check"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--dry-run", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    seconds = time.monotonic() - began
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), out, done.stdout, seconds


def test_dry_run_fits_and_writes_log_json_and_summary(dry_run):
    results, out, stdout, seconds = dry_run
    assert seconds < 90, f"the dry run took {seconds:.0f} s (must fit 90 s on the 2-core machine)"
    meta = results["meta"]
    assert meta["device"] == "cpu" and meta["dry_run"] is True and meta["cuda"] is None
    assert meta["total_seconds"] < 90 and meta["torch_threads"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log"]
    log = (out / "gpu_check.log").read_text()
    assert "=== upscale_swinir" in log and "summary" in log
    assert "section" in stdout and "status" in stdout and "total" in stdout
    for name in ("pytest_gpu", "upscale_swinir", "generate_train", "generate_sample", "augment_loader",
                 "classify_paper", "bf16_vs_fp32", "ray_scaling"):
        assert name in stdout


def test_every_section_is_ok_or_skipped_for_a_reason(dry_run):
    results, *_ = dry_run
    sections = results["sections"]
    module = _load_module()
    assert list(sections) == list(module.SECTIONS)
    for name, entry in sections.items():
        assert isinstance(entry["seconds"], (int, float)) and entry["seconds"] >= 0, name
        if name == "pytest_gpu":  # needs CUDA: recorded as skipped by the conftest, not failed
            assert entry["status"] == "skipped" and "--rungpu" in entry["reason"], entry
        elif name == "ray_scaling" and importlib.util.find_spec("ray") is None:
            assert entry["status"] == "skipped" and "ray" in entry["reason"], entry
        else:
            assert entry["status"] == "ok", (name, entry.get("error") or entry.get("reason"))


def test_pytest_section_records_the_skipped_gpu_test(dry_run):
    figures = dry_run[0]["sections"]["pytest_gpu"]["figures"]
    assert figures["returncode"] == 0 and figures["counts"]["skipped"] >= 1
    assert "--rungpu" not in figures["command"] and "-m gpu" in figures["command"]
    assert figures["skip_reasons"] and "gpu" in figures["skip_reasons"][0]


def test_throughput_figures_are_numbers(dry_run):
    sections = dry_run[0]["sections"]
    upscale = sections["upscale_swinir"]["figures"]
    assert _positive(upscale["training"]["steps_per_s"]) and upscale["training"]["steps"] == 2
    cpu = upscale["devices"]["cpu"]
    assert cpu["bf16"] is False and len(cpu["sizes"]) == 2
    for measured in cpu["sizes"].values():
        assert _positive(measured["images_per_s"]) and measured["peak_gpu_mib"] is None
    assert max(m["tiles_per_image"] for m in cpu["sizes"].values()) > 1  # the tiled path ran

    train = sections["generate_train"]["figures"]["devices"]["cpu"]
    assert _positive(train["steps_per_s"]) and _positive(train["steps_per_s_after_first_epoch"])
    assert math.isfinite(train["final_loss"]) and train["bf16_autocast"] is False
    sample = sections["generate_sample"]["figures"]["devices"]["cpu"]
    assert _positive(sample["images_per_s"]) and sample["peak_gpu_mib"] is None

    loader = sections["augment_loader"]["figures"]
    assert loader["lazy_rows"] > 0
    for key in ("loader_only_images_per_s", "model_step_only_images_per_s", "loader_plus_model_images_per_s"):
        assert _positive(loader[key]), key
    assert 0 < loader["compute_busy_fraction"] <= 1

    classify = sections["classify_paper"]["figures"]
    assert classify["preset"] == "paper" and classify["preset_image_size_px"] == 224
    assert list(classify["backbones"]) == PAPER_BACKBONES
    for name, row in classify["backbones"].items():
        assert _positive(row["cpu"]["images_per_s"]) and row["cpu"]["parameters"] > 1_000_000, name


def test_bf16_is_compared_with_fp32(dry_run):
    figures = dry_run[0]["sections"]["bf16_vs_fp32"]["figures"]
    assert "autocast" in figures["bf16_mode"]
    for key in ("swinir", "unet"):
        compared = figures[key]
        assert compared["max_abs_diff"] >= 0 and compared["pixels"] > 0
        assert compared["identical"] or _positive(compared["psnr_db"])
        assert compared["pass"] is True, compared


def test_ray_scaling_ratios_and_identical_manifests(dry_run):
    entry = dry_run[0]["sections"]["ray_scaling"]
    if entry["status"] == "skipped":
        pytest.skip(entry["reason"])
    figures = entry["figures"]
    assert set(figures["runs"]) == {"local", "ray x1", "ray x2"}
    for name, run in figures["runs"].items():
        assert _positive(run["images_per_s"]) and run["outputs"] > 0, name
        if name != "local":
            assert run["same_manifest_as_local"] is True, name
    assert all(_positive(v) for v in figures["ratio_vs_local"].values())
    assert figures["gpu_actor"]["same_manifest_as_local"] is True
    assert figures["gpu_actor"]["default_gpus_per_worker_resolved"] == 0.0  # no GPU in this cluster


def test_a_failing_section_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    module = _load_module()
    monkeypatch.setattr(module, "alarm", lambda seconds: contextlib.nullcontext())  # leave pytest-timeout's timer alone

    def broken(check):
        raise ValueError("planted failure\nsecond line")

    monkeypatch.setitem(module.SECTION_FUNCTIONS, "generate_sample", broken)
    monkeypatch.setitem(module.SECTION_FUNCTIONS, "bf16_vs_fp32", lambda check: {"value": 1.5})
    assert module.main(["--device", "cpu", "--dry-run", "--out", str(tmp_path),
                        "--sections", "generate_sample,bf16_vs_fp32"]) == 0
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    failed, after = results["sections"]["generate_sample"], results["sections"]["bf16_vs_fp32"]
    assert failed["status"] == "error" and failed["error"] == "ValueError: planted failure"
    assert after["status"] == "ok" and after["figures"] == {"value": 1.5}
    log = (tmp_path / "gpu_check.log").read_text()
    assert "Traceback" in log and "planted failure" in log
    assert "error" in capsys.readouterr().out


def test_budget_skips_the_remaining_sections(tmp_path, monkeypatch):
    module = _load_module()
    monkeypatch.setattr(module, "alarm", lambda seconds: contextlib.nullcontext())
    assert module.main(["--device", "cpu", "--dry-run", "--out", str(tmp_path), "--budget-s", "0",
                        "--sections", "upscale_swinir,classify_paper"]) == 0
    sections = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert [s["status"] for s in sections.values()] == ["skipped", "skipped"]
    assert all(s["reason"].startswith("budget") for s in sections.values())
