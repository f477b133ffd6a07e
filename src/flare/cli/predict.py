"""``flare predict``: classify images with a model folder saved by the benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, handle_errors
from flare.core.errors import FlareError


@handle_errors
def command(model_dir: Annotated[Path, typer.Argument(help="Model folder (model.safetensors + model.json + taxonomy.yaml).")],
            images: Annotated[list[Path], typer.Argument(help="Image/FITS files, folders, or .txt lists of paths.")],
            out: Annotated[Path, typer.Option("--out", "-o", help="Predictions file, .csv or .parquet.")] = Path("predictions.csv"),
            batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
            low_confidence: Annotated[float, typer.Option(help="Flag predictions whose top probability is below this.")] = 0.5,
            sort: Annotated[Optional[Path], typer.Option("--sort", help="Copy/link images into class folders here.")] = None,
            link: Annotated[str, typer.Option(help="With --sort: copy, symlink or hardlink.")] = "copy") -> None:
    """Classify a folder, file list or FITS files; writes fine and macro labels with probabilities."""
    from flare.classify.predict import run_predict

    if link not in ("copy", "symlink", "hardlink"):
        raise FlareError(f"predict.link: {link!r} is not one of copy, symlink, hardlink")
    frame = run_predict(model_dir, list(images), out, batch_size=batch_size, low_confidence=low_confidence,
                        sort_into=sort, sort_mode=link)  # type: ignore[arg-type]
    errors = int((frame.get("error", "") != "").sum()) if "error" in frame else 0
    flagged = int(frame["low_confidence"].fillna(False).sum()) if "low_confidence" in frame else 0
    console.print(f"classified {len(frame) - errors} images ({flagged} low-confidence, {errors} unreadable) → {out}")
