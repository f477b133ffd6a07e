"""What every CLI module shares: a group with a default command, config resolution, one-line errors.

Options default to ``None`` (not given). A value the user did not give comes from the run config
(:func:`resolve_config`) or from the library function's own default (:func:`given`), never from a literal in
the CLI, so each default has one home (``tests/test_defaults.py`` checks).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from pydantic import ValidationError

from flare.core.config import FlareConfig, apply_overrides, format_validation_error, load_config
from flare.core.errors import ConfigError, FlareError

__all__ = ["DefaultCommandGroup", "console", "err_console", "given", "handle_errors", "resolve_config", "stage_app",
           "ShardOption", "ExecutorOption", "WorkersOption", "ConfigOption", "SetOption", "SeedOption"]

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _check_shard(value: Optional[str]) -> Optional[str]:
    from flare.core.shard import parse_shard

    try:
        parse_shard(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--shard: ")) from None
    return value


# Reusable stage options: pass them on as flags {"executor.shard": shard, "executor.name": executor,
# "executor.workers": workers} to resolve_config; map_batches reads config.executor.
ShardOption = Annotated[Optional[str], typer.Option(
    "--shard", callback=_check_shard, help="Only shard i of N (e.g. 0/4), chosen by a hash of each origin; "
    "join the outputs with `flare data merge-manifests`.")]
ExecutorOption = Annotated[Optional[str], typer.Option("--executor", help="local or ray.")]
WorkersOption = Annotated[Optional[int], typer.Option("--workers", help="Processes (local) or actors (ray).")]


class DefaultCommandGroup(TyperGroup):
    """A group whose ``run`` command is used when no sub-command is named: ``flare augment IN OUT --k 5``
    runs ``flare augment run IN OUT --k 5`` while ``flare augment replay ...`` still reaches ``replay``."""

    default_command = "run"

    def parse_args(self, ctx, args):  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def stage_app(help_text: str) -> typer.Typer:
    """A sub-command group for one stage (default command ``run``)."""
    return typer.Typer(cls=DefaultCommandGroup, help=help_text, no_args_is_help=True, add_completion=False)


def handle_errors(function: F) -> F:
    """Print :class:`FlareError` as one red line and exit 1 (tracebacks only for real bugs)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except FlareError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; re-run the same command to resume")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def resolve_config(config_path: Path | None, overrides: list[str] | None = None,
                   flags: dict[str, Any] | None = None) -> FlareConfig:
    """defaults < YAML file < ``--set key=value`` < dedicated flags (``None`` flags are ignored)."""
    config = load_config(config_path, overrides or None)
    present = {key: value for key, value in (flags or {}).items() if value is not None}
    if not present:
        return config
    try:
        return FlareConfig.model_validate(apply_overrides(config.model_dump(), present))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (``None``: not given), as keyword arguments: a library function's own
    defaults hold for the rest, so the CLI never restates them."""
    return {name: value for name, value in options.items() if value is not None}


def is_interactive() -> bool:
    return sys.stdout.isatty()


# Options every stage command shares.
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="Run config YAML.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="Override: section.key=value (repeatable).")]
SeedOption = Annotated[Optional[int], typer.Option("--seed", help="Seed (overrides config).")]
