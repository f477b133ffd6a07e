"""Any local Stable Diffusion-family checkpoint through diffusers' auto pipelines: text-to-image and img2img.

``AutoPipelineForText2Image.from_pretrained`` picks the right class (SD 1.x/2.x, SDXL...) from the folder's
``model_index.json``; the img2img pipeline is built from the same components with ``from_pipe`` (no second copy
of the weights). The safety checker is not loaded: the images are sky survey cut-outs for training sets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from flare.core.device import pipeline_dtype, select_device
from flare.core.errors import ConfigError
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput, per_image_generators

__all__ = ["StableDiffusionGenerator", "folder_hash"]


def folder_hash(folder: Path, pattern: str = "*.safetensors") -> str:
    """sha256 (first 16 hex) over the weight files of a diffusers folder, in path order."""
    digest = hashlib.sha256()
    for file in sorted(Path(folder).rglob(pattern)):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _as_uint8(images) -> list[np.ndarray]:
    return [np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images]


class StableDiffusionGenerator(GenerationBackend):
    """Stable Diffusion-family backend: text encoder, UNet, VAE and scheduler come from ``model_path``."""

    name = "sd"
    variation_operation = "i2i-variation"

    def __init__(self, model_path: str | Path, device: str | None = "cpu"):
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

        self.model_path = Path(model_path)
        if not (self.model_path / "model_index.json").is_file():
            raise ConfigError(f"generate.model_path: {str(self.model_path)!r} is not a diffusers folder "
                              "(no model_index.json)")
        torch_device = select_device(device, "generate.device")
        try:
            self.text2image = AutoPipelineForText2Image.from_pretrained(
                self.model_path, safety_checker=None, requires_safety_checker=False, local_files_only=True,
                torch_dtype=pipeline_dtype(torch_device))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"generate.model_path: cannot load {str(self.model_path)!r} "
                              f"({str(exc).splitlines()[0]})") from None
        self.text2image.to(torch_device)
        self.text2image.set_progress_bar_config(disable=True)
        self.image2image = AutoPipelineForImage2Image.from_pipe(self.text2image)
        self.image2image.set_progress_bar_config(disable=True)
        unet = self.text2image.unet
        self.resolution_px = int(unet.config.sample_size) * int(getattr(self.text2image, "vae_scale_factor", 8))
        self.model_id = f"{type(self.text2image).__name__}@{self.model_path.name}"
        self.model_hash = folder_hash(self.model_path)
        self.config = FrozenConfig(backend=self.name, model_path=str(self.model_path), device=torch_device.type,
                                   pipeline=type(self.text2image).__name__, resolution_px=self.resolution_px,
                                   scheduler=type(self.text2image.scheduler).__name__)

    def text_to_image(self, prompts, seeds, *, guidance_scale, num_inference_steps):
        result = self.text2image(prompt=list(prompts), generator=per_image_generators(seeds),
                                 guidance_scale=guidance_scale, num_inference_steps=num_inference_steps,
                                 height=self.resolution_px, width=self.resolution_px, output_type="pil")
        params = [{"prompt": p, "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
                   "strength": None, "seed": int(s)} for p, s in zip(prompts, seeds)]
        return GenerationOutput(_as_uint8(result.images), [int(s) for s in seeds], params)

    def variation(self, images, prompts, seeds, *, strength, guidance_scale, num_inference_steps):
        from PIL import Image

        size = (self.resolution_px, self.resolution_px)
        inputs = [Image.fromarray(np.asarray(i, dtype=np.uint8)).convert("RGB").resize(size, Image.Resampling.BICUBIC)
                  for i in images]
        result = self.image2image(prompt=list(prompts), image=inputs, strength=strength,
                                  generator=per_image_generators(seeds), guidance_scale=guidance_scale,
                                  num_inference_steps=num_inference_steps, output_type="pil")
        params = [{"prompt": p, "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
                   "strength": strength, "seed": int(s)} for p, s in zip(prompts, seeds)]
        return GenerationOutput(_as_uint8(result.images), [int(s) for s in seeds], params)
