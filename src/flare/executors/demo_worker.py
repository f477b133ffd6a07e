"""A small, real, CPU-bound stage worker: the reference for the worker contract, the executor tests and
``benchmarks/bench_executors.py``.

For each input row it writes one image ``OUT/<stage>/<id>.png``: the input plus seeded Gaussian noise, then
box-blurred ``repeats`` times (``repeats`` sets the CPU cost per image). It shows what every stage worker
does: the new id from :func:`~flare.core.manifest.derived_id`, the seed from
:func:`~flare.core.seeding.derive_seed` (never from order), an atomic write, and a skip of outputs that
exist and decode (a partial or corrupt one is rewritten).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flare.core.files import output_is_valid, sha256_file
from flare.core.io import load_rgb, write_image
from flare.core.config import ExecutorConfig
from flare.core.manifest import Manifest, base_images, derived_id
from flare.core.seeding import derive_seed
from flare.executors.base import map_batches

__all__ = ["NoisyBlurWorker", "run_demo_stage"]


class NoisyBlurWorker:
    """``NoisyBlurWorker(input_root, out_dir, seed)(batch) -> new manifest rows`` (stage ``stage``)."""

    def __init__(self, input_root: str, out_dir: str, seed: int = 0, stage: str = "demo", repeats: int = 1,
                 noise_sigma: float = 4.0):
        self.input_root = Path(input_root)
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self.stage = stage
        self.repeats = int(repeats)
        self.noise_sigma = float(noise_sigma)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame([self._one(row) for row in batch.to_dict("records")])

    def _one(self, row: dict) -> dict:
        new_id = derived_id(row["id"], self.stage, 0)
        relative = f"{self.stage}/{new_id}.png"
        target = self.out_dir / relative
        seed = derive_seed(self.seed, self.stage, row["id"])
        if output_is_valid(target):
            digest = sha256_file(target)
        else:
            digest = write_image(target, self._transform(row, seed), "png", png_compress_level=1)
        return {"id": new_id, "path": relative, "sha256": digest, "label": row["label"],
                "macro_label": row.get("macro_label") or "", "origin_id": row["origin_id"], "split": row["split"],
                "stage": self.stage, "operation": "noisy_blur",
                "params": json.dumps({"noise_sigma": self.noise_sigma, "repeats": self.repeats}, sort_keys=True),
                "seed": seed, "parent_ids": json.dumps([row["id"]])}

    def _transform(self, row: dict, seed: int) -> np.ndarray:
        path = Path(row["path"])
        image = load_rgb(path if path.is_absolute() else self.input_root / path).astype(np.float64)
        image += np.random.default_rng(seed).normal(0.0, self.noise_sigma, image.shape)
        for _ in range(self.repeats):  # 3x3 box blur with edge padding
            padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
            image = sum(padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
                        for dy in range(3) for dx in range(3)) / 9.0
        return np.clip(np.round(image), 0, 255).astype(np.uint8)


def run_demo_stage(input_dir: str | Path, out_dir: str | Path, *, seed: int = 0,
                   executor: ExecutorConfig | None = None, shard: str | None = None,
                   repeats: int = 1, worker_class: type = NoisyBlurWorker) -> Manifest:
    """A whole stage around :class:`NoisyBlurWorker`, as a real stage is written: input rows (rebased) + one
    new row per base image, checkpointed under ``out_dir`` and written as ``out_dir/manifest.parquet``."""
    source = Manifest.read(input_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = map_batches(worker_class, base_images(source).frame,
                       worker_kwargs={"input_root": str(source.root), "out_dir": str(out_dir), "seed": seed,
                                      "repeats": repeats},
                       executor=executor, shard=shard, checkpoint_dir=out_dir, description="demo")
    manifest = source.rebase(out_dir).append(rows.to_dict("records"))
    manifest.write()
    return manifest
