"""Per-epoch cost of the benchmark presets on GZ1-sized data, to check the cpu-small 90-minute budget.

Decodes the real GZ1 images (``../shared/datasets/gz1``) once into the cpu-small tensor cache (the protocol's
192 px centre crop, resized to the preset's resolution), then times one training epoch (``samples_per_epoch``
images) and one evaluation pass over a GZ1-sized val + test split (30 % of 5,314 images) per backbone. The
baseline measured in the same run is the tiny preset backbone; ratios are printed against it. The projected
cpu-small run = 5 methods × 3 seeds × (epochs × (train + val pass) + test pass).

    python benchmarks/bench_classify.py [--threads 1] [--backbones resnet18 efficientnet-b0]

Times are CPU seconds of this process (``time.process_time``), so a busy shared machine does not inflate them;
with ``--threads 1`` they bound the wall time on one idle core, hence also on two.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from flare.classify.backbones import build_backbone
from flare.classify.images import resize_square
from flare.classify.registry import get_preset
from flare.classify.train import infer, to_input
from flare.core.io import load_rgb

GZ1 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "gz1"
GZ1_IMAGES = 5314
CROP_PX = 192


def decode_gz1(size_px: int, limit: int | None) -> np.ndarray:
    files = sorted(p for p in GZ1.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg"))[:limit]

    def one(path: Path) -> np.ndarray:
        image = load_rgb(path)
        top = (image.shape[0] - CROP_PX) // 2
        left = (image.shape[1] - CROP_PX) // 2
        return resize_square(image[top:top + CROP_PX, left:left + CROP_PX], size_px)

    with ThreadPoolExecutor(2) as pool:
        return np.stack(list(pool.map(one, files)))


def time_epoch(backbone: str, images: np.ndarray, size_px: int, samples: int, batch_size: int) -> tuple[float, float]:
    """CPU seconds (this process, all threads) of one training epoch and of one val + test pass.

    CPU time rather than wall time: the machine may be shared, and with one thread the CPU time is what the
    epoch costs on an idle core; with two idle cores the wall time is at most that.
    """
    torch.manual_seed(0)
    model, _ = build_backbone(backbone, 6, size_px)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 6, len(images)))
    order = np.random.default_rng(0).permutation(len(images))[:samples]
    model.train()
    started = time.process_time()
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start:start + batch_size])
        loss = torch.nn.functional.cross_entropy(model(to_input(images[index], torch.device("cpu"))), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = time.process_time() - started
    eval_n = int(GZ1_IMAGES * 0.3)
    eval_images = images[np.arange(eval_n) % len(images)]
    started = time.process_time()
    infer(model, eval_images, 256)
    return train_s, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--backbones", nargs="*", default=None)
    parser.add_argument("--limit", type=int, default=None, help="decode at most this many GZ1 images")
    parser.add_argument("--samples", type=int, default=None, help="training images per epoch (default: preset)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    samples = args.samples or preset.samples_per_epoch or GZ1_IMAGES
    started, cpu_started = time.perf_counter(), time.process_time()
    images = decode_gz1(preset.image_size_px, args.limit)
    decode_s, decode_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"decoded {len(images)} GZ1 images to {preset.image_size_px} px in {decode_s:.1f} s "
          f"wall, {decode_cpu_s:.1f} CPU s; torch threads {args.threads}; times below are CPU seconds")
    baseline_train, baseline_eval = time_epoch("resnet-tiny", images, preset.image_size_px, samples, preset.batch_size)
    print(f"baseline resnet-tiny: train epoch ({samples} images) {baseline_train:.1f} s; "
          f"eval {int(GZ1_IMAGES * 0.3)} images {baseline_eval:.1f} s")
    for backbone in args.backbones or list(preset.backbones):
        train_s, eval_s = time_epoch(backbone, images, preset.image_size_px, samples, preset.batch_size)
        val_s = eval_s / 2  # val is half of val + test
        cell_s = preset.epochs * (train_s + val_s) + eval_s / 2
        print(f"{backbone}: train epoch {train_s:.1f} s ({samples / train_s:.0f} images/s, "
              f"{train_s / baseline_train:.1f}x baseline); eval {eval_s:.1f} s ({eval_s / baseline_eval:.1f}x); "
              f"cell at {preset.epochs} epochs ≤ {cell_s / 60:.1f} min; 5 methods × 3 seeds ≤ "
              f"{15 * cell_s / 60:.0f} min (+ decode {decode_cpu_s / 60:.1f} min)")


if __name__ == "__main__":
    main()
