"""The training sets the benchmark compares, read from a ``flare run`` work folder's dataset folders.

=========  ==========================================  ===========================================
method     training rows (split ``train``)             val / test rows
=========  ==========================================  ===========================================
Raw_LR     source rows of ``data/`` (LR)               source val/test (LR, bicubic to the model size)
Raw_HR     ``upscale/`` rows                           the HR evaluation set
Raw_HR_online  ``upscale/`` rows, each sample a random     the HR evaluation set
           rot90 × flip view (mirror pairs swapped)
Raw_Aug    ``augment/``: base images + augment rows    the HR evaluation set
T2I_Aug    ``generate/``: base images + generate rows  the HR evaluation set
FLARE      ``combine/``: the mix it selected           the HR evaluation set
Synth_Only ``generate/``: generate rows only           the HR evaluation set (opt-in, not a default)
Oracle_HR  the HR truth (``truth_path``) of ``data/``  the HR truth of val/test: an upper bound, not a
           source rows                                 method a user can run (needs the truth)
=========  ==========================================  ===========================================

Raw_HR_online is what a competent user trains without FLARE: the super-resolved real images with the exact
symmetries of the sky applied online. FLARE is judged against the best baseline (chosen on val), not against
Raw_Aug alone. Oracle_HR exists only where the dataset has an HR truth (the simulated sky, the GZ1 LR
protocol); without one it is skipped with a note.

T2I_Aug is the synthetic branch without the standard-augmentation branch (real + synthetic), as in the paper's
table; Synth_Only asks how far the synthetic images alone carry a classifier (a test of the generator).

The HR evaluation set is the real val/test images after stage 1 (``upscale/`` rows), or the source rows when
there is no ``upscale/`` folder. It is the same for every method, so the split is the same origin-level split
everywhere. A method whose folder is missing is skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from flare.core.hf_columns import SYNTHETIC_STAGES
from flare.core.manifest import SOURCE_STAGES, Manifest, base_images, cell_text
from flare.core.methods import BASELINES, METHODS, ONLINE_METHODS, OPTIONAL_METHODS, UPPER_BOUNDS

__all__ = ["MethodData", "METHODS", "OPTIONAL_METHODS", "BASELINES", "UPPER_BOUNDS", "ONLINE_METHODS",
           "method_datasets", "evaluation_set", "real_train_count", "synthetic_mask"]

_FOLDER = {"Raw_LR": "data", "Raw_HR": "upscale", "Raw_HR_online": "upscale", "Raw_Aug": "augment",
           "T2I_Aug": "generate", "FLARE": "combine", "Synth_Only": "generate", "Oracle_HR": "data"}


@dataclass
class MethodData:
    method: str
    train: Manifest
    val: Manifest
    test: Manifest
    folder: Path
    online: bool = False  # a random rot90 × flip view per sample (mirror pairs swapped)


def _split(manifest: Manifest, split: str) -> Manifest:
    return manifest.filter(split=split)


def evaluation_set(workdir: Path) -> Manifest | None:
    """Real val + test images at HR (after stage 1), else at source resolution; None when there is no data."""
    for name in ("upscale", "data"):
        if Manifest.exists(workdir / name):
            rows = base_images(Manifest.read(workdir / name).validate())
            return rows.filter(split=["val", "test"])
    return None


def _truth(manifest: Manifest) -> Manifest | None:
    """Source rows re-pointed at their HR truth (``truth_path``), or None when a row has none."""
    frame = manifest.frame.copy()
    if "truth_path" not in frame or frame["truth_path"].isna().any() or (frame["truth_path"].astype(str) == "").any():
        return None
    frame["path"] = frame["truth_path"]
    frame["sha256"] = ""  # the digest recorded is the LR file's
    return Manifest(frame.reset_index(drop=True), manifest.root)


def real_train_count(workdir: str | Path) -> int:
    """The number of real train images (source rows of ``data/``): every method's epoch size."""
    manifest = Manifest.read(Path(workdir) / "data")
    return len(manifest.filter(stage=list(SOURCE_STAGES), split="train"))


def synthetic_mask(rows: Iterable[dict[str, Any]]) -> np.ndarray:
    """True for each synthesised row (stage ``generate``, the export's ``is_synthetic``), False for observed ones
    and their classical augmentations; the combine stage keeps a row's stage, so FLARE's rows say it too."""
    return np.array([cell_text(r.get("stage")) in SYNTHETIC_STAGES for r in rows], bool)


def _combine_train(manifest: Manifest) -> Manifest:
    """The FLARE mix: rows the combine stage made (stage ``combine``) or, if it kept rows as they were, every
    train row except source rows that stage 1 superseded."""
    made = manifest.filter(stage="combine", split="train")
    if len(made):
        return made
    train = manifest.filter(split="train")
    if len(train.filter(stage="upscale")):
        frame = train.frame[~train.frame["stage"].isin(SOURCE_STAGES)].reset_index(drop=True)
        return Manifest(frame, manifest.root)
    return train


def method_datasets(workdir: str | Path, methods: list[str] | tuple[str, ...] = METHODS,
                    notes: list[str] | None = None) -> dict[str, MethodData]:
    """Load the methods whose folders exist; each missing one adds a line to ``notes``."""
    workdir = Path(workdir)
    notes = notes if notes is not None else []
    hr_eval = evaluation_set(workdir)
    out: dict[str, MethodData] = {}
    for method in methods:
        if method not in _FOLDER:
            notes.append(f"{method}: unknown method (one of {', '.join(METHODS + OPTIONAL_METHODS)}); skipped")
            continue
        folder = workdir / _FOLDER[method]
        if not Manifest.exists(folder):
            notes.append(f"{method}: skipped, no dataset at {folder} (stage not run)")
            continue
        manifest = Manifest.read(folder).validate()  # the containment rule: no row leaves its folder
        if method == "Raw_LR":
            source = manifest.filter(stage=list(SOURCE_STAGES))
            train, evaluation = _split(source, "train"), source
        elif method == "Oracle_HR":
            truth = _truth(manifest.filter(stage=list(SOURCE_STAGES)))
            if truth is None:
                notes.append("Oracle_HR: skipped, the dataset has no HR truth (truth_path) for every image")
                continue
            train, evaluation = _split(truth, "train"), truth
        else:
            base = base_images(manifest)
            if method in ("Raw_HR", "Raw_HR_online"):
                train = _split(manifest.filter(stage="upscale"), "train")
            elif method == "Raw_Aug":
                train = _split(base.concat(manifest.filter(stage="augment")), "train")
            elif method == "T2I_Aug":
                train = _split(base.concat(manifest.filter(stage="generate")), "train")
            elif method == "Synth_Only":
                train = _split(manifest.filter(stage="generate"), "train")
            else:
                train = _combine_train(manifest)
            evaluation = hr_eval if hr_eval is not None else base
        if not len(train):
            notes.append(f"{method}: skipped, {folder} has no training rows")
            continue
        out[method] = MethodData(method, train, _split(evaluation, "val"), _split(evaluation, "test"), folder,
                                 online=method in ONLINE_METHODS)
    return out
