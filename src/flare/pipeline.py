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


# (name, function(config, workdir, outputs) -> output folder). Each stage adds its step here.
STEPS: list[tuple[str, Callable[[FlareConfig, Path, dict[str, Path]], Path]]] = [
    ("data", _step_data),
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
