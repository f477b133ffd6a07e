"""``flare report``: one self-contained HTML file; rendered in headless Chromium (marker ``browser``).

The report reads stage outputs by exact name: the SR table comes from ``upscale/sr_scores.json`` (the layout
``flare evaluate sr --out`` writes), and look-alike files beside it must be ignored.

The benchmark fixture runs every method plus the Oracle_HR upper bound over two seeds, so the page has the
comparison (headline, FLARE against each baseline, SR headroom), intervals, val rows, recipes and val curves.
``benchmark/efficiency.json`` is written here from that run's results (two fractions, the schema
``flare.classify.efficiency`` writes), so the report is tested apart from the code that makes the file.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from flare.classify.benchmark import BenchmarkSettings, run_benchmark
from flare.classify.registry import get_preset
from flare.classify.variants import METHODS
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


FRACTIONS = ((0.25, 0.6), (1.0, 1.0))  # (fraction, how much of the full run's score it keeps, for the fixture)


def _write_efficiency(workdir: Path) -> dict:
    """``benchmark/efficiency.json`` built from the run's results: each test row is the 100 % point, a shrunken
    copy the 25 % point; each fraction's comparison is the run's, its headline marked with the fraction."""
    results = json.loads((workdir / "benchmark" / "results.json").read_text())
    cell = json.loads(next((workdir / "benchmark" / "cells").glob("*.json")).read_text())
    counts = {f"{f}": max(1, round(f * cell["n_real_train"])) for f, _ in FRACTIONS}
    curves = []
    for row in results["rows"]:
        if row["evaluation"] != "test":
            continue
        points = []
        for fraction, keep in FRACTIONS:
            scale = lambda s: {**s, "mean": s["mean"] * keep}  # noqa: E731
            points.append({"fraction": fraction, "n_real_train": counts[f"{fraction}"], "seeds": row["seeds"],
                           "macro_f1": scale(row["macro_f1"]), "accuracy": scale(row["accuracy"]),
                           "ci95": {m: {"low": i["low"] * keep, "high": i["high"] * keep, "level": 0.95}
                                    for m, i in row["ci95"].items()}})
        curves.append({"method": row["method"], "backbone": row["backbone"], "task": row["task"], "points": points})
    comparison = {}
    for fraction, _ in FRACTIONS:
        entries = copy.deepcopy(results["comparison"])
        for entry in entries:
            entry["headline"] = f"At {100 * fraction:g} % of the train set: {entry['headline']}"
        comparison[f"{fraction}"] = entries
    summary = {"fractions": [f for f, _ in FRACTIONS], "subset_seed": 0, "n_real_train": counts, "curves": curves,
               "comparison": comparison}
    (workdir / "benchmark" / "efficiency.json").write_text(json.dumps(summary, indent=1))
    return summary


class _PageTables(HTMLParser):
    """Every table of a page by id: rows of ``{cls, cells: [{text, note, cls}]}`` (header row first)."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self._table = self._row = self._cell = None
        self._in_note = False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id") or "", [])
        elif tag == "tr" and self._table is not None:
            self._row = {"cls": attrs.get("class") or "", "cells": []}
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"text": "", "note": "", "cls": attrs.get("class") or ""}
            self._row["cells"].append(self._cell)
        elif tag == "span" and attrs.get("class") == "ci":
            self._in_note = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "span":
            self._in_note = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["note" if self._in_note else "text"] += data


def _rows(page: str, table_id: str) -> list[dict]:
    """The body rows of one table, each ``{cls, texts, notes, classes}``."""
    rows = _PageTables(page).tables[table_id][1:]
    return [{"cls": r["cls"], "texts": [c["text"] for c in r["cells"]], "notes": [c["note"] for c in r["cells"]],
             "classes": [c["cls"] for c in r["cells"]]} for r in rows]


class _Texts(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.texts: list[str] = []
        self.feed(page)

    def handle_data(self, data):
        if data.strip():
            self.texts.append(" ".join(data.split()))


def _image(page: str, alt: str):
    """The embedded PNG with this alt text, decoded."""
    from PIL import Image

    found = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="' + re.escape(alt) + '"', page)
    assert found, alt
    return Image.open(io.BytesIO(base64.b64decode(found.group(1))))


def _results(workdir: Path) -> dict:
    return json.loads((workdir / "benchmark" / "results.json").read_text())


def _entry(results: dict, task: str) -> dict:
    return next(e for e in results["comparison"] if e["task"] == task and e["trained_task"] == "fine")


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


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
    run_benchmark(workdir, BenchmarkSettings(preset=preset, methods=[*METHODS, "Oracle_HR"], seeds=[0, 1]),
                  log=lambda _: None)
    _write_efficiency(workdir)
    result = CliRunner().invoke(app, ["report", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir / "report" / "report.html"


def test_report_is_self_contained_and_has_every_section(report):
    page = report.read_text()
    assert 'id="results-test"' in page and "resnet-tiny · macro · macro-F1" in page
    for heading in ("Dataset", "Results", "Feature space", "Samples per stage", "Super-resolution",
                    "Synthetic images per class", "Combination (stage 4)", "Confusion matrices", "Paired differences",
                    "FLARE against each baseline", "SR headroom", "Training recipe", "Validation curves",
                    "Data efficiency"):
        assert heading in page, heading
    assert "stray-backend" not in page and "stray-json" not in page
    assert "from scratch" in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(http|//)', page)
    table = page[page.index('id="results-test"'):]
    table = table[:table.index("</table>")]
    assert all(m in table for m in ("Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug", "FLARE"))


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


def test_report_leads_with_the_headline(report):
    page = report.read_text()
    results = _results(report.parents[1])
    after_title = _Texts(page[page.index("</h1>"):]).texts
    fine, macro = _entry(results, "fine"), _entry(results, "macro")
    assert fine["headline"] and macro["headline"]
    assert after_title[:2] == [fine["headline"], macro["headline"]]  # before the run's path, before everything
    assert page.index('id="headline"') < page.index('id="flare-vs-baselines"') < page.index('id="dataset"')


def test_report_compares_flare_with_each_baseline(report):
    page = report.read_text()
    results = _results(report.parents[1])
    rows = _rows(page, "flare-vs-baselines")
    for entry in results["comparison"]:
        task = entry["task"] if entry["task"] == entry["trained_task"] else "macro (fine model collapsed)"
        mine = [r for r in rows if r["texts"][1] == task]
        assert len(mine) == len(entry["flare_vs"]) == 5  # every baseline, Raw_HR_online included
        best = entry["best_baseline"]["method"]
        for row in mine:
            baseline = row["texts"][2].replace(" · best on val", "")
            difference = entry["flare_vs"][baseline]
            interval = difference["ci95"]["macro_f1"]
            mean, std = difference["macro_f1"]["mean"], difference["macro_f1"]["std"]
            assert row["texts"][3] == f"{100 * entry['best_baseline']['val_scores'][baseline]:.1f}"
            assert row["texts"][4:] == [f"{_points(mean)} ± {100 * std:.1f}",
                                        f"{_points(interval['low'])} to {_points(interval['high'])}",
                                        f"{difference['wins']} of 2"]
            chosen = baseline == best
            assert (row["cls"] == "chosen") == chosen and (row["classes"][2] == "best") == chosen
            assert row["texts"][2] == (f"{best} · best on val" if chosen else baseline)
    # test rows carry their 95 % bootstrap interval under mean ± std; val rows stay out of the main tables
    test = {(r["method"], r["task"]): r for r in results["rows"] if r["evaluation"] == "test"}
    header = _PageTables(page).tables["results-test"][0]["cells"]
    for row in _rows(page, "results-test"):
        method = row["texts"][0].replace(" (upper bound)", "")
        for heading, text, note in zip(header[1:], row["texts"][1:], row["notes"][1:]):
            _, task, metric = heading["text"].split(" · ")
            source = test[(method, task)]
            metric = "macro_f1" if metric == "macro-F1" else "accuracy"
            interval = source["ci95"][metric]
            assert text == f"{100 * source[metric]['mean']:.1f} ± {100 * source[metric]['std']:.1f}"
            assert note == f"95 % [{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"
    assert 'id="results-val"' not in page
    validation = page[page.index("<details>"):page.index("</details>")]
    assert 'id="validation-val"' in validation and "95 %" not in validation


def test_report_labels_the_upper_bound_and_shows_the_sr_headroom(report):
    page = report.read_text()
    results = _results(report.parents[1])
    for table_id in ("results-test", "per-class-f1", "paired-differences"):
        rows = _rows(page, table_id)
        oracle = [r for r in rows if "Oracle_HR" in r["texts"][0]]
        assert oracle and all(r["texts"][0] == "Oracle_HR (upper bound)" and r["cls"] == "upper-bound"
                              for r in oracle), table_id
        assert not any("best" in r["classes"] for r in oracle)  # never the best method: nobody can run it
    assert re.search(r'alt="confusion Oracle_HR \(upper bound\)"', page)
    assert not re.search(r">Oracle_HR<", page)  # nowhere bare
    headroom = _rows(page, "sr-headroom")
    entries = [e for e in results["comparison"] if e["headroom"]]
    assert len(headroom) == len(entries) == 2
    for row, entry in zip(headroom, entries):
        gap = entry["headroom"]["gap"]
        assert row["texts"][2:5] == [f"{100 * entry['headroom']['oracle_hr']:.1f}",
                                     f"{100 * entry['headroom']['raw_lr']:.1f}", _points(gap)]
        for text, method in zip(row["texts"][5:], ("Raw_HR", "Raw_HR_online")):
            share = entry["headroom"][f"{method}_share"]
            assert text == (f"{100 * share:.0f} %" if gap > 0 and share is not None else
                            "– (no headroom)" if gap <= 0 else "– (no gap to recover)")
    assert 'id="headroom-box"' in page and 'id="no-oracle"' not in page


def _copy_run(report: Path, to: Path) -> Path:
    run = report.parents[1]
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("report", "models", "cache", "features"))
    return to


def test_report_without_oracle_says_the_dataset_has_no_hr_truth(report, tmp_path):
    run = _copy_run(report, tmp_path / "run")
    results = _results(run)
    results["rows"] = [r for r in results["rows"] if r["method"] != "Oracle_HR"]
    results["paired_differences"] = [d for d in results["paired_differences"] if "Oracle_HR" not in d.values()]
    for entry in results["comparison"]:
        entry["headroom"] = None
    results["notes"].append("Oracle_HR: skipped, the dataset has no HR truth (truth_path) for every image")
    _entry(results, "fine")["headline"] = "FLARE <script>alert(3)</script> & co"  # text from a file: escaped
    (run / "benchmark" / "results.json").write_text(json.dumps(results))
    for cell in (run / "benchmark" / "cells").glob("Oracle_HR__*.json"):
        cell.unlink()
    (run / "benchmark" / "efficiency.json").unlink()
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    note = re.search(r'<p class="note" id="no-oracle">([^<]*)</p>', page)
    assert note and "the dataset has no HR truth" in note.group(1)
    assert page.index('id="flare-vs-baselines"') < page.index('id="no-oracle"') < page.index('id="dataset"')
    assert 'id="sr-headroom"' not in page and "upper bound)" not in page and "Data efficiency" not in page
    assert _Texts(page[page.index("</h1>"):]).texts[0] == "FLARE <script>alert(3)</script> & co"
    assert "<script>alert(3)" not in page and "&lt;script&gt;alert(3)&lt;/script&gt; &amp; co" in page


def test_report_shows_the_training_recipe_and_the_val_curves(report):
    page = report.read_text()
    run = report.parents[1]
    recipe = _results(run)["recipe"]
    rows = {r["texts"][0]: r["texts"][1] for r in _rows(page, "training-recipe")}
    assert rows["optimiser steps (total)"] == str(recipe["steps"]) and rows["optimiser"] == recipe["optimizer"]
    assert rows["learning-rate schedule"] == recipe["schedule"] and rows["online views"] == "none"
    differ = _rows(page, "recipe-differences")
    assert [r["texts"] for r in differ] == [["online views", "rot90 x flip, mirror pairs swapped", "none",
                                             "Raw_HR_online (all 2 cells)"]]
    assert "<b>resnet-tiny</b> (from scratch)" in page  # where the weights came from, beside the backbone
    curves = _image(page, "val curves resnet-tiny fine")
    assert curves.width > 600 and curves.height > 300
    summary = _rows(page, "val-curve-summary")
    cells = [json.loads(p.read_text()) for p in sorted((run / "benchmark" / "cells").glob("*.json"))]
    assert {r["texts"][2].replace(" (upper bound)", "") for r in summary} == {c["method"] for c in cells}
    for row in summary:
        method = row["texts"][2].replace(" (upper bound)", "")
        mine = sorted((c for c in cells if c["method"] == method), key=lambda c: c["seed"])
        assert row["texts"][3:7] == ["0, 1", ", ".join(str(c["best_epoch"]) for c in mine),
                                     ", ".join(str(c["epochs_run"]) for c in mine), "3"]


def test_report_embeds_the_data_efficiency_curves(report):
    page = report.read_text()
    efficiency = json.loads((report.parents[1] / "benchmark" / "efficiency.json").read_text())
    curves = _image(page, "data efficiency resnet-tiny")
    assert curves.width > 600 and curves.height > 200  # two panels: fine and macro
    rows = _rows(page, "efficiency-comparison")
    assert len(rows) == sum(len(entries) for entries in efficiency["comparison"].values()) == 4
    for row in rows:
        fraction = {"25 %": "0.25", "100 %": "1.0"}[row["texts"][2]]
        assert row["texts"][3] == str(efficiency["n_real_train"][fraction])
        assert row["texts"][8].startswith(f"At {row['texts'][2]} of the train set: FLARE")
    assert "25 %, 100 %" in page


def test_report_renders_an_older_results_json(report, tmp_path):
    """A benchmark from before the comparison: no comparison, recipe, intervals, val rows, Raw_HR_online,
    Oracle_HR or cell histories; and an efficiency.json that is not an object."""
    run = _copy_run(report, tmp_path / "run")
    results = _results(run)
    for key in ("comparison", "recipe"):
        del results[key]
    results["rows"] = [{k: v for k, v in r.items() if k != "ci95"} for r in results["rows"]
                       if r["evaluation"] != "val" and r["method"] not in ("Raw_HR_online", "Oracle_HR")]
    results["paired_differences"] = [d for d in results["paired_differences"] if d["evaluation"] != "val" and
                                     not {d["method"], d["baseline"]} & {"Raw_HR_online", "Oracle_HR"}]
    (run / "benchmark" / "results.json").write_text(json.dumps(results))
    for path in (run / "benchmark" / "cells").glob("*.json"):
        cell = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in cell.items() if k not in ("history", "recipe", "best_epoch",
                                                                               "epochs_run")}))
    (run / "benchmark" / "efficiency.json").write_text("[]")
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for absent in ('id="headline"', 'id="flare-vs-baselines"', "SR headroom", 'id="no-oracle"', "95 % [", "<details>",
                   "Training recipe", "Validation curves", "upper bound"):
        assert absent not in page, absent
    assert [r["texts"][0] for r in _rows(page, "results-test")] == ["Raw_LR", "Raw_HR", "Raw_Aug", "T2I_Aug", "FLARE"]
    assert "Not shown (benchmark/efficiency.json): ValueError: not a JSON object" in page
    (run / "benchmark" / "efficiency.json").unlink()
    shutil.rmtree(run / "benchmark" / "cells")
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Data efficiency" not in page and 'id="results-test"' in page and "from scratch" in page


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
    """The page loads without script errors or broken images; screenshots of its top (the headline and the
    comparison), the whole page, and crops at the val curves and the data-efficiency curves are kept under
    ``test-artifacts/``."""
    from PIL import Image

    binary = _chromium()
    url = report.resolve().as_uri()
    # the DOM dump lays the page out at the screenshots' width, so the heading offsets it records match them
    dom = subprocess.run([*_chromium_args(binary, tmp_path / "profile-dom"), "--window-size=1280,2000", "--dump-dom",
                          url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-loaded="1"' in dom.stdout and 'data-js-errors="0"' in dom.stdout
    assert 'data-broken-images="0"' in dom.stdout
    assert 'id="results-test"' in dom.stdout
    height = int(re.search(r'data-page-height="(\d+)"', dom.stdout).group(1))
    anchors = {name: int(top) for name, top in
               re.findall(r"([\w-]+):(\d+)", re.search(r'data-anchors="([^"]*)"', dom.stdout).group(1))}
    assert {"flare-vs", "results", "val-curves", "data-efficiency"} <= set(anchors)
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {"top": (ARTIFACTS / "report.png", 2000), "full": (ARTIFACTS / "report-full.png", min(height, 16000))}
    for name, (screenshot, window_height) in shots.items():
        screenshot.unlink(missing_ok=True)
        shot = subprocess.run([*_chromium_args(binary, tmp_path / f"profile-{name}"), f"--screenshot={screenshot}",
                               f"--window-size=1280,{window_height}", url], capture_output=True, text=True,
                              timeout=120)
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert screenshot.is_file() and screenshot.stat().st_size > 20_000
        with Image.open(screenshot) as image:
            assert image.size == (1280, window_height)
            assert len(image.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page
    with Image.open(ARTIFACTS / "report-full.png") as page:
        for name in ("val-curves", "data-efficiency"):
            assert anchors[name] + 600 <= page.height, name
            crop = page.crop((0, anchors[name], 1280, anchors[name] + 900)).convert("RGB")
            crop.save(ARTIFACTS / f"report-{name}.png")
            assert len(crop.convert("L").getcolors(1 << 16) or []) > 50, name  # a drawn figure, not blank
