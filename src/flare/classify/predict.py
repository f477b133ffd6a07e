"""Classify images with a saved model folder: fine and macro labels, probabilities and a low-confidence flag.

Inputs are a folder (searched recursively), a text file listing paths (one per line), or paths given directly;
FITS and 16-bit files go through :func:`flare.core.io.read_image` with its default interval and stretch. Output is
CSV or Parquet (by suffix) with one row per input file; unreadable files get ``error`` set instead of labels.

``sort_into`` places each classified image in ``<folder>/<label>/`` and never harms an input (a user's only copy):

- the sort folder may not be, hold, or lie inside a folder that holds inputs; this is checked before any image is
  read, so a source is never overwritten and a later run never reads the copies back as new inputs;
- a file already in the sort folder is never replaced, and no two inputs share a target: a name shared by
  several inputs of one label, or taken by other content, becomes ``<stem>-<8 hex of sha256(source path)><suffix>``,
  the same name on every run (a re-run finds its own files and leaves them);
- ``copy`` (default) writes a temp file, checks its sha256 against the source's and renames it into place;
  ``move`` does the same and only then removes the source; ``symlink`` and ``hardlink`` link instead;
- the predictions get ``sorted_path`` (where the file went, "" if nowhere) and ``sort_error`` (why not); files
  that could not be placed end the run with one :class:`FlareError` after the predictions are written.

File names are bytes on POSIX and need not be UTF-8. Files are opened through :func:`os.fsdecode` strings (an
undecodable byte is a surrogate), so every file is read and sorted under its own name; the rows (the returned
frame and the written CSV/Parquet) hold valid UTF-8 with each undecodable byte spelled ``\\xNN``
(``bad\\xff\\xfename.png``): pandas' string columns and every reader accept it, and a person can still tell which
file it was. Listings are read as bytes for the same reason.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
import pandas as pd

from flare.classify.images import resize_square
from flare.classify.model_io import SavedClassifier, load_classifier
from flare.classify.train import infer_views
from flare.core.errors import FlareError, ImageReadError
from flare.core.files import atomic_output, sha256_file
from flare.core.io import FITS_SUFFIXES, IMAGE_SUFFIXES, read_image
from flare.core.progress import make_progress
from flare.core.symmetry import mirror_permutation
from flare.metrics.scoring import macro_probabilities

__all__ = ["collect_inputs", "predict_files", "write_predictions", "sort_images", "run_predict", "SORT_MODES"]

SortMode = Literal["copy", "move", "symlink", "hardlink"]
SORT_MODES: tuple[str, ...] = ("copy", "move", "symlink", "hardlink")
_SUFFIXES = sorted((*IMAGE_SUFFIXES, *FITS_SUFFIXES), key=len, reverse=True)  # longest first: ".fits.gz" before ".gz"


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in _SUFFIXES)


def _printable(text: str) -> str:
    """``text`` as valid UTF-8: each byte of a file name that is not UTF-8 (a surrogate here) becomes ``\\xNN``."""
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to: only a caller's own string
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def _read_listing(path: Path) -> list[Path]:
    """The paths a ``.txt``/``.lst`` listing names (relative to its folder); ``#`` starts a comment line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlareError(f"predict.images: cannot read the listing {str(path)!r} ({exc.strerror})") from None
    if b"\0" in data:  # binary or UTF-16: not a list of POSIX paths, and every "entry" would be a bogus miss
        raise FlareError(f"predict.images: {str(path)!r} holds NUL bytes; a listing is text, one path per line")
    entries = []
    for raw in data.removeprefix(codecs.BOM_UTF8).splitlines():
        line = os.fsdecode(raw.strip())
        if line and not line.startswith("#"):
            entry = Path(line)
            entries.append(entry if entry.is_absolute() else path.parent / entry)
    return entries


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted) and ``.txt``/``.lst`` path lists into image files.

    A path given directly must exist (one-line error otherwise); a listed path that is missing or not an image is
    kept, and its row gets the reason in ``error``.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
        elif path.is_file() and path.suffix.lower() in (".txt", ".lst"):
            files += _read_listing(path)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise FlareError(f"predict.images: {str(path)!r} is neither a file nor a folder")
        else:
            raise FlareError(f"predict.images: {str(path)!r} does not exist")
    if not files:
        raise FlareError("predict.images: no image or FITS file found in the inputs")
    return files


def predict_files(classifier: SavedClassifier, files: list[Path], batch_size: int = 64,
                  low_confidence: float = 0.5, tta: bool | None = None) -> pd.DataFrame:
    """One row per file: ``path, fine_label, fine_probability, macro_label, macro_probability, low_confidence,
    prob_<class>...`` (fine columns only for fine models), or ``error`` for unreadable files.

    ``tta`` averages the 8 rot90 × flip views (mirror pairs swapped, as the benchmark scores); None: as the
    model was scored by the benchmark (``tta`` in ``model.json``)."""
    if tta is None:
        tta = bool(classifier.config.get("tta", False))
    mirror = classifier.taxonomy.mirror if classifier.task == "fine" else (lambda c: c)
    perm = mirror_permutation(classifier.classes, mirror) if tta else None
    records: list[dict] = []
    with make_progress() as progress:
        overall = progress.add_task("predict", total=len(files))
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            records += _predict_batch(classifier, chunk, batch_size, low_confidence, progress, perm)
            progress.advance(overall, len(chunk))
    # Row i is files[i], so callers can pair rows with real paths.
    return pd.DataFrame.from_records(records)


def _predict_batch(classifier: SavedClassifier, chunk: list[Path], batch_size: int, low_confidence: float,
                   progress: Any, mirror_perm: np.ndarray | None = None) -> list[dict]:
    """Read and classify one batch: its rows, in ``chunk`` order (unreadable files get their quarantine reason)."""
    taxonomy = classifier.taxonomy
    rows: list[dict] = [{"path": _printable(str(path)), "error": ""} for path in chunk]
    arrays, readable = [], []
    for row, path in zip(rows, chunk):
        try:
            image, _ = read_image(path)
        except ImageReadError as exc:
            row["error"] = _printable(str(exc))
            continue
        arrays.append(resize_square(image, classifier.image_size_px))
        readable.append(row)
    if not arrays:
        return rows
    probabilities, _ = infer_views(classifier.model, np.stack(arrays), mirror_perm, batch_size, description="batch",
                                   progress=progress)
    macro = macro_probabilities(probabilities, classifier.classes, classifier.task, taxonomy)
    for i, row in enumerate(readable):
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
    return rows


def _check_out(out: Path, files: list[Path]) -> None:
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise FlareError(f"predict.out: {str(out)!r} must end in .csv or .parquet")
    if out.is_dir():
        raise FlareError(f"predict.out: {str(out)!r} is a folder; name a .csv or .parquet file")
    if out.resolve() in {f.resolve() for f in files}:
        raise FlareError(f"predict.out: {str(out)!r} is one of the inputs; an input is never overwritten")


def write_predictions(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write ``frame`` atomically as CSV or Parquet (by suffix)."""
    out = Path(out)
    _check_out(out, [])
    try:
        with atomic_output(out) as tmp:
            if out.suffix.lower() == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
    except OSError as exc:
        raise FlareError(f"predict.out: cannot write {str(out)!r} ({exc.strerror or exc})") from None
    return out


def _check_sort(folder: str | Path, mode: str, files: Iterable[Path], input_folders: Iterable[str | Path]) -> None:
    """Refuse a sort mode that does not exist and a sort folder that is, holds or lies inside an input folder."""
    if mode not in SORT_MODES:
        raise FlareError(f"predict.sort_mode: {mode!r} is not one of {', '.join(SORT_MODES)}")
    if Path(folder).exists() and not Path(folder).is_dir():
        raise FlareError(f"predict.sort: {str(folder)!r} is a file; name a folder")
    target = Path(folder).resolve()
    held = {Path(f).resolve() for f in input_folders}
    for file in files:
        held |= {Path(file).parent.resolve(), Path(file).resolve().parent}  # where the name lives, where the data lives
    for inputs in held:
        if target.is_relative_to(inputs) or inputs.is_relative_to(target):
            raise FlareError(f"predict.sort: {str(folder)!r} is, holds or lies inside {str(inputs)!r}, which holds "
                             "inputs; sort into a folder outside every input folder")


def _stable_name(source: Path, resolved: Path) -> str:
    """``<stem>-<8 hex><suffix>``, the hex from the source's absolute path ``resolved``: unique per input, equal
    across runs."""
    tag = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:8]
    name = source.name
    suffix = next((name[-len(s):] for s in _SUFFIXES if name.lower().endswith(s)), source.suffix)
    return f"{name[:len(name) - len(suffix)]}-{tag}{suffix}"


def _holds(target: Path, source: Path, mode: str, digest: Callable[[], str]) -> bool:
    """Whether ``target`` is already this source's placement (an earlier run's), so it can be kept as it is."""
    if mode == "symlink":
        return target.is_symlink() and target.resolve() == source.resolve()
    return not target.is_symlink() and target.is_file() and sha256_file(target) == digest()


def _write(source: Path, target: Path, mode: str, digest: Callable[[], str]) -> None:
    if mode == "symlink":
        target.symlink_to(source.resolve())
    elif mode == "hardlink":
        os.link(source, target)
    else:
        with atomic_output(target) as tmp:  # the final name only ever holds a verified copy
            shutil.copy2(source, tmp)
            if sha256_file(tmp) != digest():
                raise FlareError(f"predict.sort: the copy of {str(source)!r} does not match it (sha256); "
                                 "the source is kept")


def _place(source: Path, directory: Path, names: list[str], mode: str) -> Path:
    """Put ``source`` in ``directory`` under the first of ``names`` that is free or already holds it; with
    ``move``, remove ``source`` once a verified copy is in place."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = functools.cache(lambda: sha256_file(source))  # the source is hashed at most once, and only if needed
    for name in names:
        target = directory / name
        if not os.path.lexists(target):
            _write(source, target, mode, digest)
        elif not _holds(target, source, mode, digest):
            continue
        if mode == "move":
            source.unlink()
        return target
    raise FlareError(f"predict.sort: {' and '.join(names)} already exist in {str(directory)!r} with other content")


def sort_images(frame: pd.DataFrame, folder: str | Path, mode: SortMode = "copy",
                level: Literal["fine", "macro"] = "fine", input_folders: Iterable[str | Path] = (),
                sources: list[Path] | None = None) -> pd.DataFrame:
    """Place each classified image in ``folder/<label>/``; returns ``frame`` plus ``sorted_path`` and ``sort_error``.

    ``sources`` are the files of the rows, in row order (default: the ``path`` column, which spells a name that
    is not UTF-8 escaped, so pass the files :func:`predict_files` was given). ``input_folders`` are the folders
    the inputs were found in (the folders of the files are always checked); the rules are in the module docstring.
    """
    sources = [Path(p) for p in frame["path"]] if sources is None else sources
    _check_sort(folder, mode, sources, input_folders)
    return _sort_checked(frame, Path(folder), mode, level, sources)


def _sort_checked(frame: pd.DataFrame, folder: Path, mode: str, level: str, sources: list[Path]) -> pd.DataFrame:
    """:func:`sort_images` once :func:`_check_sort` has passed."""
    column = "fine_label" if level == "fine" else "macro_label"
    labels = []
    for row in frame.to_dict("records"):
        label = row.get(column) or row.get("macro_label")
        labels.append(label if not row.get("error") and isinstance(label, str) and label else "")
    # Inputs that would share a name in one label folder; case-folded, as macOS and Windows folders ignore case.
    resolved = [source.resolve() if label else None for source, label in zip(sources, labels)]
    owners: dict[tuple[str, str], set[Path]] = {}
    for source, key, label in zip(sources, resolved, labels):
        if label:
            owners.setdefault((label, source.name.casefold()), set()).add(key)
    done: dict[Path, tuple[str, str]] = {}  # a file listed twice is placed once
    placements = []
    for source, key, label in zip(sources, resolved, labels):
        if not label:
            placements.append(("", ""))
            continue
        if key not in done:
            shared = len(owners[(label, source.name.casefold())]) > 1
            names = [_stable_name(source, key)] if shared else [source.name, _stable_name(source, key)]
            try:
                done[key] = (_printable(str(_place(source, folder / label, names, mode))), "")
            except (FlareError, OSError) as exc:  # one file's failure (disk full, cross-device link) spares the rest
                done[key] = ("", _printable(str(exc)))
        placements.append(done[key])
    return frame.assign(sorted_path=[p for p, _ in placements], sort_error=[e for _, e in placements])


def run_predict(model_dir: str | Path, inputs: list[str | Path], out: str | Path, *, batch_size: int = 64,
                low_confidence: float = 0.5, sort_into: str | Path | None = None,
                sort_mode: SortMode = "copy", tta: bool | None = None) -> pd.DataFrame:
    """Predict ``inputs``, optionally sort them into ``sort_into``, and write the rows to ``out``.

    Every check that can refuse the run (model folder, inputs, output path, sort folder and mode) happens before
    the first image is read, so a refused run writes nothing.
    """
    classifier = load_classifier(model_dir)
    files = collect_inputs(inputs)
    out = Path(out)
    _check_out(out, files)
    folders = [Path(i) for i in inputs if Path(i).is_dir()]
    if sort_into is not None:
        _check_sort(sort_into, sort_mode, files, folders)
    frame = predict_files(classifier, files, batch_size, low_confidence, tta)
    if sort_into is None:
        write_predictions(frame, out)
        return frame
    frame = _sort_checked(frame, Path(sort_into), sort_mode, classifier.task, files)  # task: "fine" or "macro"
    write_predictions(frame, out)
    failed = frame[frame["sort_error"] != ""]
    if len(failed):
        first = failed.iloc[0]
        raise FlareError(f"predict.sort: {len(failed)} of {len(frame)} images were not placed (sort_error in "
                         f"{str(out)!r}); first: '{first['path']}': {first['sort_error']}")
    return frame
