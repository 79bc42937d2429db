"""Labeling end to end on tiny datasets: determinism (same seed → same data; LocalCluster with 2
workers = serial), resume after SIGKILL of the installed ``kinclose-label`` (complete, duplicate-free
manifest), corrupted shards relabeled, grid retry, failure reporting, config errors, readers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from omegaconf import OmegaConf

from kinclose.conf import compose
from kinclose.data import schema as S
from kinclose.data.label import DatasetSpec, LabelConfigError, make_tasks, run_task
from kinclose.data.runner import ClusterSpec, LabelRunError, label_dataset

TINY = DatasetSpec(name="tiny", n_tasks=3, seed=5, nx=16, nv=32, t_end=0.01, n_snapshots=3)
EXE = shutil.which("kinclose-label")


def _data(root: Path) -> dict[int, dict[str, np.ndarray]]:
    """Datasets (not attrs: ``created``/``wall_s`` differ between runs) of every listed shard."""
    out = {}
    for e in S.read_manifest(root)["shards"]:
        with h5py.File(root / e["file"], "r") as fh:
            out[e["task_id"]] = {k: fh[k][()] for k in S.DATASETS} | {"config": fh.attrs["config"],
                                                                       "seed": int(fh.attrs["seed"])}
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for i in a:
        assert a[i]["config"] == b[i]["config"] and a[i]["seed"] == b[i]["seed"]
        for k in S.DATASETS:  # bit-identical: per-cell kernels, no thread-dependent reductions
            np.testing.assert_array_equal(a[i][k], b[i][k], err_msg=f"task {i} /{k}")


@pytest.fixture(scope="module")
def serial_tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serial") / "data"
    s = label_dataset(TINY, root, ClusterSpec(kind="serial", threads=1), progress=False)
    assert s["complete"] == s["labeled"] == 3 and s["failed"] == 0
    return root


def test_same_seed_gives_identical_shards(serial_tiny: Path, tmp_path: Path) -> None:
    s = label_dataset(TINY, tmp_path / "again", ClusterSpec(kind="serial", threads=2), progress=False)
    assert s["labeled"] == 3
    _assert_same(_data(serial_tiny), _data(tmp_path / "again"))
    # the dataset hash that checkpoints record identifies the data: equal for the relabeled copy
    entries = S.read_manifest(tmp_path / "again")["shards"]
    assert all(len(e["data_sha256"]) == 64 for e in entries)
    assert S.content_hash(serial_tiny) == S.content_hash(tmp_path / "again")
    S.verify_manifest(serial_tiny, deep=True)
    other = label_dataset(replace(TINY, seed=6, n_tasks=1), tmp_path / "other", ClusterSpec(kind="serial"),
                          progress=False)
    assert other["labeled"] == 1
    assert not np.array_equal(_data(tmp_path / "other")[0]["g"][0], _data(serial_tiny)[0]["g"][0])


def test_local_cluster_with_two_workers_matches_serial(serial_tiny: Path, tmp_path: Path) -> None:
    s = label_dataset(TINY, tmp_path / "dask", ClusterSpec(kind="local", n_workers=2), progress=False)
    assert s["cluster"]["kind"] == "local" and s["cluster"]["n_workers"] == 2 and s["cluster"]["threads"] >= 1
    assert s["cluster"]["address"].startswith("tcp://127.0.0.1:")
    assert s["labeled"] == 3 and s["failed"] == 0
    _assert_same(_data(serial_tiny), _data(tmp_path / "dask"))


def test_rerun_skips_complete_and_relabels_corrupted_shards(serial_tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(serial_tiny, root)
    ref = _data(serial_tiny)
    s = label_dataset(TINY, root, ClusterSpec(kind="serial"), progress=False)
    assert (s["skipped"], s["labeled"], s["relabeled"]) == (3, 0, 0)
    # bit flip inside /g of shard 1, truncation of shard 2, a stale temp file of a killed writer
    p1 = root / S.shard_name(1)
    with h5py.File(p1, "r") as fh:
        off = fh["g"].id.get_offset()
    with open(p1, "r+b") as fh:
        fh.seek(off + 1001)
        b = fh.read(1)
        fh.seek(off + 1001)
        fh.write(bytes([b[0] ^ 0x04]))
    p2 = root / S.shard_name(2)
    with open(p2, "r+b") as fh:
        fh.truncate(p2.stat().st_size - 100)
    (root / ".shard_00000.h5.abc123.h5").write_bytes(b"partial")
    s = label_dataset(TINY, root, ClusterSpec(kind="serial"), progress=False)
    assert (s["skipped"], s["labeled"], s["relabeled"], s["complete"]) == (1, 2, 2, 3)
    assert not list(root.glob(".shard_*"))
    S.verify_manifest(root, deep=True)
    _assert_same(ref, _data(root))


def test_settings_change_in_the_same_directory_is_refused(serial_tiny: Path, tmp_path: Path) -> None:
    from kinclose.data.runner import LabelRunError

    root = tmp_path / "data"
    shutil.copytree(serial_tiny, root)
    with pytest.raises(LabelRunError, match="different settings.*overwrite=true"):
        label_dataset(replace(TINY, t_end=0.02), root, ClusterSpec(kind="serial"), progress=False)
    s = label_dataset(replace(TINY, t_end=0.02, n_tasks=1), root, ClusterSpec(kind="serial"), overwrite=True,
                      progress=False)
    assert s["labeled"] == 1 and s["complete"] == 1 and len(list(root.glob("shard_*.h5"))) == 1


def test_narrow_grid_is_retried_once_then_reported(tmp_path: Path) -> None:
    # ±4 thermal speeds lose ~3e-4 of the mass or energy (> 1e-8): the first grid fails, the 2× wider
    # (±8 thermal speeds) and finer one works
    spec = replace(TINY, n_tasks=1, v_width=4.0, T_margin=1.0, retry_widen=2.0)
    task = make_tasks(spec)[0]
    res = run_task(task, tmp_path / "ok")
    assert res["grid_attempts"] == 2 and res["nv"] == int(np.ceil(32 * 2.0 / 0.5))
    assert S.validate_shard(tmp_path / "ok" / res["file"])["grid_attempts"] == 2
    s = label_dataset(replace(spec, retry_widen=1.0), tmp_path / "fail", ClusterSpec(kind="serial"), retries=1,
                      progress=False)
    assert s["failed"] == 1 and s["complete"] == 0
    f = s["failures"][0]
    assert f["task_id"] == 0 and f["attempts"] == 2 and "LabelError" in f["error"] and "too narrow" in f["error"]
    assert S.read_manifest(tmp_path / "fail")["shards"] == []


def test_torch_dataset_and_numpy_loader_shapes(serial_tiny: Path) -> None:
    import pickle

    import torch

    from kinclose.data.dataset import ShardBatchSampler, ShardDataset, load_dataset

    ds = ShardDataset(serial_tiny)
    assert len(ds) == 3 * 3 * 16
    shards = load_dataset(serial_tiny, verify=True)
    nvs = [sh["v"].size for sh in shards]
    assert 32 in nvs and len(set(nvs)) == 2  # nv=32 is too coarse for some tiny tasks: retried on 96
    for i in (0, 100, len(ds) - 1):
        item = ds[i]
        nv = nvs[ds.locate(i)[0]]
        assert item["g"].shape == item["h"].shape == item["v"].shape == (nv,)
        assert item["U"].shape == (3,) and item["fields"].shape == (5,) and item["kn"].shape == ()
        assert item["g"].dtype == torch.float32
    ds2 = pickle.loads(pickle.dumps(ds))  # after opening files: handles are not pickled
    assert not ds2._handles
    torch.testing.assert_close(ds2[5]["g"], ds[5]["g"], rtol=0, atol=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=ShardBatchSampler(ds, batch_size=10, seed=1))
    n = 0
    for b in loader:  # batches never mix shards, so grids of different nv never meet
        assert b["g"].shape[1] in nvs and b["U"].shape[1:] == (3,) and b["kn"].ndim == 1
        n += b["g"].shape[0]
    assert n == len(ds) and len(loader) == sum(-(-48 // 10) for _ in range(3))
    s, k, j = ds.locate(20)
    sh = shards[s]
    assert sh["g"].shape == (3, 16, nvs[s]) and sh["fields"].shape == (3, 16, 5)
    np.testing.assert_allclose(ShardDataset(serial_tiny, dtype=torch.float64)[20]["g"].numpy(), sh["g"][k, j],
                               rtol=0, atol=0)
    ds.close()


@pytest.mark.parametrize("override", ["dataset.foo=1", "cluster.nworkers=2", "bogus=3", "dataset.ranges.rho_max=2"])
def test_unknown_config_keys_are_rejected(override: str) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose("label", [override])
    cfg = compose("label", [])
    assert OmegaConf.is_struct(cfg)
    d = OmegaConf.to_container(cfg.dataset)
    DatasetSpec.from_dict(d)  # the shipped presets are valid
    DatasetSpec.from_dict(OmegaConf.to_container(compose("label", ["dataset=large"]).dataset))
    with pytest.raises(LabelConfigError, match="unknown dataset keys.*'foo'"):
        DatasetSpec.from_dict(d | {"foo": 1})
    with pytest.raises(LabelRunError, match=r"unknown cluster keys \['worker'\]; known keys: \['address', "):
        ClusterSpec.from_dict({"worker": 2})


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["dataset.ranges.T=[-1.0,2.0]"], ["ranges.T=[-1.0, 2.0]", "positive temperature"]),
        (["dataset.nx=2"], ["dataset.nx=2", ">= 4"]),
        (["dataset.t_end=-0.1"], ["dataset.t_end=-0.1", "> 0"]),
        (["dataset.collision=fokker"], ["dataset.collision='fokker'", "'bgk', 'shakhov', 'boltzmann'"]),
        (["dataset.limiter=foo"], ["dataset.limiter='foo'", "mc, minmod"]),
        (["cluster.kind=mpi"], ["cluster.kind='mpi'", "serial"]),
    ],
)
def test_non_physical_settings_are_rejected_with_a_clear_message(tmp_path: Path, overrides, words) -> None:
    from kinclose.apps.label import run_label

    cfg = compose("label", [*overrides, f"out_dir={tmp_path / 'd'}", "coverage.enabled=false"])
    with pytest.raises(ValueError) as err:
        run_label(cfg, tmp_path)
    for w in words:
        assert w in str(err.value)


@pytest.mark.skipif(EXE is None, reason="kinclose-label console script is not installed (pip install -e .)")
def test_console_script_resumes_after_sigkill(tmp_path: Path) -> None:
    """SIGKILL the installed script (whole process group) after its first shard, rerun: the dataset
    is complete, listed once per task, and equal to an uninterrupted run."""
    n = 12
    args = [EXE, "cluster.kind=serial", "cluster.threads=1", "dataset.name=kill", f"dataset.n_tasks={n}",
            "dataset.nx=32", "dataset.nv=48", "dataset.v_width=6.5", "dataset.T_margin=1.5", "dataset.t_end=0.05", "dataset.n_snapshots=3", "dataset.seed=3",
            f"out_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}", "coverage.shock=null"]
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    root = tmp_path / "data"
    t0 = time.time()
    while not list(root.glob("shard_*.h5")) and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_with = len(S.read_manifest(root)["shards"]) if (root / S.MANIFEST).exists() else 0
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert list(root.glob("shard_*.h5")), "the first shard never appeared"

    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "label_summary.json").read_text())
    assert summary["complete"] == n and summary["failed"] == 0
    assert summary["skipped"] + summary["labeled"] == n and summary["skipped"] >= 1
    assert summary["skipped"] >= killed_with
    print(f"killed with {killed_with} listed shards; rerun skipped {summary['skipped']}, labeled {summary['labeled']}")
    man = S.read_manifest(root)
    ids = [e["task_id"] for e in man["shards"]]
    assert ids == list(range(n))  # complete, each task once
    assert sorted(p.name for p in root.glob("shard_*.h5")) == [S.shard_name(i) for i in range(n)]
    assert not list(root.glob(".shard_*"))
    S.verify_manifest(root, deep=True)
    assert (tmp_path / "run" / "coverage.png").stat().st_size > 10_000
    # equal to an uninterrupted in-process run of the same settings
    ref = tmp_path / "ref"
    spec = DatasetSpec.from_dict(json.loads((root / "dataset_spec.json").read_text()))
    label_dataset(spec, ref, ClusterSpec(kind="serial"), progress=False)
    _assert_same(_data(ref), _data(root))
    # the console script rejects unknown keys
    bad = subprocess.run([EXE, "dataset.bogus=1", f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Could not override 'dataset.bogus'" in bad.stderr


def test_python_module_entry_point_runs(tmp_path: Path) -> None:
    """``python -m kinclose.apps.label`` (without the console script) labels and checks."""
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    common = [sys.executable, "-m", "kinclose.apps.label", "cluster.kind=serial", "dataset.n_tasks=2", "dataset.nx=8", "dataset.v_width=6.5", "dataset.T_margin=1.5",
              "dataset.nv=24", "dataset.t_end=0.005", f"out_dir={tmp_path / 'd'}", f"hydra.run.dir={tmp_path / 'r'}",
              "coverage.shock=null"]
    res = subprocess.run(common, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([*common, "mode=check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / "r" / "label_summary.json").read_text())["complete"] == 2
