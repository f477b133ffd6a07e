"""The generate stage: plan text-to-image and variation jobs, run them with a worker, write the manifest.

Every synthetic image is a train-split row of stage ``generate`` with operation ``t2i`` (a fresh origin id, no
parents) or ``i2i-variation`` (its parent's origin id and ``parent_ids``). Its seed is derived from the run
seed and its own id, and ``params`` holds prompt, guidance, steps, strength, scheduler, the backend's frozen
config and how it was brought to the dataset's size, so any image can be remade alone.

With ``generate.chirality: mirror`` a job of the second class of a mirror pair (anticlockwise) is made for the
first class's prompt and mirrored left-right (a variation mirrors its parent in and the result back); its row
keeps its own label, and ``params`` records ``mirrored`` and the ``sampled_label``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from flare.core.config import ExecutorConfig, GenerateConfig
from flare.core.dataset import Dataset, derive_row
from flare.core.errors import ConfigError, ManifestError
from flare.core.files import atomic_write_bytes, output_is_valid, prepare_output_dir, sha256_bytes
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest, base_images, derived_id
from flare.core.seeding import derive_seed
from flare.core.symmetry import mirrored_classes
from flare.core.taxonomy import Taxonomy
from flare.generate.prompts import PromptBuilder

__all__ = ["GenerateWorker", "GenerateResult", "plan_jobs", "plan_counts", "balance_counts", "sampling_mirrors", "run_generate",
           "ensure_embedded_model", "T2I_OPERATION", "VARIATION_OPERATION", "REPORT_NAME"]

T2I_OPERATION = "t2i"
VARIATION_OPERATION = "i2i-variation"
EMBEDDED_MODEL_FOLDER = "embedded-model"
JOB_COLUMNS = ["id", "label", "macro_label", "origin_id", "operation", "prompt", "sampled_label", "mirrored", "seed",
               "parent_id", "parent_path"]
REPORT_NAME = "generate_report.json"  # beside the manifest: per-class counts, the filter and the audit summary


@dataclass
class GenerateResult:
    manifest: Manifest
    generated: int
    dropped: int = 0
    model_path: str | None = None
    grid_path: Path | None = None
    quality: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # what generate_report.json holds


def balance_counts(real: dict[str, int], per_class: int | str = "balance", target: int | str = "median",
                   minimum: int = 0) -> dict[str, dict[str, int | None]]:
    """``{class: {"real", "target", "t2i"}}``: how many text-to-image images each class gets.

    ``per_class="balance"`` fills each class up to ``target`` real + synthetic images ("median" or "max" of the
    real counts, rounded up, or an int), as DiffuLT generates only for the tail; a class at or above the target
    gets ``minimum`` (0: none). An int ``per_class`` gives every class that many (``target`` is then None)."""
    if per_class != "balance":
        return {label: {"real": n, "target": None, "t2i": int(per_class)} for label, n in sorted(real.items())}
    counts = np.array(list(real.values()), dtype=float)
    if target == "median":
        goal = int(np.ceil(np.median(counts)))
    elif target == "max":
        goal = int(counts.max())
    elif isinstance(target, int):
        goal = target
    else:
        raise ConfigError(f"generate.balance_target: {target!r} is not median, max or an int")
    return {label: {"real": n, "target": goal, "t2i": max(goal - n, minimum)} for label, n in sorted(real.items())}


def plan_counts(manifest: Manifest, config: GenerateConfig) -> dict[str, dict[str, int | None]]:
    """:func:`balance_counts` for the train-split base images of ``manifest`` under ``config``."""
    sources = base_images(manifest).filter(split="train")
    if not len(sources):
        raise ManifestError("generate: the dataset has no train-split base images")
    real = {str(k): int(v) for k, v in sources.frame["label"].value_counts().items()}
    return balance_counts(real, config.per_class, config.balance_target, config.balance_min)


def plan_jobs(manifest: Manifest, taxonomy: Taxonomy, config: GenerateConfig, seed: int) -> pd.DataFrame:
    """One row per image to make: id, label, prompt, seed, operation, origin and parent (for variations).

    Text-to-image counts per class come from :func:`plan_counts`; variations stay per source image (at most
    ``variation_max_per_class`` sources per class), the same for every class: each restyles one real train
    image, so it adds views of existing objects rather than new ones, and the cap already bounds its cost.

    ``sampled_label`` is the class whose prompt is used: the job's own, or with ``chirality: mirror`` the
    canonical class of its mirror pair (``mirrored`` true: the result is mirrored into the job's class)."""
    prompts = PromptBuilder(taxonomy, tuple(config.templates), dict(config.class_prompts))
    sources = base_images(manifest).filter(split="train")
    counts = plan_counts(manifest, config)
    mirrors = sampling_mirrors(counts, taxonomy, config)
    jobs: list[dict[str, Any]] = []
    for label in sorted(counts):
        sampled = mirrors.get(label, label)
        for index in range(int(counts[label]["t2i"])):
            job_id = f"generate-t2i-{_safe(label)}-{index:04d}"
            jobs.append({"id": job_id, "label": label, "macro_label": taxonomy.macro(label), "origin_id": job_id,
                         "operation": T2I_OPERATION, "prompt": prompts.prompt(sampled, index),
                         "sampled_label": sampled, "mirrored": sampled != label,
                         "seed": derive_seed(seed, "generate", job_id), "parent_id": "", "parent_path": ""})
    if config.variations:
        if config.variation_source == "t2i":
            parents = [dict(j, path="") for j in jobs if j["operation"] == T2I_OPERATION]
        else:
            parents = [dict(r, path=str(sources.resolve(r["path"])))
                       for r in sources.frame.sort_values("id").to_dict("records")]
        per_class: dict[str, int] = {}
        for parent in parents:
            count = per_class.get(parent["label"], 0)
            if config.variation_max_per_class is not None and count >= config.variation_max_per_class:
                continue
            per_class[parent["label"]] = count + 1
            sampled = mirrors.get(parent["label"], parent["label"])
            for variant in range(config.variations):
                job_id = derived_id(parent["id"], "generate", f"-var{variant}")
                jobs.append({"id": job_id, "label": parent["label"], "macro_label": taxonomy.macro(parent["label"]),
                             "origin_id": parent["origin_id"], "operation": VARIATION_OPERATION,
                             "prompt": prompts.prompt(sampled, variant), "sampled_label": sampled,
                             "mirrored": sampled != parent["label"],
                             "seed": derive_seed(seed, "generate", job_id), "parent_id": parent["id"],
                             "parent_path": parent["path"]})
    return pd.DataFrame(jobs, columns=JOB_COLUMNS)


def sampling_mirrors(counts: dict[str, Any], taxonomy: Taxonomy, config: GenerateConfig) -> dict[str, str]:
    """``{class: canonical class}`` for the classes made by mirroring (``chirality: mirror``; empty for
    ``learn``): the second class of each mirror pair with both classes in the train split, as the embedded
    generator learns them (:func:`flare.generate.train_embedded.view_rule`)."""
    return mirrored_classes(counts, taxonomy.mirror_pairs) if config.chirality == "mirror" else {}


def _safe(label: str) -> str:
    return label.replace(" ", "_")


class GenerateWorker:
    """Builds the backend once, then maps job rows to manifest rows (skipping outputs that already decode)."""

    def __init__(self, out: str, backend: str, backend_options: dict[str, Any], settings: dict[str, Any]):
        from flare.generate.registry import create_generator
        from flare.generate.resize import SizeMatcher

        self.out = Path(out)
        self.backend = create_generator(backend, **backend_options)
        self.settings = settings
        self.resize = SizeMatcher(settings["target_px"], settings["upscaler"], settings["upscale_backend"])

    def _target(self, job: dict[str, Any]) -> Path:
        return self.out / "generated" / _safe(job["label"]) / f"{job['id']}.png"

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        jobs = batch.to_dict("records")
        rows: list[dict[str, Any]] = []
        todo_t2i, todo_var = [], []
        for job in jobs:
            target = self._target(job)
            if output_is_valid(target) and self._sidecar(target) is not None:
                continue
            (todo_t2i if job["operation"] == T2I_OPERATION else todo_var).append(job)
        s = self.settings
        if todo_t2i:
            output = self.backend.text_to_image([j["prompt"] for j in todo_t2i], [int(j["seed"]) for j in todo_t2i],
                                                guidance_scale=s["guidance_scale"], num_inference_steps=s["steps"])
            self._write(todo_t2i, output)
        if todo_var:
            # a mirrored job varies its parent seen in the canonical sense; _write mirrors the result back
            parents = [_mirror(self._parent_image(j)) if j["mirrored"] else self._parent_image(j) for j in todo_var]
            output = self.backend.variation(parents, [j["prompt"] for j in todo_var], [int(j["seed"]) for j in todo_var],
                                            strength=s["strength"], guidance_scale=s["guidance_scale"],
                                            num_inference_steps=s["steps"])
            self._write(todo_var, output)
        for job in jobs:
            rows.append(self._row(job))
        return pd.DataFrame(rows)

    def _parent_image(self, job: dict[str, Any]) -> np.ndarray:
        if job["parent_path"]:
            return load_rgb(job["parent_path"])
        # a variation of a t2i image: that image is written earlier in the same run (t2i jobs come first)
        parent = dict(job, id=job["parent_id"])
        return load_rgb(self._target(parent))

    def _write(self, jobs: list[dict[str, Any]], output) -> None:
        images, record = self.resize(output.images)
        for job, image, params in zip(jobs, images, output.params):
            if job["mirrored"]:
                image = _mirror(image)
            params = {**params, "mirrored": bool(job["mirrored"]), "sampled_label": job["sampled_label"]}
            target = self._target(job)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, image)
            sidecar = {**params, **record}
            # atomic, like the image: a torn sidecar must never sit beside a good image under its final name
            atomic_write_bytes(target.with_suffix(".json"), json.dumps(sidecar, sort_keys=True).encode())

    @staticmethod
    def _sidecar(target: Path) -> dict[str, Any] | None:
        """The image's parameters sidecar, or None when it is missing, torn or not a JSON object (older runs
        wrote it in place): the caller then treats the image as not made yet and makes it again."""
        try:
            sidecar = json.loads(target.with_suffix(".json").read_text())
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return None
        return sidecar if isinstance(sidecar, dict) else None

    def _row(self, job: dict[str, Any]) -> dict[str, Any]:
        target = self._target(job)
        generated = self._sidecar(target)
        if generated is None:  # only if something removed it after this batch wrote it
            raise ManifestError(f"generate: sidecar {str(target.with_suffix('.json'))!r} is missing or unreadable; "
                                "re-run to make that image again")
        params = {**generated, "backend_config": self.backend.config.to_dict(),
                  "operation": job["operation"], "prompt": job["prompt"]}
        return derive_row(None, id=job["id"], path=str(target.relative_to(self.out)),
                          sha256=sha256_bytes(target.read_bytes()), label=job["label"], macro_label=job["macro_label"],
                          origin_id=job["origin_id"], split="train", stage="generate", operation=job["operation"],
                          params=json.dumps(params, sort_keys=True, default=str), seed=int(job["seed"]),
                          backend=self.backend.name, model_id=self.backend.model_id,
                          model_hash=self.backend.model_hash,
                          parent_ids=[job["parent_id"]] if job["parent_id"] else [])


def _mirror(image: np.ndarray) -> np.ndarray:
    """Left-right mirror of an (H, W, C) image: a spiral's sense of rotation reversed."""
    return np.ascontiguousarray(image[:, ::-1])


def ensure_embedded_model(dataset: Path, out: Path, config: GenerateConfig, seed: int,
                          log: Callable[[str], None] | None = None) -> Path:
    """The embedded model to use: ``generate.model_path``, or one trained now into ``OUT/embedded-model``."""
    if config.model_path:
        return Path(config.model_path)
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    model_dir = out / EMBEDDED_MODEL_FOLDER
    summary = model_dir / "training.json"
    if summary.is_file() and json.loads(summary.read_text()).get("epochs_done", 0) >= config.train_epochs:
        return model_dir
    training = EmbeddedTrainingConfig.from_config(config, seed=seed)
    train_embedded(dataset, model_dir, training, log=log)
    return model_dir


def _target_size(sources: Manifest) -> int:
    """The side of the dataset's train base images (their median, for mixed sizes)."""
    from PIL import Image

    sides = []
    for path in sources.frame["path"].head(32):
        with Image.open(sources.resolve(path)) as image:
            sides.append(max(image.size))
    return int(np.median(sides))


def run_generate(dataset: str | Path, out: str | Path, config: GenerateConfig | None = None, *, seed: int = 0,
                 executor: ExecutorConfig | None = None, log: Callable[[str], None] | None = None,
                 grid: bool = True, upscaler: Callable[..., Any] | None = None) -> GenerateResult:
    """Generate synthetic train images for ``dataset`` into ``out`` (a dataset folder: input rows + new rows).

    ``upscaler(scale=s)`` builds the stage-1 backend that brings generated images up to the dataset's size when
    ``generate.upscale`` is on (``pipeline.py`` and the CLI pass ``functools.partial(create_upscaler,
    config.upscale_backend)``); without one they are resized bicubically."""
    from flare.executors import map_batches

    config = config or GenerateConfig()
    dataset, out = Path(dataset), Path(out)
    source_dataset = Dataset.open(dataset)
    manifest, taxonomy = source_dataset.manifest, source_dataset.taxonomy
    prepare_output_dir(out)
    jobs = plan_jobs(manifest, taxonomy, config, seed)
    sources = base_images(manifest).filter(split="train")
    options: dict[str, Any] = {"model_path": config.model_path, "device": config.device}
    model_path = None
    if config.backend == "embedded":
        from flare.generate.embedded import trained_mirrors

        model_path = str(ensure_embedded_model(dataset, out, config, seed, log))
        options = {"model_path": model_path, "scheduler": config.scheduler, "device": config.device}
        unlearnt = trained_mirrors(model_path)
        if unlearnt and config.chirality != "mirror":
            raise ConfigError(f"generate.chirality: the model {model_path!r} learnt no prompt for "
                              f"{', '.join(unlearnt)} (it makes them by mirroring); sample it with chirality: mirror")
    settings = {"guidance_scale": config.guidance_scale, "steps": config.steps, "strength": config.strength,
                "target_px": _target_size(sources), "upscaler": upscaler if config.upscale else None,
                "upscale_backend": config.upscale_backend}
    # t2i jobs first, so a variation of a t2i image finds its parent written
    jobs = jobs.assign(_order=(jobs["operation"] != T2I_OPERATION).astype(int)).sort_values(["_order", "id"])
    jobs = jobs.drop(columns="_order").reset_index(drop=True)
    executor = (executor or ExecutorConfig()).model_copy(update={"batch_size": config.batch_size})
    rows = pd.DataFrame()
    for operation in (T2I_OPERATION, VARIATION_OPERATION):
        part = jobs[jobs["operation"] == operation].reset_index(drop=True)
        if len(part):
            made = map_batches(GenerateWorker, part, worker_kwargs={"out": str(out), "backend": config.backend,
                                                                     "backend_options": options, "settings": settings},
                               executor=executor, description=f"generate {operation}", checkpoint_dir=out)
            rows = pd.concat([rows, made], ignore_index=True)
    records = rows.to_dict("records") if len(rows) else []
    derived = source_dataset.derive(out)
    result_manifest = derived.manifest.append(records)
    dropped = 0
    quality = None
    judgement = None
    if (config.filter != "none" or config.audit) and records:
        from flare.generate.filtering import AUDIT_NAME, judge_synthetic

        judgement = judge_synthetic(result_manifest, config, seed)
        result_manifest = judgement.manifest
        dropped = len(judgement.dropped_filter) + len(judgement.dropped_audit)
        if judgement.audit is not None:
            atomic_write_bytes(out / AUDIT_NAME, _json_bytes(judgement.audit.summary))
        if log:
            log(f"generate: {len(records)} made; filter {config.filter} (threshold {config.filter_threshold}) dropped "
                f"{len(judgement.dropped_filter)}, memorisation audit dropped {len(judgement.dropped_audit)}")
    report = _generate_report(plan_counts(manifest, config), config, jobs, records, judgement)
    atomic_write_bytes(out / REPORT_NAME, _json_bytes(report))
    derived.with_manifest(result_manifest).write()
    grid_path = None
    if grid and len(result_manifest.filter(stage="generate", operation=T2I_OPERATION)):
        from flare.generate.grid import save_class_grid

        grid_path = save_class_grid(result_manifest, out / "grid_t2i.png", operation=T2I_OPERATION, taxonomy=taxonomy)
    return GenerateResult(result_manifest, len(records), dropped, model_path, grid_path, quality, report=report)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n").encode()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _generate_report(counts: dict[str, dict[str, Any]], config: GenerateConfig, jobs: pd.DataFrame,
                     records: list[dict[str, Any]], judgement: Any) -> dict[str, Any]:
    """What ``generate_report.json`` holds: the plan rule and, per class, real / target / planned / generated
    / dropped by the filter / dropped by the audit / kept."""
    planned = jobs.groupby(["label", "operation"]).size().to_dict() if len(jobs) else {}
    made = pd.DataFrame(records, columns=["id", "label", "operation"]) if records else pd.DataFrame(
        columns=["id", "label", "operation"])
    dropped_filter = judgement.dropped_filter if judgement is not None else set()
    dropped_audit = judgement.dropped_audit if judgement is not None else set()
    classes: dict[str, dict[str, Any]] = {}
    for label, count in counts.items():
        ids = set(made.loc[made["label"] == label, "id"])
        classes[label] = {"real": count["real"], "target": count["target"],
                          "t2i_planned": int(planned.get((label, T2I_OPERATION), 0)),
                          "variations_planned": int(planned.get((label, VARIATION_OPERATION), 0)),
                          "generated": len(ids), "dropped_filter": len(ids & dropped_filter),
                          "dropped_audit": len(ids & dropped_audit),
                          "kept": len(ids - dropped_filter - dropped_audit)}
    report: dict[str, Any] = {
        "per_class": config.per_class, "balance_target": config.balance_target, "balance_min": config.balance_min,
        "rule": ("t2i per class = max(target - real, balance_min), target = "
                 f"{config.balance_target} of the real train counts" if config.per_class == "balance"
                 else f"t2i per class = {config.per_class} for every class"),
        "variations": {"per_source": config.variations, "source": config.variation_source,
                       "max_sources_per_class": config.variation_max_per_class},
        "classes": classes,
        "chirality": {"rule": config.chirality,
                      "mirrored": ({str(r["label"]): str(r["sampled_label"]) for r in jobs[jobs["mirrored"]].to_dict("records")}
                                   if len(jobs) else {})},
        "filter": judgement.filter if judgement is not None else {"method": config.filter,
                                                                   "threshold": config.filter_threshold},
        "audit": ({"file": judgement.audit_file, "near_copies": judgement.audit.summary["near_copies"],
                   "dropped": len(dropped_audit), "spaces": sorted(judgement.audit.summary["spaces"])}
                  if judgement is not None and judgement.audit is not None else
                  {"enabled": config.audit, **({"skipped": judgement.audit_skipped}
                                               if judgement is not None and judgement.audit_skipped else {})}),
    }
    return report
