"""Shared fixtures and marker handling.

Markers (declared in pyproject.toml): ``slow`` runs with ``--runslow``; ``gpu`` with ``--rungpu`` on a CUDA
machine; ``shared_data`` runs whenever ``../shared`` exists (CI has it); ``ray`` and ``browser`` always run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FLARE_PROGRESS", "0")
# rich wraps CLI output at the terminal width (80 columns without a terminal): a test that looks for a phrase in
# a message must not depend on where a line happened to break
os.environ.setdefault("COLUMNS", "200")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--rungpu", action="store_true", default=False, help="run tests marked gpu")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: run with --rungpu on a CUDA machine")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not config.getoption("--rungpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository; tests that need it skip with a clear message when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent: real-data tests need it beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory) -> Path:
    """A tiny simulated survey (6 classes × 6 objects, HR 48 px, LR 12 px), shared by the session."""
    from flare.core.config import SimulateConfig
    from flare.data.simulate import simulate_survey

    out = tmp_path_factory.mktemp("sim")
    simulate_survey(out, SimulateConfig(objects_per_class=6, hr_size_px=48), seed=0)
    return out
