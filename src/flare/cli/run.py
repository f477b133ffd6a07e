"""``flare run``: the whole method end to end (the embedded default when no data is given)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flare.cli._common import console, handle_errors, resolve_config


@handle_errors
def command(config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML.")] = None,
            workdir: Annotated[Optional[Path], typer.Option(help="Work folder (default: ./flare-work).")] = None,
            source: Annotated[Optional[str], typer.Option(help="Your images (folder or CSV); default: simulate.")] = None,
            seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None,
            executor: Annotated[Optional[str], typer.Option(help="local or ray.")] = None,
            set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None) -> None:
    """Run every stage end to end; re-running resumes after the last finished step."""
    from flare.pipeline import run_pipeline

    cfg = resolve_config(config, set_, {"workdir": str(workdir) if workdir else None, "data.source": source,
                                        "seed": seed, "executor.name": executor})
    result = run_pipeline(cfg, log=lambda line: console.print(line, highlight=False, markup=False))
    console.print(f"\n[bold]outputs[/bold] in {result.workdir.resolve()}:")
    for name, path in result.outputs.items():
        console.print(f"  {name:10s} {path}")
