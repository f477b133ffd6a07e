"""UniDiffuser (Bao et al. 2023) from a local diffusers folder: class prompts → images, and the image-variation
round trip the original FLARE used: image → caption (img2text mode) → image (text2img mode, new seed).

diffusers moved ``UniDiffuserPipeline`` to its deprecated pipelines after 0.33.1; it still imports in 0.42.
The caption of each variation is recorded in the manifest (``params.caption``). Images are made one at a time
with their own CPU generator, so a result never depends on batching.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flare.core.errors import ConfigError
from flare.generate.base import FrozenConfig, GenerationBackend, GenerationOutput, per_image_generators
from flare.generate.local_pipeline import folder_hash, load_local_pipeline
from flare.generate.registry import register_generator

__all__ = ["UniDiffuserGenerator"]


class UniDiffuserGenerator(GenerationBackend):
    """UniDiffuser backend: VAE, CLIP text/image encoders, caption decoder, U-ViT and scheduler from ``model_path``."""

    name = "unidiffuser"
    variation_operation = "i2i-variation"

    def __init__(self, model_path: str | Path, device: str | None = "cpu"):
        try:
            from diffusers import UniDiffuserPipeline
        except ImportError:
            raise ConfigError("generate.backend: unidiffuser needs a diffusers version that still ships "
                              "UniDiffuserPipeline") from None
        self.model_path = Path(model_path)
        self.pipeline, torch_device = load_local_pipeline(UniDiffuserPipeline, self.model_path, device)
        self.resolution_px = int(self.pipeline.unet.config.sample_size) * int(self.pipeline.vae_scale_factor)
        self.model_id = f"UniDiffuserPipeline@{self.model_path.name}"
        self.model_hash = folder_hash(self.model_path)
        self.config = FrozenConfig(backend=self.name, model_path=str(self.model_path), device=torch_device.type,
                                   resolution_px=self.resolution_px,
                                   scheduler=type(self.pipeline.scheduler).__name__)

    def _text_to_image(self, prompt: str, seed: int, guidance_scale: float, steps: int) -> np.ndarray:
        self.pipeline.set_text_to_image_mode()
        result = self.pipeline(prompt=prompt, generator=per_image_generators([seed])[0], guidance_scale=guidance_scale,
                               num_inference_steps=steps, height=self.resolution_px, width=self.resolution_px,
                               output_type="pil")
        return np.asarray(result.images[0].convert("RGB"), dtype=np.uint8)

    def caption(self, image: np.ndarray, seed: int, guidance_scale: float, steps: int) -> str:
        """img2text mode: the caption UniDiffuser's text decoder writes for ``image``."""
        from PIL import Image

        self.pipeline.set_image_to_text_mode()
        pil = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
        pil = pil.resize((self.resolution_px, self.resolution_px), Image.Resampling.BICUBIC)
        result = self.pipeline(image=pil, generator=per_image_generators([seed])[0], guidance_scale=guidance_scale,
                               num_inference_steps=steps)
        return str(result.text[0]).strip()

    def text_to_image(self, prompts, seeds, *, guidance_scale, num_inference_steps):
        images = [self._text_to_image(p, s, guidance_scale, num_inference_steps) for p, s in zip(prompts, seeds)]
        params = [{"prompt": p, "guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
                   "strength": None, "seed": int(s)} for p, s in zip(prompts, seeds)]
        self.pipeline.reset_mode()
        return GenerationOutput(images, [int(s) for s in seeds], params)

    def variation(self, images, prompts, seeds, *, strength, guidance_scale, num_inference_steps):
        """image → caption → image. ``strength`` does not apply to this round trip and is recorded as None;
        the class prompt is kept in front of the caption so the variation stays in its class."""
        out, params = [], []
        for image, prompt, seed in zip(images, prompts, seeds):
            caption = self.caption(image, seed, guidance_scale, num_inference_steps)
            text = f"{prompt}, {caption}" if caption else prompt
            out.append(self._text_to_image(text, seed, guidance_scale, num_inference_steps))
            params.append({"prompt": text, "class_prompt": prompt, "caption": caption, "guidance_scale": guidance_scale,
                           "num_inference_steps": num_inference_steps, "strength": None, "seed": int(seed),
                           "method": "image-caption-image"})
        self.pipeline.reset_mode()
        return GenerationOutput(out, [int(s) for s in seeds], params)


@register_generator("unidiffuser", description="A local UniDiffuser pipeline: t2i + image→caption→image variations")
def _unidiffuser(model_path: str | None = None, device: str = "cpu") -> UniDiffuserGenerator:
    if not model_path:
        raise ConfigError("generate.model_path: backend 'unidiffuser' needs a local model folder")
    return UniDiffuserGenerator(model_path, device=device)  # diffusers is imported here, not at registration
