"""Device choice and mixed precision for network upscalers.

``auto`` picks CUDA, then Apple MPS, then CPU. bf16 autocast is used on CUDA only and only for backends that
declare ``supports_bf16``; fp16 is never used (SwinIR's attention overflows in fp16).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from flare.core.errors import ConfigError

__all__ = ["select_device", "autocast_context"]


def select_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``mps`` → a usable :class:`torch.device`."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("upscale.device: cuda was asked for but no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("upscale.device: mps was asked for but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"upscale.device: {name!r} is not one of auto, cpu, cuda, mps")
    return torch.device(name)


@contextlib.contextmanager
def autocast_context(device: torch.device, supports_bf16: bool) -> Iterator[None]:
    """bf16 autocast on CUDA for backends that allow it; plain float32 everywhere else."""
    if device.type == "cuda" and supports_bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
