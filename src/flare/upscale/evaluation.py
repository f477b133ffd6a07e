"""Super-resolution fidelity of upscale backends against HR ground truth (rows with ``truth_path``: simulated
sky, GZ1 protocol). The per-image scores and their meaning live in :mod:`flare.metrics.sr`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flare.core.config import UpscaleConfig
from flare.core.errors import FlareError
from flare.core.files import atomic_output, atomic_write_bytes
from flare.core.io import load_rgb
from flare.core.manifest import SOURCE_STAGES, Manifest
from flare.core.seeding import derive_seed
from flare.metrics.sr import SRScore, score_image, scores_table
from flare.upscale.registry import create_upscaler
from flare.upscale.stage import resolve_scale
from flare.upscale.swinir_model import has_model

__all__ = ["evaluate_sr", "default_backends", "write_scores", "EVALUATED_BACKENDS", "SCORES_NAME"]

# What `flare evaluate sr` scores unless told: the faithful interpolations, the pretrained GAN (to show what it
# invents) and the trained flux-conserving SwinIR when the dataset has one.
EVALUATED_BACKENDS = ("bicubic", "lanczos", "realesrgan-x4plus", "swinir-trained")
SCORES_NAME = "sr_scores.json"  # the file the report reads (flare.report.html.SR_SCORE_FILES)


def default_backends(model_dir: str | Path) -> list[str]:
    """:data:`EVALUATED_BACKENDS`, without ``swinir-trained`` when ``model_dir`` holds no trained model."""
    return [b for b in EVALUATED_BACKENDS if b != "swinir-trained" or has_model(model_dir)]


def write_scores(out: str | Path, scores: list[SRScore], per_image: pd.DataFrame) -> Path:
    """``sr_scores.json`` (one object per backend), ``sr_scores.md`` and ``sr_per_image.csv`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / SCORES_NAME, json.dumps([s.to_dict() for s in scores], indent=2).encode())
    atomic_write_bytes(out / "sr_scores.md", (scores_table(scores) + "\n").encode())
    with atomic_output(out / "sr_per_image.csv") as tmp:
        per_image.to_csv(tmp, index=False)
    return out / SCORES_NAME


def _pairs(manifest: Manifest, split: str | None, max_images: int | None,
           seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rows = [r for r in manifest.filter(stage=list(SOURCE_STAGES)).records() if r["truth_path"]]
    if split:
        rows = [r for r in rows if r["split"] == split]
    if not rows:
        raise FlareError(f"evaluate.sr: {str(manifest.root)!r} has no source rows with truth_path"
                         + (f" in split {split!r}" if split else ""))
    rows.sort(key=lambda r: r["id"])
    if max_images is not None and len(rows) > max_images:
        picks = np.random.default_rng(derive_seed(seed, "evaluate-sr")).permutation(len(rows))[:max_images]
        rows = [rows[i] for i in sorted(picks)]
    return [(r["id"], load_rgb(manifest.resolve(r["path"])), load_rgb(manifest.resolve(r["truth_path"])))
            for r in rows]


def evaluate_sr(dataset: str | Path, backends: list[str], *, options: dict[str, dict[str, Any]] | None = None,
                split: str | None = "test", max_images: int | None = None, seed: int = 0,
                batch_size: int = 8) -> tuple[list[SRScore], pd.DataFrame]:
    """Score each backend on the LR → HR pairs of ``dataset``; returns aggregates and per-image rows.

    Args:
        options: per-backend factory options (e.g. ``{"swinir-trained": {"weights": "model/"}}``).
        max_images: a seeded subset of at most this many pairs (sorted by id).
    """
    manifest = Manifest.read(dataset)
    pairs = _pairs(manifest, split, max_images, seed)
    scores, per_image = [], []
    for name in backends:
        backend_options = dict((options or {}).get(name, {}))
        # bicubic / lanczos at the dataset's recorded binning factor, as the upscale stage runs them (an ×8 set
        # would otherwise be scored at the interpolation's default ×4 and fail the shape check)
        scale = None if "scale" in backend_options else resolve_scale(UpscaleConfig(), name, manifest)
        backend = create_upscaler(name, **backend_options, **({"scale": scale} if scale else {}))
        began = time.perf_counter()
        outputs = []
        for start in range(0, len(pairs), batch_size):
            outputs += backend.upscale_many([lr for _, lr, _ in pairs[start:start + batch_size]])
        elapsed = time.perf_counter() - began
        rows = []
        for (image_id, _, truth), output in zip(pairs, outputs):
            rows.append({"backend": name, "id": image_id, **score_image(output, truth)})
        frame = pd.DataFrame(rows)
        ratios = frame["flux_output"] / frame["flux_truth"]
        scores.append(SRScore(
            backend=name, images=len(frame), psnr_db=float(frame["psnr_db"].mean()),
            psnr_centre_db=float(frame["psnr_centre_db"].mean()), ssim=float(frame["ssim"].mean()),
            flux_ratio=float(frame["flux_output"].sum() / frame["flux_truth"].sum()),
            flux_ratio_median=float(ratios.median()), hallucinations=int(frame["hallucinations"].sum()),
            truth_sources=int(frame["truth_sources"].sum()), images_per_s=len(frame) / max(elapsed, 1e-9)))
        per_image.append(frame)
    return scores, pd.concat(per_image, ignore_index=True)
