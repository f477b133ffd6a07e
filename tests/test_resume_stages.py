"""Every real stage that exists: SIGKILL mid-stage + re-run = an uninterrupted run; shards merged = unsharded.

(The benchmark's cells are resumable too: tests/test_benchmark.py re-runs it and checks finished cells are skipped.)

Each stage is run as a subprocess (``python SCRIPT STAGE IN OUT [SHARD]``) in its own process group. A stage
that is absent from this checkout (not written yet) is skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flare.core.files import TEMP_PREFIX
from flare.core.manifest import MANIFEST_NAME, Manifest
from flare.core.shard import merge_manifests

# stage name → (module that must exist, Python statement run with `source`, `out`, `executor` defined)
STAGES = {
    "simulate": ("flare.data.simulate",
                 "from flare.data.simulate import simulate_survey\n"
                 "from flare.core.config import SimulateConfig\n"
                 "simulate_survey(out, SimulateConfig(objects_per_class=4, hr_size_px=48), seed=2)"),
    # storage=convert so that ingest writes images (auto would reference these PNGs in place)
    "ingest": ("flare.data.ingest",
               "import pathlib\n"
               "from flare.data.ingest import ingest\n"
               "from flare.core.config import DataConfig\n"
               "ingest(pathlib.Path(source) / 'hr', out, DataConfig(storage='convert', workers=1), seed=1,"
               " taxonomy='sim')"),
    "upscale": ("flare.upscale.stage",
                "from flare.upscale.stage import upscale_dataset\n"
                "from flare.core.config import UpscaleConfig\n"
                "upscale_dataset(source, out, UpscaleConfig(backend='bicubic', batch_size=2), executor=executor)"),
    "augment": ("flare.augment.stage",
                "from flare.augment.stage import augment_dataset\n"
                "from flare.core.config import AugmentConfig\n"
                "augment_dataset(source, out, AugmentConfig(k=2, batch_size=2), seed=4, executor=executor)"),
    # the embedded model is trained once per session (fixture `generate_model`), then only sampled
    "generate": ("flare.generate.stage",
                 "import os\n"
                 "from flare.generate.stage import run_generate\n"
                 "from flare.core.config import GenerateConfig\n"
                 "run_generate(source, out, GenerateConfig(per_class=1, variations=1, steps=2, batch_size=2, filter='none', audit=False,"
                 " model_path=os.environ['FLARE_TEST_GENERATE_MODEL']), seed=0, executor=executor, grid=False)"),
    # combine selects over the whole augmented set; its input is made once beside the simulated survey so the
    # reference and the killed runs read the same folder
    "combine": ("flare.combine.stage",
                "import pathlib\n"
                "from flare.augment.stage import augment_dataset\n"
                "from flare.combine import combine_datasets\n"
                "from flare.core.config import AugmentConfig, CombineConfig\n"
                "augmented = pathlib.Path(source).parent / 'combine-input'\n"
                "if not (augmented / 'manifest.parquet').exists():\n"
                "    augment_dataset(source, augmented, AugmentConfig(k=2, batch_size=2), seed=4)\n"
                "combine_datasets(augmented, out, CombineConfig(alpha=0.6), seed=0)"),
}
# stages that map image by image and so can be sharded (combine is one selection over the whole set)
SHARDABLE = ("upscale", "augment", "generate")

SCRIPT = textwrap.dedent('''
    import sys
    from flare.core.config import ExecutorConfig

    if __name__ == "__main__":
        stage, source, out = sys.argv[1], sys.argv[2], sys.argv[3]
        shard = sys.argv[4] if len(sys.argv) > 4 else None
        executor = ExecutorConfig(batch_size=2, shard=shard)
        exec(STATEMENTS[stage])
''')


def _available(stage: str) -> bool:
    try:
        return importlib.util.find_spec(STAGES[stage][0]) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stage-script") / "run_stage.py"
    statements = {name: code for name, (_, code) in STAGES.items()}
    path.write_text(f"STATEMENTS = {statements!r}\n" + SCRIPT)
    return path


def _start(script: Path, stage: str, source: Path, out: Path, shard: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, FLARE_PROGRESS="0", OMP_NUM_THREADS="1")
    arguments = [sys.executable, str(script), stage, str(source), str(out)] + ([shard] if shard else [])
    return subprocess.Popen(arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output.decode()[-3000:]


def _run_in_process(stage: str, source: Path, out: Path, shard: str | None = None) -> None:
    """The same statements as the subprocess runs, without paying for a fresh interpreter."""
    from flare.core.config import ExecutorConfig

    exec(STAGES[stage][1], {"source": str(source), "out": str(out),
                            "executor": ExecutorConfig(batch_size=2, shard=shard)})


def _images(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.png")}


def _train_generate_model(sim_dataset: Path, folder: Path) -> None:
    """A one-epoch 16 px embedded model, so that generate runs only sample; its path goes to the scripts."""
    from flare.core.config import GenerateConfig
    from flare.generate.stage import ensure_embedded_model

    config = GenerateConfig(train_epochs=1, train_resolution_px=16, train_batch_size=8)
    os.environ["FLARE_TEST_GENERATE_MODEL"] = str(ensure_embedded_model(sim_dataset, folder, config, seed=0))


@pytest.fixture(scope="module")
def reference_runs(sim_dataset, tmp_path_factory):
    """Uninterrupted, unsharded run of each stage, made on first use."""
    cache: dict[str, Path] = {}
    previous = os.environ.get("FLARE_TEST_GENERATE_MODEL")

    def get(stage: str) -> Path:
        if not _available(stage):
            pytest.skip(f"stage {stage} is not in this checkout")
        if stage == "generate" and "generate-model" not in cache:
            cache["generate-model"] = tmp_path_factory.mktemp("generate-model")
            _train_generate_model(sim_dataset, cache["generate-model"])
        if stage not in cache:
            cache[stage] = tmp_path_factory.mktemp(f"reference-{stage}")
            _run_in_process(stage, sim_dataset, cache[stage])
        return cache[stage]

    yield get
    if previous is None:
        os.environ.pop("FLARE_TEST_GENERATE_MODEL", None)
    else:
        os.environ["FLARE_TEST_GENERATE_MODEL"] = previous


# generate trains a model and samples with a UNet: minutes on 2 shared cores, so it runs with --runslow
SLOW_STAGES = {"generate"}


def _params(values: list[tuple]) -> list:
    return [pytest.param(*v, marks=pytest.mark.slow) if v[0] in SLOW_STAGES else pytest.param(*v) for v in values]


@pytest.mark.parametrize("stage, seed", _params([(name, seed) for seed, name in enumerate(STAGES)]))
def test_sigkilled_stage_resumes_to_the_same_manifest(stage, seed, sim_dataset, script, reference_runs, tmp_path):
    reference = reference_runs(stage)
    out = tmp_path / "out"
    process = _start(script, stage, sim_dataset, out)
    rng = random.Random(seed)
    target, deadline = rng.randint(1, 12), time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if out.is_dir() and len(list(out.rglob("*.png"))) >= target:
            break
        time.sleep(0.005)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    _finish(_start(script, stage, sim_dataset, out))

    assert (out / MANIFEST_NAME).read_bytes() == (reference / MANIFEST_NAME).read_bytes()
    assert _images(out) == _images(reference)
    assert not list(out.rglob(TEMP_PREFIX + "*"))


@pytest.mark.parametrize("stage", _params([(name,) for name in SHARDABLE]))
def test_sharded_stage_merged_equals_unsharded(stage, sim_dataset, reference_runs, tmp_path):
    whole = reference_runs(stage)
    for i in range(2):
        _run_in_process(stage, sim_dataset, tmp_path / f"shard{i}", f"{i}/2")
    made = [len(Manifest.read(tmp_path / f"shard{i}").filter(stage=stage)) for i in range(2)]
    assert all(made) and sum(made) == len(Manifest.read(whole).filter(stage=stage))
    merged = whole.parent / f"merged-{stage}"  # beside the reference, so paths outside it rebase alike
    merge_manifests([tmp_path / "shard0", tmp_path / "shard1"], merged)
    assert (merged / MANIFEST_NAME).read_bytes() == (whole / MANIFEST_NAME).read_bytes()
    assert _images(merged) == _images(whole)
