"""The default `flare run` (embedded sky, no arguments): every benchmark cell converges before it stops, and the
report leads with the answer. This is the run a newcomer sees first; it takes a few minutes on a 2-core CPU
(docs/RESULTS.md gives the measured time), so this test runs it once and checks everything on it."""

from __future__ import annotations

import json

import pytest

from flare.core.config import load_config
from flare.pipeline import run_pipeline


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("default") / "flare-work"
    run_pipeline(load_config(None, {"workdir": str(work)}), log=lambda _: None)
    return work


def test_every_cell_converges_before_it_stops(default_run):
    cells = [json.loads(p.read_text()) for p in sorted((default_run / "benchmark" / "cells").glob("*.json"))]
    methods = {c["method"] for c in cells}
    assert {"Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug", "FLARE", "Oracle_HR"} <= methods
    for cell in cells:
        curve = [h["val_macro_f1"] for h in cell["history"]]
        assert cell["best_epoch"] > 2, f"{cell['cell']}: best val epoch {cell['best_epoch']} of {curve}"
        assert len({c["recipe"]["steps"] for c in cells}) == 1  # one step budget for every method


def test_report_leads_with_the_answer(default_run):
    results = json.loads((default_run / "benchmark" / "results.json").read_text())
    headline = next(e["headline"] for e in results["comparison"] if e["task"] == "fine")
    html = (default_run / "report" / "report.html").read_text()
    body = html[html.index("</h1>"):]
    assert headline.split(":")[0] in body[:4000]
