"""Stage 1 speed and memory: images/s per backend, batched vs per-image loop, peak RSS vs input size.

Usage: python benchmarks/bench_upscale.py [--images 16] [--size 48] [--realesrgan] [--model-dir DIR]
       [--rss-sizes 512 2048] [--threads 1]

Prints ratios against baselines measured in the same run: each backend's images/s, the speed-up of one
batched call over a loop of single images, and the peak resident memory of a fresh process upscaling a
2048² input relative to a 512² one (tiled: the network's working memory is bounded by the tile; the uint8
output itself, 16× the input's pixels, is reported separately). The network backend for the memory test is
the residual SwinIR (a depth-1, width-8 one with random weights unless --model-dir is given, to keep the
2048² run short on a CPU; the scaling with image size does not depend on the width or the values).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _backend(name: str, model_dir: str | None, tile_px: int, tiny: bool = False):
    from flare.upscale import create_upscaler

    if name == "swinir-trained":
        if model_dir is None:
            import tempfile

            from flare.upscale.swinir_model import SwinIRConfig, build_model, save_model

            config = SwinIRConfig(embed_dim=8, depths=(1,), num_heads=(2,)) if tiny else SwinIRConfig()
            model_dir = tempfile.mkdtemp(prefix="flare-bench-")
            save_model(build_model(config), model_dir, {}, "benchmark model (random weights)")
        return create_upscaler(name, weights=model_dir, device="cpu", tile_px=tile_px)
    if name == "realesrgan-x4plus":
        return create_upscaler(name, device="cpu", tile_px=tile_px)
    return create_upscaler(name)


def _rss_child(size: int, model_dir: str | None, tile_px: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    backend = _backend("swinir-trained", model_dir, tile_px, tiny=model_dir is None)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    out = backend.upscale(image)
    print(json.dumps({"size": size, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mb": before / 1024, "output_mb": out.nbytes / 2**20,
                      "input_mb": image.nbytes / 2**20, "seconds": time.perf_counter() - began}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=48, help="LR side, px")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--realesrgan", action="store_true", help="include realesrgan-x4plus (slow on CPU)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[512, 2048])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child, args.model_dir, args.tile, args.threads)
        return

    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    names = ["bicubic", "lanczos", "swinir-trained"] + (["realesrgan-x4plus"] if args.realesrgan else [])
    names = names if args.images > 0 else []  # --images 0: memory test only
    print(f"{args.images} images of {args.size}² LR, ×4, batch {args.batch}, {args.threads} thread(s)")
    print(f"{'backend':20s} {'images/s':>10s} {'vs bicubic':>11s} {'batched/loop':>13s}")
    baseline = None
    for name in names:
        backend = _backend(name, args.model_dir, args.tile)
        backend.upscale(images[0])  # warm-up (lazy init, allocator)
        began = time.perf_counter()
        for start in range(0, len(images), args.batch):
            backend.upscale_many(images[start:start + args.batch])
        batched = len(images) / (time.perf_counter() - began)
        began = time.perf_counter()
        for image in images:
            backend.upscale(image)
        looped = len(images) / (time.perf_counter() - began)
        baseline = baseline or batched
        print(f"{name:20s} {batched:10.2f} {batched / baseline:11.3f} {batched / looped:13.2f}")

    results = []
    for size in args.rss_sizes:
        command = [sys.executable, __file__, "--rss-child", str(size), "--tile", str(args.tile),
                   "--threads", str(args.threads)] + (["--model-dir", args.model_dir] if args.model_dir else [])
        results.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(f"\npeak RSS, swinir-trained tiled ({args.tile} px tiles), fresh process each:")
        for r in results:
            print(f"  {r['size']}² input: peak {r['peak_rss_mb']:.0f} MB (output array {r['output_mb']:.0f} MB, "
                  f"{r['seconds']:.1f} s)")
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        working = (large["peak_rss_mb"] - large["output_mb"] - large["input_mb"]) / \
                  (small["peak_rss_mb"] - small["output_mb"] - small["input_mb"])
        print(f"  ratio {large['size']}²/{small['size']}²: {ratio:.2f} (goal ≤ 1.5); "
              f"without the input and output arrays: {working:.2f}")


if __name__ == "__main__":
    main()
