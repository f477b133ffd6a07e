"""The training sets the benchmark compares, read from a ``flare run`` work folder's dataset folders.

=========  ==========================================  ===========================================
method     training rows (split ``train``)             val / test rows
=========  ==========================================  ===========================================
Raw_LR     source rows of ``data/`` (LR)               source val/test (LR, bicubic to the model size)
Raw_HR     ``upscale/`` rows                           the HR evaluation set
Raw_Aug    ``augment/``: base images + augment rows    the HR evaluation set
T2I_Aug    ``generate/``: base images + generate rows  the HR evaluation set
FLARE      ``combine/``: the mix it selected           the HR evaluation set
Synth_Only ``generate/``: generate rows only           the HR evaluation set (opt-in, not a default)
=========  ==========================================  ===========================================

T2I_Aug is the synthetic branch without the standard-augmentation branch (real + synthetic), as in the paper's
table; Synth_Only asks how far the synthetic images alone carry a classifier (a test of the generator).

The HR evaluation set is the real val/test images after stage 1 (``upscale/`` rows), or the source rows when
there is no ``upscale/`` folder. It is the same for every method, so the split is the same origin-level split
everywhere. A method whose folder is missing is skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flare.core.manifest import SOURCE_STAGES, Manifest, base_images

__all__ = ["MethodData", "METHODS", "OPTIONAL_METHODS", "method_datasets", "evaluation_set"]

METHODS = ("Raw_LR", "Raw_HR", "Raw_Aug", "T2I_Aug", "FLARE")
OPTIONAL_METHODS = ("Synth_Only",)
_FOLDER = {"Raw_LR": "data", "Raw_HR": "upscale", "Raw_Aug": "augment", "T2I_Aug": "generate", "FLARE": "combine",
           "Synth_Only": "generate"}


@dataclass
class MethodData:
    method: str
    train: Manifest
    val: Manifest
    test: Manifest
    folder: Path


def _split(manifest: Manifest, split: str) -> Manifest:
    return manifest.filter(split=split)


def evaluation_set(workdir: Path) -> Manifest | None:
    """Real val + test images at HR (after stage 1), else at source resolution; None when there is no data."""
    for name in ("upscale", "data"):
        if Manifest.exists(workdir / name):
            rows = base_images(Manifest.read(workdir / name).validate())
            return rows.filter(split=["val", "test"])
    return None


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
        else:
            base = base_images(manifest)
            if method == "Raw_HR":
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
        out[method] = MethodData(method, train, _split(evaluation, "val"), _split(evaluation, "test"), folder)
    return out
