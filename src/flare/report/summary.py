"""What the benchmark concludes, as the report's lead: the headline sentences, FLARE against each baseline and
the SR headroom, all read from ``results.json["comparison"]`` (the benchmark computes them; this only lays
them out).

A comparison entry is one (backbone, trained task, scored task): ``best_baseline`` (chosen on val macro-F1),
``flare_vs`` (FLARE − each baseline on test: seed mean ± std, paired 95 % bootstrap interval, seeds ahead),
``headroom`` (Oracle_HR − Raw_LR and the share Raw_HR / Raw_HR_online recover; null without Oracle_HR) and
``headline`` (one sentence). An older ``results.json`` has none of these, and the lead is then left out.
"""

from __future__ import annotations

from typing import Any

from flare.report.tables import (cell, format_difference, format_interval, format_points, method_label,
                                 method_rank, table)

__all__ = ["summary_section", "task_label", "verdict", "ORACLE_SKIPPED"]

ORACLE_SKIPPED = "Oracle_HR: skipped"  # the benchmark's note when the dataset has no HR truth
_TASK_ORDER = {"fine": 0, "macro": 1}


def _entry_order(entry: dict[str, Any]) -> tuple:
    # fine before macro, then backbone; a macro score from the fine model before a model trained on macro
    return (_TASK_ORDER.get(entry.get("task"), 2), str(entry.get("backbone")), entry.get("trained_task") != "fine")


def task_label(entry: dict[str, Any]) -> str:
    """``fine``, ``macro`` or ``macro (fine model collapsed)`` when the macro score comes from a fine model."""
    task, trained = str(entry.get("task", "?")), str(entry.get("trained_task", entry.get("task", "?")))
    return task if task == trained else f"{task} ({trained} model collapsed)"


def _best_difference(entry: dict[str, Any]) -> dict[str, Any] | None:
    best = (entry.get("best_baseline") or {}).get("method")
    return (entry.get("flare_vs") or {}).get(best) if best else None


def verdict(entry: dict[str, Any]) -> str:
    """``better`` / ``worse`` when the 95 % interval of FLARE − best baseline excludes 0, else ``unclear``."""
    interval = ((_best_difference(entry) or {}).get("ci95") or {}).get("macro_f1") or {}
    low, high = interval.get("low"), interval.get("high")
    if isinstance(low, (int, float)) and low > 0:
        return "better"
    if isinstance(high, (int, float)) and high < 0:
        return "worse"
    return "unclear"


def _headlines(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"text": str(e["headline"]), "verdict": verdict(e)} for e in entries if e.get("headline")]


def _against(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """FLARE − each baseline on test; the best baseline (chosen on val) is marked in its row."""
    rows, classes, best = [], [], set()
    for entry in entries:
        chosen = (entry.get("best_baseline") or {}).get("method")
        val_scores = (entry.get("best_baseline") or {}).get("val_scores") or {}
        for baseline, difference in sorted((entry.get("flare_vs") or {}).items(), key=lambda kv: method_rank(kv[0])):
            seeds = difference.get("seeds") or []
            interval = (difference.get("ci95") or {}).get("macro_f1")
            val = val_scores.get(baseline)
            if baseline == chosen:
                best.add((len(rows), 2))
            rows.append([entry.get("backbone", "?"), task_label(entry),
                         f"{method_label(baseline)} · best on val" if baseline == chosen else method_label(baseline),
                         f"{100 * val:.1f}" if isinstance(val, (int, float)) and val == val else "–",
                         format_difference(difference.get("macro_f1") or {}),
                         format_interval(interval, signed=True) or "–",
                         f"{difference.get('wins', 0)} of {len(seeds)}"])
            classes.append("chosen" if baseline == chosen else "")
    if not rows:
        return None
    header = ["backbone", "task", "baseline", "val macro-F1", "FLARE − baseline, test macro-F1 points",
              "95 % interval, points", "seeds FLARE is ahead"]
    return table(header, rows, "flare-vs-baselines", best, classes)


def _share(headroom: dict[str, Any], method: str) -> Any:
    if method not in headroom:
        return "–"
    if not headroom.get("gap", 0) > 0:
        return "– (no headroom)"  # a share of a gap ≤ 0 (Oracle_HR not above Raw_LR) means nothing
    share = headroom.get(f"{method}_share")
    if not isinstance(share, (int, float)) or share != share:
        return "– (no gap to recover)"
    return cell(f"{100 * share:.0f} %", bar=100 * share)


def _headroom(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    rows = []
    for entry in entries:
        headroom = entry.get("headroom")
        if not headroom:
            continue
        rows.append([entry.get("backbone", "?"), task_label(entry), f"{100 * headroom['oracle_hr']:.1f}",
                     f"{100 * headroom['raw_lr']:.1f}", format_points(headroom["gap"]),
                     _share(headroom, "Raw_HR"), _share(headroom, "Raw_HR_online")])
    if not rows:
        return None
    header = ["backbone", "task", f"{method_label('Oracle_HR')} macro-F1", "Raw_LR macro-F1",
              "headroom: Oracle_HR − Raw_LR, points", "share Raw_HR recovers", "share Raw_HR_online recovers"]
    return table(header, rows, "sr-headroom")


def _oracle_note(results: dict[str, Any], has_headroom: bool) -> str:
    """One line on why there is no headroom box (empty when there is one)."""
    if has_headroom or any(r.get("method") == "Oracle_HR" for r in results.get("rows", [])):
        return ""
    skipped = [str(n) for n in results.get("notes", []) if str(n).startswith(ORACLE_SKIPPED)]
    if any("no HR truth" in n for n in skipped):
        return ("No SR headroom: the dataset has no HR truth, so the Oracle_HR upper bound could not be trained "
                "and the report cannot say how much super-resolution could gain here.")
    if skipped:
        return f"No SR headroom: {skipped[0]}."
    return "No SR headroom: the Oracle_HR upper bound was not among the benchmark's methods."


def summary_section(results: dict[str, Any], origins: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The lead of the report, or None for a ``results.json`` without ``comparison`` (older benchmarks).

    ``origins``: ``{backbone: initialised_from}``, printed beside the backbones the comparison names."""
    entries = sorted([e for e in results.get("comparison") or [] if isinstance(e, dict)], key=_entry_order)
    if not entries:
        return None
    headroom = _headroom(entries)
    named = sorted({str(e.get("backbone", "?")) for e in entries})
    return {"headlines": _headlines(entries), "against": _against(entries), "headroom": headroom,
            "oracle_note": _oracle_note(results, headroom is not None),
            "backbones": [{"name": b, "origin": (origins or {}).get(b, "")} for b in named]}
