"""The default generator: a small pixel-space ``UNet2DConditionModel`` conditioned on MiniLM prompt embeddings.

Components, as in diffusers: a text encoder (:class:`MiniLMTextEncoder`), a denoiser (the UNet) and a scheduler
(DDIM or DPM-Solver, built from the training DDPM schedule with ``from_config``). Text-to-image starts from
per-image noise; a variation is SDEdit (Meng et al. 2022): noise a real image to ``strength`` of the schedule
and denoise it with a new seed. Classifier-free guidance (Ho & Salimans 2022) mixes the conditional and the
unconditional (all-zero embedding) predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flare.core.device import autocast_context, select_device
from flare.core.errors import ConfigError
from flare.core.files import sha256_file
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput, per_image_generators, to_uint8_images
from flare.generate.registry import register_generator
from flare.generate.text_encoder import EMBEDDING_DIM, MiniLMTextEncoder
from flare.metrics.synthetic import images_to_unit_tensor

__all__ = ["EmbeddedDiffusionPipeline", "EmbeddedGenerator", "tiny_unet", "training_scheduler", "SCHEDULERS", "PREDICTION_TYPES",
           "images_to_tensor", "trained_mirrors", "denoise"]

SCHEDULERS = ("ddim", "dpm")


def tiny_unet(resolution_px: int = 32, block_out_channels: tuple[int, ...] = (32, 64, 64),
              cross_attention_dim: int = EMBEDDING_DIM, condition_on_time: bool = False):
    """The denoiser: plain down/up blocks at full resolution, cross-attention to the prompt below it.

    ``condition_on_time`` also projects the prompt embedding into the timestep embedding, which scales and
    shifts every ResNet block's features (diffusers' ``class_embed_type="projection"`` with
    ``resnet_time_scale_shift="scale_shift"``, the conditioning of Dhariwal & Nichol's class-conditional ADM).
    Why: the prompt is one token, and attention over one key returns its value whatever the query, so
    cross-attention alone adds the same vector at every pixel of the two coarse levels only. Off by default: on
    GZ1 (4 epochs, 32 px) it did not raise classifier agreement beyond the spread (docs/generation.md)."""
    from diffusers import UNet2DConditionModel

    depth = len(block_out_channels)
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (depth - 1)
    up = ("CrossAttnUpBlock2D",) * (depth - 1) + ("UpBlock2D",)
    extra = (dict(class_embed_type="projection", projection_class_embeddings_input_dim=cross_attention_dim,
                  resnet_time_scale_shift="scale_shift") if condition_on_time else {})
    return UNet2DConditionModel(sample_size=resolution_px, in_channels=3, out_channels=3, layers_per_block=1,
                                block_out_channels=tuple(block_out_channels), down_block_types=down,
                                up_block_types=up, cross_attention_dim=cross_attention_dim, attention_head_dim=8,
                                norm_num_groups=min(16, min(block_out_channels)), **extra)


def conditions_on_time(unet) -> bool:
    """Whether ``unet`` was built by :func:`tiny_unet` with ``condition_on_time`` (its saved config says so)."""
    return unet.config.class_embed_type == "projection"


def denoise(unet, sample: torch.Tensor, timestep, condition: torch.Tensor) -> torch.Tensor:
    """The UNet's prediction for ``condition`` (``(B, 1, D)`` prompt embeddings), given to the cross-attention
    and, for a model built with ``condition_on_time``, to the timestep embedding too."""
    class_labels = condition[:, 0] if conditions_on_time(unet) else None
    return unet(sample, timestep, encoder_hidden_states=condition, class_labels=class_labels).sample


PREDICTION_TYPES = ("sample", "epsilon", "v_prediction")


def training_scheduler(prediction_type: str = "sample"):
    """The DDPM noise schedule the UNet is trained on (cosine, samples clipped to [-1, 1]).

    The default predicts the clean image ("sample", x0-prediction): with the few hundred CPU training steps FLARE
    can afford, ε-prediction still leaves visible residual noise while x0-prediction already gives clean,
    class-shaped images (smoother ones; use "epsilon" or "v_prediction" for long training runs).
    """
    from diffusers import DDPMScheduler

    if prediction_type not in PREDICTION_TYPES:
        raise ConfigError(f"generate.prediction_type: {prediction_type!r} is not one of {', '.join(PREDICTION_TYPES)}")
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type,
                         clip_sample=True)


def sampling_scheduler(kind: str, config: Any):
    """A sampler built from the training schedule's config: a swap is one line, as in diffusers."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if kind == "ddim":
        return DDIMScheduler.from_config(config)
    if kind == "dpm":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    raise ConfigError(f"generate.scheduler: {kind!r} is not one of {', '.join(SCHEDULERS)}")


def images_to_tensor(images: list[np.ndarray], resolution_px: int) -> torch.Tensor:
    """uint8 (H, W, 3) images → ``(B, 3, R, R)`` in [-1, 1], the diffusion range: the metrics' bicubic [0, 1]
    conversion rescaled (bit for bit the same as ``x / 127.5 - 1``)."""
    return images_to_unit_tensor(images, resolution_px) * 2 - 1


class EmbeddedDiffusionPipeline:
    """Text encoder + UNet + scheduler; ``__call__`` runs numbered steps and returns a :class:`GenerationOutput`."""

    def __init__(self, unet, scheduler, text_encoder: MiniLMTextEncoder | None = None):
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.text_encoder = text_encoder or MiniLMTextEncoder()

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device: str | torch.device) -> "EmbeddedDiffusionPipeline":
        """Move the UNet (the text encoder stays on the CPU: it embeds a handful of prompts, cached)."""
        self.unet.to(device)
        return self

    @property
    def resolution_px(self) -> int:
        return int(self.unet.config.sample_size)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, model_dir: str | Path, scheduler: str = "ddim",
                        text_encoder: MiniLMTextEncoder | None = None) -> "EmbeddedDiffusionPipeline":
        from diffusers import DDPMScheduler, UNet2DConditionModel

        model_dir = Path(model_dir)
        if not (model_dir / "unet" / "config.json").is_file():
            raise ConfigError(f"generate.model_path: {str(model_dir)!r} holds no trained embedded model "
                              f"(run `flare generate train DATASET {model_dir}`)")
        unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", low_cpu_mem_usage=False)
        train_config = DDPMScheduler.load_config(model_dir / "scheduler")
        return cls(unet, sampling_scheduler(scheduler, train_config), text_encoder)

    def save_pretrained(self, model_dir: str | Path, model_card: str = "") -> None:
        """One sub-folder per component (``unet/``, ``scheduler/``), a ``model_index.json`` and a model card."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(model_dir / "unet")
        self.scheduler.save_pretrained(model_dir / "scheduler")
        index = {"_class_name": type(self).__name__, "_flare_backend": "embedded",
                 "unet": ["diffusers", type(self.unet).__name__],
                 "scheduler": ["diffusers", type(self.scheduler).__name__],
                 "text_encoder": ["sentence-transformers", self.text_encoder.model_id]}
        (model_dir / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        if model_card:
            (model_dir / "README.md").write_text(model_card)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(self, prompts: list[str], seeds: list[int], *, guidance_scale: float = 3.0,
                 num_inference_steps: int = 25, image: list[np.ndarray] | None = None,
                 strength: float = 1.0) -> GenerationOutput:
        # 1. check inputs
        if len(prompts) != len(seeds):
            raise ConfigError(f"generate: {len(prompts)} prompts but {len(seeds)} seeds")
        if image is not None and len(image) != len(prompts):
            raise ConfigError(f"generate: {len(image)} images but {len(prompts)} prompts")
        if not 0 < strength <= 1:
            raise ConfigError(f"generate.strength: must be in (0, 1], got {strength}")
        if not prompts:
            return GenerationOutput([], [], [])
        size = self.resolution_px
        # 2. encode the prompts (cached), and the unconditional embedding for guidance
        device = self.device
        condition = self.text_encoder.embed(list(prompts)).to(device)
        use_guidance = guidance_scale != 1.0
        if use_guidance:
            condition = torch.cat([torch.zeros_like(condition), condition])
        # 3. timesteps (img2img starts part-way: SDEdit)
        self.scheduler.set_timesteps(num_inference_steps)
        timesteps = self.scheduler.timesteps
        if image is not None:
            start = max(len(timesteps) - int(round(num_inference_steps * strength)), 0)
            timesteps = timesteps[start:]
            if len(timesteps) == 0:
                timesteps = self.scheduler.timesteps[-1:]
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(start)
        # 4. prepare the starting samples, one CPU generator per image (the same noise on any device)
        generators = per_image_generators(seeds)
        noise = torch.cat([torch.randn((1, 3, size, size), generator=g) for g in generators]).to(device)
        if image is None:
            sample = noise * self.scheduler.init_noise_sigma
        else:
            clean = images_to_tensor(image, size).to(device)
            sample = self.scheduler.add_noise(clean, noise, timesteps[:1].repeat(len(prompts)).to(device))
        # 5. denoising loop with classifier-free guidance; the UNet in bf16 on CUDA, the scheduler in float32
        for t in timesteps:
            model_input = torch.cat([sample, sample]) if use_guidance else sample
            model_input = self.scheduler.scale_model_input(model_input, t)
            with autocast_context(device, supports_bf16=True):
                predicted = denoise(self.unet, model_input, t, condition).float()
            if use_guidance:
                unconditional, conditional = predicted.chunk(2)
                predicted = unconditional + guidance_scale * (conditional - unconditional)
            sample = self.scheduler.step(predicted, t, sample).prev_sample
        # 6. post-process
        params = [{"prompt": p, "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
                   "strength": strength if image is not None else None, "seed": int(s),
                   "scheduler": type(self.scheduler).__name__} for p, s in zip(prompts, seeds)]
        return GenerationOutput(to_uint8_images(sample.cpu()), [int(s) for s in seeds], params)


def trained_mirrors(model_dir: str | Path) -> dict[str, str]:
    """``{class: canonical class}`` the model at ``model_dir`` makes by mirroring (its ``training.json``;
    empty for a model that learnt every prompt, or one trained before ``chirality`` existed)."""
    summary = Path(model_dir) / "training.json"
    if not summary.is_file():
        return {}
    return dict(json.loads(summary.read_text()).get("mirrored_classes") or {})


def _unet_hash(model_dir: Path) -> str:
    file = model_dir / "unet" / "diffusion_pytorch_model.safetensors"
    return sha256_file(file)[:16] if file.is_file() else ""


class EmbeddedGenerator(GenerationBackend):
    """Backend wrapper around :class:`EmbeddedDiffusionPipeline` loaded from a trained model folder."""

    name = "embedded"

    def __init__(self, model_path: str | Path, scheduler: str = "ddim", pipeline: EmbeddedDiffusionPipeline | None = None,
                 device: str | None = "cpu"):
        self.model_path = Path(model_path)
        self.pipeline = pipeline or EmbeddedDiffusionPipeline.from_pretrained(self.model_path, scheduler)
        self.pipeline.to(select_device(device, "generate.device"))
        self.resolution_px = self.pipeline.resolution_px
        self.model_id = f"flare-embedded-unet@{self.model_path.name}"
        self.model_hash = _unet_hash(self.model_path)
        self.config = FrozenConfig(backend=self.name, model_path=str(self.model_path), scheduler=scheduler,
                                   resolution_px=self.resolution_px, device=self.pipeline.device.type,
                                   block_out_channels=list(self.pipeline.unet.config.block_out_channels),
                                   condition_on_time=conditions_on_time(self.pipeline.unet),
                                   text_encoder=self.pipeline.text_encoder.model_id,
                                   text_encoder_hash=self.pipeline.text_encoder.weights_hash())

    def text_to_image(self, prompts, seeds, *, guidance_scale, num_inference_steps):
        return self.pipeline(prompts, seeds, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps)

    def variation(self, images, prompts, seeds, *, strength, guidance_scale, num_inference_steps):
        return self.pipeline(prompts, seeds, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps,
                             image=images, strength=strength)


@register_generator("embedded", default=True,
                    description="Small pixel-space UNet + MiniLM prompts, trained here on the train split")
def _embedded(model_path: str | None = None, scheduler: str = "ddim", device: str | None = "cpu") -> EmbeddedGenerator:
    if not model_path:
        raise ConfigError("generate.model_path: backend 'embedded' needs a local model folder")
    return EmbeddedGenerator(model_path, scheduler=scheduler, device=device)
