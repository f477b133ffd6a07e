"""Device choice and mixed precision, shared by every stage that runs a network (upscale, generate, classify).

``auto`` picks CUDA, then Apple MPS, then CPU. bf16 autocast is used on CUDA only and only where the caller
says it is safe (``supports_bf16``); fp16 is never used (SwinIR's attention overflows in fp16). Random numbers
stay on CPU generators everywhere, so a seed draws the same noise whatever the device.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from flare.core.errors import ConfigError

__all__ = ["select_device", "autocast_context", "pipeline_dtype"]


def select_device(name: str | None = "auto", section: str = "device") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``mps`` → a usable :class:`torch.device`; ``section`` names the config key."""
    name = name or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{section}: cuda was asked for but no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{section}: mps was asked for but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{section}: {name!r} is not one of auto, cpu, cuda, mps")
    return torch.device(name)


@contextlib.contextmanager
def autocast_context(device: torch.device, supports_bf16: bool) -> Iterator[None]:
    """bf16 autocast on CUDA for backends that allow it; plain float32 everywhere else."""
    if device.type == "cuda" and supports_bf16:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def pipeline_dtype(device: torch.device) -> torch.dtype:
    """Weights dtype for a diffusers pipeline: bf16 on CUDA (fp16-free, same exponent range as float32), else float32."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32
