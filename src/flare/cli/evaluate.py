"""``flare evaluate``: measure a stage against ground truth (``sr``: super-resolution fidelity)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flare.cli._common import console, given, handle_errors

app = typer.Typer(help="Measure stages against ground truth.", no_args_is_help=True)

@app.command("sr")
@handle_errors
def sr(dataset: Annotated[Path, typer.Argument(help="Dataset with truth_path (GZ1 protocol or simulated).")],
       backend: Annotated[Optional[list[str]], typer.Option(help="Backend to score (repeatable; default: bicubic, lanczos, realesrgan-x4plus, swinir-trained if trained).")] = None,
       weights: Annotated[Optional[str], typer.Option(help="Weight file for swinir / file.")] = None,
       model_dir: Annotated[Optional[Path], typer.Option(help="swinir-trained model folder (default DATASET/sr-model).")] = None,
       split: Annotated[Optional[str], typer.Option(help="Split to score (train, val, test or all).")] = None,
       max_images: Annotated[Optional[int], typer.Option(help="Seeded subset of at most N images.")] = None,
       tile: Annotated[Optional[int], typer.Option(help="LR tile side for network backends, px.")] = None,
       device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
       out: Annotated[Optional[Path], typer.Option(help="Write the scores (JSON) and per-image rows (CSV) here.")] = None,
       seed: Annotated[Optional[int], typer.Option(help="Subset seed.")] = None) -> None:
    """PSNR (whole and central half), SSIM, flux ratio and hallucinated ≥5σ sources per backend."""
    from flare.upscale.evaluation import default_backends, evaluate_sr, write_scores
    from flare.upscale.stage import default_model_dir

    trained = model_dir or default_model_dir(dataset)
    names = backend or default_backends(trained)
    network = {"tile_px": tile, "device": device}
    options = {"swinir-trained": {"weights": str(trained), **network}, "swinir": {"weights": weights, **network},
               "file": {"weights": weights, **network}, "realesrgan-x4plus": network}
    subset = given(max_images=max_images, seed=seed, split=split)
    if split == "all":
        subset["split"] = None  # evaluate_sr's "no split filter"
    scores, per_image = evaluate_sr(dataset, names, options=options, **subset)
    table = Table("backend", "images", "PSNR dB", "PSNR centre dB", "SSIM", "flux ratio", "hallucinations", "images/s")
    for s in scores:
        table.add_row(s.backend, str(s.images), f"{s.psnr_db:.2f}", f"{s.psnr_centre_db:.2f}", f"{s.ssim:.4f}",
                      f"{s.flux_ratio:.3f}", str(s.hallucinations), f"{s.images_per_s:.2f}")
    console.print(table)
    if out is not None:
        written = write_scores(out, scores, per_image)
        console.print(f"wrote {written}, sr_scores.md and sr_per_image.csv")
