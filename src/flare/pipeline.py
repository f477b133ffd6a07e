"""``flare run``: the whole method end to end on one work folder, resumable step by step.

Steps run in order; each writes one dataset folder under the work folder and is skipped when that folder's
manifest already exists (a crashed run resumes at the first unfinished step). With no ``data.source`` the
embedded default simulates a small survey with GalSim.

Each step folder holds ``flare_step.json``, written when the step starts: a hash of the config that makes its
outputs (the sections in :data:`STEP_SECTIONS` plus ``seed``, and the hashes of the steps it reads, so a change
upstream makes every step downstream stale too; ``executor`` is left out, outputs never depend on it). A re-run
whose config gives another hash for an existing step folder stops with one line naming the stale steps, before
anything is written; with ``rerun_stale`` (``flare run --rerun-stale``) the first stale step's folder and every
later step's folder are renamed ``<step>.stale-<n>`` (never deleted) and made again. ``config.yaml`` is written
only once that check has passed, so it always describes the step folders beside it. A step folder made by an
older FLARE has no record: it is treated as matching the current config and recorded then.

One run at a time per work folder: ``.flare.lock`` holds the running process's PID (created with ``O_EXCL``); a
second run stops with one line naming that PID, and a lock whose PID is no longer alive is taken over with a
warning.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flare.core.config import FlareConfig
from flare.core.errors import FlareError
from flare.core.files import atomic_write_bytes, prepare_output_dir
from flare.core.lock import pid_lock
from flare.core.manifest import Manifest

__all__ = ["run_pipeline", "PipelineResult", "STEPS", "STEP_SECTIONS", "STEP_INPUTS", "RECORD_NAME", "LOCK_NAME",
           "step_hashes", "run_train_fractions", "fraction_folder"]

RECORD_NAME = "flare_step.json"
LOCK_NAME = ".flare.lock"


@dataclass
class PipelineResult:
    workdir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    moved_aside: dict[str, Path] = field(default_factory=dict)  # stale step → where its old folder went


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
    from flare.augment.loader import load_row_image
    from flare.combine import combine_datasets

    out = workdir / "combine"
    source = outputs.get("augment") or outputs.get("upscale") or outputs["data"]
    synthetic = outputs.get("generate")
    # The value rule scores lazy augmentation types by rendering their recipes: augment's renderer, handed over.
    combine_datasets(source, out, config.combine, seed=config.seed, synthetic=synthetic, render=load_row_image)
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


def _step_fractions(config: FlareConfig, workdir: Path, outputs: dict[str, Path]) -> Path:
    """Data-efficiency curves when ``benchmark.train_fractions`` holds fractions below 1 (else nothing)."""
    out = workdir / "fractions"
    if any(f < 1 for f in config.benchmark.train_fractions):
        run_train_fractions(config, workdir)
    (out / "DONE").write_text("ok\n")
    return out


def fraction_folder(workdir: Path, fraction: float) -> Path:
    return workdir / "fractions" / f"train-{fraction:g}"


def run_train_fractions(config: FlareConfig, workdir: str | Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Stages 1–4 and the benchmark again on nested subsets of the real train origins (val and test whole), one
    work folder per fraction below 1 (``fractions/train-<f>/``, resumable like any run); then
    ``benchmark/efficiency.json`` across all fractions. The full run (fraction 1) is ``workdir`` itself, whose
    benchmark must exist."""
    from flare.classify.efficiency import efficiency_summary
    from flare.data.split import write_train_subset

    workdir = Path(workdir)
    benchmarks: dict[float, Path] = {}
    single = config.model_copy(update={"benchmark": config.benchmark.model_copy(update={"train_fractions": [1.0]})})
    for fraction in config.benchmark.train_fractions:
        if fraction >= 1:
            benchmarks[1.0] = workdir / "benchmark"
            continue
        folder = fraction_folder(workdir, fraction)
        if not Manifest.exists(folder / "data"):
            kept = write_train_subset(workdir / "data", folder / "data", fraction, config.seed)
            log(f"[fractions] train fraction {fraction:g}: {kept} train images in {folder / 'data'}")
        run_pipeline(single, folder, log=lambda line, f=fraction: log(f"[train {f:g}] {line}"))
        benchmarks[fraction] = folder / "benchmark"
    return efficiency_summary(benchmarks, workdir / "benchmark" / "efficiency.json", config.seed)


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
    # Keep these last: they read every earlier stage's folder and tolerate missing ones.
    ("benchmark", _step_benchmark),
    ("fractions", _step_fractions),
    ("report", _step_report),
]


# Config sections each step's outputs depend on, besides ``seed``; a step not named here: its own section.
# (``data`` uses ``simulate`` only when it simulates, i.e. with no ``data.source``.)
STEP_SECTIONS: dict[str, tuple[str, ...]] = {"data": ("data", "simulate"), "fractions": ("benchmark",), "report": ()}
# Keys left out of a step's hash: the fraction list is the ``fractions`` step's business, not the benchmark's.
STEP_IGNORES: dict[str, dict[str, tuple[str, ...]]] = {"benchmark": {"benchmark": ("train_fractions",)}}
# Steps whose folders each step reads; a step not named here (benchmark, report): every earlier step.
STEP_INPUTS: dict[str, tuple[str, ...]] = {"data": (), "upscale": ("data",), "augment": ("data", "upscale"),
                                           "generate": ("data", "upscale"),
                                           "combine": ("data", "upscale", "augment", "generate")}


def _sections(config: FlareConfig, name: str) -> dict[str, Any]:
    names = STEP_SECTIONS.get(name, (name,) if name in type(config).model_fields else ())
    if name == "data" and config.data.source:
        names = tuple(n for n in names if n != "simulate")
    ignored = STEP_IGNORES.get(name, {})
    return {section: getattr(config, section).model_dump(mode="json", exclude=set(ignored.get(section, ())))
            for section in names}


def _record(config: FlareConfig, name: str, inputs: dict[str, str]) -> dict[str, Any]:
    content = {"step": name, "seed": config.seed, "sections": _sections(config, name), "inputs": inputs}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return {"config_hash": digest, **content}


def step_hashes(config: FlareConfig, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """The record (``config_hash``, ``seed``, ``sections``, ``inputs``) each step's folder should hold."""
    names = names if names is not None else [name for name, _ in STEPS]
    records: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        reads = STEP_INPUTS.get(name, tuple(names[:index]))
        records[name] = _record(config, name, {i: records[i]["config_hash"] for i in reads if i in records})
    return records


def _read_record(folder: Path) -> dict[str, Any] | None | str:
    """The folder's record; None when there is none (an older FLARE); "unreadable" when it does not parse."""
    path = folder / RECORD_NAME
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "unreadable"
    return record if isinstance(record, dict) and "config_hash" in record else "unreadable"


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _why_stale(old: dict[str, Any] | str, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "its flare_step.json is unreadable"
    before = _flat({"seed": old.get("seed"), **(old.get("sections") or {})})
    after = _flat({"seed": new["seed"], **new["sections"]})
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    reasons = [f"{key} {before.get(key)!r} -> {after.get(key)!r}" for key in changed[:3]]
    if len(changed) > 3:
        reasons.append(f"{len(changed) - 3} more")
    upstream = sorted(k for k in new["inputs"] if (old.get("inputs") or {}).get(k) != new["inputs"][k])
    if upstream:
        reasons.append("upstream " + ", ".join(upstream))
    return "; ".join(reasons) or "config changed"


def _aside(folder: Path) -> Path:
    n = 1
    while (target := folder.with_name(f"{folder.name}.stale-{n}")).exists():
        n += 1
    return target


def run_pipeline(config: FlareConfig, workdir: str | Path | None = None, *, log: Callable[[str], None] = print,
                 rerun_stale: bool = False) -> PipelineResult:
    """Run (or resume) every step in ``workdir`` (default ``config.workdir``); see the module docstring for the
    stale-config check, ``rerun_stale`` and the lock. A work folder from an older FLARE (step folders with no
    ``flare_step.json``) is treated as matching ``config`` and recorded now."""
    workdir = prepare_output_dir(Path(workdir or config.workdir).expanduser())
    with pid_lock(workdir / LOCK_NAME, f"work folder {str(workdir)!r}", "flare run", log):
        return _run_locked(config, workdir, log, rerun_stale)


def _done(folder: Path) -> bool:
    return Manifest.exists(folder) or (folder / "DONE").exists()


def _run_locked(config: FlareConfig, workdir: Path, log: Callable[[str], None], rerun_stale: bool) -> PipelineResult:
    names = [name for name, _ in STEPS]
    expected = step_hashes(config, names)
    stale: dict[str, str] = {}
    unrecorded: list[str] = []
    for name in names:
        folder = workdir / name
        if not folder.is_dir():
            continue
        record = _read_record(folder)
        if record is None:
            unrecorded.append(name)  # an older FLARE's step (or one it left half done): taken as matching
        elif not isinstance(record, dict) or record["config_hash"] != expected[name]["config_hash"]:
            stale[name] = _why_stale(record, expected[name])
    result = PipelineResult(workdir)
    if stale:
        listed = ", ".join(f"{name} ({why})" for name, why in stale.items())
        if not rerun_stale:
            raise FlareError(f"work folder {str(workdir)!r} has steps made with another config: {listed}; "
                             "config.yaml and the outputs are left as they are. Re-run with --rerun-stale to "
                             "rename them and every later step to <step>.stale-<n> and make them again, or use "
                             "another --workdir")
        first = min(names.index(name) for name in stale)
        previous = workdir / "config.yaml"
        previous_text = previous.read_bytes() if previous.is_file() else None
        for name in names[first:]:
            folder = workdir / name
            if folder.exists():
                target = _aside(folder)
                folder.rename(target)
                result.moved_aside[name] = target
                if previous_text is not None and not (target / "config.yaml").exists():
                    atomic_write_bytes(target / "config.yaml", previous_text)  # the config that made it
                log(f"[{name}] stale ({stale.get(name, 'after a stale step')}): moved aside to {target}")
        unrecorded = [name for name in unrecorded if name not in result.moved_aside]
    for name in unrecorded:
        _write_record(workdir / name, expected[name])
    # only now: every step folder left matches this config, so config.yaml tells the truth about them
    atomic_write_bytes(workdir / "config.yaml", _dump(config).encode())
    for name, step in STEPS:
        folder = workdir / name
        if _done(folder):
            result.outputs[name] = folder
            result.skipped.append(name)
            log(f"[{name}] already done: {folder}")
            continue
        log(f"[{name}] running")
        _write_record(folder, expected[name])  # before any output, so a crashed step's folder is checked too
        result.outputs[name] = step(config, workdir, result.outputs)
        log(f"[{name}] done: {result.outputs[name]}")
    return result


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    prepare_output_dir(folder)
    atomic_write_bytes(folder / RECORD_NAME, (json.dumps(record, sort_keys=True, indent=1) + "\n").encode())


def _dump(config: FlareConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(), sort_keys=False)
