"""The Ray Data executor on a local loopback cluster (one per module: Ray starts slowly on shared cores).

It must give the local executor's manifest and files byte for byte, also when an actor is SIGKILLed mid-stage
(Ray restarts it and retries its batch).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from flare.core.config import ExecutorConfig
from flare.core.errors import ImageReadError
from flare.core.manifest import MANIFEST_NAME, Manifest
from flare.executors import map_batches
from flare.executors.demo_worker import NoisyBlurWorker, run_demo_stage
from test_executors import assert_same_dataset

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


class PidRecordingWorker(NoisyBlurWorker):
    """Same output as NoisyBlurWorker; each actor writes its pid beside the output folder and works slowly."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        pids = Path(self.out_dir).parent / "pids"
        pids.mkdir(exist_ok=True)
        (pids / str(os.getpid())).write_text("")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        time.sleep(0.15 * len(batch))
        return super().__call__(batch)


class BadInputWorker(NoisyBlurWorker):
    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        raise ImageReadError(f"demo: cannot read {batch['id'].iloc[0]!r} (corrupt image)")


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=80 * 1024 * 1024, log_to_driver=False, configure_logging=False)
    # Actors must unpickle this module's worker classes without importing the test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference_run(sim_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_demo_stage(sim_dataset, out, seed=3, executor=ExecutorConfig(batch_size=16))
    return out


def test_ray_executor_matches_local(ray_cluster, sim_dataset, reference_run, tmp_path):
    run_demo_stage(sim_dataset, tmp_path / "out", seed=3, executor=ExecutorConfig(name="ray", workers=2, batch_size=5))
    assert_same_dataset(reference_run, tmp_path / "out")


def test_ray_executor_honours_shard(ray_cluster, sim_dataset, tmp_path):
    local = run_demo_stage(sim_dataset, tmp_path / "local", executor=ExecutorConfig(shard="1/2"))
    remote = run_demo_stage(sim_dataset, tmp_path / "ray", executor=ExecutorConfig(name="ray", shard="1/2"))
    assert 0 < len(local.filter(stage="demo")) < len(Manifest.read(sim_dataset))
    assert (tmp_path / "local" / MANIFEST_NAME).read_bytes() != b""
    assert local.filter(stage="demo").frame.equals(remote.filter(stage="demo").frame)


def test_worker_error_reaches_the_caller_as_one_line(ray_cluster, sim_dataset, tmp_path):
    with pytest.raises(ImageReadError, match=r"^demo: cannot read '.*' \(corrupt image\)$"):
        run_demo_stage(sim_dataset, tmp_path, worker_class=BadInputWorker,
                       executor=ExecutorConfig(name="ray", workers=1, batch_size=40))


def test_worker_init_error_reaches_the_caller_as_one_line(ray_cluster):
    class MissingModel(NoisyBlurWorker):
        def __init__(self, **kwargs):
            raise ImageReadError("demo: model file 'absent.pt' does not exist")

    with pytest.raises(ImageReadError, match=r"^demo: model file 'absent.pt' does not exist$"):
        map_batches(MissingModel, pd.DataFrame({"id": ["a", "b"]}),
                    executor=ExecutorConfig(name="ray", workers=1, max_retries=1))


def test_killed_actor_is_restarted_and_the_stage_completes(ray_cluster, sim_dataset, reference_run, tmp_path):
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def stage() -> None:
        try:
            run_demo_stage(sim_dataset, out, seed=3, worker_class=PidRecordingWorker,
                           executor=ExecutorConfig(name="ray", workers=2, batch_size=3, max_retries=2))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=stage)
    thread.start()
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        if pids.is_dir() and any(pids.iterdir()) and len(list((out / "demo").glob("*.png"))) >= 4:
            break
        time.sleep(0.05)
    victim = int(sorted(pids.iterdir())[0].name)
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive(), "stage did not finish after an actor was killed"
    assert not errors, errors
    assert len(list(pids.iterdir())) >= 3, sorted(p.name for p in pids.iterdir())  # 2 actors + the replacement
    assert_same_dataset(reference_run, out)


def _tiny_run_overrides() -> list[str]:
    """A tiny `flare run` config; only keys that exist in this version of the config are set."""
    from flare.core.config import FlareConfig

    wanted = {"simulate.objects_per_class": 2, "simulate.hr_size_px": 32, "upscale.backend": "bicubic",
              "augment.k": 1, "generate.per_class": 1, "generate.steps": 1, "generate.train_epochs": 1,
              "generate.train_resolution_px": 16, "generate.variations": 0, "executor.batch_size": 3,
              "executor.workers": 2}
    fields = FlareConfig().model_dump()
    return [f"{key}={value}" for key, value in wanted.items()
            if key.split(".")[0] in fields and key.split(".")[1] in fields[key.split(".")[0]]]


@pytest.mark.slow  # ~2 min on 2 shared cores: two tiny pipelines, one Ray actor pool per stage
def test_flare_run_with_ray_gives_the_local_manifests(ray_cluster, tmp_path, monkeypatch):
    """`flare run --executor ray` = `--executor local`, manifest for manifest (the steps before the benchmark)."""
    from typer.testing import CliRunner

    import flare.pipeline as pipeline
    from flare.cli import app

    monkeypatch.setattr(pipeline, "STEPS", [s for s in pipeline.STEPS if s[0] not in ("benchmark", "report")])
    for executor in ("local", "ray"):
        arguments = ["run", "--workdir", str(tmp_path / executor), "--executor", executor, "--seed", "1"]
        for item in _tiny_run_overrides():
            arguments += ["--set", item]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
    local = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob(MANIFEST_NAME))
    remote = sorted(p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob(MANIFEST_NAME))
    assert local == remote and len(local) >= 2
    for relative in local:  # same rows, once the work folder's own absolute prefix is taken out of paths
        frames = [_without_prefix(Manifest.read(tmp_path / name / relative).frame, tmp_path / name)
                  for name in ("local", "ray")]
        pd.testing.assert_frame_equal(frames[0], frames[1], obj=str(relative))


def _without_prefix(frame: pd.DataFrame, prefix: Path) -> pd.DataFrame:
    """Paths (and params naming a model folder) hold the work folder's absolute path: take it out."""
    frame = frame.copy()
    for column in ("path", "truth_path", "params"):
        frame[column] = frame[column].str.replace(str(prefix.resolve()), "WORKDIR", regex=False)
    return frame
