"""``flare evaluate``: measure a stage against ground truth (``sr``: super-resolution fidelity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flare.cli._common import console, handle_errors

app = typer.Typer(help="Measure stages against ground truth.", no_args_is_help=True)

FAITHFUL_AND_PRETRAINED = ["bicubic", "lanczos", "realesrgan-x4plus", "swinir-trained"]


@app.command("sr")
@handle_errors
def sr(dataset: Annotated[Path, typer.Argument(help="Dataset with truth_path (GZ1 protocol or simulated).")],
       backend: Annotated[Optional[list[str]], typer.Option(help="Backend to score (repeatable; default: bicubic, lanczos, realesrgan-x4plus, swinir-trained if trained).")] = None,
       weights: Annotated[Optional[str], typer.Option(help="Weight file for swinir / file.")] = None,
       model_dir: Annotated[Optional[Path], typer.Option(help="swinir-trained model folder (default DATASET/sr-model).")] = None,
       split: Annotated[str, typer.Option(help="Split to score (train, val, test or all).")] = "test",
       max_images: Annotated[Optional[int], typer.Option(help="Seeded subset of at most N images.")] = None,
       tile: Annotated[Optional[int], typer.Option(help="LR tile side for network backends, px.")] = None,
       device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
       out: Annotated[Optional[Path], typer.Option(help="Write the scores (JSON) and per-image rows (CSV) here.")] = None,
       seed: Annotated[int, typer.Option(help="Subset seed.")] = 0) -> None:
    """PSNR (whole and central half), SSIM, flux ratio and hallucinated ≥5σ sources per backend."""
    from flare.evaluate.sr import evaluate_sr, scores_table
    from flare.upscale.stage import default_model_dir
    from flare.upscale.swinir_model import has_model

    trained = model_dir or default_model_dir(dataset)
    names = backend or [b for b in FAITHFUL_AND_PRETRAINED if b != "swinir-trained" or has_model(trained)]
    network = {"tile_px": tile, "device": device}
    options = {"swinir-trained": {"weights": str(trained), **network}, "swinir": {"weights": weights, **network},
               "file": {"weights": weights, **network}, "realesrgan-x4plus": network}
    scores, per_image = evaluate_sr(dataset, names, options=options, split=None if split == "all" else split,
                                    max_images=max_images, seed=seed)
    table = Table("backend", "images", "PSNR dB", "PSNR centre dB", "SSIM", "flux ratio", "hallucinations", "images/s")
    for s in scores:
        table.add_row(s.backend, str(s.images), f"{s.psnr_db:.2f}", f"{s.psnr_centre_db:.2f}", f"{s.ssim:.4f}",
                      f"{s.flux_ratio:.3f}", str(s.hallucinations), f"{s.images_per_s:.2f}")
    console.print(table)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sr_scores.json").write_text(json.dumps([s.to_dict() for s in scores], indent=2))
        (out / "sr_scores.md").write_text(scores_table(scores) + "\n")
        per_image.to_csv(out / "sr_per_image.csv", index=False)
        console.print(f"wrote {out / 'sr_scores.json'}, sr_scores.md and sr_per_image.csv")
