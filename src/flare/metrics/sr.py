"""Super-resolution fidelity scores of one output image against its HR ground truth.

:func:`flare.upscale.evaluation.evaluate_sr` runs backends over a dataset and aggregates these per backend:
PSNR and SSIM over the whole HR frame and PSNR over the central half (the central 96² of a 192²
GZ1 crop, where the galaxy is); the total flux ratio Σ output / Σ truth; and hallucinations: sources that
``sep`` finds in the output at ≥ 5σ of the output's own background noise that are neither within
``MATCH_RADIUS_PX`` of a truth source (≥ 3σ) nor inside a truth source's footprint. Images are compared in
8-bit display units, on the mean of the RGB channels for source finding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flare.core.errors import FlareError

__all__ = ["SRScore", "score_image", "detect_sources", "hallucinated_sources", "central_crop", "scores_table"]

DETECT_SIGMA = 5.0
TRUTH_SIGMA = 3.0
MATCH_RADIUS_PX = 8.0  # HR pixels (2 LR pixels at ×4)
RMS_FLOOR = 0.5  # display units: a perfectly flat (denoised) sky still has 8-bit quantisation noise


@dataclass
class SRScore:
    """Aggregate scores of one backend over one set of images."""

    backend: str
    images: int
    psnr_db: float
    psnr_centre_db: float
    ssim: float
    flux_ratio: float  # Σ over images of Σ output / Σ truth
    flux_ratio_median: float  # median of the per-image ratios
    hallucinations: int  # total over images
    truth_sources: int
    images_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def central_crop(image: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    height, width = image.shape[:2]
    crop_h, crop_w = int(round(height * fraction)), int(round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return image[top:top + crop_h, left:left + crop_w]


def _extract(image: np.ndarray, sigma: float, segmentation: bool = False):
    import sep

    grey = np.ascontiguousarray(np.asarray(image, dtype=np.float64).mean(axis=2) if image.ndim == 3 else image,
                                dtype=np.float64)
    box = max(8, min(grey.shape) // 6)
    background = sep.Background(grey, bw=box, bh=box)
    residual = grey - background.back()
    rms = max(float(background.globalrms), RMS_FLOOR)
    try:
        result = sep.extract(residual, sigma, err=rms, minarea=5, segmentation_map=segmentation)
    except Exception:  # sep raises when its pixel buffer overflows on pure noise
        return (np.zeros(0), np.zeros(grey.shape, dtype=np.int32)) if segmentation else np.zeros(0)
    return result


def detect_sources(image: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, 2)`` x, y centroids of sources ≥ ``sigma`` × background rms (sep; 5-pixel minimum area)."""
    objects = _extract(image, sigma)
    return np.stack([objects["x"], objects["y"]], axis=1) if len(objects) else np.zeros((0, 2))


def hallucinated_sources(output: np.ndarray, truth: np.ndarray, radius_px: float = MATCH_RADIUS_PX) -> tuple[int, int]:
    """(sources in ``output`` at ≥ 5σ that are not in the truth, truth sources at ≥ 5σ).

    An output source is in the truth when a truth source (≥ 3σ) lies within ``radius_px`` of it, or when its
    centroid falls inside a truth source's footprint (sep's segmentation map): a knot or arm of a galaxy
    that sep splits off in the output but keeps inside one big object in the truth is real, not invented
    (matching centroids alone counted such knots as hallucinations).
    """
    found = detect_sources(output, DETECT_SIGMA)
    truth_objects, footprint = _extract(truth, TRUTH_SIGMA, segmentation=True)
    truth_count = len(detect_sources(truth, DETECT_SIGMA))
    if not len(found):
        return 0, truth_count
    reference = (np.stack([truth_objects["x"], truth_objects["y"]], axis=1) if len(truth_objects)
                 else np.zeros((0, 2)))
    height, width = footprint.shape
    invented = 0
    for x, y in found:
        column, row = min(max(int(round(x)), 0), width - 1), min(max(int(round(y)), 0), height - 1)
        near = len(reference) and np.sqrt(((reference - (x, y)) ** 2).sum(axis=1)).min() <= radius_px
        if not near and footprint[row, column] == 0:
            invented += 1
    return invented, truth_count


def score_image(output: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-image scores of an upscaled image against its HR truth (both uint8, same shape)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if output.shape != truth.shape:
        raise FlareError(f"evaluate.sr: output shape {output.shape} differs from truth {truth.shape}")
    hallucinations, truth_sources = hallucinated_sources(output, truth)
    return {
        "psnr_db": float(peak_signal_noise_ratio(truth, output, data_range=255)),
        "psnr_centre_db": float(peak_signal_noise_ratio(central_crop(truth), central_crop(output), data_range=255)),
        "ssim": float(structural_similarity(truth, output, channel_axis=2, data_range=255)),
        "flux_output": float(output.astype(np.float64).sum()),
        "flux_truth": float(truth.astype(np.float64).sum()),
        "hallucinations": hallucinations, "truth_sources": truth_sources,
    }


def scores_table(scores: list[SRScore]) -> str:
    """A Markdown table of the aggregates (what docs/super_resolution.md shows)."""
    lines = ["| backend | images | PSNR dB | PSNR centre dB | SSIM | flux ratio | hallucinated ≥5σ sources | images/s |",
             "|---|---|---|---|---|---|---|---|"]
    for s in scores:
        lines.append(f"| {s.backend} | {s.images} | {s.psnr_db:.2f} | {s.psnr_centre_db:.2f} | {s.ssim:.4f} | "
                     f"{s.flux_ratio:.3f} | {s.hallucinations} | {s.images_per_s:.2f} |")
    return "\n".join(lines)
