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
            set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value.")] = None,
            rerun_stale: Annotated[bool, typer.Option("--rerun-stale", help="Steps made with another config (and "
                                                      "every later step): rename them to <step>.stale-<n> and make "
                                                      "them again. Without it such a re-run stops.")] = False) -> None:
    """Run every stage end to end; re-running resumes after the last finished step.

    A re-run with a config that changes what a finished step made stops with one line naming the stale steps
    (config.yaml untouched) unless --rerun-stale is given; one run at a time per work folder (.flare.lock)."""
    from flare.pipeline import run_pipeline

    cfg = resolve_config(config, set_, {"workdir": str(workdir) if workdir else None, "data.source": source,
                                        "seed": seed, "executor.name": executor})
    result = run_pipeline(cfg, log=lambda line: console.print(line, highlight=False, markup=False),
                          rerun_stale=rerun_stale)
    console.print(f"\n[bold]outputs[/bold] in {result.workdir.resolve()}:")
    for name, path in result.outputs.items():
        console.print(f"  {name:10s} {path}")
