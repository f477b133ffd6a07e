"""The embedded default data: a small simulated survey rendered with GalSim.

Each object is drawn twice. The **HR truth** is rendered at ``hr_pixel_scale_arcsec`` through a sharp PSF
(``hr_psf_fwhm_arcsec``) with no noise. The **LR observation** is that truth seen by a survey:
the PSF widened to ``lr_psf_fwhm_arcsec``, pixels ×``factor`` coarser, and sky + Poisson + read noise
(:mod:`flare.core.degrade`, the same model the GZ1 protocol and SR training use).

Classes: elliptical (de Vaucouleurs-like Sérsic), spiral_clockwise / spiral_anticlockwise (Sérsic bulge +
exponential disk + star-forming knots along two logarithmic arms of the given handedness), edge_on (inclined
exponential disk with a small bulge), merger (two galaxies with a tidal tail), star (a point source).
Faint field sources are sprinkled in, so super-resolution can be checked for invented or lost sources.
Bulges are red and disks/knots blue; the display stretch (asinh, one global scale) is the same for every image.
"""

from __future__ import annotations

import math
from pathlib import Path

import galsim
import numpy as np

from flare.core.config import SimulateConfig, SplitConfig
from flare.core.files import remove_stale_temp_files
from flare.core.io import write_image
from flare.core.manifest import Manifest
from flare.core.progress import track
from flare.core.seeding import derive_seed
from flare.core.taxonomy import load_taxonomy
from flare.core.degrade import DegradeConfig, degrade
from flare.data.split import assign_splits

__all__ = ["simulate_survey", "render_object", "CLASS_RENDERERS"]

BULGE_RGB = np.array([1.0, 0.78, 0.55])
DISK_RGB = np.array([0.65, 0.8, 1.0])
# Display mapping: value = 255 * asinh(flux_per_px / SOFTENING) / asinh(SATURATION / SOFTENING).
SOFTENING = 0.02
SATURATION = 6.0


def _sersic(rng: np.random.Generator, n: float, hlr: float, flux: float, q: float) -> galsim.GSObject:
    profile = galsim.Sersic(n=n, half_light_radius=hlr, flux=flux)
    return profile.shear(q=q, beta=rng.uniform(0, math.pi) * galsim.radians)


def _arm_knots(rng: np.random.Generator, handedness: int, flux: float, r_max: float, q: float, beta: float,
               n_arms: int = 2) -> galsim.GSObject:
    """Knots along logarithmic spirals r = a·exp(b·θ); ``handedness`` +1 or -1 sets the sense of winding."""
    knots = []
    pitch = rng.uniform(0.25, 0.4)
    phase0 = rng.uniform(0, 2 * math.pi)
    per_arm = int(rng.integers(14, 22))
    for arm in range(n_arms):
        phase = phase0 + 2 * math.pi * arm / n_arms
        for theta in np.linspace(0.0, 1.6 * math.pi, per_arm):
            radius = 0.35 * math.exp(pitch * theta)
            if radius > r_max:
                break
            angle = phase + handedness * theta
            jitter = rng.normal(0, 0.04, size=2)
            knots.append(galsim.Gaussian(sigma=rng.uniform(0.07, 0.13), flux=rng.uniform(0.5, 1.5))
                         .shift(radius * math.cos(angle) + jitter[0], radius * math.sin(angle) + jitter[1]))
    arms = galsim.Add(knots).withFlux(flux)
    return arms.shear(q=q, beta=beta * galsim.radians)


def _elliptical(rng):
    flux = rng.lognormal(math.log(60), 0.3)
    return _sersic(rng, rng.uniform(3.0, 4.5), rng.uniform(0.7, 1.3), flux, rng.uniform(0.6, 1.0)), None


def _spiral(rng, handedness: int):
    flux = rng.lognormal(math.log(60), 0.3)
    q, beta = rng.uniform(0.75, 1.0), rng.uniform(0, math.pi)
    bulge = _sersic(rng, rng.uniform(1.5, 2.5), rng.uniform(0.2, 0.35), 0.25 * flux, rng.uniform(0.8, 1.0))
    disk = galsim.Exponential(half_light_radius=rng.uniform(0.9, 1.4), flux=0.35 * flux)
    disk = disk.shear(q=q, beta=beta * galsim.radians)
    arms = _arm_knots(rng, handedness, 0.4 * flux, r_max=3.2, q=q, beta=beta)
    return bulge, galsim.Add([disk, arms])


def _edge_on(rng):
    flux = rng.lognormal(math.log(60), 0.3)
    beta = rng.uniform(0, math.pi) * galsim.radians
    disk = galsim.InclinedExponential(inclination=rng.uniform(83, 90) * galsim.degrees,
                                      half_light_radius=rng.uniform(1.0, 1.6), scale_h_over_r=rng.uniform(0.08, 0.15),
                                      flux=0.8 * flux).rotate(beta)
    bulge = _sersic(rng, 2.0, rng.uniform(0.2, 0.3), 0.2 * flux, rng.uniform(0.6, 0.8)).rotate(beta)
    return bulge, disk


def _merger(rng):
    flux = rng.lognormal(math.log(60), 0.3)
    separation = rng.uniform(0.8, 1.6)
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = separation * math.cos(angle), separation * math.sin(angle)
    first = _sersic(rng, rng.uniform(1.5, 4), rng.uniform(0.3, 0.6), 0.4 * flux, rng.uniform(0.5, 1.0))
    second = _sersic(rng, rng.uniform(1.0, 3), rng.uniform(0.3, 0.6), 0.3 * flux, rng.uniform(0.5, 1.0))
    bulges = galsim.Add([first.shift(dx / 2, dy / 2), second.shift(-dx / 2, -dy / 2)])
    tail = []
    curl = rng.choice([-1, 1])
    for t in np.linspace(0, 1, 16):
        phi = angle + curl * 2.2 * t
        radius = 0.6 + 2.2 * t
        tail.append(galsim.Gaussian(sigma=0.15 + 0.1 * t, flux=1.0).shift(radius * math.cos(phi), radius * math.sin(phi)))
    return bulges, galsim.Add(tail).withFlux(0.3 * flux)


def _star(rng):
    flux = rng.lognormal(math.log(150), 0.4)
    return galsim.Gaussian(sigma=0.02, flux=flux), None


CLASS_RENDERERS = {
    "elliptical": _elliptical,
    "spiral_clockwise": lambda rng: _spiral(rng, -1),
    "spiral_anticlockwise": lambda rng: _spiral(rng, +1),
    "edge_on": _edge_on,
    "merger": _merger,
    "star": _star,
}


def _field_sources(rng: np.random.Generator, half_field: float) -> list[tuple[galsim.GSObject, np.ndarray]]:
    sources = []
    for _ in range(int(rng.integers(0, 4))):
        position = rng.uniform(-0.85 * half_field, 0.85 * half_field, size=2)
        if np.hypot(*position) < 0.35 * half_field:
            continue  # keep the field clear of the target
        colour = rng.uniform(0.6, 1.0, size=3)
        obj = galsim.Gaussian(sigma=rng.uniform(0.02, 0.15), flux=rng.lognormal(math.log(4), 0.5))
        sources.append((obj.shift(*position), colour))
    return sources


def render_object(label: str, seed: int, config: SimulateConfig) -> np.ndarray:
    """Render the noiseless HR truth of one object: ``(hr_size_px, hr_size_px, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    psf = galsim.Gaussian(fwhm=config.hr_psf_fwhm_arcsec)
    size, scale = config.hr_size_px, config.hr_pixel_scale_arcsec
    centre_offset = rng.normal(0, 0.1, size=2)
    red_part, blue_part = CLASS_RENDERERS[label](rng)
    bands = np.zeros((size, size, 3))
    components = [(red_part, BULGE_RGB if label != "star" else rng.uniform(0.7, 1.0, size=3)),
                  (blue_part, DISK_RGB)] + _field_sources(rng, size * scale / 2)
    for profile, colour in components:
        if profile is None:
            continue
        if profile is red_part or profile is blue_part:
            profile = profile.shift(*centre_offset)
        image = galsim.Convolve(profile, psf).drawImage(nx=size, ny=size, scale=scale).array
        bands += image[:, :, None] * colour[None, None, :]
    display = 255.0 * np.arcsinh(np.clip(bands, 0, None) / SOFTENING) / math.asinh(SATURATION / SOFTENING)
    return np.clip(np.round(display), 0, 255).astype(np.uint8)


def survey_degradation(config: SimulateConfig) -> DegradeConfig:
    """The LR observation model: widen the PSF from HR to survey FWHM, bin, add noise."""
    extra_fwhm_arcsec = math.sqrt(max(config.lr_psf_fwhm_arcsec ** 2 - config.hr_psf_fwhm_arcsec ** 2, 0.0))
    return DegradeConfig(factor=config.factor, psf_fwhm_px=extra_fwhm_arcsec / config.hr_pixel_scale_arcsec,
                         sky_level=config.sky_level, gain=config.gain, read_noise=config.read_noise)


def simulate_survey(out: str | Path, config: SimulateConfig | None = None, *, seed: int = 0,
                    split: SplitConfig | None = None) -> Manifest:
    """Write ``hr/`` truth, ``lr/`` observations, ``taxonomy.yaml`` and a split manifest of the LR images.

    Same ``config`` and ``seed`` → byte-identical files and manifest.
    """
    config = config or SimulateConfig()
    split = split or SplitConfig()
    out = Path(out)
    taxonomy = load_taxonomy("sim")
    unknown = [c for c in config.classes if c not in CLASS_RENDERERS]
    if unknown:
        from flare.core.errors import ConfigError
        raise ConfigError(f"simulate.classes: {unknown} not among {', '.join(CLASS_RENDERERS)}")
    degradation = survey_degradation(config)
    jobs = [(label, index) for label in config.classes for index in range(config.objects_per_class)]
    records = []
    for label, index in track(jobs, "simulate: rendering"):
        object_id = f"sim-{label}-{index:04d}"
        object_seed = derive_seed(seed, "simulate", object_id)
        hr = render_object(label, object_seed, config)
        lr = degrade(hr, degradation, np.random.default_rng(derive_seed(seed, "observe", object_id)))
        hr_path, lr_path = Path("hr") / label / f"{object_id}.png", Path("lr") / label / f"{object_id}.png"
        write_image(out / hr_path, hr)
        digest = write_image(out / lr_path, lr)
        records.append({
            "id": object_id, "path": str(lr_path), "sha256": digest, "label": label,
            "macro_label": taxonomy.macro(label), "origin_id": object_id, "split": "train", "stage": "simulate",
            "operation": "galsim-render+observe", "seed": object_seed, "backend": f"galsim-{galsim.__version__}",
            "params": {"simulate": config.model_dump(), "degrade": degradation.to_dict()},
            "truth_path": str(hr_path),
        })
    import pandas as pd

    frame = pd.DataFrame({"origin_id": [r["origin_id"] for r in records], "label": [r["label"] for r in records]})
    for record, value in zip(records, assign_splits(frame, split.model_dump(), seed)):
        record["split"] = value
    manifest = Manifest.from_records(records, out)
    remove_stale_temp_files(out)  # a killed earlier run may have left some; every image is written by now
    manifest.write()
    taxonomy.save(out / "taxonomy.yaml")
    return manifest
