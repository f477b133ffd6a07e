"""``flare benchmark``: train classifiers on every method's training set and score them (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, handle_errors, resolve_config


@handle_errors
def command(target: Annotated[Optional[Path], typer.Argument(help="A run config YAML or a `flare run` work folder.")] = None,
            config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML.")] = None,
            out: Annotated[Optional[Path], typer.Option(help="Output folder (default: WORKDIR/benchmark).")] = None,
            preset: Annotated[Optional[str], typer.Option(help="cpu-tiny, cpu-small, cpu-scratch, cpu-frozen or paper.")] = None,
            backbone: Annotated[Optional[list[str]], typer.Option("--backbone", help="Backbone (repeatable).")] = None,
            method: Annotated[Optional[list[str]], typer.Option("--method", help="Method (repeatable).")] = None,
            seeds: Annotated[Optional[int], typer.Option(help="Run seeds 0..N-1.")] = None,
            epochs: Annotated[Optional[int], typer.Option(help="Epochs (overrides the preset).")] = None,
            image_size: Annotated[Optional[int], typer.Option(help="Side in px (overrides the preset).")] = None,
            macro_mode: Annotated[Optional[str], typer.Option(help="collapse (score macro from fine) or direct.")] = None,
            train_mode: Annotated[Optional[str], typer.Option(help="full (train the network) or frozen (pretrained features + a linear head).")] = None,
            class_balance: Annotated[Optional[str], typer.Option(help="weighted-loss, sampler or none.")] = None,
            tta: Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Average over the 8 rot90 x flip views (mirror pairs swapped).")] = None,
            synthetic_weight: Annotated[Optional[float], typer.Option(help="Loss weight of a synthetic (generate) row; 1: as a real row.")] = None,
            synthetic_label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing of synthetic rows only; 0: hard labels.")] = None,
            synthetic_batch_share: Annotated[Optional[float], typer.Option(help="Most synthetic rows in a batch, as a share; 1: no cap.")] = None,
            train_fraction: Annotated[Optional[list[float]], typer.Option("--train-fraction", help="Data-efficiency curve: also run stages 1-4 and the benchmark on this fraction of the train origins (repeatable; nested subsets).")] = None,
            ood: Annotated[Optional[list[Path]], typer.Option("--ood", help="Label-mapping YAML of an out-of-domain set (repeatable).")] = None,
            set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None) -> None:
    """Train each backbone on Raw_LR, Raw_HR, Raw_Aug, T2I_Aug and FLARE; a re-run skips finished cells."""
    from flare.augment.loader import load_row_image
    from flare.classify.benchmark import run_benchmark, settings_from_config

    workdir = None
    if target is not None and target.is_dir():
        workdir = target
    elif target is not None:
        config = config or target
    cfg = resolve_config(config, set_, {
        "benchmark.preset": preset, "benchmark.backbones": backbone, "benchmark.methods": method,
        "benchmark.seeds": list(range(seeds)) if seeds else None, "benchmark.epochs": epochs,
        "benchmark.image_size_px": image_size, "benchmark.macro_mode": macro_mode,
        "benchmark.train_mode": train_mode, "benchmark.class_balance": class_balance, "benchmark.tta": tta,
        "benchmark.synthetic_weight": synthetic_weight,
        "benchmark.synthetic_label_smoothing": synthetic_label_smoothing,
        "benchmark.synthetic_batch_share": synthetic_batch_share,
        "benchmark.train_fractions": train_fraction})
    workdir = workdir or Path(cfg.workdir)
    settings = settings_from_config(cfg.benchmark, [str(p) for p in ood or []])
    summary = run_benchmark(workdir, settings, out, log=lambda line: console.print(line, highlight=False, markup=False),
                            render=load_row_image)
    _print_table(summary)
    if any(f < 1 for f in cfg.benchmark.train_fractions):
        from flare.pipeline import run_train_fractions

        if out is not None:
            raise typer.BadParameter("--train-fraction writes into the work folder; leave --out unset")
        efficiency = run_train_fractions(cfg, workdir, log=lambda line: console.print(line, highlight=False, markup=False))
        for curve in efficiency["curves"]:
            points = ", ".join(f"{p['fraction']:g}: {p['macro_f1']['mean']:.3f}" for p in curve["points"])
            console.print(f"{curve['method']} {curve['backbone']} {curve['task']} macro-F1 by fraction: {points}",
                          highlight=False, markup=False)


def _print_table(summary: dict) -> None:
    from rich.table import Table

    table = Table("method", "backbone", "evaluation", "task", "accuracy", "balanced acc.", "macro-F1")
    for row in summary["rows"]:
        if row["evaluation"] == "val":
            continue
        table.add_row(row["method"], row["backbone"], row["evaluation"], row["task"],
                      *[f"{row[m]['mean']:.3f} ± {row[m]['std']:.3f}" for m in ("accuracy", "balanced_accuracy", "macro_f1")])
    console.print(table)
    for note in summary["notes"]:
        console.print(f"note: {note}", highlight=False)
    for entry in summary.get("comparison", []):
        if entry.get("headline"):
            console.print(entry["headline"], highlight=False, markup=False)
