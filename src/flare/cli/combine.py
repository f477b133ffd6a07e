"""``flare combine``: real + α of the augmentation types + β of the synthetic types → an ImageFolder tree or shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, handle_errors, resolve_config


@handle_errors
def command(dataset: Annotated[Path, typer.Argument(help="Dataset with base images and augment (and/or generate) rows.")],
            out: Annotated[Path, typer.Argument(help="Output folder (train/<label>/, val/, test/ + manifest).")],
            alpha: Annotated[Optional[float], typer.Option(help="Fraction of augmentation types (or samples) kept.")] = None,
            beta: Annotated[Optional[float], typer.Option(help="Fraction of synthetic types (or samples) kept.")] = None,
            rule: Annotated[Optional[str], typer.Option(help="value (default: types ranked by a val probe), types (the paper's seeded shuffle) or samples (per-sample ratio).")] = None,
            per_class_target: Annotated[Optional[int], typer.Option(help="Fill each class up to N train images.")] = None,
            synthetic: Annotated[Optional[Path], typer.Option(help="A second dataset folder with generate rows.")] = None,
            export: Annotated[Optional[bool], typer.Option("--export/--no-export",
                                                           help="Materialise lazy augmentation recipes.")] = None,
            layout: Annotated[Optional[str], typer.Option(
                help="imagefolder (files + metadata.parquet per split), parquet or webdataset (OUT/shards/).")] = None,
            seed: Annotated[Optional[int], typer.Option(help="Selection seed (overrides config).")] = None,
            config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML.")] = None,
            set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None) -> None:
    """Combine IN (+ --synthetic) into OUT by the seeded α/β rule; val/test are the real images unchanged."""
    from flare.combine import combine_datasets

    cfg = resolve_config(config, set_, {"seed": seed, "combine.alpha": alpha, "combine.beta": beta,
                                        "combine.rule": rule, "combine.per_class_target": per_class_target,
                                        "combine.export": export, "combine.layout": layout})
    from flare.augment.loader import load_row_image  # the value rule renders lazy recipes with augment's loader

    result = combine_datasets(dataset, out, cfg.combine, seed=cfg.seed, synthetic=synthetic, render=load_row_image)
    if cfg.combine.export:
        from flare.augment.stage import export_lazy

        export_lazy(out)
    counts = result.counts
    shards = f" ({len(result.shards)} {cfg.combine.layout} shards)" if result.shards else ""
    console.print(f"combined into {out}{shards}: train {counts['train']} (real {counts['real_train']}, augment "
                  f"{counts['augment']}/{counts['augment_available']}, synthetic {counts['generate']}/"
                  f"{counts['generate_available']}), val {counts['val']}, test {counts['test']}; kept types "
                  f"augment={result.chosen_types['augment']} synthetic={result.chosen_types['generate']}")
