"""Throughput of a CPU-bound stage on the local and Ray executors with 1 and 2 workers, as ratios.

    python benchmarks/bench_executors.py [--images 64] [--size 128] [--repeats 40] [--workers 1,2] [--no-ray]

The stage is :class:`flare.executors.demo_worker.NoisyBlurWorker` (read PNG, seeded noise, ``repeats`` box
blurs, write PNG) over a synthetic dataset made here. Every configuration writes to a fresh folder and must
give the same manifest bytes as the baseline (checked). Ratios are images/s over the in-process, 1-worker
baseline measured in the same run. Ray times include building the actor pool for the stage (not ``ray.init``,
timed apart). On a shared machine the numbers are noisy: run it twice and read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLARE_PROGRESS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from flare.core.config import ExecutorConfig  # noqa: E402
from flare.core.io import write_image  # noqa: E402
from flare.core.manifest import MANIFEST_NAME, Manifest  # noqa: E402
from flare.executors.demo_worker import run_demo_stage  # noqa: E402


def make_dataset(root: Path, images: int, size_px: int) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for i in range(images):
        relative = f"src/img-{i:04d}.png"
        digest = write_image(root / relative, rng.integers(0, 256, (size_px, size_px, 3), dtype=np.uint8))
        records.append({"id": f"img-{i:04d}", "path": relative, "sha256": digest, "label": f"c{i % 3}",
                        "origin_id": f"img-{i:04d}", "stage": "ingest"})
    Manifest.from_records(records, root).write()
    return root


def time_stage(source: Path, out: Path, executor: ExecutorConfig, repeats: int) -> float:
    start = time.perf_counter()
    run_demo_stage(source, out, seed=0, executor=executor, repeats=repeats)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="image side, px")
    parser.add_argument("--repeats", type=int, default=40, help="blurs per image (CPU cost)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flare-bench-executors-"))
    try:
        source = make_dataset(work / "source", args.images, args.size)
        counts = [int(c) for c in args.workers.split(",")]
        configs = [("local", 1, "process")] + [("local", n, pool) for n in counts if n > 1
                                                for pool in ("process", "thread")]
        if not args.no_ray:
            configs += [("ray", n, "process") for n in counts]
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False, configure_logging=False,
                     _node_ip_address="127.0.0.1")
            print(f"ray.init: {time.perf_counter() - start:.1f} s (not counted below)")
            # warm Ray Data up once (first-use imports), so that each timed stage pays only its own actor pool
            time_stage(source, work / "ray-warmup", ExecutorConfig(name="ray", batch_size=args.batch_size), 1)
        results = []
        baseline_manifest = None
        for name, workers, pool in configs:
            out = work / f"{name}-{workers}-{pool}"
            executor = ExecutorConfig(name=name, workers=workers, batch_size=args.batch_size, local_pool=pool)
            seconds = time_stage(source, out, executor, args.repeats)
            manifest = (out / MANIFEST_NAME).read_bytes()
            baseline_manifest = baseline_manifest or manifest
            suffix = f" ({pool}es)" if pool == "process" else f" ({pool}s)"
            suffix = suffix if name == "local" and workers > 1 else ""
            results.append((f"{name} x{workers}{suffix}", seconds, manifest == baseline_manifest))
        base = args.images / results[0][1]
        print(f"\n{args.images} images {args.size}x{args.size} px, {args.repeats} blurs each, batch {args.batch_size}, "
              f"{os.cpu_count()} CPUs visible (shared: noisy)")
        print(f"{'executor':24s} {'seconds':>8s} {'images/s':>9s} {'ratio':>6s}  same manifest")
        for label, seconds, same in results:
            rate = args.images / seconds
            print(f"{label:24s} {seconds:8.2f} {rate:9.1f} {rate / base:6.2f}  {same}")
        print(f"per-image cost, 1 worker: {1000 * results[0][1] / args.images:.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
