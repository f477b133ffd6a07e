"""``flare run``: the whole method end to end on one work folder, resumable step by step.

Steps run in order; each writes one dataset folder under the work folder and is skipped when that folder's
manifest already exists (a crashed run resumes at the first unfinished step). With no ``data.source`` the
embedded default simulates a small survey with GalSim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flare.core.config import FlareConfig
from flare.core.manifest import Manifest

__all__ = ["run_pipeline", "PipelineResult", "STEPS"]


@dataclass
class PipelineResult:
    workdir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _step_data(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    out = workdir / "data"
    if config.data.source:
        from flare.data.ingest import ingest

        ingest(config.data.source, out, config.data, seed=config.seed, taxonomy=config.data.taxonomy)
    else:
        from flare.data.simulate import simulate_survey

        simulate_survey(out, config.simulate, seed=config.seed, split=config.data.split)
    return out


def _step_upscale(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Stage 1: super-resolve the data folder (``auto``: swinir-trained if a model exists, else bicubic)."""
    from flare.upscale.stage import upscale_dataset

    out = workdir / "upscale"
    upscale_dataset(outputs["data"], out, config.upscale, executor=config.executor)
    return out


def _step_augment(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Stage 2 on the upscaled images when stage 1 ran, else on the data folder."""
    from flare.augment.stage import augment_dataset

    out = workdir / "augment"
    source = outputs.get("upscale") or outputs["data"]
    augment_dataset(source, out, config.augment, seed=config.seed, executor=config.executor)
    return out


def _step_generate(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Stage 3 on the upscaled images when stage 1 ran, else on the data folder (embedded: trains first).

    Generated images reach the dataset's size through stage 1's upscaler, handed to stage 3 as a component."""
    import functools

    from flare.generate.stage import run_generate
    from flare.upscale import create_upscaler

    out = workdir / "generate"
    source = outputs.get("upscale") or outputs["data"]
    run_generate(source, out, config.generate, seed=config.seed, executor=config.executor,
                 upscaler=functools.partial(create_upscaler, config.generate.upscale_backend))
    return out


def _step_combine(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Stage 4: the augment folder (or the latest earlier one) + the generate folder when that step ran."""
    from flare.combine import combine_datasets

    out = workdir / "combine"
    source = outputs.get("augment") or outputs.get("upscale") or outputs["data"]
    synthetic = outputs.get("generate")
    combine_datasets(source, out, config.combine, seed=config.seed, synthetic=synthetic)
    if config.combine.export:
        from flare.augment.stage import export_lazy

        export_lazy(out)
    return out


def _step_benchmark(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Train the preset's classifiers on every method whose stage folder exists (missing ones are noted)."""
    from flare.augment.loader import load_row_image
    from flare.classify.benchmark import run_benchmark, settings_from_config

    out = workdir / "benchmark"
    run_benchmark(workdir, settings_from_config(config.benchmark), out, render=load_row_image)
    return out


def _step_report(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    from flare.report.html import build_report

    out = workdir / "report"
    build_report(workdir, out / "report.html")
    (out / "DONE").write_text("ok\n")
    return out


# (name, function(config, workdir, outputs) -> output folder). Each stage adds its step here.
STEPS: list[tuple[str, Callable[[FlareConfig, Path, dict[str, Path]], Path]]] = [
    ("data", _step_data),
    ("upscale", _step_upscale),
    ("augment", _step_augment),
    ("generate", _step_generate),
    ("combine", _step_combine),
    # Keep these two last: they read every earlier stage's folder and tolerate missing ones.
    ("benchmark", _step_benchmark),
    ("report", _step_report),
]


def run_pipeline(config: FlareConfig, workdir: str | Path | None = None, *, log: Callable[[str], None] = print) -> PipelineResult:
    workdir = Path(workdir or config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(_dump(config))
    result = PipelineResult(workdir)
    for name, step in STEPS:
        expected = workdir / name
        if Manifest.exists(expected) or (expected / "DONE").exists():
            result.outputs[name] = expected
            result.skipped.append(name)
            log(f"[{name}] already done: {expected}")
            continue
        log(f"[{name}] running")
        result.outputs[name] = step(config, workdir, result.outputs)
        log(f"[{name}] done: {result.outputs[name]}")
    return result


def _dump(config: FlareConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(), sort_keys=False)
