"""Classify images with a saved model folder: fine and macro labels, probabilities and a low-confidence flag.

Inputs are a folder (searched recursively), a text file listing paths (one per line), or paths given directly;
FITS and 16-bit files go through :func:`flare.core.io.read_image` with its default interval and stretch. Output is
CSV or Parquet (by suffix) with one row per readable file; unreadable files get ``error`` set instead of labels.
``sort_into`` copies (or links) each image into ``<folder>/<fine label>/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd

from flare.classify.images import resize_square
from flare.classify.model_io import SavedClassifier, load_classifier
from flare.classify.train import infer
from flare.core.errors import FlareError, ImageReadError
from flare.core.files import atomic_output
from flare.core.io import FITS_SUFFIXES, IMAGE_SUFFIXES, read_image
from flare.core.progress import make_progress
from flare.metrics.scoring import macro_probabilities

__all__ = ["collect_inputs", "predict_files", "write_predictions", "sort_images", "run_predict"]


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in (*IMAGE_SUFFIXES, *FITS_SUFFIXES))


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted) and ``.txt``/``.lst`` path lists into image files."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
        elif path.is_file() and path.suffix.lower() in (".txt", ".lst"):
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    entry = Path(line)
                    files.append(entry if entry.is_absolute() else path.parent / entry)
        elif path.is_file():
            files.append(path)
        else:
            raise FlareError(f"predict.images: {str(path)!r} does not exist")
    if not files:
        raise FlareError("predict.images: no image or FITS file found in the inputs")
    return files


def predict_files(classifier: SavedClassifier, files: list[Path], batch_size: int = 64,
                  low_confidence: float = 0.5) -> pd.DataFrame:
    """One row per file: ``path, fine_label, fine_probability, macro_label, macro_probability, low_confidence,
    prob_<class>...`` (fine columns only for fine models), or ``error`` for unreadable files."""
    records: list[dict] = []
    with make_progress() as progress:
        overall = progress.add_task("predict", total=len(files))
        for start in range(0, len(files), batch_size):
            _predict_batch(classifier, files[start:start + batch_size], batch_size, low_confidence, records, progress)
            progress.advance(overall, len(files[start:start + batch_size]))
    frame = pd.DataFrame.from_records(records)
    order = {str(p): i for i, p in enumerate(files)}
    return frame.sort_values("path", key=lambda s: s.map(order)).reset_index(drop=True)


def _predict_batch(classifier: SavedClassifier, chunk: list[Path], batch_size: int, low_confidence: float,
                   records: list[dict], progress: Any) -> None:
    """Read, classify and append the rows of one batch (unreadable files get their quarantine reason)."""
    taxonomy = classifier.taxonomy
    arrays, readable = [], []
    for path in chunk:
        try:
            image, _ = read_image(path)
        except ImageReadError as exc:
            records.append({"path": str(path), "error": str(exc)})
            continue
        arrays.append(resize_square(image, classifier.image_size_px))
        readable.append(path)
    if not arrays:
        return
    probabilities, _ = infer(classifier.model, np.stack(arrays), batch_size, description="batch",
                             progress=progress)
    macro = macro_probabilities(probabilities, classifier.classes, classifier.task, taxonomy)
    for i, path in enumerate(readable):
        row: dict = {"path": str(path), "error": ""}
        if classifier.task == "fine":
            best = int(probabilities[i].argmax())
            row["fine_label"], row["fine_probability"] = classifier.classes[best], float(probabilities[i, best])
        else:
            row["fine_label"], row["fine_probability"] = "", float("nan")
        best_macro = int(macro[i].argmax())
        row["macro_label"] = taxonomy.macro_classes[best_macro]
        row["macro_probability"] = float(macro[i, best_macro])
        top = row["fine_probability"] if classifier.task == "fine" else row["macro_probability"]
        row["low_confidence"] = bool(top < low_confidence)
        for j, name in enumerate(classifier.classes):
            row[f"prob_{name}"] = float(probabilities[i, j])
        records.append(row)


def write_predictions(frame: pd.DataFrame, out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise FlareError(f"predict.out: {str(out)!r} must end in .csv or .parquet")
    with atomic_output(out) as tmp:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return out


def sort_images(frame: pd.DataFrame, folder: str | Path, mode: Literal["copy", "symlink", "hardlink"] = "copy",
                level: Literal["fine", "macro"] = "fine") -> int:
    """Copy or link each classified image into ``folder/<label>/``; returns how many were placed."""
    folder = Path(folder)
    placed = 0
    column = "fine_label" if level == "fine" else "macro_label"
    for row in frame.to_dict("records"):
        label = row.get(column) or row.get("macro_label")
        if row.get("error") or not isinstance(label, str) or not label:
            continue
        source = Path(row["path"])
        target = folder / label / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            target.unlink()
        if mode == "symlink":
            target.symlink_to(source.resolve())
        elif mode == "hardlink":
            os.link(source, target)
        else:
            shutil.copy2(source, target)
        placed += 1
    return placed


def run_predict(model_dir: str | Path, inputs: list[str | Path], out: str | Path, *, batch_size: int = 64,
                low_confidence: float = 0.5, sort_into: str | Path | None = None,
                sort_mode: Literal["copy", "symlink", "hardlink"] = "copy") -> pd.DataFrame:
    classifier = load_classifier(model_dir)
    frame = predict_files(classifier, collect_inputs(inputs), batch_size, low_confidence)
    write_predictions(frame, out)
    if sort_into is not None:
        sort_images(frame, sort_into, sort_mode, "fine" if classifier.task == "fine" else "macro")
    return frame
