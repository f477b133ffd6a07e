"""Image and FITS reading to 8-bit arrays, with every lossy choice named and recorded; atomic image writing.

Reading is two explicit steps for anything that is not already 8-bit (FITS, 16-bit or float TIFF/PNG), as in
astropy.visualization: an *interval* picks the values that map to [0, 1] (percentile, zscale, min-max), then a
*stretch* bends them (linear, asinh, log, sqrt). An optional background clip first subtracts the sigma-clipped
sky median and clips what falls below it. NaN and inf are masked and filled with the background level.
Colour handling is an explicit policy (grey → RGB, alpha flattened on black, CMYK and palette converted).
Every failure raises :class:`ImageReadError` whose message is the quarantine reason.

Size limits are checked from the header, before any pixel is decompressed: a 60 KB gzipped FITS can declare
8000 × 8000 pixels, and the float pipeline above needs ~65 bytes per pixel, so reading it would take 4 GB.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from flare.core.errors import ImageReadError
from flare.core.files import atomic_write_bytes, sha256_bytes
from flare.core.image_shards import open_image_source

__all__ = [
    "ReadOptions",
    "read_image",
    "read_fits",
    "stretch_to_uint8",
    "encode_image",
    "write_image",
    "load_rgb",
    "IMAGE_SUFFIXES",
    "FITS_SUFFIXES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")  # .fz: tile-compressed

IntervalName = Literal["percentile", "zscale", "minmax"]
StretchName = Literal["linear", "asinh", "log", "sqrt"]


@dataclass(frozen=True)
class ReadOptions:
    """How to turn any supported file into an 8-bit image. Every field is recorded in the manifest.

    Memory: one read takes at most about ``max_read_bytes`` (2 GB by default) on top of the interpreter.
    The need is estimated from the header before any pixel is decoded: FITS and 16-bit/float rasters take
    their raw size plus ~64 bytes a pixel (float64 copies, masks and percentiles of the interval, stretch and
    sky clip), 8-bit rasters ~12 bytes a pixel; a file over the budget is refused as "too large". Ingest runs
    ``data.workers`` reads at once, so its peak is about ``workers × max_read_bytes`` plus the encoded PNGs
    of the converted images it holds until they are written.
    """

    fits_hdu: int | str | None = None  # index or EXTNAME; None = first HDU holding image data
    interval: IntervalName = "percentile"
    percentile_low: float = 0.5
    percentile_high: float = 99.9
    stretch: StretchName = "asinh"
    stretch_a: float = 0.1  # asinh softening / log base parameter, as astropy's AsinhStretch(a) and LogStretch(a)
    background_clip: bool = True  # FITS only: subtract the sigma-clipped sky median, zero what is below the clip
    background_sigma: float = 3.0  # clip level above the sky, in sky sigmas (3σ as MiraBest preprocessing does)
    high_bit_stretch: StretchName = "linear"  # for 16-bit and float raster images
    grey_policy: Literal["rgb", "keep", "reject"] = "rgb"
    alpha_policy: Literal["flatten", "reject"] = "flatten"
    max_pixels: int = 64_000_000  # decompression-bomb limit, per image plane
    min_side_px: int = 8
    max_read_bytes: int = 2_000_000_000  # memory one read may take (see the class docstring)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_fits(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


def read_image(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``path`` into an ``(H, W, 3)`` (or ``(H, W)`` with ``grey_policy='keep'``) uint8 array.

    Returns:
        The array and a dict of what was done (format, original mode/dtype, conversions) for the manifest.

    Raises:
        ImageReadError: with the quarantine reason (empty, truncated, corrupt, too large, unsupported...).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("missing file")
    if not path.is_file():
        raise ImageReadError("not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError("empty file")
    if _is_fits(path):
        return read_fits(path, options)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(f"unsupported file type {path.suffix or '(none)'!r}")
    return _read_raster(path, options)


def _read_raster(path: Path, options: ReadOptions) -> tuple[np.ndarray, dict[str, Any]]:
    info: dict[str, Any] = {}
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = options.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                info.update(format=image.format, mode=image.mode, size=list(image.size))
                if getattr(image, "n_frames", 1) > 1:
                    info["frames"] = image.n_frames
                    info["frame_used"] = 0
                width, height = image.size
                if width * height > options.max_pixels:
                    raise ImageReadError(f"too large: {width}x{height} exceeds {options.max_pixels} pixels")
                high_bit = _HIGH_BIT_MODES.get(image.mode)
                _check_read_budget(f"{width}x{height} {image.mode} image", width * height,
                                   high_bit + _FLOAT_WORK_BYTES if high_bit else _UINT8_WORK_BYTES, options)
                image.load()
                array = _pil_to_uint8(image, options, info)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"too large: decompression-bomb limit ({exc})") from None
    except UnidentifiedImageError:
        raise ImageReadError("not a decodable image (unidentified format)") from None
    except PermissionError:
        raise ImageReadError("unreadable: permission denied") from None
    except OSError as exc:
        text = str(exc)
        reason = "truncated" if "truncat" in text.lower() else "corrupt"
        raise ImageReadError(f"{reason} image ({text})") from None
    except (SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        raise ImageReadError(f"corrupt image ({type(exc).__name__}: {exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    _check_shape(array, options)
    return _apply_grey_policy(array, options, info), info


# Bytes a pixel that the float path (interval, stretch, sky clip) holds at its peak beyond the raw data:
# ~58 measured (numpy 2, astropy 8), rounded up for BSCALE/BZERO scaling copies.
_FLOAT_WORK_BYTES = 64
# The 8-bit path: Pillow's buffer, the array copy and the grey → RGB expansion.
_UINT8_WORK_BYTES = 12
# Raster modes read through the float path → their bytes a pixel.
_HIGH_BIT_MODES = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4, "F": 4}


def _check_read_budget(what: str, pixels: int, bytes_per_pixel: float, options: ReadOptions) -> None:
    need = pixels * bytes_per_pixel
    if need > options.max_read_bytes:
        raise ImageReadError(f"too large: {what} needs about {_size(need)} to read, over the read budget of "
                             f"{_size(options.max_read_bytes)} (max_read_bytes)")


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _pil_to_uint8(image: Image.Image, options: ReadOptions, info: dict[str, Any]) -> np.ndarray:
    mode = image.mode
    if mode in _HIGH_BIT_MODES:
        data = np.asarray(image).astype(np.float64)
        info["converted"] = f"{mode} → 8-bit by {options.interval} interval + {options.high_bit_stretch} stretch"
        return stretch_to_uint8(data, options, stretch=options.high_bit_stretch, background_clip=False)
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        info["converted"] = "palette → RGB"
        mode = image.mode
    if mode in ("RGBA", "LA", "PA"):
        if options.alpha_policy == "reject":
            raise ImageReadError(f"alpha channel not allowed (alpha_policy=reject, mode {mode})")
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))  # the sky is black
        image = Image.alpha_composite(background, rgba).convert("RGB")
        info["converted"] = f"{mode} → RGB (alpha flattened on black)"
    elif mode == "CMYK":
        image = image.convert("RGB")
        info["converted"] = "CMYK → RGB"
    elif mode in ("1", "L"):
        image = image.convert("L")
    elif mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        image = image.convert("RGB")
        info["converted"] = f"{mode} → RGB"
    elif mode != "RGB":
        try:
            image = image.convert("RGB")
            info["converted"] = f"{mode} → RGB"
        except Exception as exc:  # PIL raises ValueError for impossible conversions
            raise ImageReadError(f"unsupported colour mode {mode!r} ({exc})") from None
    return np.asarray(image, dtype=np.uint8).copy()


def _check_shape(array: np.ndarray, options: ReadOptions) -> None:
    if array.ndim not in (2, 3) or min(array.shape[:2]) < options.min_side_px:
        raise ImageReadError(f"too small: {array.shape[1] if array.ndim > 1 else 0}x{array.shape[0]} px; images "
                             f"with a side under {options.min_side_px} px are quarantined (data.min_side_px)")


def _apply_grey_policy(array: np.ndarray, options: ReadOptions, info: dict[str, Any]) -> np.ndarray:
    if array.ndim == 2:
        if options.grey_policy == "reject":
            raise ImageReadError("greyscale image not allowed (grey_policy=reject)")
        if options.grey_policy == "rgb":
            info["grey_to_rgb"] = True
            return np.repeat(array[:, :, None], 3, axis=2)
    return array


# ---------------------------------------------------------------------------------------------- FITS


def read_fits(path: str | Path, options: ReadOptions = ReadOptions()) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a FITS image HDU (BSCALE/BZERO applied by astropy), mask NaN/inf, clip the sky, stretch to uint8.

    A 2-D HDU gives a grey image; a 3-D HDU with 3 planes gives RGB (planes as channels); other cubes use
    the first plane. Degenerate leading axes (e.g. FIRST's ``(1, 1, H, W)``) are squeezed. Gzipped and
    tile-compressed (``.fz``) files are read the same way; their size is checked from the header first.
    """
    from astropy.io import fits

    path = Path(path)
    info: dict[str, Any] = {"format": "FITS"}
    try:
        with fits.open(path, memmap=False) as hdul:
            index, hdu, axes = _choose_hdu(hdul, options.fits_hdu)
            info["hdu"] = index
            _check_fits_size(axes, int(hdu.header.get("BITPIX", 0)), options)
            data = hdu.data  # the first access that decompresses or reads pixels
            if data is None:
                raise ImageReadError("FITS HDU holds no image data")
            data = np.asarray(data, dtype=np.float64)
            info["bunit"] = str(hdu.header.get("BUNIT", ""))
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError("unreadable: permission denied") from None
    except Exception as exc:  # astropy raises OSError, TypeError, ValueError, VerifyError for broken files
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = "truncated" if ("truncat" in text.lower() or "end of file" in text.lower()) else "corrupt"
        raise ImageReadError(f"{reason} FITS file ({text})") from None
    data = np.squeeze(data)
    info["shape"] = list(data.shape)
    if data.ndim == 3:
        if data.shape[0] == 3:
            data = np.moveaxis(data, 0, -1)
        elif data.shape[-1] != 3:
            data = data[0]
            info["plane_used"] = 0
    if data.ndim not in (2, 3):
        raise ImageReadError(f"FITS data has unsupported shape {tuple(info['shape'])}")
    finite = np.isfinite(data)
    info["masked_nonfinite"] = int((~finite).sum())
    if not finite.any():
        raise ImageReadError("FITS data is all NaN/inf")
    array = stretch_to_uint8(data, options, stretch=options.stretch, background_clip=options.background_clip)
    _check_shape(array, options)
    info.update(interval=options.interval, stretch=options.stretch, background_clip=options.background_clip)
    return _apply_grey_policy(array, options, info), info


def _axes(header) -> list[int]:
    """``[NAXIS1, NAXIS2, ...]`` as the header declares them (for a tile-compressed HDU, the image's)."""
    return [int(header.get(f"NAXIS{i}", 0)) for i in range(1, int(header.get("NAXIS", 0)) + 1)]


def _empty_axis(axes: list[int]) -> str | None:
    return next((f"NAXIS{i} = 0" for i, n in enumerate(axes, start=1) if n == 0), None)


def _choose_hdu(hdul, selector: int | str | None) -> tuple[int, Any, list[int]]:
    """The HDU to read, its index and its axes, from headers only. ``None``: the first image HDU with pixels."""
    if selector is None:
        first_empty = None
        for index, hdu in enumerate(hdul):
            if not getattr(hdu, "is_image", False):
                continue
            axes = _axes(hdu.header)
            if len(axes) < 2:
                continue
            empty = _empty_axis(axes)
            if empty is None:
                return index, hdu, axes
            first_empty = first_empty or f"empty image: {empty} in HDU {index}"
        raise ImageReadError(first_empty or "FITS file has no image HDU")
    try:
        index, hdu = hdul.index_of(selector), hdul[selector]
    except (KeyError, IndexError):
        raise ImageReadError(f"FITS HDU {selector!r} not found") from None
    if not getattr(hdu, "is_image", False):
        raise ImageReadError(f"FITS HDU {selector!r} is not an image HDU")
    axes = _axes(hdu.header)
    empty = _empty_axis(axes)
    if empty is not None:
        raise ImageReadError(f"empty image: {empty} in HDU {index}")
    return index, hdu, axes


def _check_fits_size(axes: list[int], bitpix: int, options: ReadOptions) -> None:
    """Refuse, from the header's axes and BITPIX alone, an image whose planes or working memory exceed the limits."""
    plane = axes[0] * axes[1] if len(axes) >= 2 else 0
    if plane > options.max_pixels:
        raise ImageReadError(f"too large: {axes[0]}x{axes[1]} FITS image exceeds {options.max_pixels} pixels")
    _check_read_budget(f"{'x'.join(map(str, axes))} FITS image at BITPIX {bitpix}", math.prod(axes),
                       abs(bitpix) / 8 + _FLOAT_WORK_BYTES, options)


def stretch_to_uint8(data: np.ndarray, options: ReadOptions, *, stretch: str, background_clip: bool) -> np.ndarray:
    """Map float data to uint8 by (background clip →) interval → stretch. NaN/inf become the background."""
    from astropy.stats import sigma_clipped_stats
    from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch, ManualInterval, MinMaxInterval,
                                       SqrtStretch, ZScaleInterval)

    data = np.array(data, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        raise ImageReadError("image data is all NaN/inf")
    values = data[finite]
    if background_clip:
        _, median, sky_sigma = sigma_clipped_stats(values, sigma=3.0, maxiters=5)
        data = data - median
        data[data < options.background_sigma * sky_sigma] = 0.0
        fill = 0.0
    else:
        fill = float(np.median(values))
    data[~finite] = fill
    if options.interval == "zscale":
        low, high = ZScaleInterval().get_limits(data)
    elif options.interval == "minmax":
        low, high = MinMaxInterval().get_limits(data)
    else:
        low = float(np.percentile(data, options.percentile_low))
        high = float(np.percentile(data, options.percentile_high))
    if not high > low:
        high = low + 1.0  # a flat image maps to black rather than dividing by zero
    scaled = ManualInterval(low, high)(data, clip=True)
    stretcher = {"linear": LinearStretch(), "asinh": AsinhStretch(a=options.stretch_a),
                 "log": LogStretch(a=1.0 / max(options.stretch_a, 1e-6)), "sqrt": SqrtStretch()}[stretch]
    out = stretcher(scaled, clip=True)
    return np.round(out * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- writing

ImageFormat = Literal["png", "jpeg", "webp"]


def encode_image(array: np.ndarray, fmt: ImageFormat = "png", *, png_compress_level: int = 6,
                 quality: int = 95, lossless: bool = True) -> bytes:
    """Encode a uint8 array; deterministic for the same input and options."""
    if array.dtype != np.uint8:
        raise ValueError(f"encode_image: expected uint8, got {array.dtype}")
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=png_compress_level)
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", lossless=lossless, quality=quality, method=4)
    else:
        raise ValueError(f"format: {fmt!r} is not one of png, jpeg, webp")
    return buffer.getvalue()


def write_image(path: str | Path, array: np.ndarray, fmt: ImageFormat = "png", **encode_options: Any) -> str:
    """Encode and write atomically; returns the file's sha256."""
    data = encode_image(array, fmt, **encode_options)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_rgb(path: str | Path) -> np.ndarray:
    """Fast path for files FLARE wrote or referenced (already validated at ingest): ``(H, W, 3)`` uint8.

    ``path`` may name a member of a Parquet or WebDataset shard (``shards/train-00000-of-00001.parquet/<id>.png``,
    see :mod:`flare.core.image_shards`); its bytes are read from the shard."""
    with Image.open(open_image_source(path)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
