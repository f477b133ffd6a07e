"""``flare report``: one self-contained HTML file; rendered in headless Chromium (marker ``browser``).

The report reads stage outputs by exact name: the SR table comes from ``upscale/sr_scores.json`` (the layout
``flare evaluate sr --out`` writes), and look-alike files beside it must be ignored.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flare.classify.benchmark import BenchmarkSettings, run_benchmark
from flare.classify.registry import get_preset
from flare.cli import app
from flare.core.manifest import Manifest
from test_benchmark_workdir import build_workdir

torch.set_num_threads(1)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SR_KEYS = ("backend", "images", "psnr_db", "psnr_centre_db", "ssim", "flux_ratio", "flux_ratio_median",
           "hallucinations", "truth_sources", "images_per_s")


def _sr_scores(*rows: tuple) -> str:
    """An ``sr_scores.json`` as ``flare evaluate sr --out`` writes it: one object per backend."""
    return json.dumps([dict(zip(SR_KEYS, row)) for row in rows], indent=2)


@pytest.fixture(scope="module")
def report(sim_dataset, tmp_path_factory):
    workdir = build_workdir(sim_dataset, tmp_path_factory.mktemp("work"))
    (workdir / "upscale" / "sr_scores.json").write_text(_sr_scores(
        ("bicubic", 12, 24.1, 22.5, 0.71, 0.981, 0.99, 4, 40, 812.3),
        ("swinir", 12, 27.3, 25.04, 0.83, 1.004, 1.02, 1, 40, 4.25)))
    # Look-alikes the old file-name guessing picked up; the report must not.
    (workdir / "upscale" / "sr_whatever.csv").write_text("backend,psnr_db\nstray-backend,99.9\n")
    (workdir / "upscale" / "sr_eval.json").write_text('[{"backend": "stray-json", "psnr_db": 98.7}]')
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
    assert "stray-backend" not in page and "stray-json" not in page
    assert "from scratch" in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(http|//)', page)
    table = page[page.index('id="results-test"'):]
    table = table[:table.index("</table>")]
    assert all(m in table for m in ("Raw_LR", "Raw_HR", "Raw_Aug", "T2I_Aug", "FLARE"))


def _table(page: str, table_id: str) -> list[list[str]]:
    """The cell texts of one table, header row first; a ``best`` cell is marked with a leading ``*``."""
    table = page[page.index(f'id="{table_id}"'):]
    table = table[:table.index("</table>")]
    cells = r'<t[hd]( class="best")?>([^<]*)</t[hd]>'
    return [[("*" if best else "") + text for best, text in re.findall(cells, row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def test_report_sr_table_has_fixed_columns_and_formats(report):
    assert _table(report.read_text(), "sr-scores-upscale") == [
        ["backend", "images", "PSNR dB", "PSNR centre dB", "SSIM", "flux ratio", "flux ratio (median)",
         "hallucinated ≥5σ sources", "truth sources", "images/s"],
        ["bicubic", "12", "24.10", "22.50", "0.7100", "0.981", "*0.990", "4", "40", "*812.30"],
        ["swinir", "12", "*27.30", "*25.04", "*0.8300", "*1.004", "1.020", "*1", "40", "4.25"],
    ]


def test_report_sr_scores_from_sr_eval_and_unreadable_ones(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path / "run", stages=())
    (workdir / "sr_eval").mkdir()
    lanczos = ("lanczos", 3, 23.0, 21.0, 0.7, 1.0, 1.0, 0, 9, 50.0)
    (workdir / "sr_eval" / "sr_scores.json").write_text(_sr_scores(lanczos))
    (workdir / "upscale").mkdir()  # scores without an upscale manifest: a table, no before/after grid
    (workdir / "upscale" / "sr_scores.json").write_text('[{"backend": "bicubic", "psnr_db": 24.0}]')
    result = CliRunner().invoke(app, ["report", str(workdir)])
    assert result.exit_code == 0, result.output
    page = (workdir / "report" / "report.html").read_text()
    assert "Super-resolution: before / after" in page and "No upscaled rows" not in page
    assert _table(page, "sr-scores-sr_eval")[1] == ["lanczos", "3", "23.00", "21.00", "0.7000", "1.000", "1.000", "0",
                                                     "9", "50.00"]  # one backend: nothing marked best
    assert 'id="sr-scores-upscale"' not in page
    assert "upscale/sr_scores.json" in page and "missing" in page and "psnr_centre_db" in page


def test_report_escapes_what_it_shows(sim_dataset, tmp_path):
    # Labels cannot carry markup (the containment rule refuses them, below), so the text that reaches the page
    # unchecked is a stage's JSON (an SR backend name) and the run folder's own name.
    workdir = build_workdir(sim_dataset, tmp_path / "run<i>", stages=())
    (workdir / "sr_eval").mkdir()
    (workdir / "sr_eval" / "sr_scores.json").write_text(
        _sr_scores(("<script>alert(1)</script>", 3, 23.0, 21.0, 0.7, 1.0, 1.0, 0, 9, 50.0)))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(workdir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>" not in page and "run&lt;i&gt;" in page
    assert page.count("<script>") == 1  # only the report's own load check


def test_report_refuses_a_label_that_is_not_a_class_name(sim_dataset, tmp_path):
    workdir = build_workdir(sim_dataset, tmp_path / "run", stages=())
    data = Manifest.read(workdir / "data")
    label = data.frame["label"].iloc[0]
    data.frame["label"] = data.frame["label"].replace(label, "<script>alert(1)</script>")
    data.write()
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(workdir), "--out", str(out)])
    assert result.exit_code == 1 and "is not a safe class name" in result.output and not out.exists()


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
