"""The report's "what the branches did" section: synthesis plan and filter, memorisation audit, type values."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from flare.report.branches import branches_section
from flare.report.html import build_report


def _write_run(root):
    (root / "generate" / "generated").mkdir(parents=True)
    (root / "combine").mkdir()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "generate" / "generated" / "s.png")
    Image.fromarray(np.full((8, 8, 3), 60, np.uint8)).save(root / "train.png")
    (root / "generate" / "generate_report.json").write_text(json.dumps({
        "per_class": "balance", "rule": "t2i per class = max(target - real, balance_min)",
        "classes": {"merger": {"real": 15, "target": 59, "t2i_planned": 44, "variations_planned": 8, "generated": 52,
                               "dropped_filter": 30, "dropped_audit": 1, "kept": 21}},
        "filter": {"method": "confidence", "threshold": 0.5, "classifier_val_balanced_accuracy": 0.61,
                   "chance": 1 / 6, "dropped": 30}}))
    (root / "generate" / "memorisation_audit.json").write_text(json.dumps({
        "n_synthetic": 52, "n_train": 932, "n_heldout": 798, "heldout_split": "val", "quantile": 0.01,
        "near_copies": 1, "dropped": 1, "drops": "t2i only", "rule": "near-copy rule", "notes": [],
        "spaces": {"pixel": {"threshold": 1.1, "synthetic_quantiles": {"q0": 0.2, "q0.5": 5.0},
                             "heldout_quantiles": {"q0": 0.9, "q0.5": 1.7}, "synthetic_below_threshold": 1}},
        "closest_pairs": [{"label": "merger", "closeness": 0.18, "near_copy": True,
                           "synthetic_path": "generated/s.png", "train_path": str(root / "train.png")}]}))
    (root / "combine" / "combine_report.json").write_text(json.dumps({
        "rule": "value", "value": {"baseline_val_macro_f1": 0.5, "feature_space": "pixels", "probe": "logistic",
                                   "scores": {"augment": {"d4": {"value": 0.08, "val_macro_f1": 0.58, "images": 40},
                                                          "black": {"value": -0.2, "val_macro_f1": 0.3, "images": 40}}},
                                   "kept": {"augment": ["d4"]}, "dropped": {"augment": ["black"]}, "unscored": {}}}))


def test_branches_section_reads_the_three_stage_files(tmp_path):
    _write_run(tmp_path)
    section = branches_section(tmp_path)
    assert "0.610" in section["synthesis"]["filter"] and "dropped 30" in section["synthesis"]["filter"]
    assert section["synthesis"]["table"]["rows"][0]["cells"][0]["text"] == "merger"
    assert "Near-copies: 1, dropped: 1" in section["audit"]["summary"]
    assert section["audit"]["pairs"]["uri"].startswith("data:image/png;base64,")
    value_rows = section["value"]["table"]["rows"]
    shown = [(r["cells"][1]["text"], r["cells"][-1]["text"]) for r in value_rows]
    assert shown == [("d4", "kept"), ("black", "dropped")]  # best first


def test_report_shows_the_branches_and_survives_a_broken_file(tmp_path):
    _write_run(tmp_path)
    page = build_report(tmp_path).read_text()
    assert "What the branches did" in page and "Memorisation audit" in page and "rule: value" in page
    (tmp_path / "generate" / "memorisation_audit.json").write_text("{not json")
    page = build_report(tmp_path).read_text()
    assert "memorisation_audit.json is not readable" in page and "Synthesis per class" in page


def test_no_branch_files_no_section(tmp_path):
    assert branches_section(tmp_path) is None
