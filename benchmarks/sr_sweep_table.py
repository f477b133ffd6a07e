"""The tables of docs/RESULTS.md's SR headroom section, read from a finished ``benchmarks/sr_sweep.sh OUT``.

    python benchmarks/sr_sweep_table.py OUT [--json OUT/sweep_table.json]

For each data set and factor (``gz1-x4``, ``gz1-x8``, ``sky-x4``, ``sky-x8``): Raw_LR, Raw_HR after bicubic,
Raw_HR after the trained SwinIR (the ``SET-swinir`` benchmark) and Oracle_HR, as test fine macro-F1 mean ± sd
over the seeds with the benchmark's 95 % bootstrap interval of the seed mean; the gap Oracle_HR − Raw_LR and the
share of it each SR backend recovers; and paired differences (the same resampled test images for both sides,
``flare.metrics.classification.bootstrap_difference`` on the cells' stored predictions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from flare.classify.comparison import N_BOOT, test_predictions
from flare.metrics.classification import bootstrap_difference, bootstrap_interval, bootstrap_scores

SETS = ("gz1-x4", "gz1-x8", "sky-x4", "sky-x8")
COLUMNS = ("Raw_LR", "bicubic", "swinir", "Oracle_HR")
PAIRS = (("bicubic", "Raw_LR"), ("swinir", "Raw_LR"), ("swinir", "bicubic"))
TASK = "fine"


def _cells(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / "benchmark" / "cells").glob("*.json"))]


def load_set(out: Path, name: str) -> dict[str, list[dict[str, Any]]]:
    """Cells per column: the bicubic benchmark's Raw_LR / Raw_HR / Oracle_HR and the swinir one's Raw_HR."""
    columns: dict[str, list[dict[str, Any]]] = {}
    for cell in _cells(out / name):
        if cell["task"] == TASK:
            columns.setdefault({"Raw_HR": "bicubic"}.get(cell["method"], cell["method"]), []).append(cell)
    columns["swinir"] = [c for c in _cells(out / f"{name}-swinir") if c["task"] == TASK and c["method"] == "Raw_HR"]
    return {k: v for k, v in columns.items() if v}


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [c["metrics"]["test"][TASK]["macro_f1"] for c in sorted(cells, key=lambda c: c["seed"])]
    found = test_predictions(cells, TASK)
    interval = bootstrap_interval(bootstrap_scores(*found, n_boot=N_BOOT)["macro_f1"]) if found else None
    return {"mean": float(np.mean(scores)), "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
            "per_seed": scores, "ci95": interval}


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any] | None:
    pa, pb = test_predictions(a, TASK), test_predictions(b, TASK)
    if pa is None or pb is None or pa[0] != pb[0]:
        return None
    diff = bootstrap_difference(pa[0], pa[1], pb[1], n_boot=N_BOOT)["macro_f1"]
    mean = float(np.mean([x["metrics"]["test"][TASK]["macro_f1"] for x in a])
                 - np.mean([x["metrics"]["test"][TASK]["macro_f1"] for x in b]))
    return {"mean": mean, "low": diff["low"], "high": diff["high"]}


def table(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in SETS:
        columns = load_set(out, name)
        if not columns:
            continue
        entry: dict[str, Any] = {k: summarise(v) for k, v in columns.items()}
        if "Oracle_HR" in entry and "Raw_LR" in entry:
            gap = entry["Oracle_HR"]["mean"] - entry["Raw_LR"]["mean"]
            entry["gap"] = gap
            for backend in ("bicubic", "swinir"):
                if backend in entry and gap > 1e-9:
                    entry[f"{backend}_share"] = (entry[backend]["mean"] - entry["Raw_LR"]["mean"]) / gap
        entry["paired"] = {f"{a} - {b}": paired(columns[a], columns[b]) for a, b in PAIRS
                           if a in columns and b in columns}
        result[name] = entry
    return result


def _cell(value: dict[str, Any] | None) -> str:
    if not value:
        return "–"
    ci = value.get("ci95")
    span = f" [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]" if ci else ""
    return f"{100 * value['mean']:.1f} ± {100 * value['sd']:.1f}{span}"


def markdown(result: dict[str, Any]) -> str:
    lines = ["| data | Raw_LR | Raw_HR (bicubic) | Raw_HR (swinir-trained) | Oracle_HR | gap Oracle − LR "
             "| share bicubic recovers | share swinir-trained recovers |", "|" + "---|" * 8]
    for name, e in result.items():
        shares = [f"{100 * e[k]:.0f} %" if k in e else "–" for k in ("bicubic_share", "swinir_share")]
        gap = f"{100 * e['gap']:+.1f}" if "gap" in e else "–"
        lines.append(f"| {name} | " + " | ".join(_cell(e.get(c)) for c in COLUMNS) + f" | {gap} | "
                     + " | ".join(shares) + " |")
    lines += ["", "| data | " + " | ".join(f"{a} − {b}" for a, b in PAIRS) + " |", "|" + "---|" * (len(PAIRS) + 1)]
    for name, e in result.items():
        parts = []
        for a, b in PAIRS:
            d = e["paired"].get(f"{a} - {b}")
            parts.append(f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" if d else "–")
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    lines += ["", "per seed (test fine macro-F1): " + "; ".join(
        f"{name} {c} " + ", ".join(f"{100 * s:.1f}" for s in e[c]["per_seed"])
        for name, e in result.items() for c in COLUMNS if c in e)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = table(args.out)
    if not result:
        raise SystemExit(f"{args.out}: no benchmark cells under any of {', '.join(SETS)}")
    print(markdown(result))
    (args.json or args.out / "sweep_table.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
