"""What FLARE's two branches did, from the files stages 3 and 4 write (each part appears when its file exists):

- ``generate/generate_report.json``: the per-class synthesis plan (``per_class: balance`` fills each class up to
  a target), what the confidence filter dropped and why (its classifier's balanced val accuracy against chance);
- ``generate/memorisation_audit.json``: each synthetic image's distance to its nearest real train image against
  the same distance for held-out real images, per feature space; near-copies found and dropped; the closest
  synthetic–train pairs drawn side by side, so a reader judges "near-copy" with their own eyes;
- ``combine/combine_report.json`` (``rule: value``): every augmentation and synthesis type's measured value on
  val (probe macro-F1 with the type minus without), and which types the α / β fractions kept.

A file that does not parse becomes a one-line note in its part; it never fails the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flare.core.io import load_rgb
from flare.report.figures import grid_figure
from flare.report.tables import table

__all__ = ["branches_section", "GENERATE_REPORT", "AUDIT_REPORT", "COMBINE_REPORT"]

GENERATE_REPORT = "generate/generate_report.json"
AUDIT_REPORT = "generate/memorisation_audit.json"
COMBINE_REPORT = "combine/combine_report.json"
PAIRS_SHOWN = 8

_COUNT_COLUMNS = (("real", "real train"), ("target", "target"), ("t2i_planned", "t2i planned"),
                  ("variations_planned", "variations planned"), ("generated", "generated"),
                  ("dropped_filter", "dropped: filter"), ("dropped_audit", "dropped: audit"), ("kept", "kept"))


def _load(run: Path, name: str) -> tuple[dict[str, Any] | None, str | None]:
    path = run / name
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return None, f"{name} is not readable ({type(error).__name__})"
    if not isinstance(data, dict):
        return None, f"{name} is not a JSON object"
    return data, None


def _number(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _synthesis(report: dict[str, Any]) -> dict[str, Any]:
    classes = report.get("classes") or {}
    rows = [[label, *[classes[label].get(key, "–") for key, _ in _COUNT_COLUMNS]]
            for label in sorted(classes) if isinstance(classes[label], dict)]
    info = report.get("filter") or {}
    accuracy = info.get("classifier_val_balanced_accuracy", info.get("classifier_val_accuracy"))
    if info.get("method", "none") == "none":
        filter_line = "Filter off: every generated image is kept (unless the audit drops it)."
    else:
        judge = {"generic": " (a logistic head on ImageNet Lite0 features)",
                 "domain": " (the 32 px domain CNN)"}.get(str(info.get("judge")), "")
        filter_line = (f"Filter {info.get('method')}: kept when the real-trained classifier{judge} gives the prompted class "
                       f"p ≥ {info.get('threshold')}; that classifier's balanced val accuracy "
                       f"{_number(accuracy)} against chance {_number(info.get('chance'))}; dropped "
                       f"{info.get('dropped', 0)}.")
        if info.get("skipped"):
            filter_line += f" {info['skipped']}."
    return {"rule": str(report.get("rule", report.get("per_class", ""))), "filter": filter_line,
            "table": table(["class", *[title for _, title in _COUNT_COLUMNS]], rows, "synthesis-counts") if rows else None}


def _resolve(base: Path, value: Any) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def _pairs_figure(run: Path, audit: dict[str, Any]) -> dict[str, str] | None:
    rows = []
    for pair in (audit.get("closest_pairs") or [])[:PAIRS_SHOWN]:
        if not isinstance(pair, dict):
            continue
        images = []
        for key, base in (("synthetic_path", run / "generate"), ("train_path", run / "generate")):
            path = _resolve(base, pair.get(key))
            try:
                images.append(load_rgb(path)) if path is not None else None
            except (OSError, ValueError):
                pass  # an unreadable image leaves a gap in its row, not a failed report
        flag = " NEAR-COPY" if pair.get("near_copy") else ""
        rows.append((f"{pair.get('label', '?')} ×{_number(pair.get('closeness'), '.2f')}{flag}", images))
    if not rows:
        return None
    title = "closest synthetic (left) – real train (right) pairs; × = distance / near-copy threshold"
    return {"title": title, "alt": title, "uri": grid_figure(rows)}


def _audit(run: Path, audit: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for space, numbers in sorted((audit.get("spaces") or {}).items()):
        if not isinstance(numbers, dict):
            continue
        synthetic, heldout = numbers.get("synthetic_quantiles") or {}, numbers.get("heldout_quantiles") or {}
        rows.append([space, _number(numbers.get("threshold")), _number(synthetic.get("q0")),
                     _number(synthetic.get("q0.5")), _number(heldout.get("q0")), _number(heldout.get("q0.5")),
                     numbers.get("synthetic_below_threshold", "–")])
    summary = (f"{audit.get('n_synthetic', '?')} synthetic images against {audit.get('n_train', '?')} real train "
               f"images; the threshold is the {audit.get('quantile', '?')} quantile of {audit.get('n_heldout', '?')} "
               f"real {audit.get('heldout_split', 'held-out')} images' nearest-train distances. Near-copies: "
               f"{audit.get('near_copies', 0)}, dropped: {audit.get('dropped', 0)} ({audit.get('drops', '')}).")
    header = ["feature space", "near-copy threshold", "synthetic: closest", "synthetic: median",
              "held-out real: closest", "held-out real: median", "synthetic below threshold"]
    return {"summary": summary, "rule": str(audit.get("rule", "")), "notes": [str(n) for n in audit.get("notes") or []],
            "table": table(header, rows, "audit-distances") if rows else None, "pairs": _pairs_figure(run, audit)}


def _value(report: dict[str, Any]) -> dict[str, Any] | None:
    value = report.get("value")
    if not isinstance(value, dict):
        return None
    kept = value.get("kept") or {}
    symmetries = set(value.get("kept_as_exact_symmetries") or [])
    rows = []
    for branch, scores in sorted((value.get("scores") or {}).items()):
        for name, score in sorted((scores or {}).items(), key=lambda item: -(item[1] or {}).get("value", 0.0)):
            rows.append([branch, name, _number((score or {}).get("value"), "+.4f"),
                         _number((score or {}).get("val_macro_f1"), ".4f"), (score or {}).get("images", "–"),
                         "kept (exact symmetry)" if branch == "augment" and name in symmetries
                         else "kept" if name in (kept.get(branch) or []) else "dropped"])
    unscored = [f"{branch}: {reason}" for branch, reason in sorted((value.get("unscored") or {}).items())]
    return {"baseline": _number(value.get("baseline_val_macro_f1"), ".4f"), "space": str(value.get("feature_space", "")),
            "probe": str(value.get("probe", "")), "unscored": unscored,
            "table": table(["branch", "type", "value (Δ val macro-F1)", "val macro-F1 with it", "images scored",
                            "α / β"], rows, "type-values") if rows else None}


def branches_section(run: Path) -> dict[str, Any] | None:
    """The synthesis plan and filter, the memorisation audit and the type values; None when none of the files exist."""
    section: dict[str, Any] = {"notes": []}
    for key, name, build in (("synthesis", GENERATE_REPORT, _synthesis), ("audit", AUDIT_REPORT, lambda d: _audit(run, d)),
                             ("value", COMBINE_REPORT, _value)):
        data, error = _load(run, name)
        section[key] = build(data) if data is not None else None
        if error:
            section["notes"].append(error)
    if not any(section[key] for key in ("synthesis", "audit", "value")) and not section["notes"]:
        return None
    return section
