"""Train the embedded generator on a dataset's train split, resumably, with classifier-free guidance dropout.

Each epoch draws as many examples as there are train images: class-balanced by default (``sampling="balanced"``:
a seeded draw with replacement, each image weighted by one over its class's count, so a rare class is seen as
often as the commonest) or a plain permutation (``"uniform"``). Each example is resized to ``resolution_px`` and
shown in one of the eight D4 views (``views="d4"``: rot90 × mirror, ``flare.core.symmetry``); a mirrored view
carries the mirror-pair label (clockwise ↔ anticlockwise spiral), so every spiral teaches both chiralities'
prompts. ``views="rot90"`` keeps the four rotations only. With ``chirality="mirror"`` (the default) only the
first class of each mirror pair is learnt: its images are shown in rotations only, the second class's images in
mirrored rotations only (which makes them images of the first class), so every spiral teaches the one prompt and the
generate stage makes the second class by mirroring. One of the (possibly swapped) class's prompts is
embedded, and replaced by the unconditional zero vector with probability ``condition_dropout`` (Ho & Salimans
2022). The denoiser learns x0-prediction (by default) on a cosine DDPM schedule; an EMA of its weights is what gets
saved. Every ``checkpoint_every`` epochs the state (weights, EMA, optimiser, epoch) goes to
``MODEL_DIR/checkpoint/``; a rerun resumes from it and, because each epoch's randomness is derived from
(seed, epoch), ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from flare.core.config import FlareConfig, GenerateConfig
from flare.core.dataset import Dataset
from flare.core.device import autocast_context, select_device
from flare.core.errors import ConfigError, ManifestError
from flare.core.io import load_rgb
from flare.core.manifest import Manifest, base_images
from flare.core.progress import make_progress
from flare.core.seeding import derive_seed
from flare.core.symmetry import apply_view, mirror_permutation, mirrored_classes, view_mirrors
from flare.core.taxonomy import Taxonomy
from flare.generate.embedded import EmbeddedDiffusionPipeline, denoise, images_to_tensor, tiny_unet, training_scheduler
from flare.generate.prompts import PromptBuilder
from flare.generate.text_encoder import MiniLMTextEncoder

__all__ = ["EmbeddedTrainingConfig", "TrainingResult", "train_embedded", "training_images", "epoch_order",
           "training_views", "trainable_mirror_permutation", "view_rule", "TRAIN_VIEWS", "TRAIN_SAMPLING", "CHIRALITY"]

TRAIN_VIEWS = ("d4", "rot90")
TRAIN_SAMPLING = ("balanced", "uniform")
CHIRALITY = ("mirror", "learn")


# The run config is the one home of every setting it has a field for (generate.train_*, templates, device, seed).
_GENERATE = GenerateConfig()


@dataclass(frozen=True)
class EmbeddedTrainingConfig:
    """Hyper-parameters of :func:`train_embedded` (all recorded in ``training.json`` and the model card).

    Settings with a run-config field default to that field's default; build them from a config with
    :meth:`from_config`. Only the UNet widths, optimiser, guidance dropout, EMA and checkpoint interval live
    here alone. The field order is the key order of ``training.json``.
    """

    resolution_px: int = _GENERATE.train_resolution_px
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    # the prompt also scales and shifts every ResNet block (tiny_unet); off: no agreement gain measured at 4 epochs
    condition_on_time: bool = False
    epochs: int = _GENERATE.train_epochs
    batch_size: int = _GENERATE.train_batch_size
    learning_rate: float = 1e-3
    prediction_type: str = "sample"  # what the UNet predicts: sample (x0), epsilon or v_prediction
    condition_dropout: float = 0.15
    ema_decay: float = 0.999
    checkpoint_every: int = 5
    views: str = _GENERATE.train_views  # "d4": rot90 × mirror, mirror-pair labels swapped; "rot90": rotations only
    sampling: str = _GENERATE.train_sampling  # "balanced": every class drawn equally often; "uniform": each image once
    chirality: str = _GENERATE.chirality  # "mirror": one class per mirror pair learnt, the other made by mirroring
    source: str = _GENERATE.train_source  # "base": base_images (upscaled or observed); "truth": the rows' HR truth_path
    templates: tuple[str, ...] = tuple(_GENERATE.templates)
    class_prompts: dict[str, list[str]] = field(default_factory=lambda: dict(_GENERATE.class_prompts))
    max_minutes: float | None = _GENERATE.train_max_minutes  # stop (after a checkpoint) once this much time has passed
    seed: int = FlareConfig().seed
    device: str = _GENERATE.device  # auto, cpu, cuda or mps; bf16 autocast on CUDA; random draws stay on the CPU

    @classmethod
    def from_config(cls, generate: GenerateConfig, *, seed: int, **settings: Any) -> "EmbeddedTrainingConfig":
        """The training that run config section ``generate`` and run seed ``seed`` describe (what ``flare run``
        and ``flare generate train`` train); ``settings`` sets fields the config has no key for (``learning_rate``)."""
        return cls(**{
            "resolution_px": generate.train_resolution_px, "epochs": generate.train_epochs,
            "batch_size": generate.train_batch_size, "source": generate.train_source,
            "views": generate.train_views, "sampling": generate.train_sampling, "chirality": generate.chirality,
            "templates": tuple(generate.templates), "class_prompts": dict(generate.class_prompts),
            "max_minutes": generate.train_max_minutes, "seed": seed, "device": generate.device,
            # Never longer than the run: a short run records the interval it really used.
            "checkpoint_every": min(cls.checkpoint_every, generate.train_epochs),
            **settings})


@dataclass
class TrainingResult:
    model_dir: Path
    epochs_done: int
    seconds_per_epoch: float
    final_loss: float
    images: int


def training_images(dataset: Path, source: str = "base") -> tuple[list[np.ndarray], list[str], Manifest]:
    """Train-split images the generator may learn from (never val/test: that would leak into synthesis)."""
    manifest = Manifest.read(dataset)
    rows = base_images(manifest).filter(split="train")
    if not len(rows):
        raise ManifestError(f"generate: {str(dataset)!r} has no train-split base images to learn from")
    images, labels = [], []
    for row in rows.records():
        if source == "truth":
            if not row.get("truth_path"):
                raise ConfigError(f"generate.train_source: row {row['id']!r} has no truth_path; use source=base")
            path = rows.resolve(row["truth_path"])
        elif source == "base":
            path = rows.resolve(row["path"])
        else:
            raise ConfigError(f"generate.train_source: {source!r} is not one of base, truth")
        images.append(load_rgb(path))
        labels.append(row["label"])
    return images, labels, manifest


def epoch_order(label_index: list[int], sampling: str, generator: torch.Generator) -> torch.Tensor:
    """One epoch's example indices, as many as there are images.

    ``"uniform"``: a permutation (each image once). ``"balanced"``: torch's ``WeightedRandomSampler`` with
    replacement, each image weighted by one over its class's count, so every class is drawn equally often on
    average (a class of 8 images next to one of 2,600 is seen as much); driven by the epoch's generator, so a
    resumed run replays it."""
    from torch.utils.data import WeightedRandomSampler

    if sampling == "uniform":
        return torch.randperm(len(label_index), generator=generator)
    if sampling != "balanced":
        raise ConfigError(f"generate.train_sampling: {sampling!r} is not one of {', '.join(TRAIN_SAMPLING)}")
    labels = torch.tensor(label_index)
    counts = torch.bincount(labels).double()
    sampler = WeightedRandomSampler((1.0 / counts)[labels], len(label_index), replacement=True, generator=generator)
    return torch.tensor(list(sampler), dtype=torch.long)


def trainable_mirror_permutation(classes: list[str], taxonomy: Taxonomy) -> np.ndarray:
    """:func:`~flare.core.symmetry.mirror_permutation` of the trained classes, with ``-1`` for a class whose mirror
    pair exists but is not trained here: its mirrored views would be mislabelled, so it gets rotations only."""
    perm = mirror_permutation(classes, taxonomy.mirror)
    for i, label in enumerate(classes):
        if perm[i] == i and taxonomy.mirror(label) != label:
            perm[i] = -1
    return perm


def view_rule(classes: list[str], taxonomy: Taxonomy, chirality: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mirror_perm, always_mirror)`` for :func:`training_views`.

    ``"learn"``: :func:`trainable_mirror_permutation`, nothing forced. ``"mirror"``: for each mirror pair
    ``(a, b)`` trained here (:func:`~flare.core.symmetry.mirrored_classes`), ``a`` is shown in rotations only
    (``-1``, label kept) and ``b`` always mirrored, which makes it an ``a`` image; ``b``'s prompt is never
    learnt."""
    if chirality not in CHIRALITY:
        raise ConfigError(f"generate.chirality: {chirality!r} is not one of {', '.join(CHIRALITY)}")
    perm = trainable_mirror_permutation(classes, taxonomy)
    always = np.zeros(len(classes), dtype=bool)
    if chirality == "mirror":
        for b, a in mirrored_classes(classes, taxonomy.mirror_pairs).items():
            perm[classes.index(a)] = -1
            perm[classes.index(b)] = classes.index(a)
            always[classes.index(b)] = True
    return perm, always


def training_views(clean: torch.Tensor, labels: torch.Tensor, views: str, mirror_perm: np.ndarray,
                   generator: torch.Generator, always_mirror: np.ndarray | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random D4 view of each ``(B, 3, R, R)`` image (``views="d4"``; ``"rot90"``: rotations only) and its label
    after the view: a mirrored view of class ``i`` is class ``mirror_perm[i]`` (clockwise ↔ anticlockwise).
    A class marked in ``always_mirror`` is always shown mirrored (:func:`view_rule`). Returns ``(images, labels,
    view indices)``."""
    if views not in TRAIN_VIEWS:
        raise ConfigError(f"generate.train_views: {views!r} is not one of {', '.join(TRAIN_VIEWS)}")
    drawn = torch.randint(0, 8 if views == "d4" else 4, (len(clean),), generator=generator)
    # a class whose mirror is not trained keeps its rotation (view % 4) and its label
    unpaired = torch.from_numpy(mirror_perm[labels.numpy()] < 0)
    drawn = torch.where(unpaired, drawn % 4, drawn)
    if always_mirror is not None:
        drawn = torch.where(torch.from_numpy(always_mirror[labels.numpy()]), drawn % 4 + 4, drawn)
    images = torch.stack([torch.from_numpy(apply_view(image.numpy(), int(v))) for image, v in zip(clean, drawn)])
    swapped = torch.tensor([int(mirror_perm[int(c)]) if view_mirrors(int(v)) else int(c)
                            for c, v in zip(labels, drawn)], dtype=torch.long)
    return images, swapped, drawn


def train_embedded(dataset: str | Path, model_dir: str | Path, config: EmbeddedTrainingConfig = EmbeddedTrainingConfig(),
                   *, text_encoder: MiniLMTextEncoder | None = None,
                   log: Callable[[str], None] | None = None) -> TrainingResult:
    """Train (or resume training) the embedded UNet on ``dataset``'s train split; save it to ``model_dir``."""
    from diffusers.training_utils import EMAModel
    from safetensors.torch import load_file, save_file

    dataset, model_dir = Path(dataset), Path(model_dir)
    images, labels, manifest = training_images(dataset, config.source)
    taxonomy = Dataset.open(dataset).taxonomy
    prompts = PromptBuilder(taxonomy, tuple(config.templates), dict(config.class_prompts))
    text_encoder = text_encoder or MiniLMTextEncoder()
    classes = sorted(set(labels))
    class_prompts = {label: prompts.prompts_for(label) for label in classes}
    embeddings = {label: text_encoder.embed(class_prompts[label]) for label in classes}  # (P, 1, 384) each
    data = images_to_tensor(images, config.resolution_px)
    label_index = [classes.index(label) for label in labels]
    mirror_perm, always_mirror = view_rule(classes, taxonomy, config.chirality)
    learnt = [label for i, label in enumerate(classes) if not always_mirror[i]]

    device = select_device(config.device, "generate.device")
    torch.manual_seed(config.seed)
    unet = tiny_unet(config.resolution_px, tuple(config.block_out_channels),
                     condition_on_time=config.condition_on_time).to(device)
    noise_schedule = training_scheduler(config.prediction_type)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=2 / 3)
    checkpoint = model_dir / "checkpoint"
    start_epoch, losses, epoch_seconds = 0, [], []
    if (checkpoint / "state.json").is_file():
        state = json.loads((checkpoint / "state.json").read_text())
        if _resume_key(state.get("config", {})) != _resume_key(_jsonable(config)):
            raise ConfigError(f"generate train: {str(checkpoint)!r} was made with other settings; "
                              "delete it or use another MODEL_DIR")
        unet.load_state_dict(load_file(checkpoint / "unet.safetensors"))
        optimiser.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        ema.load_state_dict(torch.load(checkpoint / "ema.pt", weights_only=True))
        ema.to(device)
        start_epoch, losses, epoch_seconds = state["epoch"], state["losses"], state["epoch_seconds"]
        if log:
            log(f"resuming from epoch {start_epoch} ({checkpoint})")

    began = time.perf_counter()
    epoch = start_epoch
    with make_progress() as progress:
        task = progress.add_task("train embedded generator", total=config.epochs, completed=start_epoch)
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            epoch_loss = _train_one_epoch(unet, ema, optimiser, noise_schedule, data, label_index, classes,
                                          embeddings, (mirror_perm, always_mirror), config, epoch)
            epoch_seconds.append(time.perf_counter() - t0)
            losses.append(epoch_loss)
            progress.update(task, advance=1, description=f"train embedded generator (loss {epoch_loss:.4f})")
            done = epoch + 1
            out_of_time = config.max_minutes is not None and (time.perf_counter() - began) > 60 * config.max_minutes
            if done % config.checkpoint_every == 0 or done == config.epochs or out_of_time:
                checkpoint.mkdir(parents=True, exist_ok=True)
                save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, checkpoint / "unet.safetensors")
                torch.save(optimiser.state_dict(), checkpoint / "optimizer.pt")
                torch.save(ema.state_dict(), checkpoint / "ema.pt")
                (checkpoint / "state.json").write_text(json.dumps(
                    {"epoch": done, "losses": losses, "epoch_seconds": epoch_seconds, "config": _jsonable(config)}))
                if log:
                    log(f"epoch {done}/{config.epochs}: loss {epoch_loss:.4f}, checkpoint saved")
            if out_of_time:
                epoch = done - 1
                break
        else:
            epoch = config.epochs - 1
    epochs_done = epoch + 1 if config.epochs else 0

    ema.copy_to(unet.parameters())
    pipeline = EmbeddedDiffusionPipeline(unet.cpu(), noise_schedule, text_encoder)
    seconds = float(np.mean(epoch_seconds)) if epoch_seconds else 0.0
    summary = {"dataset": str(dataset.resolve()), "images": len(images), "classes": classes,
               "class_prompts": {label: class_prompts[label] for label in learnt},
               "mirrored_classes": {classes[i]: classes[int(mirror_perm[i])] for i in np.flatnonzero(always_mirror)},
               "epochs_done": epochs_done, "seconds_per_epoch": seconds,
               "final_loss": losses[-1] if losses else None, "config": _jsonable(config)}
    pipeline.save_pretrained(model_dir, model_card=_model_card(summary))
    (model_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    taxonomy.save(model_dir / "taxonomy.yaml")
    return TrainingResult(model_dir, epochs_done, seconds, losses[-1] if losses else float("nan"), len(images))


def _train_one_epoch(unet, ema, optimiser, noise_schedule, data, label_index, classes, embeddings, rule,
                     config, epoch) -> float:
    generator = torch.Generator("cpu").manual_seed(derive_seed(config.seed, "generate-train", epoch))
    device = next(unet.parameters()).device
    unet.train()
    order = epoch_order(label_index, config.sampling, generator)
    labels_all = torch.tensor(label_index, dtype=torch.long)
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        index = order[start:start + config.batch_size]
        clean, labels, _ = training_views(data[index], labels_all[index], config.views, rule[0], generator, rule[1])
        condition = []
        for label in labels.tolist():
            table = embeddings[classes[label]]
            condition.append(table[int(torch.randint(0, len(table), (1,), generator=generator))])
        condition = torch.stack(condition)
        keep = (torch.rand(len(index), generator=generator) >= config.condition_dropout).float()
        condition = condition * keep[:, None, None]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, noise_schedule.config.num_train_timesteps, (len(index),), generator=generator)
        clean, noise, timesteps = clean.to(device), noise.to(device), timesteps.to(device)
        condition = condition.to(device)
        noisy = noise_schedule.add_noise(clean, noise, timesteps)
        if config.prediction_type == "sample":
            target = clean
        elif config.prediction_type == "v_prediction":
            target = noise_schedule.get_velocity(clean, noise, timesteps)
        else:
            target = noise
        with autocast_context(device, supports_bf16=True):
            predicted = denoise(unet, noisy, timesteps, condition)
        loss = torch.nn.functional.mse_loss(predicted.float(), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimiser.step()
        ema.step(unet.parameters())
        total += float(loss.detach()) * len(index)
        count += len(index)
    unet.eval()
    return total / max(count, 1)


def _resume_key(config: dict) -> dict:
    """The settings a checkpoint must share with the run resuming it (epochs and time limit may change)."""
    return {k: v for k, v in config.items() if k not in ("epochs", "max_minutes", "checkpoint_every", "device")}


def _jsonable(config: EmbeddedTrainingConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=list))


def _model_card(summary: dict) -> str:
    config = summary["config"]
    mirrored = "".join(f"; `{b}` is made as the mirror image of `{a}`" for b, a in summary["mirrored_classes"].items())
    prompts = "\n".join(f"- `{label}`: " + "; ".join(f"\"{p}\"" for p in ps) for label, ps in summary["class_prompts"].items())
    return f"""---
library_name: diffusers
tags: [flare, pixel-space-diffusion, text-to-image, astronomy]
---
# FLARE embedded generator

A small pixel-space `UNet2DConditionModel` ({config['resolution_px']} px, block_out_channels
{config['block_out_channels']}) conditioned on MiniLM (all-MiniLM-L6-v2) sentence embeddings of class prompts
through cross-attention{" and the timestep embedding (scale-shift)" if config['condition_on_time'] else ""}, trained by `flare generate train` with classifier-free guidance
(condition dropout {config['condition_dropout']}).

- Training data: {summary['images']} train-split images of `{summary['dataset']}` (source: {config['source']});
  views {config['views']} (d4: rot90 x mirror, mirror-pair labels swapped), sampling {config['sampling']}, chirality
  {config['chirality']}{mirrored}
- Epochs: {summary['epochs_done']} (batch {config['batch_size']}, lr {config['learning_rate']}, EMA {config['ema_decay']},
  seed {config['seed']}); final loss {summary['final_loss']}; {summary['seconds_per_epoch']:.1f} s per epoch
- Schedule: DDPM cosine, 1000 steps, prediction type {config['prediction_type']}; sample with DDIM or DPM-Solver (`scheduler/`)

## Class prompts
{prompts}

## Intended use and limits
Synthetic training images for the classes above, train split only. It has seen only this dataset's train split
and reproduces its survey's look; it is not a general image model.
"""
