"""Augmentation throughput on real GZ1 images: FLARE (batched tensors, threaded I/O) vs the original's loop.

Usage: ``python benchmarks/bench_augment.py [--images 240] [--k 5] [--baseline-images 48] [--workers 2]
[--runs files,parquet,parquet:2] [--presets paper|astro|NAME,NAME...] [--materialised-only]``

Setup (not timed): the first ``--images`` GZ1 images (round-robin over classes), centre 192×192 crop, stored
as PNG in a temporary dataset with the gz1 taxonomy, all in train.

1. Baseline, the original per-image loop: PIL decode, then for each of the five original augmentation types
   ``K`` times a ``torchvision.transforms`` (v1, PIL) transform and ``PIL.Image.save`` as PNG at its default
   compression (level 6). Run on ``--baseline-images`` images (it is linear in the image count).
2. FLARE materialised: ``augment_dataset`` with ``--presets`` (default ``paper``: the five original types,
   named here one by one, :data:`PAPER_PRESETS`, so that a change of the config's default set moves no number;
   ``astro`` names that set's members; the baseline stays the original loop either way), ``K``, lossless PNG
   (the default encoder, fpng), once per ``--runs`` entry: a layout, ``files`` (one PNG per variant),
   ``parquet`` (the same PNG bytes in Parquet shards of ``augment.shard_size_mb``, default 256) or
   ``webdataset`` (tar shards), run
   with ``--workers`` threads in this process, or ``LAYOUT:N`` with N executor worker processes (spawned, one
   shard per task, one thread each; their start-up counts), or ``LAYOUT:N:fork`` with N forked ones
   (``executor.local_start: fork``: no torch import per worker). The benchmark checks that every run recorded the
   same sha256 for every row.
   Throughput = images written per second (hflip is capped at one distinct variant in FLARE, so FLARE's mix
   holds a larger share of the costly colour jitter: the comparison is conservative). Each in-process run (and
   the baseline) also reports its CPU time per output, all threads together: on a shared machine the wall
   clock says what this session got, the CPU time what the work costs.
   Breakdown (single thread, per output image): decode, transform (batched recipes), encode; the encode
   limit of each format = what the encoder alone allows with ``--workers`` threads.
3. FLARE lazy: ``make_loader`` throughput (images/s, recipes rendered in collate, in-process) vs what a
   cpu-small classifier consumes: a timm resnet18 training step (forward + backward + SGD) at 64 and 96 px.

``--materialised-only`` stops after 2's runs (no breakdown, no 3). Prints one table and writes ``--json`` if given.
Torch uses one thread throughout (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GZ1 = ROOT.parent / "shared" / "datasets" / "gz1"
# The original work's five augmentation types, named one by one: the preset sets of the config may change.
PAPER_PRESETS = ["hflip", "color_jitter", "flip_color_jitter", "resized_crop", "perspective"]
ASTRO_PRESETS = ["d4", "shift_scale", "psf_blur", "noise", "brightness_contrast"]
PRESET_CHOICES = {"paper": PAPER_PRESETS, "astro": ASTRO_PRESETS}


def prepare_subset(folder: Path, count: int, crop_px: int = 192) -> Path:
    from flare.core.io import load_rgb, write_image
    from flare.core.manifest import Manifest
    from flare.core.taxonomy import load_taxonomy

    taxonomy = load_taxonomy("gz1")
    per_class = {label: sorted((GZ1 / label).glob("*.jpeg")) for label in taxonomy.fine_classes}
    chosen, index = [], 0
    while len(chosen) < count:
        for label in taxonomy.fine_classes:
            if index < len(per_class[label]) and len(chosen) < count:
                chosen.append((label, per_class[label][index]))
        index += 1
    records = []
    for label, path in chosen:
        image = load_rgb(path)
        top = (image.shape[0] - crop_px) // 2
        left = (image.shape[1] - crop_px) // 2
        relative = f"images/{label}/{path.stem}.png"
        digest = write_image(folder / relative, image[top:top + crop_px, left:left + crop_px], "png",
                             png_compress_level=1)
        records.append({"id": path.stem, "path": relative, "sha256": digest, "label": label,
                        "macro_label": taxonomy.macro(label), "origin_id": path.stem, "split": "train",
                        "stage": "ingest", "operation": "crop"})
    Manifest.from_records(records, folder).write()
    taxonomy.save(folder / "taxonomy.yaml")
    return folder


def original_loop(paths: list[Path], k: int, out: Path) -> tuple[int, float]:
    """The original work's loop: one image at a time, PIL transforms, PNG at default compression."""
    from torchvision import transforms as T

    types = {
        "hflip": T.RandomHorizontalFlip(p=1.0),
        "color_jitter": T.ColorJitter(brightness=0.6, contrast=0.4, saturation=0.3, hue=0.2),
        "flip_color_jitter": T.Compose([T.RandomHorizontalFlip(), T.ColorJitter(0.2, 0.7, 0.5, 0.5)]),
        "resized_crop": T.RandomResizedCrop(192, scale=(0.75, 0.90)),
        "perspective": T.RandomPerspective(distortion_scale=0.2, p=0.5),
    }
    torch.manual_seed(0)
    written = 0
    start = time.perf_counter()
    for path in paths:
        image = Image.open(path).convert("RGB")
        for name, transform in types.items():
            for variant in range(k):
                transform(image).save(out / f"{path.stem}_{name}_{variant}.png")
                written += 1
    return written, time.perf_counter() - start


def timed_loop(paths: list[Path], k: int, out: Path) -> tuple[int, float, float]:
    """:func:`original_loop` plus its CPU seconds."""
    cpu = time.process_time()
    written, seconds = original_loop(paths, k, out)
    return written, seconds, time.process_time() - cpu


def breakdown(dataset: Path, k: int, stage_encode: dict, presets: list[str], sample: int = 48) -> dict[str, float]:
    """Single-thread seconds per output image for decode, transform and encode (per format; ``chosen`` encodes
    with ``stage_encode``, the stage's own options)."""
    from flare.augment.base import apply_recipes
    from flare.augment.registry import create_preset
    from flare.augment.stage import plan_variants
    from flare.augment.encode import encode_variant
    from flare.core.io import load_rgb
    from flare.core.manifest import Manifest

    manifest = Manifest.read(dataset)
    rows = manifest.records()[:sample]
    t0 = time.perf_counter()
    images = [load_rgb(manifest.resolve(r["path"])) for r in rows]
    decode_s = time.perf_counter() - t0
    tensors, recipes = [], []
    for i, image in enumerate(images):
        for name in presets:
            preset = create_preset(name)
            for v in range(plan_variants(preset, k)):
                tensors.append(torch.from_numpy(image).permute(2, 0, 1).contiguous())
                recipes.append(preset.recipe(1000 * i + v, 192, 192, v))
    outputs = len(recipes)
    t0 = time.perf_counter()
    rendered = []
    for start in range(0, outputs, 32):
        rendered += apply_recipes(tensors[start:start + 32], recipes[start:start + 32])
    transform_s = time.perf_counter() - t0
    arrays = [t.permute(1, 2, 0).contiguous().numpy() for t in rendered[:120]]
    encode, sizes = {}, {}
    for label, options in [("pillow_png6", {"format": "png", "png_compress_level": 6}),
                           ("pillow_png1", {"format": "png", "png_compress_level": 1}),
                           ("libpng_png1_rle_up", {"format": "png", "encoder": "imagecodecs",
                                                   "png_compress_level": 1, "png_filter": "up",
                                                   "png_strategy": "rle"}),
                           ("chosen", stage_encode),
                           ("pillow_webp_lossless", {"format": "webp", "lossless": True, "quality": 95}),
                           ("pillow_jpeg95", {"format": "jpeg", "quality": 95})]:
        t0 = time.perf_counter()
        size = 0
        for array in arrays:
            size += len(encode_variant(array, options))
        encode[label] = (time.perf_counter() - t0) / len(arrays)
        sizes[label] = size / len(arrays)
    per_type = {}
    for name in presets:
        chosen = [i for i, r in enumerate(recipes) if r[0]["name"] in {t.name for t in create_preset(name).transforms}
                  and len(r) == len(create_preset(name).transforms)]
        t0 = time.perf_counter()
        for start in range(0, len(chosen), 32):
            part = chosen[start:start + 32]
            apply_recipes([tensors[i] for i in part], [recipes[i] for i in part])
        per_type[name] = (time.perf_counter() - t0) / max(1, len(chosen))
    return {"decode_per_output_s": decode_s / outputs, "transform_per_output_s": transform_s / outputs,
            "encode_per_output_s": encode, "encoded_bytes": sizes, "transform_per_type_s": per_type}


def classifier_rate(size_px: int, batch: int = 32, steps: int = 4) -> float:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=6)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 3, size_px, size_px)
    y = torch.randint(0, 6, (batch,))
    model.train()

    def step() -> None:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--baseline-images", type=int, default=48)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size-mb", type=float, default=None,
                        help="augment.shard_size_mb for the shard layouts (default: the config's, 256)")
    parser.add_argument("--runs", default="files,parquet",
                        help="comma-separated FLARE runs: LAYOUT (files, parquet, webdataset; --workers threads in "
                             "this process), LAYOUT:N (N spawned executor worker processes, one thread each) or "
                             "LAYOUT:N:fork (N forked ones)")
    parser.add_argument("--presets", default="paper",
                        help="paper (the five original types, the default), astro, or comma-separated preset names")
    parser.add_argument("--materialised-only", action="store_true",
                        help="only the baseline and the --runs (no single-thread breakdown, no lazy loader)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    presets = PRESET_CHOICES.get(args.presets) or [name.strip() for name in args.presets.split(",") if name.strip()]
    if not GZ1.is_dir():
        print(f"skipped: {GZ1} is absent (the benchmark reads ../shared/datasets/gz1)")
        return 0
    torch.set_num_threads(1)
    from flare.augment.loader import make_loader
    from flare.augment.stage import augment_dataset, encode_options
    from flare.core.config import AugmentConfig, ExecutorConfig
    from flare.core.manifest import Manifest

    work = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    try:
        dataset = prepare_subset(work / "subset", args.images)
        paths = [Manifest.read(dataset).resolve(r["path"]) for r in Manifest.read(dataset).records()]
        (work / "baseline").mkdir()
        # The baseline runs in two halves, before and after FLARE, so that load drift on a shared machine
        # weighs on both sides alike.
        half = args.baseline_images // 2
        base_written, base_s, base_cpu = timed_loop(paths[:half], args.k, work / "baseline")

        config = AugmentConfig(k=args.k, presets=presets, format="png", workers=args.workers,
                               batch_size=32)  # the default PNG encoder
        if config.presets != presets:  # a name the config would expand (a set): the benchmark names members
            raise SystemExit(f"--presets: name presets, not sets ({', '.join(presets)})")
        specs = [name.strip() for name in args.runs.split(",") if name.strip()]
        runs, digests = {}, {}
        for spec in specs:
            layout, _, processes = spec.partition(":")
            processes, _, start = processes.partition(":")
            update = {"layout": layout, **({"workers": 1} if processes else {}),
                      **({"shard_size_mb": args.shard_size_mb} if args.shard_size_mb else {})}
            run_config = AugmentConfig.model_validate({**config.model_dump(), **update})
            executor = (ExecutorConfig(workers=int(processes), local_pool="process", local_start=start or "spawn")
                        if processes else None)
            out = work / f"materialised-{spec.replace(':', '-')}"
            t0, cpu0 = time.perf_counter(), time.process_time()
            manifest = augment_dataset(dataset, out, run_config, seed=0, executor=executor)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            rows = manifest.filter(stage="augment")
            runs[spec] = {"layout": layout, "threads": run_config.workers, "processes": int(processes or 1),
                          "start": (start or "spawn") if processes else None,
                          "written": len(rows), "seconds": seconds, "images_per_s": len(rows) / seconds,
                          # this process only: the CPU of executor worker processes is not in it
                          "cpu_ms_per_output": None if processes else 1e3 * cpu / max(1, len(rows)),
                          "files": sum(1 for p in out.rglob("*") if p.is_file()),
                          "shards": len(list((out / "shards").iterdir())) if (out / "shards").is_dir() else 0}
            digests[spec] = dict(zip(rows.frame["id"], rows.frame["sha256"]))
        same_bytes = all(d == digests[specs[0]] for d in digests.values())
        written, seconds, cpu = timed_loop(paths[half:args.baseline_images], args.k, work / "baseline")
        base_written, base_s, base_cpu = base_written + written, base_s + seconds, base_cpu + cpu
        base_rate = base_written / base_s
        for run in runs.values():
            run["ratio_vs_baseline"] = run["images_per_s"] / base_rate
        ours_rate, ours_s, ours_written = (runs[specs[0]][k] for k in ("images_per_s", "seconds", "written"))

        if not args.materialised_only:
            parts = breakdown(dataset, args.k, encode_options(config), presets)
            lazy_config = config.model_copy(update={"mode": "lazy"})
            augment_dataset(dataset, work / "lazy", lazy_config, seed=0)
            loader = make_loader(work / "lazy", batch_size=64, shuffle=True, seed=0)
            t0 = time.perf_counter()
            loaded = sum(len(batch["ids"]) for batch in loader)
            loader_rate = loaded / (time.perf_counter() - t0)
            consume = {size: classifier_rate(size) for size in (64, 96)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "images": args.images, "k": args.k, "workers": args.workers, "encode": encode_options(config),
        "presets": presets,
        "baseline": {"written": base_written, "seconds": base_s, "images_per_s": base_rate,
                     "cpu_ms_per_output": 1e3 * base_cpu / base_written},
        "materialised": {"written": ours_written, "seconds": ours_s, "images_per_s": ours_rate,
                         "ratio_vs_baseline": ours_rate / base_rate, "run": specs[0]},
        "materialised_runs": runs, "runs_recorded_the_same_sha256": same_bytes,
    }
    print(f"GZ1 subset: {args.images} images, 192 px centre crop, K={args.k}, workers={args.workers}, torch threads=1")
    print(f"FLARE presets: {', '.join(presets)}")
    print(f"baseline (PIL + torchvision, PNG level 6): {base_rate:8.1f} img/s ({base_written} in {base_s:.1f} s, "
          f"CPU {result['baseline']['cpu_ms_per_output']:.2f} ms/output)")
    encoder = result["encode"].get("encoder", result["encode"]["format"])
    for run in runs.values():
        where = (f"{run['processes']} {'forked' if run['start'] == 'fork' else 'spawned'} processes"
                 if run["start"] else f"{run['threads']} threads")
        label = f"FLARE materialised ({encoder} PNG, {run['layout']}, {where}):"
        made = f"{run['shards']} shards" if run["shards"] else f"{run['files']} files"
        cpu = "" if run["cpu_ms_per_output"] is None else f", CPU {run['cpu_ms_per_output']:.2f} ms/output"
        print(f"{label:55s} {run['images_per_s']:8.1f} img/s ({run['written']} in {run['seconds']:.1f} s, "
              f"{made}{cpu})  ratio {run['ratio_vs_baseline']:.2f}x")
    print(f"  every run recorded the same sha256 for every row: {same_bytes}")
    if not args.materialised_only:
        result.update(_breakdown_and_lazy(parts, args.workers, ours_rate, loaded, loader_rate, consume))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _breakdown_and_lazy(parts: dict, workers: int, ours_rate: float, loaded: int, loader_rate: float,
                        consume: dict[int, float]) -> dict:
    """Print the single-thread breakdown and the lazy loader's numbers; returns them for the JSON."""
    chosen_encode = parts["encode_per_output_s"]["chosen"]
    per_image = parts["decode_per_output_s"] + parts["transform_per_output_s"] + chosen_encode
    encode_limit = workers / chosen_encode
    result = {
        "encode_limit": {"images_per_s": encode_limit, "fraction_reached": ours_rate / encode_limit},
        "breakdown_per_output_ms": {"decode": 1e3 * parts["decode_per_output_s"],
                                    "transform": 1e3 * parts["transform_per_output_s"],
                                    "encode": {k: 1e3 * v for k, v in parts["encode_per_output_s"].items()},
                                    "encoded_kib": {k: v / 1024 for k, v in parts["encoded_bytes"].items()},
                                    "transform_per_type": {k: 1e3 * v for k, v in
                                                           parts["transform_per_type_s"].items()},
                                    "single_thread_total_chosen": 1e3 * per_image},
        "lazy": {"loaded": loaded, "loader_images_per_s": loader_rate,
                 "resnet18_train_images_per_s": consume,
                 "ratio_vs_resnet18": {size: loader_rate / rate for size, rate in consume.items()}},
    }
    b = result["breakdown_per_output_ms"]
    print(f"  per output, 1 thread: decode {b['decode']:.2f} ms, transform {b['transform']:.2f} ms; encode "
          + ", ".join(f"{k} {v:.2f} ms/{b['encoded_kib'][k]:.0f} KiB" for k, v in b["encode"].items()))
    print("  transform per type: " + ", ".join(f"{k} {v:.2f} ms" for k, v in b["transform_per_type"].items()))
    print(f"  single thread per output: {b['single_thread_total_chosen']:.2f} ms; chosen encoder's limit with "
          f"{workers} threads: {encode_limit:.0f} img/s; reached {100 * ours_rate / encode_limit:.0f}%")
    print(f"FLARE lazy loader: {loader_rate:8.1f} img/s; resnet18 train step consumes "
          + ", ".join(f"{s} px {r:.0f} img/s (loader {loader_rate / r:.1f}x)" for s, r in consume.items()))
    return result


if __name__ == "__main__":
    sys.exit(main())
