"""The local executor: same manifest for any worker count, pool kind or batch size; per-batch checkpoints."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from flare.core.config import ExecutorConfig
from flare.core.files import TEMP_PREFIX
from flare.core.manifest import MANIFEST_NAME, Manifest
from flare.executors import map_batches
from flare.executors.checkpoint import PARTS_DIR, PartStore
from flare.executors.demo_worker import NoisyBlurWorker, run_demo_stage


class FailingAfterWorker(NoisyBlurWorker):
    """Raises on the batch after ``FLARE_TEST_FAIL_AFTER`` batches; counts the rows it was given."""

    rows_seen = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches = 0

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        limit = os.environ.get("FLARE_TEST_FAIL_AFTER")
        if limit is not None and self.batches >= int(limit):
            raise RuntimeError("injected failure")
        self.batches += 1
        FailingAfterWorker.rows_seen += len(batch)
        return super().__call__(batch)


@pytest.fixture(scope="module")
def reference_run(sim_dataset, tmp_path_factory):
    """The uninterrupted in-process run every other run must equal, byte for byte."""
    out = tmp_path_factory.mktemp("reference")
    run_demo_stage(sim_dataset, out, seed=3, executor=ExecutorConfig(batch_size=16))
    return out


def assert_same_dataset(a, b) -> None:
    """Same manifest bytes and image bytes, no temp files or checkpoint parts left."""
    assert (a / MANIFEST_NAME).read_bytes() == (b / MANIFEST_NAME).read_bytes()
    rows = Manifest.read(a).filter(stage="demo").records()
    assert rows
    for row in rows:
        assert (a / row["path"]).read_bytes() == (b / row["path"]).read_bytes()
    assert not list(b.rglob(TEMP_PREFIX + "*")) and not (b / PARTS_DIR).exists()


@pytest.mark.parametrize("executor", [ExecutorConfig(batch_size=1), ExecutorConfig(workers=2, batch_size=5),
                                      ExecutorConfig(workers=2, batch_size=7, local_pool="thread"),
                                      ExecutorConfig(workers=2, batch_size=5, local_start="fork")],
                         ids=["batch1", "processes2", "threads2", "forked2"])
def test_local_executor_output_does_not_depend_on_workers_or_batches(sim_dataset, reference_run, tmp_path, executor):
    run_demo_stage(sim_dataset, tmp_path, seed=3, executor=executor)
    assert_same_dataset(reference_run, tmp_path)


def test_map_batches_sorts_by_id_and_handles_no_rows(sim_dataset, tmp_path):
    rows = Manifest.read(sim_dataset).frame.iloc[::-1]
    kwargs = {"input_root": str(sim_dataset), "out_dir": str(tmp_path), "seed": 0}
    out = map_batches(NoisyBlurWorker, rows, worker_kwargs=kwargs)
    assert out["id"].tolist() == sorted(out["id"]) and len(out) == len(rows)
    assert len(map_batches(NoisyBlurWorker, rows.iloc[:0], worker_kwargs=kwargs)) == 0


def test_crash_leaves_parts_and_rerun_only_does_the_rest(sim_dataset, reference_run, tmp_path, monkeypatch):
    executor = ExecutorConfig(batch_size=5)
    monkeypatch.setenv("FLARE_TEST_FAIL_AFTER", "3")
    with pytest.raises(RuntimeError, match="injected"):
        run_demo_stage(sim_dataset, tmp_path, seed=3, executor=executor, worker_class=FailingAfterWorker)
    parts = list((tmp_path / PARTS_DIR).rglob("*.parquet"))
    assert len(parts) == 3
    monkeypatch.delenv("FLARE_TEST_FAIL_AFTER")
    FailingAfterWorker.rows_seen = 0
    run_demo_stage(sim_dataset, tmp_path, seed=3, executor=executor, worker_class=FailingAfterWorker)
    assert FailingAfterWorker.rows_seen == len(Manifest.read(sim_dataset)) - 15  # the 3 finished batches are kept
    assert_same_dataset(reference_run, tmp_path)


def test_parts_with_missing_files_are_redone(sim_dataset, reference_run, tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_TEST_FAIL_AFTER", "2")
    with pytest.raises(RuntimeError):
        run_demo_stage(sim_dataset, tmp_path, seed=3, executor=ExecutorConfig(batch_size=4),
                       worker_class=FailingAfterWorker)
    # delete one finished file, corrupt another: the re-run must rewrite both
    done = sorted((tmp_path / "demo").glob("*.png"))
    done[0].unlink()
    done[1].write_bytes(done[1].read_bytes()[:20])
    monkeypatch.delenv("FLARE_TEST_FAIL_AFTER")
    run_demo_stage(sim_dataset, tmp_path, seed=3, executor=ExecutorConfig(batch_size=4),
                   worker_class=FailingAfterWorker)
    assert_same_dataset(reference_run, tmp_path)


def test_parts_are_reused_only_for_the_same_kwargs_and_inputs(tmp_path):
    batch = pd.DataFrame({"id": ["a", "b"], "path": ["a.png", "b.png"]})
    PartStore.for_run(tmp_path, NoisyBlurWorker, {"seed": 1}).write(batch, pd.DataFrame({"id": ["a__x", "b__x"]}))
    assert PartStore.for_run(tmp_path, NoisyBlurWorker, {"seed": 2}).load(batch)[0] == set()
    store = PartStore.for_run(tmp_path, NoisyBlurWorker, {"seed": 1})
    done, outputs = store.load(batch)
    assert done == {"a", "b"} and outputs[0]["id"].tolist() == ["a__x", "b__x"]
    assert store.load(batch.iloc[:1])[0] == set()  # another shard holds only "a": the part is not used
    assert store.load(batch.assign(path=["a.png", "changed.png"]))[0] == set()  # an input changed


def test_rerun_of_a_finished_stage_skips_valid_files(sim_dataset, reference_run, tmp_path):
    run_demo_stage(sim_dataset, tmp_path, seed=3)
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").glob("*.png")}
    run_demo_stage(sim_dataset, tmp_path, seed=3)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "demo").glob("*.png")} == first
    assert_same_dataset(reference_run, tmp_path)


class MissingWeightsWorker:
    """Fails while loading its model, as a stage does when a weight file is absent."""

    def __init__(self, **kwargs):
        from flare.core.errors import ConfigError

        raise ConfigError("demo.weights: file 'absent.safetensors' does not exist")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - never built
        return batch


@pytest.mark.parametrize("executor", [ExecutorConfig(), ExecutorConfig(workers=2, batch_size=2),
                                      ExecutorConfig(workers=2, batch_size=2, local_pool="thread")],
                         ids=["in-process", "processes2", "threads2"])
def test_worker_init_error_reaches_the_caller_as_one_line(executor):
    from flare.core.errors import ConfigError

    rows = pd.DataFrame({"id": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match=r"^demo.weights: file 'absent.safetensors' does not exist$"):
        map_batches(MissingWeightsWorker, rows, executor=executor)


def test_fork_is_refused_once_cuda_is_initialised(monkeypatch):
    import torch

    from flare.core.errors import FlareError
    from flare.executors.local import _make_pool

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(FlareError, match="local_start: fork cannot copy a process that has initialised CUDA"):
        _make_pool("process", 2, (None, {}, None), "fork")
