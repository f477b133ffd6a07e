"""``flare report RUN_DIR``: one self-contained HTML file (every image embedded as base64) for a run folder.

Sections appear only when their inputs exist: dataset overview and class counts (``data/``), sample grids per
stage, SR before/after (``upscale/`` rows with a truth image) and any SR evaluation table the upscale stage
wrote, synthetic grids per class (``generate/``), combination counts (``combine/``), the benchmark results in the
paper's layout (methods × backbones, mean ± std over seeds), paired differences, per-class F1, confusion
matrices and feature plots (``benchmark/results.json``, ``benchmark/features.json``).
"""

from __future__ import annotations

import datetime as _datetime
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from flare import __version__
from flare.core.errors import FlareError
from flare.core.files import atomic_output
from flare.core.io import load_rgb
from flare.core.manifest import SOURCE_STAGES, Manifest
from flare.report.figures import bar_chart, confusion_figure, feature_figure, image_grid, png_data_uri

__all__ = ["build_report", "STAGE_FOLDERS"]

STAGE_FOLDERS = ("data", "upscale", "augment", "generate", "combine")
METHOD_ORDER = ("Raw_LR", "Raw_HR", "Raw_Aug", "T2I_Aug", "FLARE", "Synth_Only")
_STAGE_ROWS = {"data": list(SOURCE_STAGES), "upscale": ["upscale"], "augment": ["augment"],
               "generate": ["generate"], "combine": None}
SAMPLES_PER_CLASS = 6

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e8f4e8}
.note{color:#775;font-size:90%}.figs img{margin:4px;vertical-align:top}.muted{color:#888}
"""

# Marks the page once it has loaded and counts script errors, so a headless browser's DOM dump shows both.
LOAD_CHECK = ("<script>document.documentElement.dataset.jsErrors='0';"
              "window.addEventListener('error',function(){var d=document.documentElement.dataset;"
              "d.jsErrors=String(Number(d.jsErrors)+1)});"
              "window.addEventListener('load',function(){document.documentElement.dataset.loaded='1'});</script>")


def _escape(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], table_id: str = "", best: set[tuple[int, int]] | None = None) -> str:
    best = best or set()
    id_attribute = f' id="{_escape(table_id)}"' if table_id else ""
    out = [f"<table{id_attribute}><tr>" + "".join(f"<th>{_escape(h)}</th>" for h in header) + "</tr>"]
    for r, row in enumerate(rows):
        cells = "".join(f'<td{" class=best" if (r, c) in best else ""}>{_escape(v)}</td>' for c, v in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    return "\n".join(out) + "</table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_escape(alt)}">'


def _read(folder: Path) -> Manifest | None:
    return Manifest.read(folder) if Manifest.exists(folder) else None


# ----------------------------------------------------------------------------------------------- sections


def _overview(run: Path) -> str:
    manifest = _read(run / "data")
    if manifest is None:
        return "<h2>Dataset</h2><p class=note>No data/ folder: the data step has not run.</p>"
    source = manifest.filter(stage=list(SOURCE_STAGES))
    frame = source.frame
    counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    splits = [s for s in ("train", "val", "test") if s in counts.columns]
    rows = [[label, *[int(counts.loc[label, s]) for s in splits], int(counts.loc[label].sum())] for label in counts.index]
    rows.append(["total", *[int(counts[s].sum()) for s in splits], int(counts.values.sum())])
    chart = bar_chart({label: {s: int(counts.loc[label, s]) for s in splits} for label in counts.index},
                      "source images per class and split")
    stages = []
    for name in STAGE_FOLDERS:
        stage_manifest = _read(run / name)
        stages.append([name, "yes" if stage_manifest is not None else "no",
                       len(stage_manifest) if stage_manifest is not None else 0])
    return ("<h2>Dataset</h2>" + _table(["class", *splits, "all"], rows, "class-counts") + _img(chart, "class counts")
            + "<h3>Stage folders</h3>" + _table(["stage", "present", "manifest rows"], stages))


def _grid_for(manifest: Manifest, stage_rows: list[str] | None, title: str) -> str:
    chosen = manifest if stage_rows is None else manifest.filter(stage=stage_rows)
    if stage_rows is None:
        chosen = Manifest(chosen.frame[chosen.frame["split"] == "train"].reset_index(drop=True), manifest.root)
    if not len(chosen):
        return ""
    rows = []
    for label, group in chosen.frame.groupby("label", sort=True):
        images = []
        for path in group.sort_values("id")["path"].head(SAMPLES_PER_CLASS):
            try:
                images.append(load_rgb(manifest.resolve(path)))
            except (OSError, ValueError):
                continue
        rows.append((str(label), images))
    return f"<h3>{_escape(title)}</h3>" + _img(png_data_uri(image_grid(rows)), title)


def _sample_grids(run: Path) -> str:
    parts = []
    for name in STAGE_FOLDERS:
        manifest = _read(run / name)
        if manifest is not None:
            title = {"data": "source (LR) images", "upscale": "after super-resolution (stage 1)",
                     "augment": "classical augmentations (stage 2)", "generate": "synthetic images (stage 3)",
                     "combine": "the FLARE mix (stage 4, train)"}[name]
            parts.append(_grid_for(manifest, _STAGE_ROWS[name], title))
    return "<h2>Samples per stage</h2>" + ("".join(parts) or "<p class=note>No stage folders.</p>")


def _sr_section(run: Path) -> str:
    manifest = _read(run / "upscale")
    if manifest is None:
        return ""
    upscaled = manifest.filter(stage="upscale")
    parents = {r["id"]: r for r in manifest.filter(stage=list(SOURCE_STAGES)).records()}
    triplets = []
    for row in upscaled.frame.sort_values("id").to_dict("records"):
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
        triplets.append((str(row["label"]), images))
        if len(triplets) >= 6:
            break
    body = ""
    if triplets:
        body += ("<p>Each row: LR input, SR output" + (", HR truth" if any(len(t[1]) == 3 for t in triplets) else "")
                 + ".</p>" + _img(png_data_uri(image_grid(triplets, tile_px=128)), "SR before and after"))
    for table in _sr_tables(run):
        body += table
    return "<h2>Super-resolution: before / after</h2>" + (body or "<p class=note>No upscaled rows.</p>")


def _sr_tables(run: Path) -> list[str]:
    """Any SR evaluation table the upscale stage or ``flare evaluate sr`` wrote (CSV or JSON)."""
    out = []
    for folder in (run, run / "upscale", run / "evaluate", run / "sr_eval"):
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            stem = file.stem.lower()
            if file.suffix not in (".csv", ".json") or "per_image" in stem or not (
                    stem.startswith("sr") or "sr_" in stem or (folder.name != run.name and ("eval" in stem or "metric" in stem))):
                continue
            try:
                frame = pd.read_csv(file) if file.suffix == ".csv" else _json_frame(json.loads(file.read_text()))
            except (ValueError, OSError):
                continue
            if frame is None or frame.empty:
                continue
            frame = frame.head(40)
            rows = [[(f"{v:.4g}" if isinstance(v, float) else v) for v in r] for r in frame.itertuples(index=False)]
            out.append(f"<h3>{_escape(file.relative_to(run))}</h3>" + _table([str(c) for c in frame.columns], rows))
    return out


def _json_frame(data: Any) -> pd.DataFrame | None:
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return pd.json_normalize(data)
    if isinstance(data, dict):
        if all(isinstance(v, dict) for v in data.values()):
            return pd.DataFrame.from_dict(data, orient="index").reset_index(names="name")
        return pd.json_normalize(data)
    return None


def _synthetic_section(run: Path) -> str:
    manifest = _read(run / "generate")
    if manifest is None:
        return ""
    return "<h2>Synthetic images per class</h2>" + (_grid_for(manifest, ["generate"], "generated (train only)")
                                                     or "<p class=note>No generated rows.</p>")


def _combine_section(run: Path) -> str:
    manifest = _read(run / "combine")
    if manifest is None:
        return ""
    train = manifest.frame[manifest.frame["split"] == "train"]
    counts = train.groupby(["label", "stage"]).size().unstack(fill_value=0)
    rows = [[label, *[int(v) for v in counts.loc[label]], int(counts.loc[label].sum())] for label in counts.index]
    return ("<h2>Combination (stage 4)</h2><p>Training images in the FLARE mix, per class and the stage that made them.</p>"
            + _table(["class", *[str(c) for c in counts.columns], "total"], rows, "combine-counts"))


def _fmt(summary: dict[str, float]) -> str:
    if summary["n"] == 0 or summary["mean"] != summary["mean"]:
        return "–"
    if summary["n"] == 1:
        return f"{100 * summary['mean']:.1f}"  # one seed: no spread to show
    return f"{100 * summary['mean']:.1f} ± {100 * summary['std']:.1f}"


def _results_section(run: Path) -> str:
    file = run / "benchmark" / "results.json"
    if not file.is_file():
        return "<h2>Results</h2><p class=note>No benchmark results (benchmark/results.json) yet.</p>"
    results = json.loads(file.read_text())
    rows = results["rows"]
    preset = results.get("preset") or {}
    parts = ["<h2>Results</h2>",
             f"<p>Preset <b>{_escape(preset.get('name', '?'))}</b>: {_escape(preset.get('image_size_px', '?'))} px, "
             f"up to {_escape(preset.get('epochs', '?'))} epochs, early stopping on validation macro-F1. Weights: "
             f"{_escape(', '.join(results.get('initialised_from') or ['from scratch']))}. "
             f"{results['cells']} cells, {results.get('seconds_total', 0) / 60:.1f} min of training. "
             "Values are percentages, mean ± std over seeds; bold = best per column.</p>"]
    for note in results.get("notes", []):
        parts.append(f"<p class=note>{_escape(note)}</p>")
    evaluations = sorted({r["evaluation"] for r in rows}, key=lambda e: (e != "test", e))
    backbones = sorted({r["backbone"] for r in rows})
    metrics = (("accuracy", "acc."), ("macro_f1", "macro-F1"))
    for evaluation in evaluations:
        selected = [r for r in rows if r["evaluation"] == evaluation]
        columns = [(b, t, m) for b in backbones for t in ("fine", "macro") for m, _ in metrics
                   if any(r["backbone"] == b and r["task"] == t for r in selected)]
        methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in selected)]
        lookup = {(r["method"], r["backbone"], r["task"]): r for r in selected}
        table_rows, best = [], set()
        for c, (backbone, task, metric) in enumerate(columns):
            values = {m: lookup[(m, backbone, task)][metric]["mean"] for m in methods if (m, backbone, task) in lookup}
            finite = [v for v in values.values() if v == v]
            if finite:
                best |= {(i, c + 1) for i, m in enumerate(methods) if values.get(m) == max(finite)}
        for method in methods:
            cells = [_fmt(lookup[(method, b, t)][m]) if (method, b, t) in lookup else "–" for b, t, m in columns]
            table_rows.append([method, *cells])
        label = "In-domain test" if evaluation == "test" else evaluation.replace("ood:", "Out-of-domain: ")
        collapsed = any(r["task"] == "macro" and r["trained_task"] == "fine" for r in selected)
        parts.append(f"<h3>{_escape(label)}</h3>" + ("<p class=muted>Macro task scored by collapsing the fine "
                     "model's probabilities.</p>" if collapsed else ""))
        header = ["method", *[f"{b} · {t} · {dict(metrics)[m]}" for b, t, m in columns]]
        parts.append(_table(header, table_rows, f"results-{evaluation}", best))
    parts.append(_differences(results))
    parts.append(_per_class(rows))
    parts.append(_confusions(rows))
    return "".join(parts)


def _differences(results: dict[str, Any]) -> str:
    wanted = {("FLARE", "Raw_Aug"), ("T2I_Aug", "Raw_Aug"), ("FLARE", "Raw_HR"), ("Raw_HR", "Raw_LR")}
    rows = [d for d in results.get("paired_differences", []) if (d["method"], d["baseline"]) in wanted]
    if not rows:
        return ""
    table = [[d["method"], d["baseline"], d["backbone"], d["evaluation"], d["task"], d["metric"],
              f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f}", f"{d['wins']}/{d['n']}"] for d in rows]
    return ("<h3>Paired differences (method − baseline, same seed; percentage points)</h3>"
            + _table(["method", "baseline", "backbone", "evaluation", "task", "metric", "difference", "wins"],
                     table, "paired-differences"))


def _per_class(rows: list[dict[str, Any]]) -> str:
    selected = [r for r in rows if r["evaluation"] == "test" and r["task"] == "fine"]
    if not selected:
        return ""
    backbone = sorted({r["backbone"] for r in selected})[0]
    selected = sorted([r for r in selected if r["backbone"] == backbone],
                      key=lambda r: METHOD_ORDER.index(r["method"]) if r["method"] in METHOD_ORDER else 99)
    classes = selected[0]["classes"]
    table = [[r["method"], *[_fmt(r["per_class_f1"][c]) if c in r["per_class_f1"] else "–" for c in classes]]
             for r in selected]
    return f"<h3>Per-class F1, fine task, test ({_escape(backbone)})</h3>" + _table(["method", *classes], table, "per-class-f1")


def _confusions(rows: list[dict[str, Any]]) -> str:
    selected = [r for r in rows if r["evaluation"] == "test" and r["task"] == "fine" and r["confusion_sum"]]
    if not selected:
        return ""
    backbone = sorted({r["backbone"] for r in selected})[0]
    figures = [_img(confusion_figure(r["confusion_sum"], r["classes"], f"{r['method']} ({backbone}, summed over seeds)"),
                    f"confusion {r['method']}")
               for r in sorted(selected, key=lambda r: METHOD_ORDER.index(r["method"]) if r["method"] in METHOD_ORDER else 99)
               if r["backbone"] == backbone]
    return "<h3>Confusion matrices (fine task, test)</h3><div class=figs>" + "".join(figures) + "</div>"


def _features_section(run: Path) -> str:
    file = run / "benchmark" / "features.json"
    if not file.is_file():
        return ""
    features = json.loads(file.read_text())
    methods = [m for m in ("Raw", "Raw_Aug", "T2I_Aug", "FLARE") if m in features]
    if not methods:
        return ""
    figures, table = [], []
    for method in methods:
        entry = features[method]
        figures.append(_img(feature_figure(entry, f"{method} ({entry['method']}), t-SNE"), f"features {method}"))
        table.append([method, entry["method"], entry["n"], f"{entry['silhouette']:.3f}", f"{entry['davies_bouldin']:.3f}"])
    return (f"<h2>Feature space ({_escape(features.get('backbone', ''))}, penultimate layer, test images)</h2>"
            + _table(["method", "trained on", "images", "silhouette ↑", "Davies–Bouldin ↓"], table, "feature-scores")
            + "<div class=figs>" + "".join(figures) + "</div>")


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report for ``run_dir`` (default ``run_dir/report/report.html``); returns its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FlareError(f"report.run_dir: {str(run)!r} is not a folder")
    out = Path(out) if out else run / "report" / "report.html"
    # Results first (what a reader comes for), then the evidence stage by stage.
    sections = [_overview(run), _results_section(run), _features_section(run), _sample_grids(run), _sr_section(run),
                _synthetic_section(run), _combine_section(run)]
    stamp = _datetime.datetime.now(_datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>FLARE report: {_escape(run.name)}</title>"
            f"<style>{CSS}</style>{LOAD_CHECK}</head><body><h1>FLARE report</h1>"
            f"<p class=muted>{_escape(run.resolve())} · flare {_escape(__version__)} · {stamp}</p>"
            + "".join(s for s in sections if s) + "</body></html>")
    with atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    out.chmod(0o644)  # temp files are private; a report is meant to be shared
    return out
