"""Read an ncnn model (``.param`` text + ``.bin`` weights) into PyTorch tensors, one per convolution.

ncnn's ``.param``: a magic line (7767517), ``layer_count blob_count``, then one line per layer:
``type name n_in n_out in_blobs... out_blobs... k=v ...``. For ``Convolution``, ``0`` = output channels,
``1`` = kernel size, ``5`` = has bias, ``6`` = weight count (negative keys are array parameters).
``.bin`` holds, per convolution in layer order, the weights as a 4-byte storage tag (``0x01306B47`` = fp16,
``0`` = float32; int8 quantised weights are not supported) followed by the values padded to 4 bytes, then the
bias as raw float32 without a tag (ncnn ``ModelBin::load(w, 1)``). Layout is OIHW, as PyTorch's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flare.core.errors import FlareError

__all__ = ["NcnnLayer", "parse_param", "read_convolutions"]

_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0x00000000
_MAGIC = "7767517"


@dataclass(frozen=True)
class NcnnLayer:
    kind: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[str, str]


def parse_param(path: str | Path) -> list[NcnnLayer]:
    """Layers of an ncnn ``.param`` file, in file (= execution and weight) order."""
    lines = Path(path).read_text().split("\n")
    if not lines or lines[0].strip() != _MAGIC:
        raise FlareError(f"ncnn: {str(path)!r} is not an ncnn param file (magic {_MAGIC} missing)")
    layer_count = int(lines[1].split()[0])
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        inputs, outputs = tuple(parts[4:4 + n_in]), tuple(parts[4 + n_in:4 + n_in + n_out])
        params = dict(item.split("=", 1) for item in parts[4 + n_in + n_out:])
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise FlareError(f"ncnn: {str(path)!r} declares {layer_count} layers but lists {len(layers)}")
    return layers


def read_convolutions(param_path: str | Path, bin_path: str | Path) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """``(layer name, weight OIHW float32, bias or None)`` for every Convolution, reading the whole ``.bin``.

    Raises:
        FlareError: on an unknown storage tag, a layer type that stores weights but is not handled, or a
            ``.bin`` whose size does not match the ``.param`` exactly.
    """
    layers = parse_param(param_path)
    data = Path(bin_path).read_bytes()
    offset = 0
    convolutions = []
    for layer in layers:
        if layer.kind in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU", "PixelShuffle"):
            continue
        if layer.kind != "Convolution":
            raise FlareError(f"ncnn: layer type {layer.kind!r} ({layer.name}) is not supported by this reader")
        out_channels, kernel = int(layer.params["0"]), int(layer.params.get("1", "1"))
        has_bias, weight_count = layer.params.get("5", "0") == "1", int(layer.params["6"])
        tag = int.from_bytes(data[offset:offset + 4], "little")
        offset += 4
        if tag == _TAG_FP16:
            values = np.frombuffer(data, dtype="<f2", count=weight_count, offset=offset).astype(np.float32)
            offset += (weight_count * 2 + 3) // 4 * 4
        elif tag == _TAG_FP32:
            values = np.frombuffer(data, dtype="<f4", count=weight_count, offset=offset).copy()
            offset += weight_count * 4
        else:
            raise FlareError(f"ncnn: layer {layer.name} has storage tag {tag:#010x}; only fp16/fp32 are supported")
        channels_in = weight_count // (out_channels * kernel * kernel)
        if channels_in * out_channels * kernel * kernel != weight_count:
            raise FlareError(f"ncnn: layer {layer.name} weight count {weight_count} does not factor as OIHW")
        weight = torch.from_numpy(values.reshape(out_channels, channels_in, kernel, kernel).copy())
        bias = None
        if has_bias:
            bias = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=out_channels, offset=offset).copy())
            offset += out_channels * 4
        convolutions.append((layer.name, weight, bias))
    if offset != len(data):
        raise FlareError(f"ncnn: {str(bin_path)!r} has {len(data)} bytes but the param file accounts for {offset}")
    return convolutions
