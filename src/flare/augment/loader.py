"""Lazy augmentation for training loops: rows whose recipe is in the manifest are rendered on the fly, batched.

API (what a classifier training loop uses):

``load_row_image(manifest, row) -> np.ndarray``
    ``(H, W, 3)`` uint8 pixels of one manifest row: its file (or shard member, ``augment.layout: parquet``)
    when it exists, else (a lazy ``augment`` row) its parent's file with the recorded recipe applied.
    Identical to what ``flare augment`` would have written.
``render_rows(manifest, rows) -> list[np.ndarray]``
    The same for many rows, rendered in batches (images sharing recipe steps and size go through each step
    together).
``ManifestImageDataset(dataset, split="train", label_column="label", classes=None)``
    A ``torch.utils.data.Dataset`` over a dataset folder (or a :class:`Manifest`): the base images of the
    split plus, for train, its ``augment`` and ``generate`` rows. ``__getitem__`` returns a dict: ``image``
    (uint8 ``(3, H, W)``; for a lazy row, the *parent's* pixels), ``recipe`` (list or ``None``), ``label``
    (int index into ``dataset.classes``) and ``id``. Decoding runs in DataLoader workers.
``RecipeCollate(size_px=None)``
    A ``collate_fn`` that applies the recipes of a batch in one batched pass and returns ``{"images": uint8
    (B, 3, H, W), "labels": int64 (B,), "ids": list[str]}``; ``size_px`` resizes every image (PIL bicubic,
    after the recipe, as ``flare.classify`` does) so that sizes can differ on disk.
``make_loader(dataset, split="train", batch_size=64, shuffle=True, seed=0, num_workers=0, size_px=None,
label_column="label") -> DataLoader``
    The two wired together; the shuffle order comes from ``torch.Generator().manual_seed(seed)``.

The pixels are a pure function of (parent image, recorded params), so lazy and materialised modes agree
byte for byte before any resize (``tests/test_augment_stage.py`` checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from flare.augment.base import apply_recipes
from flare.core.dataset import TAXONOMY_NAME, inferred_taxonomy
from flare.core.errors import ManifestError
from flare.core.image_shards import image_exists
from flare.core.io import load_rgb
from flare.core.manifest import TRAIN_ONLY_STAGES, Manifest, base_images
from flare.core.taxonomy import load_taxonomy

__all__ = ["load_row_image", "render_rows", "ManifestImageDataset", "RecipeCollate", "make_loader", "is_lazy"]


def is_lazy(manifest: Manifest, row: dict[str, Any]) -> bool:
    """An augment row whose pixels are not on disk (lazy mode, or not yet exported); a row in a shard is on
    disk (:func:`flare.core.image_shards.image_exists`)."""
    if row["stage"] != "augment":
        return False
    return not manifest.params(row).get("materialised", True) or not image_exists(manifest.resolve(row["path"]))


def _parent_path(manifest: Manifest, row: dict[str, Any], lookup: dict[str, dict[str, Any]] | None = None) -> Path:
    parents = Manifest.parents(row)
    if lookup is None:
        matches = manifest.frame[manifest.frame["id"] == (parents[0] if parents else None)]
        parent = matches.iloc[0].to_dict() if len(matches) else None
    else:
        parent = lookup.get(parents[0]) if parents else None
    if parent is None:
        raise ManifestError(f"augment: lazy row {row['id']!r} has no parent row in {str(manifest.root)!r}")
    return manifest.resolve(parent["path"])


def render_rows(manifest: Manifest, rows: Sequence[dict[str, Any]],
                lookup: dict[str, dict[str, Any]] | None = None) -> list[np.ndarray]:
    """``(H, W, 3)`` uint8 for each row: the file, or the parent with its recipe applied (batched)."""
    out: list[np.ndarray | None] = [None] * len(rows)
    lazy_index, images, recipes = [], [], []
    for index, row in enumerate(rows):
        if is_lazy(manifest, row):
            lazy_index.append(index)
            images.append(torch.from_numpy(load_rgb(_parent_path(manifest, row, lookup))).permute(2, 0, 1))
            recipes.append(manifest.params(row)["recipe"])
        else:
            out[index] = load_rgb(manifest.resolve(row["path"]))
    for index, tensor in zip(lazy_index, apply_recipes(images, recipes) if images else []):
        out[index] = tensor.permute(1, 2, 0).contiguous().numpy()
    return out  # type: ignore[return-value]


def load_row_image(manifest: Manifest, row: dict[str, Any]) -> np.ndarray:
    """One row's pixels (see :func:`render_rows`)."""
    return render_rows(manifest, [row])[0]


class ManifestImageDataset(Dataset):
    """Rows of one split; lazy augment rows yield their parent's pixels plus the recipe to apply at collate."""

    def __init__(self, dataset: str | Path | Manifest, split: str = "train", label_column: str = "label",
                 classes: Sequence[str] | None = None):
        self.manifest = dataset if isinstance(dataset, Manifest) else Manifest.read(dataset)
        if label_column not in ("label", "macro_label"):
            raise ManifestError(f"loader.label_column: {label_column!r} is not one of label, macro_label")
        frame = self.manifest.frame
        base_ids = set(base_images(self.manifest).frame["id"])
        chosen = frame[(frame["id"].isin(base_ids) | frame["stage"].isin(TRAIN_ONLY_STAGES)) & (frame["split"] == split)]
        self.rows = Manifest(chosen.reset_index(drop=True), self.manifest.root).records()
        self._lookup = {r["id"]: r for r in self.manifest.records()}
        self.label_column = label_column
        self.classes = list(classes) if classes is not None else self._default_classes()
        self._index = {name: i for i, name in enumerate(self.classes)}
        missing = sorted({r[label_column] for r in self.rows} - set(self._index))
        if missing:
            raise ManifestError(f"loader.classes: labels {missing} are not among {self.classes}")

    def _default_classes(self) -> list[str]:
        taxonomy_file = self.manifest.root / TAXONOMY_NAME
        taxonomy = load_taxonomy(taxonomy_file) if taxonomy_file.is_file() else inferred_taxonomy(self.manifest)
        return taxonomy.fine_classes if self.label_column == "label" else taxonomy.macro_classes

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        if is_lazy(self.manifest, row):
            pixels = load_rgb(_parent_path(self.manifest, row, self._lookup))
            recipe = self.manifest.params(row)["recipe"]
        else:
            pixels, recipe = load_rgb(self.manifest.resolve(row["path"])), None
        return {"image": torch.from_numpy(pixels).permute(2, 0, 1), "recipe": recipe,
                "label": self._index[row[self.label_column]], "id": row["id"]}


class RecipeCollate:
    """``collate_fn``: render the batch's recipes in one batched pass, optionally resize, stack."""

    def __init__(self, size_px: int | None = None):
        self.size_px = size_px

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        images = [item["image"] for item in items]
        lazy = [i for i, item in enumerate(items) if item["recipe"] is not None]
        if lazy:
            rendered = apply_recipes([images[i] for i in lazy], [items[i]["recipe"] for i in lazy])
            for i, tensor in zip(lazy, rendered):
                images[i] = tensor
        if self.size_px is not None:
            images = [self._resize(t) for t in images]
        return {"images": torch.stack(images), "labels": torch.tensor([it["label"] for it in items], dtype=torch.int64),
                "ids": [it["id"] for it in items]}

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] == self.size_px and image.shape[-2] == self.size_px:
            return image
        pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
        resized = np.asarray(pil.resize((self.size_px, self.size_px), Image.Resampling.BICUBIC))
        return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)


def make_loader(dataset: str | Path | Manifest, split: str = "train", batch_size: int = 64, shuffle: bool = True,
                seed: int = 0, num_workers: int = 0, size_px: int | None = None,
                label_column: str = "label", classes: Sequence[str] | None = None) -> DataLoader:
    """A DataLoader over :class:`ManifestImageDataset` with :class:`RecipeCollate` (seeded shuffle)."""
    data = ManifestImageDataset(dataset, split=split, label_column=label_column, classes=classes)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, generator=generator,
                      collate_fn=RecipeCollate(size_px), persistent_workers=num_workers > 0)
