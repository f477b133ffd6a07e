"""Atomic writes and path safety: a crash never leaves a half-written file under its final name.

The one exception is :func:`write_rerenderable_bytes`, for files the manifest can check and re-render.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from flare.core.errors import FlareError

__all__ = ["atomic_write_bytes", "prepare_output_dir", "write_rerenderable_bytes", "atomic_output", "safe_join", "sha256_file",
           "update_digest", "sha256_bytes", "TEMP_PREFIX", "output_is_valid", "remove_stale_temp_files",
           "user_cache_dir"]

# Temp files start with this prefix so that resume logic and tests can find leftovers.
TEMP_PREFIX = ".flare-tmp-"


def user_cache_dir() -> Path:
    """Where converted weights live: ``$FLARE_CACHE`` or ``~/.cache/flare`` (created on first write)."""
    return Path(os.environ.get("FLARE_CACHE") or Path.home() / ".cache" / "flare")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path`` (same file system, so atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` via temp file + fsync + rename."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_rerenderable_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` in place: no temp file, rename or fsync, for a file that can always be made again and
    whose manifest row records its sha256 (augmented variants).

    A torn file fails :func:`output_is_valid` on a re-run and is rendered again, so the atomic dance buys
    nothing here; on ext4 it costs 4–8× the write itself (mkstemp, reopen and rename: 0.4–0.9 ms a file).
    """
    path = Path(path)
    try:
        handle = open(path, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "wb")
    with handle:
        handle.write(data)


def safe_join(root: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` to ``root`` and refuse any result outside ``root`` (``..``, absolute paths, links out)."""
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / relative).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise FlareError(f"unsafe path {str(relative)!r}: it leaves {str(root)!r}")
    return candidate


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    return update_digest(hashlib.sha256(), path, chunk_size).hexdigest()


def update_digest(digest: "hashlib._Hash", path: str | Path, chunk_size: int = 1 << 20) -> "hashlib._Hash":
    """Feed the file at ``path`` to ``digest`` in chunks (weight files can be gigabytes); returns ``digest``."""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest


_DECODABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def output_is_valid(path: str | Path, sha256: str | None = None, *, decode: bool = True) -> bool:
    """Whether a re-run may skip ``path``: it exists, is not empty, matches ``sha256`` when given, and (for
    images, when ``decode``) decodes to the end. A partial or corrupt file returns False, so it is redone."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return False
        if sha256 and sha256_file(path) != sha256:
            return False
        if decode and path.suffix.lower() in _DECODABLE_SUFFIXES:
            from PIL import Image

            with Image.open(path) as image:
                image.load()
    except Exception:  # PIL raises OSError, SyntaxError, ValueError... for truncated or corrupt files
        return False
    return True


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete temp files a killed run left under ``folder`` (a SIGKILL skips ``atomic_output``'s clean-up).

    Call it only when no other process writes there (FLARE does once a stage has all its rows); returns
    how many were removed.
    """
    removed = 0
    for path in Path(folder).rglob(TEMP_PREFIX + "*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def prepare_output_dir(path: str | Path) -> Path:
    """Create the output folder ``path`` (and its parents) and return it; a file in the way (``path`` itself or
    a parent) or a folder that cannot be made is a one-line :class:`FlareError`, never a raw ``OSError``."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            what = "" if part == path else f" (its parent {str(part)!r} is a file)"
            raise FlareError(f"output {str(path)!r} is not a folder{what}: choose another path or move the file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlareError(f"output {str(path)!r}: cannot create the folder ({exc.strerror or exc})") from None
    return path
