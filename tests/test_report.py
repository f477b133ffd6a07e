"""``flare report``: one self-contained HTML file; rendered in headless Chromium (marker ``browser``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flare.classify.registry import get_preset
from flare.cli import app
from flare.evaluate.benchmark import BenchmarkSettings, run_benchmark
from test_benchmark_workdir import build_workdir

torch.set_num_threads(1)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def report(sim_dataset, tmp_path_factory):
    workdir = build_workdir(sim_dataset, tmp_path_factory.mktemp("work"))
    (workdir / "upscale" / "sr_eval.csv").write_text("backend,psnr_db,ssim\nbicubic,24.1,0.71\nswinir,27.3,0.83\n")
    preset = get_preset("cpu-tiny").with_overrides(samples_per_epoch=32, batch_size=16, epochs=3, image_size_px=32)
    run_benchmark(workdir, BenchmarkSettings(preset=preset), log=lambda _: None)
    result = CliRunner().invoke(app, ["report", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir / "report" / "report.html"


def test_report_is_self_contained_and_has_every_section(report):
    page = report.read_text()
    assert 'id="results-test"' in page and "resnet-tiny · macro · macro-F1" in page
    for heading in ("Dataset", "Results", "Feature space", "Samples per stage", "Super-resolution",
                    "Synthetic images per class", "Combination (stage 4)", "Confusion matrices", "Paired differences"):
        assert heading in page, heading
    assert "swinir" in page and "27.3" in page  # the SR evaluation table
    assert "from scratch" in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(http|//)', page)
    table = page[page.index('id="results-test"'):]
    table = table[:table.index("</table>")]
    assert all(m in table for m in ("Raw_LR", "Raw_HR", "Raw_Aug", "T2I_Aug", "FLARE"))


def test_report_tolerates_a_run_with_only_data(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path, stages=())
    result = CliRunner().invoke(app, ["report", str(workdir), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "No benchmark results" in page and "class-counts" in page
    assert CliRunner().invoke(app, ["report", str(tmp_path / "missing")]).exit_code == 1


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it)")


def _chromium_args(binary: str, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}"]


@pytest.mark.browser
def test_report_loads_in_headless_chromium(report, tmp_path):
    binary = _chromium()
    url = report.resolve().as_uri()
    dom = subprocess.run([*_chromium_args(binary, tmp_path / "profile-dom"), "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-loaded="1"' in dom.stdout and 'data-js-errors="0"' in dom.stdout
    assert 'id="results-test"' in dom.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    shot = subprocess.run([*_chromium_args(binary, tmp_path / "profile-shot"), f"--screenshot={screenshot}",
                           "--window-size=1280,2000", url], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page
