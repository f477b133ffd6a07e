"""The ``sd`` and ``unidiffuser`` backends end to end through OUR code, on tiny random-weight pipelines built here
(small configs as in diffusers' get_dummy_components; tokenizers from tiny vocab files written by the test),
saved with save_pretrained and loaded back by the backends. Nothing is downloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

CLIP_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "lo", "l</w>", "w</w>", "r</w>", "t</w>", "low</w>",
              "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>", "<|endoftext|>"]
GPT2_VOCAB = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "\u0120", "\u0120l", "\u0120n", "\u0120lo", "\u0120low",
              "er", "\u0120lowest", "\u0120newer", "\u0120wider", "<unk>", "<|endoftext|>"]


def _clip_tokenizer(folder):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(CLIP_VOCAB)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<unk>", model_max_length=77)


def _gpt2_tokenizer(folder):
    from transformers import GPT2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(GPT2_VOCAB)}))
    (folder / "merges.txt").write_text("#version: 0.2\n\u0120 l\n\u0120l o\n\u0120lo w\ne r\n")
    return GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token="<unk>", model_max_length=77)


def _clip_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                                        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2,
                                        pad_token_id=1, vocab_size=1000, max_position_embeddings=77))


def _vae(channels=(4, 8), groups=2):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=list(channels), in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                         latent_channels=4, norm_num_groups=groups)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sd") / "tiny-sd"
    unet = UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    pipeline = StableDiffusionPipeline(unet=unet, scheduler=scheduler, vae=_vae(), text_encoder=_clip_text_encoder(),
                                       tokenizer=_clip_tokenizer(folder.parent / "tok"), safety_checker=None,
                                       feature_extractor=None, image_encoder=None, requires_safety_checker=False)
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_unidiffuser(tmp_path_factory):
    from diffusers import DPMSolverMultistepScheduler, UniDiffuserModel, UniDiffuserPipeline, UniDiffuserTextDecoder
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("unidiffuser") / "tiny-unidiffuser"
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=2,
                                                                   num_attention_heads=4, image_size=32,
                                                                   intermediate_size=37, patch_size=4))
    unet = UniDiffuserModel(text_dim=32, clip_img_dim=32, num_text_tokens=77, num_attention_heads=2,
                            attention_head_dim=8, in_channels=4, out_channels=4, num_layers=2, norm_num_groups=32,
                            sample_size=16, patch_size=4, activation_fn="gelu", norm_type="layer_norm",
                            block_type="unidiffuser", pre_layer_norm=False, use_timestep_embedding=False,
                            ff_final_dropout=True)
    text_decoder = UniDiffuserTextDecoder(prefix_length=77, prefix_inner_dim=32, prefix_hidden_dim=32, vocab_size=1025,
                                          n_positions=1024, n_embd=32, n_layer=2, n_head=4, n_inner=37)
    # GPT-2 ties lm_head to the embedding; untie so safetensors can save both
    text_decoder.transformer.lm_head.weight = torch.nn.Parameter(
        text_decoder.transformer.transformer.wte.weight.detach().clone())
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            solver_order=3)
    pipeline = UniDiffuserPipeline(vae=_vae((32, 64), 16), text_encoder=_clip_text_encoder(), image_encoder=image_encoder,
                                   clip_image_processor=CLIPImageProcessor(crop_size=32, size=32),
                                   clip_tokenizer=_clip_tokenizer(folder.parent / "clip"), text_decoder=text_decoder,
                                   text_tokenizer=_gpt2_tokenizer(folder.parent / "gpt2"), unet=unet, scheduler=scheduler)
    pipeline.save_pretrained(folder)
    return folder


def test_sd_backend_text_to_image_and_img2img(tiny_sd):
    from flare.generate.registry import create_generator

    backend = create_generator("sd", model_path=str(tiny_sd))
    assert backend.resolution_px == 32 and backend.config.pipeline == "StableDiffusionPipeline"
    assert len(backend.model_hash) == 16
    prompts = ["A realistic image of star in space", "A realistic image of merging galaxies in space"]
    first = backend.text_to_image(prompts, [0, 1], guidance_scale=6.0, num_inference_steps=2)
    again = backend.text_to_image(prompts, [0, 1], guidance_scale=6.0, num_inference_steps=2)
    assert [i.shape for i in first.images] == [(32, 32, 3)] * 2 and first.seeds == [0, 1]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first.images, again.images))
    assert first.images[0].tobytes() != first.images[1].tobytes()
    varied = backend.variation([np.full((20, 20, 3), 40, np.uint8)] * 2, prompts, [5, 6], strength=0.5,
                               guidance_scale=6.0, num_inference_steps=4)
    assert [i.shape for i in varied.images] == [(32, 32, 3)] * 2
    assert varied.params[0]["strength"] == 0.5 and varied.params[1]["seed"] == 6
    with pytest.raises(AttributeError):
        backend.config.device = "cuda"


def test_sd_backend_runs_through_the_stage(tiny_sd, sim_dataset, tmp_path):
    from flare.core.config import GenerateConfig
    from flare.generate.stage import run_generate

    config = GenerateConfig(backend="sd", model_path=str(tiny_sd), per_class=1, variations=1, variation_max_per_class=1,
                            steps=2, guidance_scale=2.0, filter="none", audit=False)  # a random tiny SD: its noise would be filtered
    made = run_generate(sim_dataset, tmp_path / "out", config, seed=0, grid=False).manifest.filter(stage="generate")
    assert len(made) == 12 and set(made.frame["backend"]) == {"sd"} and set(made.frame["split"]) == {"train"}
    params = json.loads(made.frame["params"].iloc[-1])
    assert params["backend_config"]["pipeline"] == "StableDiffusionPipeline" and params["generated_size_px"] == 32


def test_unidiffuser_backend_text_to_image_and_caption_round_trip(tiny_unidiffuser):
    from flare.generate.registry import create_generator

    backend = create_generator("unidiffuser", model_path=str(tiny_unidiffuser))
    assert backend.resolution_px == 32
    first = backend.text_to_image(["A realistic image of star in space"], [3], guidance_scale=6.0, num_inference_steps=2)
    again = backend.text_to_image(["A realistic image of star in space"], [3], guidance_scale=6.0, num_inference_steps=2)
    assert first.images[0].shape == (32, 32, 3) and first.images[0].tobytes() == again.images[0].tobytes()
    varied = backend.variation([first.images[0]], ["A realistic image of star in space"], [4], strength=0.5,
                               guidance_scale=6.0, num_inference_steps=2)
    params = varied.params[0]
    assert varied.images[0].shape == (32, 32, 3)
    assert params["method"] == "image-caption-image" and isinstance(params["caption"], str)
    assert params["prompt"].startswith("A realistic image of star in space")
    assert backend.pipeline.mode is None  # the backend leaves the pipeline's mode as it found it


def test_missing_folders_are_one_line_errors(tmp_path):
    from flare.core.errors import ConfigError
    from flare.generate.registry import create_generator

    for name in ("sd", "unidiffuser"):
        with pytest.raises(ConfigError, match="no model_index.json"):
            create_generator(name, model_path=str(tmp_path))
