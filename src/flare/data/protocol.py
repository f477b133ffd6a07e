"""The LR benchmark protocol for real data (``../shared/README.md``, GZ1): HR truth = the centre crop of each
ingested image; the pipeline's raw LR input = that crop observed through :func:`flare.core.degrade.degrade`.

Super-resolution is then measured against real ground truth, and LR really loses detail. Splits and origins
are carried over unchanged from the ingested dataset.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from flare.core.dataset import Dataset, derive_row
from flare.core.degrade import DegradeConfig, degrade
from flare.core.errors import FlareError
from flare.core.files import remove_stale_temp_files
from flare.core.io import load_rgb, write_image
from flare.core.manifest import SOURCE_STAGES, Manifest
from flare.core.progress import track
from flare.core.seeding import derive_seed

__all__ = ["make_lr_protocol", "centre_crop"]


def centre_crop(image: np.ndarray, size_px: int) -> np.ndarray:
    height, width = image.shape[:2]
    if height < size_px or width < size_px:
        raise FlareError(f"protocol.crop_px: {size_px} is larger than an image of {width}x{height}")
    top, left = (height - size_px) // 2, (width - size_px) // 2
    return image[top:top + size_px, left:left + size_px]


def make_lr_protocol(dataset: str | Path, out: str | Path, *, crop_px: int = 192,
                     degradation: DegradeConfig | None = None, seed: int = 0, max_per_class: int | None = None,
                     workers: int = 2) -> Manifest:
    """Write ``hr/`` crops, ``lr/`` observations and a manifest of stage ``observe`` rows (LR, with truth_path).

    Args:
        max_per_class: keep at most this many origins per class and split (seeded choice), for quick runs.
    """
    degradation = degradation or DegradeConfig()
    if crop_px % degradation.factor:
        raise FlareError(f"protocol.crop_px: {crop_px} is not divisible by factor {degradation.factor}")
    ingested = Dataset.open(dataset)
    source = ingested.manifest.filter(stage=list(SOURCE_STAGES))
    rows = source.records()
    if max_per_class is not None:
        rng = np.random.default_rng(derive_seed(seed, "protocol-subset"))
        chosen = []
        for key in sorted({(r["label"], r["split"]) for r in rows}):
            group = [r for r in rows if (r["label"], r["split"]) == key]
            picks = rng.permutation(len(group))[:max_per_class]
            chosen += [group[i] for i in sorted(picks)]
        rows = chosen
    out = Path(out)

    def process(row: dict) -> dict:
        image_id, label = row["id"], row["label"]
        hr = centre_crop(load_rgb(source.resolve(row["path"])), crop_px)
        noise_seed = derive_seed(seed, "observe", image_id)
        lr = degrade(hr, degradation, np.random.default_rng(noise_seed))
        hr_path, lr_path = Path("hr") / label / f"{image_id}.png", Path("lr") / label / f"{image_id}.png"
        write_image(out / hr_path, hr)
        digest = write_image(out / lr_path, lr)
        return derive_row(row, id=image_id, path=str(lr_path), sha256=digest, stage="observe",
                          operation="centre-crop+degrade", seed=noise_seed, backend="flare.degrade",
                          params={"crop_px": crop_px, "degrade": degradation.to_dict(), "source_path": row["path"]},
                          truth_path=str(hr_path))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = list(track(pool.map(process, rows), "protocol: crop + observe", total=len(rows)))
    manifest = Manifest.from_records(records, out)
    remove_stale_temp_files(out)  # a killed earlier run may have left some; every image is written by now
    Dataset(out, manifest, ingested.taxonomy).write()
    return manifest
