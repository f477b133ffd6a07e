"""Tiled inference with overlap and blending, so a network's memory does not grow with the image.

The LR image is cut into ``tile_px`` squares overlapping by ``overlap_px``; each tile goes through the network
(all images of a batch together), and overlapping outputs are blended with linear ramps (weights rise from the
tile edge to 1 over the overlap; sides on the image border keep weight 1). Tile rows are processed top to
bottom and every output row that no later tile touches is finished to uint8 at once, so the float working
buffers hold one strip of tiles, never the whole output.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["tile_starts", "upscale_tiled", "blend_ramp"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_ramp(length: int, ramp: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights over an overlap of ``ramp`` samples at each side not on the image border.

    The outer half of the overlap (where the network saw padding instead of neighbours) gets a negligible
    weight; the inner half ramps linearly up to 1. The neighbouring tile has weight 1 where this one is
    negligible, so the weights never sum to zero.
    """
    weights = np.ones(length, dtype=np.float32)
    if ramp <= 0:
        return weights
    ramp = min(ramp, length // 2) or 1
    half = ramp / 2.0
    rising = np.clip((np.arange(ramp, dtype=np.float32) + 0.5 - half) / max(half, 1.0), 1e-3, 1.0)
    if not at_start:
        weights[:ramp] = np.minimum(weights[:ramp], rising)
    if not at_end:
        weights[-ramp:] = np.minimum(weights[-ramp:], rising[::-1])
    return weights


def _finish(strip: np.ndarray, weight: np.ndarray, out: np.ndarray, chunk_rows: int = 64) -> None:
    """Normalise blended rows and write them to ``out`` as uint8, a few rows at a time (small temporaries)."""
    for top in range(0, strip.shape[2], chunk_rows):
        rows = slice(top, top + chunk_rows)
        values = strip[:, :, rows] / np.maximum(weight[rows], 1e-8)[None, None]
        out[:, rows] = np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def upscale_tiled(run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, scale: int,
                  tile_px: int, overlap_px: int) -> np.ndarray:
    """Run ``run`` over tiles of ``images`` (×``scale``); returns NHWC uint8.

    Args:
        run: the network call for one tile (``(N, C, h, w)`` slice of ``images`` → float NCHW in [0, 1]);
            it converts the tile itself, so ``images`` may stay uint8.
        images: ``(N, C, H, W)`` tensor (uint8 view or float).
        tile_px: LR tile side; an image no larger than this is processed whole.
        overlap_px: LR overlap between neighbouring tiles (blended, see :func:`blend_ramp`).
    """
    batch, channels, height, width = images.shape
    out_height, out_width = height * scale, width * scale
    output = np.empty((batch, out_height, out_width, channels), dtype=np.uint8)
    ys, xs = tile_starts(height, tile_px, overlap_px), tile_starts(width, tile_px, overlap_px)
    tile_h, tile_w = min(tile_px, height), min(tile_px, width)
    ramp = overlap_px * scale
    strip_rows = tile_h * scale  # one row of tiles: the only float buffer, whatever the image size
    strip = np.zeros((batch, channels, strip_rows, out_width), dtype=np.float32)
    weight = np.zeros((strip_rows, out_width), dtype=np.float32)
    strip_top = 0  # output row held in strip[:, :, 0]
    for row, y in enumerate(ys):
        weight_y = blend_ramp(tile_h * scale, ramp, y == 0, y + tile_h >= height)
        top = y * scale - strip_top
        for x in xs:
            result = run(images[:, :, y:y + tile_h, x:x + tile_w]).float().cpu().numpy()
            weight_x = blend_ramp(tile_w * scale, ramp, x == 0, x + tile_w >= width)
            tile_weight = weight_y[:, None] * weight_x[None, :]
            left = x * scale
            strip[:, :, top:top + tile_h * scale, left:left + tile_w * scale] += result * tile_weight
            weight[top:top + tile_h * scale, left:left + tile_w * scale] += tile_weight
        done = (ys[row + 1] * scale if row + 1 < len(ys) else out_height) - strip_top
        _finish(strip[:, :, :done], weight[:done], output[:, strip_top:strip_top + done])
        # Shift the unfinished rows to the top of the buffers and clear the rest.
        keep = strip_rows - done
        strip[:, :, :keep] = strip[:, :, done:done + keep]
        weight[:keep] = weight[done:done + keep]
        strip[:, :, keep:] = 0.0
        weight[keep:] = 0.0
        strip_top += done
    return output
