"""``flare config``: write and check run configuration files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flare.cli._common import console, handle_errors
from flare.core.config import default_config_yaml, load_config
from flare.core.errors import FlareError
from flare.core.files import atomic_write_bytes

app = typer.Typer(help="Write and validate run configuration files.", no_args_is_help=True)


@app.command("init")
@handle_errors
def init(path: Annotated[Path, typer.Argument(help="Where to write the YAML file.")] = Path("flare.yaml"),
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a commented default configuration."""
    if path.exists() and not force:
        raise FlareError(f"config init: {str(path)!r} exists; pass --force to overwrite")
    atomic_write_bytes(path, default_config_yaml().encode())
    console.print(f"wrote {path}")


@app.command("check")
@handle_errors
def check(path: Annotated[Path, typer.Argument(help="YAML file to validate.")],
          set_: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value")] = None) -> None:
    """Validate a configuration file and print the resolved values."""
    config = load_config(path, set_)
    console.print_json(config.model_dump_json())
