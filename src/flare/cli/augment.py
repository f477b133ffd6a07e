"""``flare augment``: K recorded variants per train image and preset; ``replay`` and ``export`` from the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import (
    ConfigOption, ExecutorOption, SetOption, ShardOption, console, err_console, handle_errors, resolve_config, stage_app,
)

app = stage_app("Augment the train split with recorded, replayable, label-aware presets.")



@app.command("run")
@handle_errors
def run(dataset: Annotated[Path, typer.Argument(help="Input dataset folder (its train split is augmented).")],
        out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
        k: Annotated[Optional[int], typer.Option("--k", help="Variants per image and preset.")] = None,
        presets: Annotated[Optional[str], typer.Option(
            help="Comma-separated presets or preset sets: astro (the default), paper (see `flare backends`).")] = None,
        mode: Annotated[Optional[str], typer.Option(help="materialised (files) or lazy (recipes only).")] = None,
        format: Annotated[Optional[str], typer.Option("--format", help="png, jpeg or webp.")] = None,
        layout: Annotated[Optional[str], typer.Option(
            help="files (one per variant), parquet or webdataset (shards under OUT/shards/).")] = None,
        png_level: Annotated[Optional[int], typer.Option(help="PNG compress level 0-9.")] = None,
        quality: Annotated[Optional[int], typer.Option(help="JPEG/WebP quality 1-100.")] = None,
        workers: Annotated[Optional[int], typer.Option(help="Decode/encode threads.")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Run seed (overrides config).")] = None,
        config: ConfigOption = None, set_: SetOption = None, shard: ShardOption = None,
        executor_name: ExecutorOption = None) -> None:
    """Augment IN into OUT: every variant's preset, sampled parameters and seed go to the manifest."""
    from flare.augment.stage import augment_dataset

    preset_list = [p.strip() for p in presets.split(",") if p.strip()] if presets else None
    cfg = resolve_config(config, set_, {"executor.shard": shard, "executor.name": executor_name,
                                        "seed": seed, "augment.k": k, "augment.presets": preset_list,
                                        "augment.mode": mode, "augment.format": format, "augment.layout": layout,
                                        "augment.png_compress_level": png_level, "augment.quality": quality,
                                        "augment.workers": workers})
    manifest = augment_dataset(dataset, out, cfg.augment, seed=cfg.seed, executor=cfg.executor)
    made = manifest.filter(stage="augment")
    counts = made.frame.groupby("operation").size().to_dict() if len(made) else {}
    where = f"{cfg.augment.layout} " if cfg.augment.mode != "lazy" and cfg.augment.layout != "files" else ""
    console.print(f"{len(made)} augment rows ({where}{cfg.augment.mode}) in {out}: "
                  + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))


@app.command("replay")
@handle_errors
def replay(dataset: Annotated[Path, typer.Argument(help="An augmented dataset folder.")],
           check: Annotated[bool, typer.Option("--check", help="Only verify; write nothing.")] = False) -> None:
    """Regenerate every augmented file (or shard) from the manifest alone; fail if a byte differs from the record."""
    from flare.augment.stage import replay_dataset

    report = replay_dataset(dataset, check_only=check)
    if not report.ok:
        for image_id in report.mismatched[:20]:
            err_console.print(f"mismatch: {image_id}", highlight=False)
        err_console.print(f"[red]error:[/red] {len(report.mismatched)} of {report.rendered} replayed files differ")
        raise typer.Exit(code=1)
    console.print(f"replayed {report.rendered} files: identical bytes" + (" (checked only)" if check else ""))


@app.command("export")
@handle_errors
def export(dataset: Annotated[Path, typer.Argument(help="A dataset folder with lazy augmentation rows.")]) -> None:
    """Materialise lazy augmentation recipes into files (the bytes replay would give)."""
    from flare.augment.stage import export_lazy

    manifest = export_lazy(dataset)
    console.print(f"materialised augment rows in {dataset} ({len(manifest.filter(stage='augment'))} in total)")
