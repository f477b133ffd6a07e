"""Does a trained embedded generator draw what it is asked? Per-class agreement of a mirror-symmetric judge.

    python benchmarks/generator_agreement.py DATASET MODEL_DIR OUT [--per-class 30] [--guidance 3 5] [--side 32]
                                             [--steps 20 50] [--scheduler ddim dpm] [--chirality mirror|learn]
                                             [--reference base|truth]

``DATASET`` is a dataset folder (its train split trained the judge and, usually, the generator); ``MODEL_DIR`` a
model from ``flare generate train``. For each guidance scale, step count and sampler the generate stage itself
makes ``--per-class`` text-to-image images per class (no variations, filter and audit off, so the images are exactly what FLARE's
generator makes; with ``generate.chirality: mirror`` the mirrored class comes out as the stage makes it). The
judge is :class:`flare.metrics.synthetic.GenericJudge`: a class-balanced logistic head on ImageNet
EfficientNet-Lite0 features of the real train images, mirror-symmetric through the taxonomy's mirror pairs,
with every image first brought to ``--side`` px (the generator's resolution), so real and synthetic images are
judged at the same detail. It prints, and writes to ``OUT/agreement.json``, per class: the judge's recall on the
real val images (what a generator drawing real images would score) and the synthetic agreement.

Why a script and not ``flare generate quality``: that command also computes FID/KID and manifold precision /
recall in two feature spaces per class: 662 s on one core for 180 images against GZ1's 3,720 train images
(1.4 GB resident). This one needs only the agreement: about 4 minutes at 128 px, most of it the judge's features.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from flare.core.config import GenerateConfig
    from flare.core.dataset import Dataset
    from flare.core.manifest import base_images
    from flare.generate.embedded import SCHEDULERS
    from flare.generate.stage import run_generate
    from flare.generate.train_embedded import CHIRALITY
    from flare.metrics.synthetic import GenericJudge, generic_extractor, images_to_unit_tensor, load_images

    defaults = GenerateConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--guidance", type=float, nargs="+", default=[3.0])
    parser.add_argument("--steps", type=int, nargs="+", default=[defaults.steps])
    parser.add_argument("--scheduler", nargs="+", default=[defaults.scheduler], choices=SCHEDULERS)
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", choices=("base", "truth"), default="base",
                        help="the real images the judge learns and is checked on: base (what FLARE trains on) or "
                             "the rows' HR truth (truth_path), to see what a judge could recognise at full detail")
    parser.add_argument("--chirality", choices=CHIRALITY, default=defaults.chirality)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = Dataset.open(args.dataset)
    real = base_images(dataset.manifest)
    train, val = real.filter(split="train"), real.filter(split="val")
    extractor = generic_extractor()
    column = "truth_path" if args.reference == "truth" else "path"
    judge = GenericJudge(extractor, images_to_unit_tensor(load_images(train, column), args.side),
                         train.frame["label"].to_numpy(), dataset.taxonomy.mirror_pairs, args.seed)
    val_labels = val.frame["label"].to_numpy()
    val_predicted = judge.predict(images_to_unit_tensor(load_images(val, column), args.side))
    classes = sorted(set(train.frame["label"]))
    results = {"dataset": str(args.dataset), "model": str(args.model), "side_px": args.side,
               "reference": args.reference, "per_class": args.per_class, "chirality": args.chirality, "train_counts":
               {c: int((train.frame["label"] == c).sum()) for c in classes},
               "real_val_recall": {c: float((val_predicted[val_labels == c] == c).mean()) for c in classes
                                   if (val_labels == c).any()},
               "runs": {}}
    print("real val recall:", {c: round(v, 2) for c, v in results["real_val_recall"].items()}, flush=True)
    for guidance, steps, scheduler in itertools.product(args.guidance, args.steps, args.scheduler):
        name = f"guidance-{guidance:g}" + ("" if (steps, scheduler) == (defaults.steps, defaults.scheduler)
                                           else f"-{scheduler}-{steps}")
        config = GenerateConfig(model_path=str(args.model), per_class=args.per_class, variations=0, filter="none",
                                audit=False, guidance_scale=guidance, steps=steps, scheduler=scheduler,
                                chirality=args.chirality)
        made = run_generate(args.dataset, args.out / name, config, seed=args.seed, grid=True)
        synthetic = made.manifest.filter(stage="generate")
        labels = synthetic.frame["label"].to_numpy()
        predicted = judge.predict(images_to_unit_tensor(load_images(synthetic), args.side))
        agreement = {c: float((predicted[labels == c] == c).mean()) for c in classes if (labels == c).any()}
        confusion = {c: dict(zip(*np.unique(predicted[labels == c], return_counts=True))) for c in classes}
        results["runs"][name] = {"guidance": guidance, "steps": steps, "scheduler": scheduler,
                                 "agreement": agreement,
                                 "predicted": {c: {k: int(v) for k, v in d.items()} for c, d in confusion.items()}}
        print(f"{name}: agreement", {c: round(v, 2) for c, v in agreement.items()}, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agreement.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
