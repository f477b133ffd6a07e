"""``flare generate``: class-prompted synthetic train images; ``train`` the embedded model; ``quality`` tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from flare.cli._common import (
    ConfigOption, ExecutorOption, SetOption, ShardOption, console, given, handle_errors, resolve_config, stage_app,
)

app = stage_app("Diffusion synthesis: text-to-image per class plus image variations, train split only.")



@app.command("run")
@handle_errors
def run(dataset: Annotated[Path, typer.Argument(help="Input dataset folder (its train split is the source).")],
        out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
        backend: Annotated[Optional[str], typer.Option(help="embedded (default), sd or unidiffuser.")] = None,
        per_class: Annotated[Optional[str], typer.Option(help="Text-to-image images per class: balance (fill rare "
                                                             "classes up to --balance-target) or a number.")] = None,
        balance_target: Annotated[Optional[str], typer.Option(help="balance: median, max or a number of images.")] = None,
        variations: Annotated[Optional[int], typer.Option(help="Image-to-image variations per source image.")] = None,
        model_path: Annotated[Optional[str], typer.Option(help="Local model folder (embedded: trained if absent).")] = None,
        template: Annotated[Optional[list[str]], typer.Option(help="Prompt template with {class} (repeatable).")] = None,
        guidance: Annotated[Optional[float], typer.Option(help="Classifier-free guidance scale.")] = None,
        steps: Annotated[Optional[int], typer.Option(help="Denoising steps.")] = None,
        strength: Annotated[Optional[float], typer.Option(help="Variation strength (0, 1].")] = None,
        epochs: Annotated[Optional[int], typer.Option(help="Embedded: training epochs when it trains.")] = None,
        filter_: Annotated[Optional[str], typer.Option("--filter", help="none, confidence or outlier.")] = None,
        filter_threshold: Annotated[Optional[float], typer.Option(help="confidence: minimum prompted-class p (tau); "
                                                                      "outlier: maximum z-score.")] = None,
        audit: Annotated[Optional[bool], typer.Option("--audit/--no-audit", help="Drop near-copies of train images "
                                                                                "(memorisation audit).")] = None,
        device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps (bf16 on CUDA).")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Run seed (overrides config).")] = None,
        config: ConfigOption = None, set_: SetOption = None, shard: ShardOption = None,
        executor_name: ExecutorOption = None) -> None:
    """Generate IN into OUT: each synthetic image's seed, prompt, guidance, steps and strength go to the manifest."""
    import functools

    from flare.generate.stage import run_generate
    from flare.upscale import create_upscaler

    cfg = resolve_config(config, set_, {"executor.shard": shard, "executor.name": executor_name,
                                        "seed": seed, "generate.backend": backend, "generate.per_class": _count_or_rule(per_class),
                                        "generate.variations": variations, "generate.model_path": model_path,
                                        "generate.templates": template, "generate.guidance_scale": guidance,
                                        "generate.steps": steps, "generate.strength": strength,
                                        "generate.train_epochs": epochs, "generate.filter": filter_,
                                        "generate.filter_threshold": filter_threshold, "generate.audit": audit,
                                        "generate.balance_target": _count_or_rule(balance_target),
                                        "generate.device": device})
    result = run_generate(dataset, out, cfg.generate, seed=cfg.seed, executor=cfg.executor,
                          log=lambda line: console.print(line, highlight=False, markup=False),
                          upscaler=functools.partial(create_upscaler, cfg.generate.upscale_backend))
    made = result.manifest.filter(stage="generate")
    counts = made.frame.groupby("operation").size().to_dict() if len(made) else {}
    console.print(f"{len(made)} generate rows in {out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                  + (f"; filter and audit dropped {result.dropped}" if result.dropped else ""))
    if result.grid_path:
        console.print(f"grid: {result.grid_path}")
    audit = result.report.get("audit", {})
    if "near_copies" in audit:
        console.print(f"memorisation audit: {audit['near_copies']} near-copies, {audit['dropped']} dropped "
                      f"({out / audit['file']})")


def _count_or_rule(value: str | None) -> int | str | None:
    """``"12"`` → 12 (a count); any other text stays a rule name for the config to check."""
    return int(value) if value is not None and value.strip().isdigit() else value


@app.command("train")
@handle_errors
def train(dataset: Annotated[Path, typer.Argument(help="Dataset folder (its train split is learnt).")],
          model_dir: Annotated[Path, typer.Argument(help="Folder to save the model in (resumes from its checkpoint).")],
          epochs: Annotated[Optional[int], typer.Option(help="Epochs.")] = None,
          resolution: Annotated[Optional[int], typer.Option(help="Image side the UNet works at, px.")] = None,
          batch_size: Annotated[Optional[int], typer.Option(help="Batch size.")] = None,
          learning_rate: Annotated[Optional[float], typer.Option(help="AdamW learning rate.")] = None,
          source: Annotated[Optional[str], typer.Option(help="base (base images) or truth (HR truth_path).")] = None,
          max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes (resumable).")] = None,
          template: Annotated[Optional[list[str]], typer.Option(help="Prompt template with {class} (repeatable).")] = None,
          seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None,
          device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps (bf16 autocast on CUDA).")] = None,
          config: ConfigOption = None, set_: SetOption = None) -> None:
    """Train the embedded generator (small pixel-space UNet + MiniLM prompts) with classifier-free guidance.

    The settings are the run config's generate.train_* keys (what `flare run` trains), overridden by the options.
    """
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    cfg = resolve_config(config, set_, {"seed": seed, "generate.train_epochs": epochs,
                                        "generate.train_resolution_px": resolution,
                                        "generate.train_batch_size": batch_size, "generate.train_source": source,
                                        "generate.train_max_minutes": max_minutes, "generate.templates": template,
                                        "generate.device": device})
    training = EmbeddedTrainingConfig.from_config(cfg.generate, seed=cfg.seed, **given(learning_rate=learning_rate))
    result = train_embedded(dataset, model_dir, training, log=lambda line: console.print(line, highlight=False))
    console.print(f"trained {result.epochs_done} epochs on {result.images} images "
                  f"({result.seconds_per_epoch:.1f} s/epoch, final loss {result.final_loss:.4f}) → {model_dir}")


@app.command("quality")
@handle_errors
def quality(dataset: Annotated[Path, typer.Argument(help="A generated dataset folder.")],
            epochs: Annotated[Optional[int], typer.Option(help="Epochs of the real-data feature classifier.")] = None,
            resolution: Annotated[Optional[int], typer.Option(help="Side the feature classifier works at, px.")] = None,
            out: Annotated[Optional[Path], typer.Option(help="CSV to write (default DATASET/synthetic_quality.csv).")] = None,
            reference: Annotated[Optional[str], typer.Option(help="Real images to compare with: base or truth (HR truth_path).")] = None,
            seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None,
            generic: Annotated[Optional[bool], typer.Option("--generic/--no-generic", help="Also score in the ImageNet EfficientNet-Lite0 feature space (*_imagenet columns).")] = None) -> None:
    """Per class: FID/KID, precision/recall and real-classifier agreement with the prompt, in domain features
    and in ImageNet EfficientNet-Lite0 features."""
    from flare.core.dataset import Dataset
    from flare.metrics.synthetic import synthetic_quality

    opened = Dataset.open(dataset)
    report = synthetic_quality(opened.manifest, mirror_pairs=opened.taxonomy.mirror_pairs,
                               **given(epochs=epochs, resolution_px=resolution, seed=seed, reference=reference,
                                       generic=generic))
    path = out or dataset / "synthetic_quality.csv"
    report.table.to_csv(path, index=False)
    table = Table(*report.table.columns)
    for row in report.table.itertuples(index=False):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    console.print(f"real val balanced accuracy of the feature classifier: {report.real_val_accuracy:.3f} "
                  f"(chance {report.chance:.3f}); table → {path}")
