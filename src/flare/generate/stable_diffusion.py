"""Any local Stable Diffusion-family checkpoint through diffusers' auto pipelines: text-to-image and img2img.

``AutoPipelineForText2Image.from_pretrained`` picks the right class (SD 1.x/2.x, SDXL...) from the folder's
``model_index.json``; the img2img pipeline is built from the same components with ``from_pipe`` (no second copy
of the weights). The safety checker is not loaded: the images are sky survey cut-outs for training sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flare.core.errors import ConfigError
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput, per_image_generators
from flare.generate.local_pipeline import folder_hash, load_local_pipeline
from flare.generate.registry import register_generator

__all__ = ["StableDiffusionGenerator"]


def _as_uint8(images) -> list[np.ndarray]:
    return [np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images]


class StableDiffusionGenerator(GenerationBackend):
    """Stable Diffusion-family backend: text encoder, UNet, VAE and scheduler come from ``model_path``."""

    name = "sd"
    variation_operation = "i2i-variation"

    def __init__(self, model_path: str | Path, device: str | None = "cpu"):
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

        self.model_path = Path(model_path)
        self.text2image, torch_device = load_local_pipeline(AutoPipelineForText2Image, self.model_path, device,
                                                            safety_checker=None, requires_safety_checker=False)
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


@register_generator("sd", description="A local Stable Diffusion-family checkpoint (diffusers): t2i + img2img")
def _stable_diffusion(model_path: str | None = None, device: str = "cpu") -> StableDiffusionGenerator:
    if not model_path:
        raise ConfigError("generate.model_path: backend 'sd' needs a local model folder")
    return StableDiffusionGenerator(model_path, device=device)  # diffusers is imported here, not at registration
