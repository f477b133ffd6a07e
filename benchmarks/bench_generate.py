"""Embedded generator speed: sampling images/s batched vs one at a time, and training time per epoch.

Usage: ``python benchmarks/bench_generate.py [--model MODEL_DIR] [--images 32] [--batch 16] [--steps 20]
[--train-epochs 2] [--json FILE]``

Setup (not timed): a simulated survey (6 classes × 12 objects, HR 48 px) in a temporary folder. With no
``--model`` a (32, 64, 64)-channel 32 px model is trained for ``--train-epochs`` epochs on it (that training is
the training measurement: seconds per epoch, and images/s through forward + backward); with ``--model`` a
trained one is used for sampling and training is measured on a fresh model.

1. Baseline: ``--images`` text-to-image samples made one at a time (``--steps`` DDIM steps, guidance 3.0, so two
   UNet passes per step via one batch of 2).
2. FLARE: the same images in batches of ``--batch`` (per-image generators, so the images are the same).
Prints images/s of each and the ratio, plus the largest pixel difference between the two (batching must not
change an image beyond float rounding). Torch uses one thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from flare.core.config import SimulateConfig
    from flare.data.simulate import simulate_survey
    from flare.generate.embedded import EmbeddedDiffusionPipeline
    from flare.generate.text_encoder import MiniLMTextEncoder
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    encoder = MiniLMTextEncoder()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sim"
        simulate_survey(data, SimulateConfig(objects_per_class=12, hr_size_px=48), seed=0)
        model_dir = Path(tmp) / "model"
        training = train_embedded(data, model_dir, EmbeddedTrainingConfig(epochs=args.train_epochs, batch_size=16),
                                  text_encoder=encoder)
        pipeline = EmbeddedDiffusionPipeline.from_pretrained(args.model or model_dir, text_encoder=encoder)
        classes = ["elliptical galaxy", "edge-on disk galaxy", "clockwise spiral galaxy", "star"]
        prompts = [f"A realistic image of {classes[i % len(classes)]} in space" for i in range(args.images)]
        seeds = list(range(args.images))
        encoder.embed(prompts)  # warm the prompt cache: both runs see cached embeddings

        start = time.perf_counter()
        single = [pipeline([p], [s], num_inference_steps=args.steps).images[0] for p, s in zip(prompts, seeds)]
        single_s = time.perf_counter() - start
        start = time.perf_counter()
        batched = []
        for i in range(0, args.images, args.batch):
            batched += pipeline(prompts[i:i + args.batch], seeds[i:i + args.batch], num_inference_steps=args.steps).images
        batched_s = time.perf_counter() - start
    difference = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(single, batched))
    result = {"images": args.images, "steps": args.steps, "batch": args.batch,
              "one_at_a_time_images_per_s": args.images / single_s, "batched_images_per_s": args.images / batched_s,
              "ratio_batched_vs_single": single_s / batched_s, "max_pixel_difference": difference,
              "train_images": training.images, "train_seconds_per_epoch": training.seconds_per_epoch,
              "train_images_per_s": training.images / max(training.seconds_per_epoch, 1e-9)}
    print(f"sampling, {args.steps} DDIM steps, guidance 3.0, 32 px, 1 thread:")
    print(f"  one at a time      {result['one_at_a_time_images_per_s']:8.2f} images/s")
    print(f"  batched (x{args.batch:<3d})    {result['batched_images_per_s']:8.2f} images/s   "
          f"ratio {result['ratio_batched_vs_single']:.2f}x   max pixel difference {difference}")
    print(f"training: {training.seconds_per_epoch:.2f} s/epoch on {training.images} images "
          f"({result['train_images_per_s']:.1f} images/s, batch 16)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
