"""One YAML file per run, validated by pydantic models (one per stage); CLI flags override file values.

Precedence, lowest first: model defaults < YAML file < ``--set section.key=value`` / dedicated flags.
A bad value raises :class:`ConfigError` with one line: ``upscale.scale: Input should be 2, 4 or 8, got 3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flare.core.errors import ConfigError

__all__ = [
    "FlareConfig", "DataConfig", "SplitConfig", "SimulateConfig", "UpscaleConfig", "AugmentConfig",
    "GenerateConfig", "CombineConfig", "BenchmarkConfig", "ExecutorConfig",
    "load_config", "apply_overrides", "format_validation_error", "default_config_yaml",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(_Section):
    """Origin-level stratified split made at ingest, before anything is generated."""

    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class DataConfig(_Section):
    """Ingestion: where images come from and how non-8-bit data becomes 8-bit."""

    source: str | None = None  # folder of class folders, or CSV/Parquet of path,label[,origin]
    taxonomy: str | None = None  # preset name (gz1, spacenet, sim) or a YAML path; None: macro label = fine label
    # where an image's origin comes from when the table gives none: its path in the source ("path": class folder
    # + file name, for numbered ImageFolder sets) or the file stem alone ("stem": the file name is the object id)
    origin_from: Literal["path", "stem"] = "path"
    split: SplitConfig = SplitConfig()
    storage: Literal["auto", "convert", "reference"] = "auto"
    fits_hdu: int | str | None = None
    interval: Literal["percentile", "zscale", "minmax"] = "percentile"
    percentile_low: float = Field(0.5, ge=0, lt=50)
    percentile_high: float = Field(99.9, gt=50, le=100)
    stretch: Literal["linear", "asinh", "log", "sqrt"] = "asinh"
    stretch_a: float = Field(0.1, gt=0)
    background_clip: bool = True
    background_sigma: float = Field(3.0, ge=0)
    grey_policy: Literal["rgb", "keep", "reject"] = "rgb"
    alpha_policy: Literal["flatten", "reject"] = "flatten"
    max_pixels: int = Field(64_000_000, gt=0)
    min_side_px: int = Field(8, ge=1)
    workers: int = Field(2, ge=1)


class SimulateConfig(_Section):
    """The embedded default survey (GalSim): HR truth and a ×factor coarser LR observation per object."""

    # Caps on sizes and counts (here and below) stop a typo such as 1e20 before it fills a disk: at most
    # MAX_COUNT (100 000) objects, images or variants per class, MAX_SIDE_PX (4096) px a side, MAX_K (1000) per image.
    objects_per_class: int = Field(40, ge=1, le=100_000)  # ≤ MAX_COUNT
    classes: list[str] = ["elliptical", "edge_on", "spiral_clockwise", "spiral_anticlockwise", "merger", "star"]
    hr_size_px: int = Field(96, ge=16, le=4096)  # ≤ MAX_SIDE_PX
    factor: int = Field(4, ge=2, le=8)
    hr_pixel_scale_arcsec: float = Field(0.1, gt=0)
    hr_psf_fwhm_arcsec: float = Field(0.25, gt=0)
    lr_psf_fwhm_arcsec: float = Field(1.0, gt=0)
    sky_level: float = Field(4.0, ge=0)  # LR sky, in the 8-bit stretched units before noise
    read_noise: float = Field(2.0, ge=0)
    gain: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _divisible(self) -> "SimulateConfig":
        if self.hr_size_px % self.factor:
            raise ValueError(f"hr_size_px ({self.hr_size_px}) must be divisible by factor ({self.factor})")
        return self


class UpscaleConfig(_Section):
    backend: str = "auto"  # "auto" = the faithful default: swinir-trained if a model exists, else bicubic
    # None: a network's own scale; for bicubic/lanczos the dataset's recorded binning factor, else 4
    scale: Literal[2, 4, 8] | None = None
    weights: str | None = None  # weight file for the `file`/`swinir` backends
    tile_px: int = Field(256, ge=16, le=4096)  # ≤ MAX_SIDE_PX
    tile_overlap_px: int = Field(16, ge=0)
    batch_size: int = Field(8, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    format: Literal["png", "jpeg", "webp"] = "png"


class AugmentConfig(_Section):
    """Stage 2: K recorded variants per train image and preset (deterministic presets are capped: hflip 1).

    ``presets`` names presets or preset *sets* (``PRESET_SETS``); a set expands to its members on validation,
    so the validated list, ``config.yaml`` and every manifest row name the presets that ran. No preset is in
    two sets, so the ``operation`` of an augment row tells its set (``preset_set_of``).
    """

    # astro (the default): the symmetries of the sky and what real observations vary by; colour is physics,
    # so nothing changes a pixel's hue or saturation. paper: the original work's five types, as published.
    PRESET_SETS: ClassVar[dict[str, tuple[str, ...]]] = {
        "astro": ("d4", "shift_scale", "psf_blur", "noise", "brightness_contrast"),
        "paper": ("hflip", "color_jitter", "flip_color_jitter", "resized_crop", "perspective"),
    }

    k: int = Field(5, ge=0, le=1000)  # ≤ MAX_K variants per train image and preset
    presets: list[str] = Field(["astro"], validate_default=True,
                               description="presets or preset sets: astro (the default, shown expanded) or paper; "
                                           "a set expands to its members")
    mode: Literal["materialised", "lazy"] = "materialised"
    format: Literal["png", "jpeg", "webp"] = "png"
    png_compress_level: int = Field(1, ge=0, le=9)
    # fpng: ~5x faster than libpng level 1, files ~25% larger; imagecodecs (libpng): smaller, slower
    png_encoder: Literal["fpng", "imagecodecs", "pillow"] = "fpng"
    quality: int = Field(95, ge=1, le=100)
    webp_lossless: bool = True
    batch_size: int = Field(32, ge=1)
    workers: int = Field(2, ge=1)  # decode/encode threads
    unsafe: dict[str, list[str]] = {}  # preset → classes it must not be applied to
    # materialised: "files" (one image file per variant), "parquet" (Hugging Face Parquet shards) or
    # "webdataset" (tar shards) under OUT/shards/; `format` stays the image encoding inside them
    layout: Literal["files", "parquet", "webdataset"] = "files"
    shard_size_mb: float = Field(256, gt=0, le=100_000)  # target shard size; shards hold whole parent images

    @field_validator("presets")
    @classmethod
    def _expand_sets(cls, names: list[str]) -> list[str]:
        """Each set name becomes its members, in order; a preset named twice runs once."""
        expanded: list[str] = []
        for name in names:
            for member in cls.PRESET_SETS.get(name, (name,)):
                if member not in expanded:
                    expanded.append(member)
        return expanded

    @classmethod
    def preset_set_of(cls, preset: str) -> str | None:
        """The set preset ``preset`` belongs to (``None``: in no set, e.g. ``rot90``)."""
        return next((name for name, members in cls.PRESET_SETS.items() if preset in members), None)

    def preset_sets(self) -> list[str]:
        """The sets every member of which is in ``presets`` (``["astro"]`` for the default)."""
        return [name for name, members in self.PRESET_SETS.items() if set(members) <= set(self.presets)]


class GenerateConfig(_Section):
    """Stage 3: class-prompted text-to-image plus image variations (train split only)."""

    backend: str = "embedded"
    # text-to-image images per class: "balance" = max(target - real train images, balance_min) for each class
    # (docs/generation.md, rare-class synthesis), or one int for every class (≤ MAX_COUNT)
    per_class: int | Literal["balance"] = "balance"
    balance_target: int | Literal["median", "max"] = "median"  # real + synthetic a class is filled up to
    # every class gets at least this many even at or above the target: a balanced set (the default sky) still
    # gets synthetic images for T2I_Aug / FLARE, as many as the old fixed default (8)
    balance_min: int = Field(8, ge=0, le=100_000)
    variations: int = Field(1, ge=0, le=1000)  # image-to-image variations per source image (≤ MAX_K)
    variation_source: Literal["real", "t2i"] = "real"  # vary the real train images or the t2i images
    variation_max_per_class: int | None = Field(8, ge=1, le=100_000)  # ≤ MAX_COUNT; cap on source images varied per class (None: all); keeps the CPU default quick
    templates: list[str] = ["A realistic image of {class} in space"]
    class_prompts: dict[str, list[str]] = {}
    guidance_scale: float = Field(3.0, ge=0)
    steps: int = Field(20, ge=1, le=1000)  # denoising steps (≤ 1000, a DDPM schedule's length)
    strength: float = Field(0.5, gt=0, le=1)
    scheduler: Literal["ddim", "dpm"] = "ddim"
    batch_size: int = Field(16, ge=1)
    model_path: str | None = None  # embedded: trained here (into OUT/embedded-model) when None
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    upscale: bool = True  # bring synthetic images to the dataset's image size with the stage-1 upscaler
    upscale_backend: str = "bicubic"
    # Training the embedded model, in flare run and in `flare generate train` alike (the one home of these
    # defaults: EmbeddedTrainingConfig takes its defaults from here).
    train_epochs: int = Field(8, ge=1, le=10_000)
    train_resolution_px: int = Field(32, ge=16, le=128)
    train_batch_size: int = Field(16, ge=1)
    train_source: Literal["base", "truth"] = "base"
    train_max_minutes: float | None = Field(None, gt=0)
    # d4: the 8 rot90 x mirror views, a mirrored view labelled with its mirror pair (both spiral senses learnt from
    # every spiral); rot90: the 4 rotations only
    train_views: Literal["d4", "rot90"] = "d4"
    # balanced: each epoch draws every class equally often (seeded, with replacement); uniform: each image once
    train_sampling: Literal["balanced", "uniform"] = "balanced"
    # mirror: of each mirror pair (clockwise, anticlockwise) the generator learns the first class only, shown in
    # that sense (the second's images mirrored), and a job of the second class is made as the mirror image of a
    # sample of the first (a mirror of the sky is the sky with the pair swapped: exact); learn: both prompts are
    # learnt (mirrored views relabelled) and each is sampled from its own prompt (docs/generation.md)
    chirality: Literal["mirror", "learn"] = "mirror"
    # confidence: keep a synthetic image when a classifier trained on the real train split gives its prompted
    # class p >= filter_threshold; 0.5 is the lowest value that makes the prompted class the most probable one
    # whatever the number of classes. outlier: keep when its feature z-score <= filter_threshold
    filter: Literal["none", "confidence", "outlier"] = "confidence"
    filter_threshold: float = Field(0.5, ge=0)  # confidence: minimum share; outlier: maximum z-score
    # the filter acts only when its classifier beats chance on the real val split: skill = (accuracy - chance) /
    # (1 - chance) >= filter_min_skill; a classifier at chance would drop images at random (it keeps all then)
    filter_min_skill: float = Field(0.25, ge=0, le=1)
    # the filter's judge: generic = a class-balanced logistic head on ImageNet Lite0 features at 128 px (what the
    # CPU benchmark classifies with); domain = the 32 px CNN of `flare generate quality` (real val balanced
    # accuracy 0.27 on GZ1 25 %, below the skill gate); auto = generic when its weights are installed
    filter_space: Literal["auto", "generic", "domain"] = "auto"
    # memorisation audit: a synthetic image whose nearest real train image is closer than the audit_quantile of
    # the real val images' nearest-train distances, in pixels and in generic ImageNet features, is a near-copy
    audit: bool = True
    audit_quantile: float = Field(0.01, gt=0, lt=1)
    audit_pixel_px: int = Field(32, ge=4, le=256)  # side of the RGB image the pixel distance is taken at
    audit_views: Literal["d4", "none"] = "d4"  # d4: min over the 8 rot90 x mirror views (the generator trains on them)
    audit_pairs: int = Field(16, ge=0, le=10_000)  # closest synthetic-train pairs written for the report
    audit_drop_variations: bool = False  # variations start from a train image: flagged and counted, kept unless true

    @field_validator("per_class", "balance_target")
    @classmethod
    def _count(cls, value: int | str, info) -> int | str:
        """Bounds of the int form, worded like pydantic's own (the str form is checked by its Literal)."""
        low = 0 if info.field_name == "per_class" else 1
        if isinstance(value, int) and value < low:
            raise ValueError(f"Input should be greater than or equal to {low}")
        if isinstance(value, int) and value > 100_000:  # ≤ MAX_COUNT
            raise ValueError("Input should be less than or equal to 100000")
        return value


class CombineConfig(_Section):
    """Stage 4: α of the augmentation types, β of the synthetic types (seeded), written as an ImageFolder."""

    alpha: float = Field(0.5, ge=0, le=1)
    beta: float = Field(1.0, ge=0, le=1)
    # value: the types a val probe scores highest (flare.combine.value); types: a seeded shuffle of the types
    # (the paper's rule); samples: a per-sample ratio
    rule: Literal["value", "types", "samples"] = "value"
    value_features: Literal["auto", "imagenet", "pixels"] = "auto"  # auto: Lite0 when installed, else pixels
    value_size_px: int = Field(96, ge=16, le=512)  # image side fed to Lite0 (57 img/s at 128 px, 105 at 96 on a CPU core)
    value_samples_per_type: int = Field(256, ge=1, le=100_000)  # seeded sample of a type's rows per probe fit
    value_probe_seeds: int = Field(2, ge=1, le=20)  # seeded draws averaged per type (one fit when nothing is capped)
    value_max_train: int = Field(2000, ge=2, le=100_000)  # seeded cap on the real train images the probe learns from
    value_max_val: int = Field(2000, ge=2, le=100_000)  # seeded cap on the val images it is scored on
    # score the probe as the benchmark scores its classifiers: class probabilities averaged over the 8 rot90 x
    # flip views of each val image (mirror pairs swapped). Without it the probe cannot see what D4 training
    # views buy a test-time-averaged classifier, and the #14 ablation's value rule dropped them (-3.2 points)
    value_tta: bool = True
    # rule value: augmentation types made only of exact sky symmetries (quarter turns, flips, D4 views; rows
    # record params.exact_symmetry) are kept outside alpha, which ranks the other types. They invent nothing,
    # and the probe scores them near zero while the benchmark's view-averaged classifier gains from them
    # (#14 ablation, val: +2.0 macro-F1 when the shuffle kept D4 where the probe dropped it)
    value_keep_symmetries: bool = True
    per_class_target: int | None = Field(None, ge=1, le=1_000_000)  # ≤ 10 × MAX_COUNT
    export: bool = False  # materialise lazy augmentation recipes into files
    # "imagefolder" (<split>/<label>/ files + <split>/metadata.parquet), "parquet" (Hugging Face Parquet
    # shards, OUT/shards/<split>-NNNNN-of-NNNNN.parquet) or "webdataset" (tar shards)
    layout: Literal["imagefolder", "parquet", "webdataset"] = "imagefolder"
    shard_size_mb: float = Field(256, gt=0, le=100_000)  # target size of a shard (rows sorted by id)


class BenchmarkConfig(_Section):
    """Stage 5: one recipe for every method (docs/benchmark.md); preset values unless overridden here."""

    preset: Literal["cpu-tiny", "cpu-small", "cpu-scratch", "cpu-frozen", "paper"] = "cpu-tiny"
    backbones: list[str] | None = None
    methods: list[str] = ["Raw_LR", "Raw_HR", "Raw_HR_online", "Raw_Aug", "T2I_Aug", "FLARE", "Oracle_HR"]
    tasks: list[Literal["fine", "macro"]] = ["fine", "macro"]
    seeds: list[int] = [0]
    image_size_px: int | None = Field(None, ge=16, le=4096)  # ≤ MAX_SIDE_PX
    epochs: int | None = Field(None, ge=1, le=10_000)  # passes over the real train set (the step budget)
    pretrained: str | None = None  # a local weights file; never a hub download
    samples_per_epoch: int | None = Field(None, ge=1)  # None: the number of real train images
    batch_size: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    class_balance: Literal["weighted-loss", "sampler", "none"] | None = None
    train_mode: Literal["full", "frozen"] | None = None  # frozen: cached features of a pretrained backbone + a linear head
    tta: bool | None = None  # average over the 8 rot90 x flip views (mirror pairs swapped)
    # Synthetic (``generate``) training rows are not trusted like observed ones: DiffuLT down-weights them in the
    # loss, Diff-Mix and He et al. (ICLR 2023) soften their labels and keep them to a minority of each batch.
    # Defaults: half a real row's weight, the customary smoothing of 0.1, at most half of a batch (the top of the
    # 10-50 % those works keep, so the cap binds only on synthetic-heavy pools). Every preset reads them from
    # here (their one home); the ablation switches them off with weight 1, smoothing 0, share null (or 1).
    synthetic_weight: float = Field(0.5, ge=0, le=10)  # loss weight of a synthetic row (real rows: 1)
    synthetic_label_smoothing: float = Field(0.1, ge=0, lt=1)  # label smoothing of synthetic rows only
    # the most synthetic rows a batch holds, as a share of it (floor(share x batch)); null: no cap
    synthetic_batch_share: float | None = Field(0.5, ge=0, le=1)
    train_fractions: list[float] = Field([1.0], min_length=1)  # data-efficiency curve: nested subsets of the train origins
    macro_mode: Literal["collapse", "direct"] = "collapse"  # collapse: macro scored from the fine model
    ood: list[str] = []  # label-mapping YAML files (each names its dataset folder)
    features: bool = True  # t-SNE + silhouette/Davies-Bouldin of penultimate test features
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in values):
            raise ValueError("each train fraction must be in (0, 1]")
        return sorted(set(values))


class ExecutorConfig(_Section):
    """Where per-image work runs (docs/scaling.md). Outputs never depend on these values."""

    name: Literal["local", "ray"] = "local"
    workers: int = Field(1, ge=1)  # local: pool size; ray: actors in the pool
    batch_size: int = Field(16, ge=1)
    local_pool: Literal["process", "thread"] = "process"  # local with workers > 1
    # how a local process pool starts its workers: spawn (a fresh interpreter that imports torch itself, about
    # 2 s a worker here; safe with CUDA and threads) or fork (Linux/CPU: a copy of this process, in
    # milliseconds, as torch's DataLoader starts its workers; refused once CUDA is initialised)
    local_start: Literal["spawn", "fork"] = "spawn"
    gpus_per_worker: float | None = Field(None, ge=0)  # ray; None: 1 when the cluster has GPUs, else 0
    cpus_per_worker: float = Field(1.0, gt=0)  # ray
    max_retries: int = Field(3, ge=0)  # ray: actor restarts and task retries after a worker dies
    ray_address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); None: start one
    shard: str | None = None  # "i/N": only the rows whose origin hashes to shard i of N (flare --shard)


class FlareConfig(_Section):
    """A whole run. ``flare config init`` writes this with comments."""

    seed: int = Field(0, ge=0)
    workdir: str = "flare-work"
    data: DataConfig = DataConfig()
    simulate: SimulateConfig = SimulateConfig()
    upscale: UpscaleConfig = UpscaleConfig()
    augment: AugmentConfig = AugmentConfig()
    generate: GenerateConfig = GenerateConfig()
    combine: CombineConfig = CombineConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @field_validator("workdir")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        """Not empty, not a file-system root (``/``, ``C:\\``) and not the home folder itself: a run writes step
        folders, ``config.yaml`` and ``.flare.lock`` there and may rename stale steps aside."""
        if not value.strip():
            raise ValueError("must not be empty")
        path = Path(value).expanduser()
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):
            resolved = path.absolute()
        if resolved.parent == resolved:
            raise ValueError("must not be a file-system root; name a folder for this run, e.g. flare-work")
        try:
            home = Path.home().resolve()
        except (OSError, RuntimeError, KeyError):
            home = None
        if home is not None and resolved == home:
            raise ValueError("must not be your home folder itself; name a folder for this run, e.g. ~/flare-work")
        return value


def format_validation_error(error: ValidationError, section: str | None = None) -> str:
    """First error as one line: ``field.path: message, got VALUE``."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or (section or "config")
    if section and not location.startswith(section):
        location = f"{section}.{location}"
    message = first["msg"].removeprefix("Value error, ")
    if "input" in first and first["type"] not in ("missing", "extra_forbidden") and not isinstance(first["input"], dict):
        message += f", got {first['input']!r}"
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{location}: {message}"


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    """Set dotted keys (``upscale.scale``) in a nested dict; ``"key=value"`` strings are parsed as YAML scalars."""
    if isinstance(overrides, list):
        parsed: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set: {item!r} is not of the form section.key=value")
            key, value = item.split("=", 1)
            parsed[key.strip()] = _parse_value(value)
        overrides = parsed
    out = dict(data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None) -> FlareConfig:
    """Load and validate a run config (defaults when ``path`` is None), then apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config: file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config: {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config: {str(path)!r} must hold a mapping at the top level")
        data = loaded or {}
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return FlareConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def default_config_yaml() -> str:
    """The default config as YAML, each field preceded by its description (what ``flare config init`` writes)."""
    lines = ["# FLARE run configuration. Every key is optional; the values shown are the defaults.",
             "# Flags override these: e.g. `flare run --set upscale.backend=lanczos --set seed=3`.", ""]

    def emit(model: BaseModel, indent: int) -> None:
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            pad = " " * indent
            annotation = field.annotation
            allowed = getattr(annotation, "__args__", None)
            note = field.description or ""
            if allowed and all(isinstance(a, (str, int)) for a in allowed) and getattr(annotation, "__origin__", None) is Literal:
                note = (note + " " if note else "") + "one of: " + ", ".join(map(str, allowed))
            if note:
                lines.append(f"{pad}# {note}")
            if isinstance(value, BaseModel):
                lines.append(f"{pad}{name}:")
                emit(value, indent + 2)
            else:
                dumped = yaml.safe_dump({name: value}, default_flow_style=True, sort_keys=False).strip()
                lines.append(f"{pad}{dumped[1:-1] if dumped.startswith('{') else dumped}")

    emit(FlareConfig(), 0)
    return "\n".join(lines) + "\n"
