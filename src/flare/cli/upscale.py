"""``flare upscale``: LR → HR super-resolution of a dataset, and training the dataset's own SwinIR."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import (
    ConfigOption, ExecutorOption, SetOption, ShardOption, console, given, handle_errors, resolve_config, stage_app,
)

app = stage_app("Super-resolve a dataset (LR → HR) or train its SwinIR upscaler.")



@app.command("run")
@handle_errors
def run(dataset: Annotated[Path, typer.Argument(help="Input dataset folder (LR images).")],
        out: Annotated[Path, typer.Argument(help="Output dataset folder (input rows + upscale rows).")],
        backend: Annotated[Optional[str], typer.Option(help="auto, bicubic, lanczos, realesrgan-x4plus, swinir, file, swinir-trained.")] = None,
        scale: Annotated[Optional[int], typer.Option(help="2, 4 or 8 (default: a network's own; bicubic/lanczos: the dataset's binning factor, else 4).")] = None,
        weights: Annotated[Optional[str], typer.Option(help="Weight file (swinir, file) or model folder (swinir-trained).")] = None,
        tile: Annotated[Optional[int], typer.Option(help="LR tile side, px.")] = None,
        device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
        config: ConfigOption = None, set_: SetOption = None, shard: ShardOption = None,
        executor_name: ExecutorOption = None) -> None:
    """Upscale every source image of DATASET into OUT and append `upscale` rows to its manifest."""
    from flare.upscale.stage import upscale_dataset

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = resolve_config(config, set_, {"executor.shard": shard, "executor.name": executor_name,
                                        "upscale.backend": backend, "upscale.scale": scale,
                                        "upscale.weights": weights, "upscale.tile_px": tile,
                                        "upscale.device": device})
    manifest = upscale_dataset(dataset, out, cfg.upscale, executor=cfg.executor)
    rows = manifest.filter(stage="upscale")
    backend_used = rows.frame["backend"].iloc[0] if len(rows) else "-"
    console.print(f"upscaled {len(rows)} images with {backend_used} into {out}")


@app.command("train")
@handle_errors
def train(dataset: Annotated[Path, typer.Argument(help="Dataset whose train split (HR truth) to learn from.")],
          model_dir: Annotated[Optional[Path], typer.Argument(help="Model folder (default DATASET/sr-model).")] = None,
          steps: Annotated[Optional[int], typer.Option(help="Optimisation steps.")] = None,
          batch_size: Annotated[Optional[int], typer.Option(help="Patches per step.")] = None,
          patch: Annotated[Optional[int], typer.Option(help="HR patch side, px (multiple of scale × window).")] = None,
          embed_dim: Annotated[Optional[int], typer.Option(help="SwinIR embedding width.")] = None,
          max_images: Annotated[Optional[int], typer.Option(help="Use at most N training images.")] = None,
          max_minutes: Annotated[Optional[float], typer.Option(help="Stop (resumable) after N minutes.")] = None,
          device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
          seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None) -> None:
    """Train the small flux-conserving SwinIR (`swinir-trained`) on DATASET's train split; resumable.

    The model upscales by the dataset's recorded binning factor (×4 unless its LR rows record another); the
    default HR patch follows the factor (``default_patch_hr_px``: 64 px at ×8, so LR patches stay ≥ 8 px)."""
    from flare.core.manifest import Manifest
    from flare.upscale.stage import default_model_dir
    from flare.upscale.training import TrainConfig, dataset_degradation, train_swinir

    # The model's scale is the dataset's binning factor (a folder without a manifest: train_swinir says so).
    factor = dataset_degradation(Manifest.read(dataset)).factor if Manifest.exists(dataset) else None
    config = TrainConfig.with_width(embed_dim, **given(scale=factor, steps=steps, batch_size=batch_size,
                                                        patch_hr_px=patch, max_images=max_images, seed=seed))
    target = model_dir or default_model_dir(dataset)
    summary = train_swinir(dataset, target, config, log_fn=console.print,
                           **given(max_minutes=max_minutes, device=device))
    if summary.get("finished"):
        console.print(f"trained swinir-trained into {target} (sha256 {summary.get('model_hash', '')[:12]})")
    else:
        console.print(f"stopped at step {summary.get('step')}; run the same command again to resume")
