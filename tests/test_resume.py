"""Fault injection: SIGKILL a stage subprocess at random points, re-run it, and get the uninterrupted result.

The stage runs as ``python STAGE_SCRIPT IN OUT WORKERS`` in its own process group; it is killed either after
a random number of its output files exist or after a random delay, then re-run to the end. The manifest and
every file must equal an uninterrupted run byte for byte, with no temp files or checkpoint parts left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flare.core.config import ExecutorConfig
from flare.core.files import TEMP_PREFIX
from flare.core.manifest import MANIFEST_NAME, Manifest
from flare.executors.checkpoint import PARTS_DIR
from flare.executors.demo_worker import run_demo_stage

STAGE_SCRIPT = textwrap.dedent('''
    import sys, time
    from flare.core.config import ExecutorConfig
    from flare.executors.demo_worker import NoisyBlurWorker, run_demo_stage

    class SlowNoisyBlurWorker(NoisyBlurWorker):
        """Same rows and pixels as NoisyBlurWorker, slowed so that a kill lands mid-stage."""
        def __call__(self, batch):
            time.sleep(0.04 * len(batch))
            return super().__call__(batch)

    if __name__ == "__main__":
        source, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
        run_demo_stage(source, out, seed=3, executor=ExecutorConfig(batch_size=3, workers=workers),
                       worker_class=SlowNoisyBlurWorker)
''')


@pytest.fixture(scope="module")
def reference_run(sim_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    run_demo_stage(sim_dataset, out, seed=3)
    return out


@pytest.fixture(scope="module")
def stage_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("script") / "stage_script.py"
    path.write_text(STAGE_SCRIPT)
    return path


def _start(script: Path, source: Path, out: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, FLARE_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(source), str(out), str(workers)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_at_random_point(process: subprocess.Popen, out: Path, rng: random.Random, total: int) -> tuple[str, bool]:
    """SIGKILL the whole process group after N outputs exist or after a delay; returns what was done and
    whether the stage was still running (``True`` is a real mid-stage kill)."""
    if rng.random() < 0.5:
        target, deadline = rng.randint(1, total - 2), time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if len(list((out / "demo").glob("*.png"))) >= target:
                break
            time.sleep(0.01)
        how = f"after {target} files"
    else:
        delay = rng.uniform(0.5, 4.0)
        time.sleep(delay)
        how = f"after {delay:.2f} s"
    running = process.poll() is None
    if running:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return how, running


@pytest.mark.parametrize("seed, workers", [(0, 1), (1, 1), (2, 1), (3, 2)])
def test_sigkilled_stage_resumes_to_the_uninterrupted_result(sim_dataset, reference_run, stage_script, tmp_path,
                                                             seed, workers):
    out = tmp_path / "out"
    total = len(Manifest.read(sim_dataset))
    how, killed = _kill_at_random_point(_start(stage_script, sim_dataset, out, workers), out, random.Random(seed),
                                        total)
    if how.endswith("files"):  # the file trigger fires mid-stage: some outputs, no manifest yet
        finished = list((out / "demo").glob("*.png"))
        assert killed and 0 < len(finished) < total and not (out / MANIFEST_NAME).exists(), how

    rerun = _start(stage_script, sim_dataset, out, workers)
    output, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, output.decode()[-2000:]

    assert (out / MANIFEST_NAME).read_bytes() == (reference_run / MANIFEST_NAME).read_bytes(), how
    made = Manifest.read(out).filter(stage="demo").records()
    assert len(made) == total
    for row in made:
        assert (out / row["path"]).read_bytes() == (reference_run / row["path"]).read_bytes(), how
    assert not list(out.rglob(TEMP_PREFIX + "*")), how
    assert not (out / PARTS_DIR).exists(), how


def test_torn_temp_files_and_parts_are_cleaned(sim_dataset, reference_run, tmp_path):
    out = tmp_path / "out"
    (out / "demo").mkdir(parents=True)
    (out / "demo" / (TEMP_PREFIX + "abc.png")).write_bytes(b"\x89PNG torn")
    (out / PARTS_DIR / "0123456789abcdef").mkdir(parents=True)
    (out / PARTS_DIR / "0123456789abcdef" / "garbage.parquet").write_bytes(b"not parquet")
    run_demo_stage(sim_dataset, out, seed=3, executor=ExecutorConfig(batch_size=8))
    assert (out / MANIFEST_NAME).read_bytes() == (reference_run / MANIFEST_NAME).read_bytes()
    assert not list(out.rglob(TEMP_PREFIX + "*"))
