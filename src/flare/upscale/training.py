"""Train the residual SwinIR on a dataset's own training images under the astronomical observation model.

HR patches come from the *train* split only (the HR truth of each row where ``truth_path`` exists, else the
images themselves). Each step observes them through :func:`flare.core.degrade.degrade` (PSF blur, ×factor binning,
sky + Poisson + read noise, 8-bit rounding) with the dataset's own degradation settings when it records them
(GZ1 protocol ``observe`` rows and simulated ``simulate`` rows do); the model's scale must be that factor.
The loss conserves flux: L1 on pixels, plus L1 between the ×scale box-binned output and the box-binned truth
(local flux), plus the per-image total-flux difference. Every step's crops and noise come from
``derive_seed(seed, "sr-train", step)``, so a run resumed from ``checkpoint.pt`` gives the same weights as one
that never stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from flare.core.errors import FlareError
from flare.core.files import atomic_output, sha256_file
from flare.core.io import load_rgb
from flare.core.manifest import SOURCE_STAGES, Manifest
from flare.core.seeding import derive_seed
from flare.core.degrade import FWHM_TO_SIGMA, DegradeConfig, degrade
from flare.upscale.swinir_model import SwinIRConfig, build_model, has_model, save_model

__all__ = ["TrainConfig", "swinir_architecture", "default_patch_hr_px", "train_swinir", "load_training_images",
           "dataset_degradation", "recorded_degradation", "CHECKPOINT_NAME", "DEGRADED_STAGES"]

CHECKPOINT_NAME = "checkpoint.pt"
# Source stages whose rows are LR observations made by flare.core.degrade, recording its settings.
DEGRADED_STAGES = ("observe", "simulate")
# The default HR patch stays within the default simulated survey's 96 px images (see default_patch_hr_px).
MAX_DEFAULT_PATCH_HR_PX = 96
log = logging.getLogger("flare.upscale")


def swinir_architecture(patch_hr_px: int, embed_dim: int | None = None, scale: int = 4) -> SwinIRConfig:
    """The default SwinIR at ×``scale``, ``embed_dim`` wide (None: the default width), built for LR patches of
    ``patch_hr_px / scale`` px."""
    base = SwinIRConfig()
    width = base.embed_dim if embed_dim is None else embed_dim
    # Attention splits the width across the heads: a width the default head counts do not divide gets one head.
    heads = base.num_heads if all(width % n == 0 for n in base.num_heads) else (1,) * len(base.depths)
    return replace(base, embed_dim=width, num_heads=heads, scale=scale, img_size=patch_hr_px // scale)


def default_patch_hr_px(scale: int, window_size: int = SwinIRConfig.window_size) -> int:
    """The default HR patch side at ×``scale``: the largest multiple of ``scale × window_size`` up to
    ``MAX_DEFAULT_PATCH_HR_PX`` (96 px, the default simulated survey's image side), and at least one such multiple,
    so the LR patch holds at least one attention window: ×2 and ×4 → 96 px, ×8 → 64 px (8 px LR)."""
    step = scale * window_size
    return max(1, MAX_DEFAULT_PATCH_HR_PX // step) * step


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (all recorded in the model's config.json); the defaults are ``flare upscale train``'s."""

    steps: int = 2000
    batch_size: int = 16
    patch_hr_px: int | None = None  # HR patch side (None: default_patch_hr_px(scale)); the LR patch is patch / scale
    learning_rate: float = 1e-3
    flux_weight: float = 1.0  # weight of the box-binned (local flux) L1 term
    total_flux_weight: float = 1.0  # weight of the per-image total flux term
    checkpoint_every: int = 100
    max_images: int | None = None
    seed: int = 0
    architecture: SwinIRConfig | None = None  # None: swinir_architecture(patch_hr_px), the default ×4 SwinIR

    def __post_init__(self) -> None:
        if self.patch_hr_px is None:
            arch = self.architecture or SwinIRConfig()
            object.__setattr__(self, "patch_hr_px", default_patch_hr_px(arch.scale, arch.window_size))
        if self.architecture is None:
            object.__setattr__(self, "architecture", swinir_architecture(self.patch_hr_px))

    @classmethod
    def with_width(cls, embed_dim: int | None = None, scale: int = 4, **settings: Any) -> "TrainConfig":
        """``TrainConfig(**settings)`` training the default SwinIR at ×``scale``, ``embed_dim`` wide (None: the
        default width); without ``patch_hr_px`` the patch is ``default_patch_hr_px(scale)``."""
        if settings.get("patch_hr_px") is None:
            settings["patch_hr_px"] = default_patch_hr_px(scale)
        config = cls(**settings)
        return replace(config, architecture=swinir_architecture(config.patch_hr_px, embed_dim, scale))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["architecture"] = self.architecture.to_dict()
        return data


def recorded_degradation(manifest: Manifest) -> DegradeConfig | None:
    """The degradation the dataset's LR rows record, or None: ``observe`` rows (``flare data make-lr``, the GZ1
    protocol) and ``simulate`` rows (``flare data simulate``) both keep it under ``params["degrade"]``."""
    observed = manifest.filter(stage=list(DEGRADED_STAGES))
    for row in observed.records()[:1]:
        recorded = manifest.params(row).get("degrade")
        if recorded:
            return DegradeConfig(**{k: v for k, v in recorded.items() if k in DegradeConfig.__dataclass_fields__})
    return None


def dataset_degradation(manifest: Manifest) -> DegradeConfig:
    """The degradation the dataset's LR rows record (:func:`recorded_degradation`), else the default model."""
    return recorded_degradation(manifest) or DegradeConfig()


def load_training_images(manifest: Manifest, max_images: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """HR training images of the train split: ``truth_path`` where present, else the image itself."""
    rows = manifest.filter(stage=list(SOURCE_STAGES), split="train").records()
    if not rows:
        raise FlareError(f"dataset: {str(manifest.root)!r} has no train-split source rows to train on")
    rows.sort(key=lambda r: r["id"])
    if max_images is not None and len(rows) > max_images:
        picks = np.random.default_rng(derive_seed(seed, "sr-train-subset")).permutation(len(rows))[:max_images]
        rows = [rows[i] for i in sorted(picks)]
    return [load_rgb(manifest.resolve(r["truth_path"] or r["path"])) for r in rows]


def _box_bin(images: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(images, factor)


def _make_batch(step: int, seed: int, blurred: list[np.ndarray], sharp: list[np.ndarray], patch: int,
                batch_size: int, observe: DegradeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """LR/HR patch pairs for one step: random image, position and dihedral orientation, fresh noise."""
    rng = np.random.default_rng(derive_seed(seed, "sr-train", step))
    factor = observe.factor
    lr_list, hr_list = [], []
    for _ in range(batch_size):
        index = int(rng.integers(len(sharp)))
        height, width = sharp[index].shape[:2]
        top = int(rng.integers(0, (height - patch) // factor + 1)) * factor
        left = int(rng.integers(0, (width - patch) // factor + 1)) * factor
        hr = sharp[index][top:top + patch, left:left + patch]
        # The PSF was applied to the whole image once (no edge effects at the crop); binning and noise here.
        lr = degrade(blurred[index][top:top + patch, left:left + patch], observe, rng)
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        hr, lr = np.rot90(hr, turns), np.rot90(lr, turns)
        if flip:
            hr, lr = hr[:, ::-1], lr[:, ::-1]
        hr_list.append(np.ascontiguousarray(hr))
        lr_list.append(np.ascontiguousarray(lr))
    to_tensor = lambda arrays: torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return to_tensor(lr_list), to_tensor(hr_list)


def flux_conserving_loss(output: torch.Tensor, target: torch.Tensor, factor: int, flux_weight: float,
                         total_flux_weight: float) -> torch.Tensor:
    """L1 pixels + L1 of box-binned (local flux) + |total flux difference| per image and channel."""
    pixel = F.l1_loss(output, target)
    local = F.l1_loss(_box_bin(output, factor), _box_bin(target, factor))
    total = (output.mean(dim=(2, 3)) - target.mean(dim=(2, 3))).abs().mean()
    return pixel + flux_weight * local + total_flux_weight * total


def train_swinir(dataset: str | Path, model_dir: str | Path, config: TrainConfig = TrainConfig(), *,
                 max_minutes: float | None = None, device: str = "cpu",
                 log_fn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the residual SwinIR; writes the model folder and returns a summary dict.

    Args:
        max_minutes: stop after this long (a checkpoint is written); run again to resume.
    """
    from flare.core.device import select_device

    say = log_fn or log.info
    dataset, model_dir = Path(dataset), Path(model_dir)
    manifest = Manifest.read(dataset)
    observe = dataset_degradation(manifest)
    architecture = config.architecture
    if architecture.scale != observe.factor:
        raise FlareError(f"upscale.scale: model scale {architecture.scale} differs from the dataset's "
                         f"binning factor {observe.factor} (build the config with "
                         f"TrainConfig.with_width(scale={observe.factor}); `flare upscale train` does)")
    if config.patch_hr_px % (observe.factor * architecture.window_size):
        raise FlareError(f"upscale.train.patch_hr_px: {config.patch_hr_px} must be a multiple of "
                         f"scale × window ({observe.factor * architecture.window_size})")
    sharp = load_training_images(manifest, config.max_images, config.seed)
    sharp = [image for image in sharp if min(image.shape[:2]) >= config.patch_hr_px]
    if not sharp:
        raise FlareError(f"dataset: no training image is at least {config.patch_hr_px} px on a side")
    from scipy.ndimage import gaussian_filter

    sigma = observe.psf_fwhm_px * FWHM_TO_SIGMA
    blurred = [gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")
               if sigma > 0 else image.astype(np.float64) for image in sharp]
    no_blur = DegradeConfig(**{**observe.to_dict(), "psf_fwhm_px": 0.0})

    torch_device = select_device(device, "upscale.device")
    model = build_model(architecture, config.seed).to(torch_device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate,
                                                   total_steps=config.steps, pct_start=0.05)
    start_step, history = 0, []
    checkpoint_file = model_dir / CHECKPOINT_NAME
    if checkpoint_file.is_file():
        state = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
        if state.get("train_config") != json.dumps(config.to_dict(), sort_keys=True):
            raise FlareError(f"upscale.train: {str(checkpoint_file)!r} was made with other settings; "
                             "use another model folder or delete the checkpoint")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        start_step, history = int(state["step"]), json.loads(state["history"])
        say(f"resuming from step {start_step}")
    elif has_model(model_dir):
        say(f"{model_dir} already holds a finished model; nothing to do")
        return json.loads((model_dir / "config.json").read_text()).get("training", {})

    def write_checkpoint(step: int) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(checkpoint_file) as tmp:
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                        "schedule": schedule.state_dict(), "step": step, "history": json.dumps(history),
                        "train_config": json.dumps(config.to_dict(), sort_keys=True)}, tmp)

    began = time.monotonic()
    model.train()
    step = start_step
    running = 0.0
    while step < config.steps:
        lr, hr = _make_batch(step, config.seed, blurred, sharp, config.patch_hr_px, config.batch_size, no_blur)
        lr, hr = lr.to(torch_device), hr.to(torch_device)
        output = model(lr)
        loss = flux_conserving_loss(output, hr, observe.factor, config.flux_weight, config.total_flux_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        step += 1
        running += float(loss.detach())
        if step % config.checkpoint_every == 0 or step == config.steps:
            history.append({"step": step, "loss": running / max(1, step - (history[-1]["step"] if history else start_step))})
            running = 0.0
            say(f"step {step}/{config.steps} loss {history[-1]['loss']:.5f} "
                f"({time.monotonic() - began:.0f} s)")
            write_checkpoint(step)
            if max_minutes is not None and time.monotonic() - began > max_minutes * 60 and step < config.steps:
                # The weights so far are saved as a usable model (marked unfinished); the checkpoint resumes.
                say(f"stopping after {max_minutes} min at step {step}; run again to resume")
                return _save(model, model_dir, step, history, len(sharp), dataset, observe, config, finished=False)
    summary = _save(model, model_dir, step, history, len(sharp), dataset, observe, config, finished=True)
    checkpoint_file.unlink(missing_ok=True)
    return summary


def _save(model, model_dir: Path, step: int, history: list, images: int, dataset: Path, observe: DegradeConfig,
          config: TrainConfig, *, finished: bool) -> dict[str, Any]:
    summary = {"finished": finished, "step": step, "steps": config.steps, "history": history, "images": images,
               "dataset": str(dataset), "degradation": observe.to_dict(), "train": config.to_dict()}
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    weights = save_model(model.cpu(), model_dir, {"training": summary}, _model_card(summary))
    model.to(device).train(was_training)
    summary["model_hash"] = sha256_file(weights)
    return summary


def _model_card(summary: dict[str, Any]) -> str:
    train, degradation = summary["train"], summary["degradation"]
    arch = train["architecture"]
    last_loss = summary["history"][-1]["loss"] if summary["history"] else float("nan")
    return f"""# swinir-trained (FLARE)

A small SwinIR (spandrel's architecture class; embed_dim {arch['embed_dim']}, depths {arch['depths']},
window {arch['window_size']}, pixel-shuffle-direct upsampler) that predicts a residual over bicubic ×{arch['scale']}
interpolation. Files: `model.safetensors` (weights), `config.json` (architecture, degradation, training settings).

## Training data
- Dataset: `{summary['dataset']}` — train split only ({summary['images']} HR images; HR truth where the rows have one).
- Degradation (flare.core.degrade): {json.dumps(degradation)}.
- {summary['step']} of {train['steps']} steps{'' if summary['finished'] else ' (unfinished: resumable)'} of batch {train['batch_size']}, HR patches {train['patch_hr_px']} px, AdamW one-cycle lr
  {train['learning_rate']}, seed {train['seed']}; final loss {last_loss:.5f}.

## Loss (flux conserving)
L1(output, HR) + {train['flux_weight']} · L1(box-bin×{arch['scale']}(output), box-bin×{arch['scale']}(HR))
+ {train['total_flux_weight']} · |mean(output) − mean(HR)|. The untrained model equals bicubic interpolation.

## Intended use and limits
Upscaling LR images observed like the training set (same PSF, binning and noise). It has seen only this
dataset's train split: measure it (`flare evaluate sr`) before trusting it on other surveys. Outputs are
estimates, not observations: check the hallucination count (sources in the output absent from the truth).
"""
