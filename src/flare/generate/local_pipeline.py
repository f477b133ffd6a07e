"""Loading a diffusers pipeline from a local folder, shared by the ``sd`` and ``unidiffuser`` backends.

Nothing is downloaded (``local_files_only``); the weights are bf16 on CUDA and float32 elsewhere
(``flare.core.device.pipeline_dtype``); a folder that is not a diffusers pipeline gives a one-line error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from flare.core.device import pipeline_dtype, select_device
from flare.core.errors import ConfigError
from flare.core.files import update_digest

__all__ = ["load_local_pipeline", "folder_hash"]


def folder_hash(folder: Path, pattern: str = "*.safetensors") -> str:
    """sha256 (first 16 hex) over the weight files of a diffusers folder, in path order."""
    digest = hashlib.sha256()
    for file in sorted(Path(folder).rglob(pattern)):
        digest.update(str(file.relative_to(folder)).encode())
        update_digest(digest, file)  # streamed: a pipeline's weights are gigabytes
    return digest.hexdigest()[:16]


def load_local_pipeline(pipeline_class: Any, model_path: Path, device: str | None,
                        **from_pretrained_options: Any) -> tuple[Any, torch.device]:
    """``pipeline_class.from_pretrained(model_path)`` on the chosen device, progress bars off."""
    if not (model_path / "model_index.json").is_file():
        raise ConfigError(f"generate.model_path: {str(model_path)!r} is not a diffusers folder (no model_index.json)")
    torch_device = select_device(device, "generate.device")
    try:
        pipeline = pipeline_class.from_pretrained(model_path, local_files_only=True,
                                                  torch_dtype=pipeline_dtype(torch_device), **from_pretrained_options)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"generate.model_path: cannot load {str(model_path)!r} ({str(exc).splitlines()[0]})") from None
    pipeline.to(torch_device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, torch_device
