"""One home per default: the run config (pydantic) or the library function, never a literal in the CLI.

A CLI option that restates a default drifts from it (``flare generate train`` once trained 60 epochs while
``generate.train_epochs`` said 8 and the library 60 with another batch size). So every option defaults to
``None`` and the command passes only what the user gave; the few literals left are listed here with the reason.
The second half checks that the training commands, given no options, build exactly the library's defaults.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flare.cli import app
from flare.core.config import FlareConfig, GenerateConfig

CLI = Path(__file__).resolve().parents[1] / "src" / "flare" / "cli"

# (file, function, parameter) → why the CLI holds this default itself.
ALLOWED_LITERAL_DEFAULTS = {
    ("config.py", "init", "path"): "where `flare config init` writes is the command's own choice; no library default",
    ("predict.py", "command", "out"): "run_predict requires the output path; the CLI names the file it writes",
}


def _is_typer_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "typer"
            and node.func.attr in ("Option", "Argument"))


def _is_typer_parameter(annotation: ast.AST | None, default: ast.AST) -> bool:
    """An ``Annotated[..., typer.Option(...)]`` parameter, a shared ``*Option`` alias, or ``= typer.Option(...)``."""
    if _is_typer_call(default):
        return True
    if isinstance(annotation, ast.Name):
        return annotation.id.endswith("Option")
    return isinstance(annotation, ast.Subscript) and any(_is_typer_call(node) for node in ast.walk(annotation))


def _is_unset(node: ast.AST) -> bool:
    """None, False, empty or ``...`` (required): no value that could disagree with a library default."""
    if isinstance(node, ast.Constant):
        return node.value is None or node.value is False or node.value is Ellipsis or node.value == ""  # not 0
    if isinstance(node, (ast.List, ast.Tuple)):
        return not node.elts
    return isinstance(node, ast.Dict) and not node.keys


def literal_defaults(source: str, file: str) -> dict[tuple[str, str, str], str]:
    """``(file, function, parameter) → default source`` for every typer parameter with a set default."""
    found = {}
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef):
            continue
        arguments = function.args.posonlyargs + function.args.args
        pairs = list(zip(arguments[len(arguments) - len(function.args.defaults):], function.args.defaults))
        pairs += [(a, d) for a, d in zip(function.args.kwonlyargs, function.args.kw_defaults) if d is not None]
        for argument, default in pairs:
            if not _is_typer_parameter(argument.annotation, default):
                continue
            if _is_typer_call(default):  # the old style: typer.Option(DEFAULT, "--name", ...)
                if not default.args:
                    continue
                default = default.args[0]
            if not _is_unset(default):
                found[(file, function.name, argument.arg)] = ast.unparse(default)
    return found


def _all_literal_defaults() -> dict[tuple[str, str, str], str]:
    found = {}
    for path in sorted(CLI.glob("*.py")):
        found.update(literal_defaults(path.read_text(), path.name))
    return found


def test_the_scanner_sees_every_kind_of_default():
    source = '''
def command(a: Annotated[int, typer.Option(help="x")] = 60,
            b: Annotated[Optional[int], typer.Option(help="x")] = None,
            c: Annotated[str, typer.Argument(help="x")] = "test",
            d: Annotated[Path, typer.Option("--out")] = Path("p.csv"),
            e: Annotated[bool, typer.Option("--check")] = False,
            f: ConfigOption = None,
            g: bool = typer.Option(False, "--version"),
            h: int = typer.Option(3, "--h"),
            i: Annotated[int, typer.Option(help="x")] = 0,
            j: int = 5) -> None:
    pass
'''
    assert literal_defaults(source, "x.py") == {("x.py", "command", "a"): "60", ("x.py", "command", "c"): "'test'",
                                                ("x.py", "command", "d"): "Path('p.csv')",
                                                ("x.py", "command", "h"): "3", ("x.py", "command", "i"): "0"}


def test_cli_options_hold_no_default_of_their_own():
    found = _all_literal_defaults()
    unexpected = {key: value for key, value in found.items() if key not in ALLOWED_LITERAL_DEFAULTS}
    assert not unexpected, ("CLI options restating a default (default them to None and let the run config or the "
                            f"library function supply it, or allow-list them with a reason): {unexpected}")
    stale = set(ALLOWED_LITERAL_DEFAULTS) - set(found)
    assert not stale, f"allow-list entries with no literal default any more: {stale}"


# ------------------------------------------------------------------------- the commands build the library defaults


@pytest.fixture
def captured(monkeypatch):
    """Replace the training functions by recorders: the commands build their configs and stop there."""
    import flare.generate.train_embedded as train_embedded
    import flare.upscale.training as training

    calls: dict[str, tuple[tuple, dict]] = {}

    def recorder(name):
        def record(*args, **kwargs):
            calls[name] = (args, kwargs)
            raise SystemExit(0)
        return record

    monkeypatch.setattr(training, "train_swinir", recorder("upscale"))
    monkeypatch.setattr(train_embedded, "train_embedded", recorder("generate"))
    return calls


def _invoke(arguments: list[str]) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output


def test_upscale_train_without_options_trains_the_library_default(captured, tmp_path):
    from flare.upscale.swinir_model import SwinIRConfig
    from flare.upscale.training import TrainConfig

    _invoke(["upscale", "train", str(tmp_path)])
    (dataset, model_dir, config), options = captured["upscale"]
    assert config == TrainConfig() and config.architecture == SwinIRConfig()
    assert config.steps == 2000  # what docs/super_resolution.md describes
    assert model_dir == tmp_path / "sr-model" and set(options) == {"log_fn"}  # device, max_minutes: the library's


def test_upscale_train_sizes_the_architecture_in_the_library(captured, tmp_path):
    from flare.upscale.training import TrainConfig

    _invoke(["upscale", "train", str(tmp_path), "--patch", "64", "--embed-dim", "30", "--steps", "5"])
    config = captured["upscale"][0][2]
    assert config == TrainConfig.with_width(30, patch_hr_px=64, steps=5)
    assert config.architecture.img_size == 64 // config.architecture.scale
    assert config.architecture.num_heads == (1, 1)  # 30 is not divisible by the default 4 heads
    assert TrainConfig(patch_hr_px=64).architecture.img_size == 16  # sized to the patch without the CLI too


def test_generate_train_without_options_trains_the_library_default(captured, tmp_path):
    from flare.generate.train_embedded import EmbeddedTrainingConfig

    _invoke(["generate", "train", str(tmp_path), str(tmp_path / "model")])
    config = captured["generate"][0][2]
    assert config == EmbeddedTrainingConfig() == EmbeddedTrainingConfig.from_config(GenerateConfig(),
                                                                                     seed=FlareConfig().seed)
    generate = GenerateConfig()
    assert (config.epochs, config.batch_size, config.resolution_px, config.source, config.device) == (
        generate.train_epochs, generate.train_batch_size, generate.train_resolution_px, generate.train_source,
        generate.device)


def test_generate_train_reads_the_run_config(captured, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 4\ngenerate:\n  train_epochs: 3\n  class_prompts: {star: [a point of light]}\n")
    _invoke(["generate", "train", str(tmp_path), str(tmp_path / "model"), "--config", str(path),
             "--set", "generate.train_batch_size=4", "--learning-rate", "0.01", "--template", "a {class}"])
    config = captured["generate"][0][2]
    assert (config.epochs, config.batch_size, config.seed, config.learning_rate) == (3, 4, 4, 0.01)
    assert config.templates == ("a {class}",) and config.class_prompts == {"star": ["a point of light"]}
    assert config.checkpoint_every == 3  # never longer than the run


@pytest.mark.parametrize("generate", [GenerateConfig(), GenerateConfig(train_epochs=3, device="auto",
                                                                       train_source="truth", train_max_minutes=2)])
def test_the_generate_stage_trains_what_from_config_builds(monkeypatch, tmp_path, generate):
    """``flare run`` trains through generate/stage.py: it must agree with from_config, field for field."""
    import flare.generate.train_embedded as train_embedded
    from flare.generate.stage import ensure_embedded_model

    built = []
    monkeypatch.setattr(train_embedded, "train_embedded", lambda dataset, model_dir, config, **_: built.append(config))
    ensure_embedded_model(tmp_path, tmp_path / "out", generate, seed=7)
    assert built == [train_embedded.EmbeddedTrainingConfig.from_config(generate, seed=7)]


def test_from_config_takes_the_settings_without_a_config_key():
    from flare.generate.train_embedded import EmbeddedTrainingConfig

    base = EmbeddedTrainingConfig.from_config(GenerateConfig(), seed=0)
    assert EmbeddedTrainingConfig.from_config(GenerateConfig(), seed=0, learning_rate=0.5) == replace(
        base, learning_rate=0.5)
