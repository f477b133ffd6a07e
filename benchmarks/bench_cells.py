"""Seconds per benchmark cell per backbone and mode, read from benchmark folders that ran (cells/*.json).

A cell's ``seconds`` is its wall time: decoding or feature extraction it could not take from the cache, training
with the shared recipe, val/test/out-of-domain scoring (TTA included). The first cell of a pool pays for decoding
(and, frozen, for the features of every view); later seeds reuse them, so the table shows the first seed and the
median of the others. Ratios are against the ``--baseline`` backbone's median cell when it is among the folders.

    python benchmarks/bench_cells.py RUN/benchmark [MORE/benchmark ...] [--baseline resnet18]

Used for docs/RESULTS.md (the GZ1 preset comparison and the data-efficiency run).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def rows(folders: list[Path]) -> list[dict]:
    out: dict[tuple, list[dict]] = {}
    for folder in folders:
        for path in sorted((folder / "cells").glob("*.json")):
            cell = json.loads(path.read_text())
            key = (cell["backbone"], cell["recipe"]["train_mode"], cell["preset"]["image_size_px"], cell["method"],
                   str(folder))
            out.setdefault(key, []).append(cell)
    table = []
    for (backbone, mode, size, method, folder), cells in sorted(out.items()):
        cells.sort(key=lambda c: c["seed"])
        later = [c["seconds"] for c in cells[1:]] or [cells[0]["seconds"]]
        table.append({"backbone": backbone, "mode": mode, "size": size, "method": method, "folder": folder,
                      "cells": len(cells), "first": cells[0]["seconds"], "median_later": statistics.median(later),
                      "epochs_run": statistics.median(c["epochs_run"] for c in cells),
                      "steps": cells[0]["recipe"]["steps"]})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--baseline", default="resnet18")
    args = parser.parse_args()
    table = rows(args.folders)
    base = [r["median_later"] for r in table if r["backbone"] == args.baseline]
    reference = statistics.median(base) if base else None
    print(f"{'backbone':30s} {'mode':6s} {'px':>4s} {'method':14s} {'cells':>5s} {'first s':>8s} "
          f"{'later s':>8s} {'epochs':>6s} {'ratio':>6s}")
    for r in table:
        ratio = f"{r['median_later'] / reference:6.2f}" if reference else "     -"
        print(f"{r['backbone']:30s} {r['mode']:6s} {r['size']:4d} {r['method']:14s} {r['cells']:5d} "
              f"{r['first']:8.0f} {r['median_later']:8.0f} {r['epochs_run']:6.0f} {ratio}")


if __name__ == "__main__":
    main()
