"""The ``flare`` command: one sub-command group per stage. It parses, calls the library and prints."""

from __future__ import annotations

import importlib

import typer

from flare import __version__

__all__ = ["app", "main"]

app = typer.Typer(name="flare", help="FLARE: better training sets from small, noisy, low-resolution sky images.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

# (module, name): each module exposes `app` (a group) or `command` (a single command). Stages register here.
_SUBCOMMANDS = [
    ("flare.cli.data", "data"),
    ("flare.cli.config", "config"),
    ("flare.cli.backends", "backends"),
    ("flare.cli.upscale", "upscale"),
    ("flare.cli.evaluate", "evaluate"),
    ("flare.cli.augment", "augment"),
    ("flare.cli.generate", "generate"),
    ("flare.cli.combine", "combine"),
    ("flare.cli.run", "run"),
    ("flare.cli.benchmark", "benchmark"),
    ("flare.cli.report", "report"),
    ("flare.cli.predict", "predict"),
]

for _module_name, _name in _SUBCOMMANDS:
    _module = importlib.import_module(_module_name)
    if hasattr(_module, "app"):
        app.add_typer(_module.app, name=_name)
    else:
        app.command(name=_name, help=_module.command.__doc__)(_module.command)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()
