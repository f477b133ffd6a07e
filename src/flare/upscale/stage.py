"""The upscale stage: apply one backend to every source image of a dataset and append ``upscale`` rows.

Output folder = the input rows rebased + one ``upscale`` row per source row, with the parent's split, origin,
label and ``truth_path``; ``params`` hold the backend config, the image's flux ratio (output / input, both in
display units: Σ output / (scale² · Σ input)) and, when the run's median ratio leaves 1.00 ± 0.02 or the
backend's measured ratio does, a ``flux_warning``. ``auto`` = the faithful default: ``swinir-trained`` when a
trained model exists for the dataset (``upscale.weights`` or ``DATASET/sr-model``), else ``bicubic``.
The scale: ``upscale.scale`` when set, else a network's own and, for bicubic/lanczos, the dataset's recorded
binning factor (×4 when it records none); see :func:`resolve_scale`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flare.core.config import ExecutorConfig, UpscaleConfig
from flare.core.dataset import Dataset, derive_row
from flare.core.errors import FlareError, ImageReadError
from flare.core.files import output_is_valid, prepare_output_dir, safe_join, sha256_file
from flare.core.io import load_rgb, write_image
from flare.core.manifest import SOURCE_STAGES, Manifest, cell_text, derived_id
from flare.upscale.base import FLUX_TOLERANCE, UpscaleBackend
from flare.upscale.registry import UPSCALERS, create_upscaler
from flare.upscale.swinir_model import has_model
from flare.upscale.training import recorded_degradation

__all__ = ["UpscaleWorker", "upscale_dataset", "resolve_backend", "resolve_scale", "default_model_dir", "flux_ratio",
           "UPSCALED_DIR"]

log = logging.getLogger("flare.upscale")
UPSCALED_DIR = "upscaled"
_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def default_model_dir(dataset: str | Path) -> Path:
    """Where ``flare upscale train`` puts a dataset's model unless told otherwise."""
    return Path(dataset) / "sr-model"


def resolve_backend(config: UpscaleConfig, dataset: str | Path | None = None) -> tuple[str, str | None]:
    """``(backend name, weights)`` after resolving ``auto`` (never a backend that loses flux)."""
    if config.backend != "auto":
        weights = config.weights
        if config.backend == "swinir-trained" and not weights and dataset is not None:
            weights = str(default_model_dir(dataset))
        return config.backend, weights
    for candidate in ([config.weights] if config.weights else []) + ([str(default_model_dir(dataset))] if dataset else []):
        if candidate and has_model(candidate):
            return "swinir-trained", candidate
    return "bicubic", None


def resolve_scale(config: UpscaleConfig, backend: str, manifest: Manifest) -> int | None:
    """``upscale.scale`` when set; else, for a backend of any scale (``any_scale`` meta: bicubic, lanczos), the
    binning factor the dataset's LR rows record (None when they record none: the backend's default, ×4); else
    None, so a network runs at its own scale."""
    if config.scale is not None or not UPSCALERS.get(backend).meta.get("any_scale"):
        return config.scale
    recorded = recorded_degradation(manifest)
    return recorded.factor if recorded else None


def flux_ratio(output: np.ndarray, reference: np.ndarray) -> float:
    """Σ output / Σ reference, each sum per unit area (so an LR input is compared at its own pixel size)."""
    out_mean, ref_mean = float(np.mean(output, dtype=np.float64)), float(np.mean(reference, dtype=np.float64))
    return out_mean / ref_mean if ref_mean > 0 else float("nan")


class UpscaleWorker:
    """Built once per process: loads the backend; maps a batch of source rows to ``upscale`` rows."""

    def __init__(self, backend: str, options: dict[str, Any], out_root: str, fmt: str = "png"):
        self.backend: UpscaleBackend = create_upscaler(backend, **options)
        self.out_root, self.fmt = Path(out_root), fmt

    def _output_path(self, row: dict[str, Any]) -> Path:
        """The output file, relative to ``out_root``; refused (``safe_join``) if the row's label or id would
        take it outside, even for a row that slipped past the read check."""
        relative = Path(UPSCALED_DIR) / str(row["label"]) / f"{derived_id(row['id'], 'upscale', 0)}{_SUFFIX[self.fmt]}"
        safe_join(self.out_root, relative)
        return relative

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.to_dict("records")
        inputs, outputs, todo = [], [None] * len(rows), []
        for index, row in enumerate(rows):
            source = Path(row["path"]) if Path(row["path"]).is_absolute() else self.out_root / row["path"]
            try:
                inputs.append(load_rgb(source))
            except Exception as exc:  # noqa: BLE001 - any decode failure is a bad input
                raise ImageReadError(f"upscale: cannot read {str(source)!r} ({exc})") from None
            target = self.out_root / self._output_path(row)
            if output_is_valid(target):
                outputs[index] = load_rgb(target)
            else:
                todo.append(index)
        if todo:
            for index, image in zip(todo, self.backend.upscale_many([inputs[i] for i in todo])):
                outputs[index] = image
        records = []
        config = self.backend.config
        for index, row in enumerate(rows):
            relative = self._output_path(row)
            target = self.out_root / relative
            if index in todo:
                digest = write_image(target, outputs[index], self.fmt)
            else:
                digest = sha256_file(target)
            ratio = flux_ratio(outputs[index], inputs[index])
            records.append(derive_row(
                row, id=derived_id(row["id"], "upscale", 0), path=str(relative), sha256=digest, stage="upscale",
                operation=f"upscale-x{self.backend.scale}",
                params=json.dumps({**config, "flux_ratio_vs_input": round(ratio, 5)}, sort_keys=True),
                seed=row["seed"], backend=self.backend.info.name, model_id=self.backend.info.model_id,
                model_hash=self.backend.model_hash,
                # 1:1 transform: the HR truth of the source is the truth of its upscaled image too
                truth_path=cell_text(row.get("truth_path"))))
        return pd.DataFrame.from_records(records)


def _flux_warning(backend: str, median_ratio: float, measured: float | None) -> str | None:
    if np.isfinite(median_ratio) and abs(median_ratio - 1.0) > FLUX_TOLERANCE:
        return (f"backend {backend} keeps {median_ratio:.3f} of the input flux (median over images), "
                f"outside 1.00 ± {FLUX_TOLERANCE:.2f}")
    if measured is not None and abs(measured - 1.0) > FLUX_TOLERANCE:
        return (f"backend {backend} kept {measured:.3f} of the truth flux on the GZ1 protocol "
                f"(docs/super_resolution.md), outside 1.00 ± {FLUX_TOLERANCE:.2f}")
    return None


def upscale_dataset(dataset: str | Path, out: str | Path, config: UpscaleConfig = UpscaleConfig(), *,
                    executor: ExecutorConfig | None = None) -> Manifest:
    """Upscale every source row of ``dataset`` into ``out`` (resumable: existing outputs are kept)."""
    dataset, out = Path(dataset), Path(out)
    if dataset.resolve() == out.resolve():
        raise FlareError(f"upscale: the output folder must differ from the input {str(dataset)!r}")
    derived = Dataset.open(dataset).derive(out)
    name, weights = resolve_backend(config, dataset)
    # The upscale section holds the settings of every backend; each gets the ones its factory's signature
    # names (bicubic takes only scale), so create_upscaler can reject any other option.
    options = UPSCALERS.supported_options(name, {"scale": resolve_scale(config, name, derived.manifest),
                                                 "weights": weights, "tile_px": config.tile_px,
                                                 "tile_overlap_px": config.tile_overlap_px, "device": config.device})
    prepare_output_dir(out)
    rebased = derived.manifest
    sources = rebased.filter(stage=list(SOURCE_STAGES))
    if not len(sources):
        raise FlareError(f"upscale: {str(dataset)!r} has no source rows (stages {', '.join(SOURCE_STAGES)})")
    log.info("upscale: backend %s (asked: %s) on %d images", name, config.backend, len(sources))
    executor = (executor or ExecutorConfig()).model_copy(update={"batch_size": config.batch_size})
    from flare.executors import map_batches

    new_rows = map_batches(UpscaleWorker, sources.frame,
                           worker_kwargs={"backend": name, "options": options, "out_root": str(out),
                                          "fmt": config.format}, executor=executor, description=f"upscale ({name})",
                           checkpoint_dir=out)
    records = new_rows.to_dict("records")
    ratios = [json.loads(r["params"])["flux_ratio_vs_input"] for r in records]
    # the total-flux ratio a backend registered as measured on GZ1 (docs/super_resolution.md), if any
    measured = UPSCALERS.get(name).meta.get("measured_flux_ratio")
    warning = _flux_warning(name, float(np.median(ratios)) if ratios else float("nan"), measured)
    if warning:
        log.warning("upscale: %s", warning)
        for record in records:
            record["params"] = json.dumps({**json.loads(record["params"]), "flux_warning": warning}, sort_keys=True)
    for record in records:
        for key, value in list(record.items()):
            if not isinstance(value, str) and pd.isna(value):
                record[key] = None
    result = rebased.append(records)
    derived.with_manifest(result).write()
    return result
