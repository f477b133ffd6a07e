"""``flare report``: one self-contained HTML page for a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, handle_errors


@handle_errors
def command(run_dir: Annotated[Path, typer.Argument(help="A `flare run` work folder.")],
            out: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file (default: RUN_DIR/report/report.html).")] = None) -> None:
    """Render datasets, sample grids, SR metrics, synthetic grids, results and feature plots into one HTML file."""
    from flare.report.html import build_report

    path = build_report(run_dir, out)
    console.print(f"report written to {path}")
