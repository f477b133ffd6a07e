"""The LR protocol (`flare data make-lr`): HR = centre crop, LR = that crop binned ×factor, factor recorded."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from flare.cli import app
from flare.core.io import load_rgb, write_image
from flare.core.manifest import Manifest


def _survey(folder, n=3, side=80):
    rng = np.random.default_rng(0)
    for label in ("elliptical", "edge_on"):
        for i in range(n):
            write_image(folder / label / f"{label}{i}.png", rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8))
    return folder


def test_factor_8_halves_the_lr_side_of_factor_4_and_is_recorded(tmp_path):
    runner = CliRunner()
    source = _survey(tmp_path / "survey")
    assert runner.invoke(app, ["data", "ingest", str(source), str(tmp_path / "ingested")]).exit_code == 0
    sides, factors = {}, {}
    for factor in (4, 8):
        out = tmp_path / f"lr{factor}"
        result = runner.invoke(app, ["data", "make-lr", str(tmp_path / "ingested"), str(out), "--crop", "64",
                                     "--factor", str(factor)])
        assert result.exit_code == 0, result.output
        manifest = Manifest.read(out)
        row = manifest.records()[0]
        sides[factor] = load_rgb(manifest.resolve(row["path"])).shape[:2]
        assert load_rgb(manifest.resolve(row["truth_path"])).shape[:2] == (64, 64)
        factors[factor] = {json.loads(r["params"])["degrade"]["factor"] for r in manifest.records()}
    assert sides[4] == (16, 16) and sides[8] == (8, 8)
    assert factors == {4: {4}, 8: {8}}
    bad = runner.invoke(app, ["data", "make-lr", str(tmp_path / "ingested"), str(tmp_path / "bad"), "--crop", "60",
                              "--factor", "8"])
    assert bad.exit_code == 1 and "not divisible by factor 8" in bad.output
