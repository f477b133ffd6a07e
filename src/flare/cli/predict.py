"""``flare predict``: classify images with a model folder saved by the benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, given, handle_errors


@handle_errors
def command(model_dir: Annotated[Path, typer.Argument(help="Model folder (model.safetensors + model.json + taxonomy.yaml).")],
            images: Annotated[list[Path], typer.Argument(help="Image/FITS files, folders, or .txt lists of paths.")],
            out: Annotated[Path, typer.Option("--out", "-o", help="Predictions file, .csv or .parquet.")] = Path("predictions.csv"),
            batch_size: Annotated[Optional[int], typer.Option(help="Images per batch.")] = None,
            low_confidence: Annotated[Optional[float], typer.Option(help="Flag predictions whose top probability is below this.")] = None,
            sort: Annotated[Optional[Path], typer.Option("--sort", help="Copy/link images into class folders here.")] = None,
            link: Annotated[Optional[str], typer.Option(help="With --sort: copy, move (source removed after a verified copy), symlink or hardlink.")] = None,
            tta: Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Average the 8 rot90 x flip views, mirror pairs swapped (default: as the benchmark scored the model).")] = None) -> None:
    """Classify a folder, file list or FITS files; writes fine and macro labels with probabilities."""
    from flare.classify.predict import run_predict

    frame = run_predict(model_dir, list(images), out, sort_into=sort,
                        **given(batch_size=batch_size, low_confidence=low_confidence, sort_mode=link, tta=tta))
    errors = int((frame.get("error", "") != "").sum()) if "error" in frame else 0
    flagged = int(frame["low_confidence"].fillna(False).sum()) if "low_confidence" in frame else 0
    console.print(f"classified {len(frame) - errors} images ({flagged} low-confidence, {errors} unreadable) → {out}")
