"""Boltzmann labeling (``dataset.collision=boltzmann``): a tiny run writes valid shards holding the
reduced collision terms Qg, Qh, which conserve mass, momentum and energy to round-off; the schema
stays backward compatible (BGK shards have no Qg/Qh) and refuses Boltzmann shards without them;
spec errors are clear."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from kinclose.data import schema as S
from kinclose.data.dataset import load_shard
from kinclose.data.label import DatasetSpec, LabelConfigError, make_tasks
from kinclose.data.runner import ClusterSpec, label_dataset

RANGES = dict(rho=[0.8, 1.3], T=[0.8, 1.3], u=[-0.3, 0.3], max_density_ratio=1.5, max_temperature_ratio=1.5,
              max_velocity_jump=0.5, max_expansion=0.5, max_shock_mach=1.5, max_anisotropy=1.3, noneq_fraction=0.5,
              kn=[0.05, 0.5])
TINY = DatasetSpec(name="bz_tiny", n_tasks=2, seed=3, nx=6, t_end=0.004, n_snapshots=2, collision="boltzmann",
                   v_width=5.0, T_margin=1.0, ranges=RANGES,
                   boltzmann=dict(n=10, n_dirs=6, grid_rtol=0.05, tail_tol=1e-4))


@pytest.fixture(scope="module")
def bz_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bz") / "data"
    s = label_dataset(TINY, root, ClusterSpec(kind="serial", threads=1), progress=False)
    assert s["complete"] == s["labeled"] == 2 and s["failed"] == 0, s["failures"]
    return root


def test_boltzmann_shards_are_valid_and_hold_collision_terms(bz_root: Path) -> None:
    entries = S.verify_manifest(bz_root, deep=True)
    assert len(entries) == 2
    for e in entries:
        attrs = S.validate_shard(bz_root / e["file"], deep=True)
        assert attrs["collision"] == "boltzmann" and attrs["n_per_dim"] >= 10
        d = load_shard(bz_root / e["file"])
        nt, nx, nv = d["g"].shape
        assert (nt, nx) == (2, 6) and nv == attrs["n_per_dim"]
        assert d["Qg"].shape == d["Qh"].shape == (nt, nx, nv)
        v, dv = d["v"], d["dv"]
        np.testing.assert_allclose(np.diff(v), dv, rtol=1e-12, atol=0)
        scale = np.abs(d["Qg"]).sum(-1).max() * dv * (1.0 + np.abs(v).max() ** 2)
        assert scale > 0  # collisions act (non-equilibrium data or not, the snapshot at t > 0 relaxes)
        mass = (d["Qg"] * dv).sum(-1)
        mom = (v * d["Qg"] * dv).sum(-1)
        energy = ((v * v * d["Qg"] + d["Qh"]) * dv).sum(-1)
        for name, val in (("mass", mass), ("momentum", mom), ("energy", energy)):
            np.testing.assert_allclose(val, 0.0, rtol=0, atol=1e-13 * scale, err_msg=name)
        assert json_config(bz_root / e["file"])["boltzmann"]["n"] == 10


def json_config(path: Path) -> dict:
    import json

    return json.loads(S.read_attrs(path)["config"])


def test_boltzmann_shard_without_collision_terms_is_refused(bz_root: Path, tmp_path: Path) -> None:
    src = bz_root / S.shard_name(0)
    dst = tmp_path / S.shard_name(0)
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as fh:
        del fh["Qh"]
    with pytest.raises(S.ShardError, match="reduced collision terms"):
        S.validate_shard(dst, deep=False)
    d = load_shard(src)
    arrays = {k: d[k] for k in S.DATASETS}
    attrs = {k: v for k, v in d["attrs"].items()}
    with pytest.raises(S.ShardError, match="missing \\['Qg', 'Qh'\\]"):
        S.write_shard(tmp_path / "x.h5", arrays, d["dv"], attrs)
    # the same arrays as a BGK shard (no Qg, Qh) are fine: the old layout is unchanged
    attrs["collision"] = "bgk"
    S.write_shard(tmp_path / "bgk.h5", arrays, d["dv"], attrs)
    a = S.validate_shard(tmp_path / "bgk.h5", deep=True)
    assert a["collision"] == "bgk" and "Qg" not in load_shard(tmp_path / "bgk.h5")


def test_corrupted_boltzmann_shard_gives_clear_error(bz_root: Path, tmp_path: Path) -> None:
    src = bz_root / S.shard_name(1)
    dst = tmp_path / S.shard_name(1)
    raw = bytearray(src.read_bytes())
    dst.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(S.ShardError, match="truncated or corrupted"):
        S.validate_shard(dst)
    # a flipped value inside /Qg: content checksum (Qg is part of data_sha256)
    dst.write_bytes(bytes(raw))
    with h5py.File(dst, "r+") as fh:
        fh["Qg"][0, 0, 0] += 1.0
    with pytest.raises(S.ShardError, match="checksum"):
        S.validate_shard(dst, deep=True)


def test_bgk_task_config_is_unchanged_by_the_boltzmann_options() -> None:
    t = make_tasks(DatasetSpec(n_tasks=1))[0]
    assert t.boltzmann is None and '"boltzmann"' not in t.to_json()
    tb = make_tasks(TINY)[0]
    assert tb.boltzmann["n"] == 10 and '"boltzmann"' in tb.to_json()


def test_spec_errors_are_clear() -> None:
    with pytest.raises(LabelConfigError, match="'bgk', 'shakhov', 'boltzmann'"):
        DatasetSpec.from_dict({"collision": "fokker"})
    with pytest.raises(LabelConfigError, match="boltzmann.n=15 must be an even integer"):
        DatasetSpec.from_dict({"collision": "boltzmann", "boltzmann": {"n": 15}})
    with pytest.raises(LabelConfigError, match="unknown dataset.boltzmann keys \\['N'\\]"):
        DatasetSpec.from_dict({"collision": "boltzmann", "boltzmann": {"N": 16}})
    with pytest.raises(LabelConfigError, match="n_dirs"):
        DatasetSpec.from_dict({"collision": "boltzmann", "boltzmann": {"n_dirs": 0}})
    with pytest.raises(LabelConfigError, match="grid_rtol"):
        DatasetSpec.from_dict({"collision": "boltzmann", "boltzmann": {"grid_rtol": 2.0}})


def test_boltzmann_small_config_is_valid() -> None:
    from importlib.resources import files

    d = yaml.safe_load((files("kinclose.conf") / "dataset" / "boltzmann_small.yaml").read_text())
    spec = DatasetSpec.from_dict(d)
    assert spec.collision == "boltzmann" and spec.boltzmann_options().n == 16
    assert 12 <= spec.n_tasks <= 24 and 32 <= spec.nx <= 64


def test_dataset_spec_written_before_the_boltzmann_options_still_matches(tmp_path: Path) -> None:
    """A dataset directory labeled before DatasetSpec had ``boltzmann`` resumes without overwrite=true."""
    import json
    from dataclasses import asdict

    from kinclose.data.runner import SPEC_FILE

    spec = DatasetSpec(name="old", n_tasks=1, seed=2, nx=8, nv=32, t_end=0.002, n_snapshots=2)
    root = tmp_path / "d"
    label_dataset(spec, root, ClusterSpec(kind="serial", threads=1), progress=False)
    old = asdict(spec)
    old.pop("boltzmann")
    (root / SPEC_FILE).write_text(json.dumps(old))
    s = label_dataset(spec, root, ClusterSpec(kind="serial", threads=1), progress=False)
    assert s["skipped"] == 1 and s["labeled"] == 0


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_torch_solver_labels_equal_the_cpu_labels(bz_root: Path, tmp_path: Path, device: str) -> None:
    """``cluster.device`` labels with the torch solver (the GPU path): same shards to round-off."""
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    root = tmp_path / "d"
    s = label_dataset(TINY, root, ClusterSpec(kind="serial", threads=1, device=device), progress=False)
    assert s["complete"] == 2 and s["failed"] == 0, s["failures"]
    for e in S.verify_manifest(root, deep=True):
        got, want = load_shard(root / e["file"]), load_shard(bz_root / e["file"])
        for key in ("g", "h", "Qg", "Qh", "fields", "U"):
            scale = np.abs(want[key]).max()
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-11 * scale, err_msg=key)


def test_device_option_errors_are_clear(tmp_path: Path) -> None:
    from kinclose.data.runner import LabelRunError

    with pytest.raises(LabelRunError, match="applies to dataset.collision=boltzmann only"):
        label_dataset(DatasetSpec(n_tasks=1), tmp_path / "a", ClusterSpec(kind="serial", device="cuda"))
    big = DatasetSpec(**{**TINY.__dict__, "boltzmann": dict(TINY.boltzmann, n=64)})
    with pytest.raises(LabelConfigError, match="needs the GPU solver: set cluster.device=cuda"):
        label_dataset(big, tmp_path / "b", ClusterSpec(kind="serial"))
    with pytest.raises(LabelRunError, match="cluster.device"):
        ClusterSpec.from_dict({"device": ""})
    with pytest.raises(LabelConfigError, match="boltzmann.n=98 must be an even integer in \\[4, 96\\]"):
        DatasetSpec.from_dict({"collision": "boltzmann", "boltzmann": {"n": 98}})
