"""``flare report RUN_DIR``: one self-contained HTML file (every image embedded as base64) for a run folder.

The page leads with what the benchmark concludes (:mod:`flare.report.summary`): the headline sentence of each
comparison (FLARE against the best baseline, chosen on val), FLARE against each baseline with 95 % intervals,
and the SR headroom (Oracle_HR − Raw_LR, the upper bound's gap, and the share Raw_HR recovers).

Then sections appear only when their inputs exist: dataset overview and class counts (``data/``), the benchmark
results in the paper's layout (methods × backbones, test and out-of-domain: mean ± std over seeds with the 95 %
bootstrap interval over test images; the val scores used for model selection apart), paired differences,
per-class F1, confusion matrices, the training recipe and validation curves (:mod:`flare.report.training`,
from ``benchmark/cells/*.json``), data-efficiency curves (:mod:`flare.report.efficiency`,
``benchmark/efficiency.json``), feature plots (``benchmark/features.json``), sample grids per stage, SR
before/after (``upscale/`` rows with a truth image) and the SR scores, synthetic grids per class
(``generate/``), combination counts (``combine/``), and what the branches did (:mod:`flare.report.branches`:
the rare-class synthesis plan and filter, the memorisation audit with its closest pairs, each type's measured
value and the types α / β kept). Oracle_HR, trained and tested on the HR truth, is an upper
bound and is labelled so in every table and plot. A ``results.json`` from an older benchmark (no comparison,
intervals, recipe or val rows) renders without those parts.

The report reads only files the stages wrote, by their exact names; it guesses nothing from file names. SR
scores are the ``sr_scores.json`` that ``flare evaluate sr --out DIR`` writes (a list of per-backend dicts),
looked up at each path in :data:`SR_SCORE_FILES` (relative to the run folder): ``upscale/sr_scores.json``
and ``sr_eval/sr_scores.json``; each one found becomes its own table.

Python gathers each section into plain dicts and lists (one function per section; display strings already
formatted); ``templates/report.html.j2`` lays them out with autoescaping, so a label such as ``<b>`` in a
manifest is shown as text, never interpreted as markup. The CSS (``templates/report.css``) is inlined.
"""

from __future__ import annotations

import datetime as _datetime
import json
from pathlib import Path
from typing import Any, Callable

import jinja2

from flare import __version__
from flare.core.errors import FlareError
from flare.core.files import atomic_output
from flare.core.io import load_rgb
from flare.core.manifest import SOURCE_STAGES, Manifest
from flare.report.branches import branches_section
from flare.report.efficiency import efficiency_section
from flare.report.figures import bar_chart, confusion_figure, feature_figure, grid_figure
from flare.report.summary import summary_section
from flare.report.tables import (METHOD_ORDER, cell, format_interval, format_summary, is_upper_bound, method_label,
                                 method_rank, table)
from flare.report.training import backbone_origins, training_section

__all__ = ["build_report", "STAGE_FOLDERS", "SR_SCORE_FILES", "METHOD_ORDER"]

STAGE_FOLDERS = ("data", "upscale", "augment", "generate", "combine")
_STAGE_ROWS = {"data": list(SOURCE_STAGES), "upscale": ["upscale"], "augment": ["augment"],
               "generate": ["generate"], "combine": None}
_STAGE_TITLES = {"data": "source (LR) images", "upscale": "after super-resolution (stage 1)",
                 "augment": "classical augmentations (stage 2)", "generate": "synthetic images (stage 3)",
                 "combine": "the FLARE mix (stage 4, train)"}
SAMPLES_PER_CLASS = 6
SR_EXAMPLES = 6

SR_SCORE_FILES = ("upscale/sr_scores.json", "sr_eval/sr_scores.json")

# The columns of an SR scores table, in order: key in sr_scores.json, header, format spec, and a rank for the
# best value (lower rank is better; None: not compared). Formats follow `flare evaluate sr`'s own table.
_SR_COLUMNS: tuple[tuple[str, str, str, Callable[[float], float] | None], ...] = (
    ("backend", "backend", "", None),
    ("images", "images", "d", None),
    ("psnr_db", "PSNR dB", ".2f", lambda v: -v),
    ("psnr_centre_db", "PSNR centre dB", ".2f", lambda v: -v),
    ("ssim", "SSIM", ".4f", lambda v: -v),
    ("flux_ratio", "flux ratio", ".3f", lambda v: abs(v - 1)),
    ("flux_ratio_median", "flux ratio (median)", ".3f", lambda v: abs(v - 1)),
    ("hallucinations", "hallucinated ≥5σ sources", "d", lambda v: v),
    ("truth_sources", "truth sources", "d", None),
    ("images_per_s", "images/s", ".2f", lambda v: -v),
)

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("flare.report", "templates"),
                                autoescape=jinja2.select_autoescape(["html.j2"]),
                                undefined=jinja2.StrictUndefined,  # a misspelt field fails, not renders blank
                                trim_blocks=True, lstrip_blocks=True)


def _read(folder: Path) -> Manifest | None:
    # the containment rule (core.manifest): a row whose path leaves its folder is refused, never shown
    return Manifest.read(folder).validate() if Manifest.exists(folder) else None


# ----------------------------------------------------------------------------------------------- sections


# Each section takes the stage manifests, read once per report: ``{stage folder name: Manifest or None}``.
Manifests = dict[str, "Manifest | None"]


def _overview(manifests: Manifests) -> dict[str, Any] | None:
    manifest = manifests["data"]
    if manifest is None:
        return None
    frame = manifest.filter(stage=list(SOURCE_STAGES)).frame
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    splits = [s for s in ("train", "val", "test") if s in counts.columns]
    rows = [[label, *[int(counts.loc[label, s]) for s in splits], int(counts.loc[label].sum())] for label in counts.index]
    rows.append(["total", *[int(counts[s].sum()) for s in splits], int(counts.values.sum())])
    chart = bar_chart({label: {s: int(counts.loc[label, s]) for s in splits} for label in counts.index},
                      "source images per class and split")
    stages = []
    for name in STAGE_FOLDERS:
        stage_manifest = manifests[name]
        stages.append([name, "yes" if stage_manifest is not None else "no",
                       len(stage_manifest) if stage_manifest is not None else 0])
    return {"counts": table(["class", *splits, "all"], rows, "class-counts"),
            "chart": {"uri": chart, "alt": "class counts"},
            "stages": table(["stage", "present", "manifest rows"], stages)}


def _grid_for(manifest: Manifest, stage_rows: list[str] | None, title: str) -> dict[str, str] | None:
    """Up to SAMPLES_PER_CLASS images per class of the given stages (None: the train split of every stage)."""
    chosen = manifest if stage_rows is None else manifest.filter(stage=stage_rows)
    if stage_rows is None:
        chosen = Manifest(chosen.frame[chosen.frame["split"] == "train"].reset_index(drop=True), manifest.root)
    if not len(chosen):
        return None
    rows = []
    for label, group in chosen.frame.groupby("label", sort=True):
        images = []
        for path in group.sort_values("id")["path"].head(SAMPLES_PER_CLASS):
            try:
                images.append(load_rgb(manifest.resolve(path)))
            except (OSError, ValueError):
                continue  # an unreadable file leaves a gap in its row, not a failed report
        rows.append((str(label), images))
    return {"title": title, "alt": title, "uri": grid_figure(rows)}


def _sample_grids(manifests: Manifests) -> list[dict[str, str]]:
    grids = []
    for name in STAGE_FOLDERS:
        manifest = manifests[name]
        grid = _grid_for(manifest, _STAGE_ROWS[name], _STAGE_TITLES[name]) if manifest is not None else None
        if grid is not None:
            grids.append(grid)
    return grids


def _sr_examples(manifest: Manifest) -> dict[str, Any] | None:
    """The first SR_EXAMPLES upscaled rows as LR input, SR output and (where the parent has one) HR truth."""
    parents = {r["id"]: r for r in manifest.filter(stage=list(SOURCE_STAGES)).records()}
    rows = []
    for row in manifest.filter(stage="upscale").frame.sort_values("id").to_dict("records"):
        parent_ids = Manifest.parents(row)
        parent = parents.get(parent_ids[0]) if parent_ids else None
        if parent is None:
            continue
        try:
            images = [load_rgb(manifest.resolve(parent["path"])), load_rgb(manifest.resolve(row["path"]))]
            if parent.get("truth_path"):
                images.append(load_rgb(manifest.resolve(parent["truth_path"])))
        except (OSError, ValueError):
            continue
        rows.append((str(row["label"]), images))
        if len(rows) >= SR_EXAMPLES:
            break
    if not rows:
        return None
    return {"uri": grid_figure(rows, cell_px=128), "alt": "SR before and after",
            "with_truth": any(len(images) == 3 for _, images in rows)}


def _sr_scores(run: Path, relative: str) -> dict[str, Any]:
    """One ``sr_scores.json`` as a table with :data:`_SR_COLUMNS`, or the reason it cannot be shown."""
    folder = relative.split("/")[0]
    try:
        entries = json.loads((run / relative).read_text())
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ValueError("not a non-empty JSON list of per-backend objects")
        missing = sorted({key for e in entries for key, *_ in _SR_COLUMNS if key not in e})
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        rows = [[format(e[key], spec) for key, _, spec, _ in _SR_COLUMNS] for e in entries]
    except (OSError, ValueError, TypeError) as error:
        return {"file": relative, "error": str(error)}
    best = set()
    if len(entries) > 1:  # one backend has nothing to be best against
        for c, (key, _, _, rank) in enumerate(_SR_COLUMNS):
            ranked = {r: rank(e[key]) for r, e in enumerate(entries) if rank is not None and e[key] == e[key]}
            if ranked:
                best |= {(r, c) for r, value in ranked.items() if value == min(ranked.values())}
    return {"file": relative, "error": None,
            "table": table([header for _, header, _, _ in _SR_COLUMNS], rows, f"sr-scores-{folder}", best)}


def _sr_section(run: Path, manifests: Manifests) -> dict[str, Any] | None:
    manifest = manifests["upscale"]
    scores = [_sr_scores(run, relative) for relative in SR_SCORE_FILES if (run / relative).is_file()]
    if manifest is None and not scores:
        return None
    return {"upscaled": manifest is not None, "examples": _sr_examples(manifest) if manifest is not None else None,
            "scores": scores}


def _synthetic_section(manifests: Manifests) -> dict[str, Any] | None:
    manifest = manifests["generate"]
    if manifest is None:
        return None
    return {"grid": _grid_for(manifest, ["generate"], "generated (train only)")}


def _combine_section(manifests: Manifests) -> dict[str, Any] | None:
    manifest = manifests["combine"]
    if manifest is None:
        return None
    train = manifest.frame[manifest.frame["split"] == "train"]
    counts = train.groupby(["label", "stage"]).size().unstack(fill_value=0)
    rows = [[label, *[int(v) for v in counts.loc[label]], int(counts.loc[label].sum())] for label in counts.index]
    return table(["class", *[str(c) for c in counts.columns], "total"], rows, "combine-counts")


def _read_cells(run: Path) -> list[dict[str, Any]]:
    """The benchmark's cell files (``benchmark/cells/*.json``); one that does not parse is left out."""
    cells = []
    for path in sorted((run / "benchmark" / "cells").glob("*.json")):
        try:
            cell = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(cell, dict):
            cells.append(cell)
    return cells


def _results_section(run: Path) -> dict[str, Any] | None:
    file = run / "benchmark" / "results.json"
    if not file.is_file():
        return None
    results = json.loads(file.read_text())
    cells = _read_cells(run)
    # Val scores pick the best baseline and each run's best epoch: shown apart, never as a result.
    rows = [r for r in results["rows"] if r["evaluation"] != "val"]
    val_rows = [r for r in results["rows"] if r["evaluation"] == "val"]
    preset = results.get("preset") or {}
    origins = backbone_origins(cells)
    evaluations = sorted({r["evaluation"] for r in rows}, key=lambda e: (e != "test", e))
    return {"preset": preset.get("name", "?"), "image_size_px": preset.get("image_size_px", "?"),
            "epochs": preset.get("epochs", "?"),
            "weights": ", ".join(results.get("initialised_from") or ["from scratch"]),
            "backbones": [{"name": b, "origin": o} for b, o in origins.items()],
            "cells": results["cells"], "minutes": f"{results.get('seconds_total', 0) / 60:.1f}",
            "notes": [str(n) for n in results.get("notes", [])],
            "intervals": any(r.get("ci95") for r in rows),
            "upper_bound": any(is_upper_bound(r["method"]) for r in rows),
            "evaluations": [_evaluation(rows, evaluation) for evaluation in evaluations],
            "validation": _evaluation(val_rows, "val") if val_rows else None,
            "differences": _differences(results), "per_class": _per_class(rows, origins),
            "confusions": _confusions(rows, origins), "training": training_section(results, cells),
            "summary": summary_section(results, origins)}


def _with_interval(row: dict[str, Any], metric: str) -> dict[str, Any]:
    """mean ± std over seeds, and the 95 % bootstrap interval over test images as a second line."""
    interval = format_interval((row.get("ci95") or {}).get(metric))
    return cell(format_summary(row[metric]), note=f"95 % {interval}" if interval else "")


def _evaluation(rows: list[dict[str, Any]], evaluation: str) -> dict[str, Any]:
    """Methods × (backbone, task, metric) for one evaluation set; the best method per column is highlighted
    (an upper bound is never the best: it is not a method a user can run)."""
    metrics = {"accuracy": "acc.", "macro_f1": "macro-F1"}
    selected = [r for r in rows if r["evaluation"] == evaluation]
    backbones = sorted({r["backbone"] for r in rows})
    columns = [(b, t, m) for b in backbones for t in ("fine", "macro") for m in metrics
               if any(r["backbone"] == b and r["task"] == t for r in selected)]
    methods = sorted({r["method"] for r in selected}, key=lambda m: (method_rank(m), m))
    lookup = {(r["method"], r["backbone"], r["task"]): r for r in selected}
    best = set()
    for c, (backbone, task, metric) in enumerate(columns):
        values = {m: lookup[(m, backbone, task)][metric]["mean"] for m in methods
                  if (m, backbone, task) in lookup and not is_upper_bound(m)}
        finite = [v for v in values.values() if v == v]
        if finite:
            best |= {(i, c + 1) for i, m in enumerate(methods) if values.get(m) == max(finite)}
    body = [[method_label(method), *[_with_interval(lookup[(method, b, t)], m) if (method, b, t) in lookup else "–"
                                     for b, t, m in columns]] for method in methods]
    header = ["method", *[f"{b} · {t} · {metrics[m]}" for b, t, m in columns]]
    if evaluation == "test":
        title = "In-domain test"
    elif evaluation == "val":
        title = "Validation (model selection only)"
    else:
        title = evaluation.replace("ood:", "Out-of-domain: ")
    return {"title": title,
            "collapsed": any(r["task"] == "macro" and r["trained_task"] == "fine" for r in selected),
            "table": table(header, body, f"{'validation' if evaluation == 'val' else 'results'}-{evaluation}", best,
                           ["upper-bound" if is_upper_bound(m) else "" for m in methods])}


def _differences(results: dict[str, Any]) -> dict[str, Any] | None:
    wanted = {("FLARE", "Raw_Aug"), ("T2I_Aug", "Raw_Aug"), ("FLARE", "Raw_HR"), ("FLARE", "Raw_HR_online"),
              ("Raw_HR_online", "Raw_HR"), ("Raw_HR", "Raw_LR"), ("Oracle_HR", "Raw_LR")}
    rows = [d for d in results.get("paired_differences", [])
            if (d["method"], d["baseline"]) in wanted and d["evaluation"] != "val"]
    if not rows:
        return None
    rows.sort(key=lambda d: (d["evaluation"] != "test", d["evaluation"], d["backbone"], d["task"], d["metric"],
                             method_rank(d["method"]), method_rank(d["baseline"])))
    body = [[method_label(d["method"]), d["baseline"], d["backbone"], d["evaluation"], d["task"], d["metric"],
             f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f}", f"{d['wins']}/{d['n']}"] for d in rows]
    return table(["method", "baseline", "backbone", "evaluation", "task", "metric", "difference", "wins"],
                 body, "paired-differences", row_classes=["upper-bound" if is_upper_bound(d["method"]) else ""
                                                          for d in rows])


def _backbone_title(backbone: str, origins: dict[str, str]) -> str:
    """The backbone's name with where its weights came from (``resnet-tiny, from scratch``)."""
    return f"{backbone}, {origins[backbone]}" if backbone in origins else backbone


def _per_class(rows: list[dict[str, Any]], origins: dict[str, str]) -> dict[str, Any] | None:
    selected = [r for r in rows if r["evaluation"] == "test" and r["task"] == "fine"]
    if not selected:
        return None
    backbone = sorted({r["backbone"] for r in selected})[0]
    selected = sorted([r for r in selected if r["backbone"] == backbone], key=lambda r: method_rank(r["method"]))
    classes = selected[0]["classes"]
    body = [[method_label(r["method"]),
             *[format_summary(r["per_class_f1"][c]) if c in r["per_class_f1"] else "–" for c in classes]]
            for r in selected]
    return {"backbone": _backbone_title(backbone, origins),
            "table": table(["method", *classes], body, "per-class-f1",
                           row_classes=["upper-bound" if is_upper_bound(r["method"]) else "" for r in selected])}


def _confusions(rows: list[dict[str, Any]], origins: dict[str, str]) -> list[dict[str, str]]:
    selected = [r for r in rows if r["evaluation"] == "test" and r["task"] == "fine" and r["confusion_sum"]]
    if not selected:
        return []
    backbone = sorted({r["backbone"] for r in selected})[0]
    return [{"uri": confusion_figure(r["confusion_sum"], r["classes"],
                                     f"{method_label(r['method'])} ({backbone}, summed over seeds)"),
             "alt": f"confusion {method_label(r['method'])}"}
            for r in sorted(selected, key=lambda r: method_rank(r["method"])) if r["backbone"] == backbone]


def _features_section(run: Path) -> dict[str, Any] | None:
    file = run / "benchmark" / "features.json"
    if not file.is_file():
        return None
    features = json.loads(file.read_text())
    methods = [m for m in ("Raw", "Raw_Aug", "T2I_Aug", "FLARE") if m in features]
    if not methods:
        return None
    figures, body = [], []
    for method in methods:
        entry = features[method]
        figures.append({"uri": feature_figure(entry, f"{method} ({entry['method']}), t-SNE"),
                        "alt": f"features {method}"})
        body.append([method, entry["method"], entry["n"], f"{entry['silhouette']:.3f}",
                     f"{entry['davies_bouldin']:.3f}"])
    return {"backbone": features.get("backbone", ""), "figures": figures,
            "table": table(["method", "trained on", "images", "silhouette ↑", "Davies–Bouldin ↓"], body,
                           "feature-scores")}


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report for ``run_dir`` (default ``run_dir/report/report.html``); returns its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FlareError(f"report.run_dir: {str(run)!r} is not a folder")
    out = Path(out) if out else run / "report" / "report.html"
    manifests = {name: _read(run / name) for name in STAGE_FOLDERS}
    # The template orders the sections: the conclusion first (what a reader comes for), then the results, then the
    # evidence stage by stage.
    page = _TEMPLATES.get_template("report.html.j2").render(
        run_name=run.name, run_path=str(run.resolve()), version=__version__,
        stamp=_datetime.datetime.now(_datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        dataset=_overview(manifests), results=_results_section(run), features=_features_section(run),
        efficiency=efficiency_section(run),
        samples=_sample_grids(manifests), sr=_sr_section(run, manifests), synthetic=_synthetic_section(manifests),
        combine=_combine_section(manifests), branches=branches_section(run))
    with atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    out.chmod(0o644)  # temp files are private; a report is meant to be shared
    return out
