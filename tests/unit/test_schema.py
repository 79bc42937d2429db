"""HDF5 shard schema: round trip, validation of wrong files, truncation and bit flips detected,
manifest rules (atomic, unique, checksums)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from kinclose.data import schema as S
from kinclose.kinetic.moments import conserved, fields, maxwellian


def _arrays(nt: int = 3, nx: int = 6, nv: int = 24) -> tuple[dict, float]:
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    v = np.linspace(-8, 8, nv)
    dv = float(v[1] - v[0])
    rho = 1 + 0.2 * np.sin(2 * np.pi * x)
    g0, h0 = maxwellian(rho, 0.1 * np.cos(2 * np.pi * x), 1 + 0.1 * x, v)
    g = np.stack([g0 * (1 + 0.01 * k) for k in range(nt)])
    h = np.stack([h0 * (1 + 0.01 * k) for k in range(nt)])
    f = fields(g, h, v, dv)
    return {"x": x, "v": v, "t": np.linspace(0, 0.1, nt), "g": g, "h": h, "U": conserved(g, h, v, dv),
            "fields": np.stack([f[k] for k in ("rho", "u", "T", "sigma", "q")], -1)}, dv


ATTRS = {"seed": 11, "config": json.dumps({"a": 1}), "kn": 0.1, "omega": 0.5, "collision": "bgk", "mu_ref": 0.2,
         "bc": "periodic", "x_left": -0.5, "x_right": 0.5, "t_end": 0.1, "ic_kind": "waves", "task_id": 0}


@pytest.fixture
def shard(tmp_path: Path) -> tuple[Path, dict]:
    arrays, dv = _arrays()
    p = tmp_path / S.shard_name(0)
    info = S.write_shard(p, arrays, dv, ATTRS)
    return p, {"arrays": arrays, "dv": dv, "info": info}


def test_round_trip_follows_the_fixed_layout(shard) -> None:
    p, d = shard
    assert p.name == "shard_00000.h5"
    assert not [f for f in os.listdir(p.parent) if f.startswith(".")]  # no temp files left
    attrs = S.validate_shard(p, deep=True)
    assert attrs["schema_version"] == 1 and isinstance(attrs["schema_version"], int)
    assert attrs["samples"] == 3 * 6 == d["info"]["samples"]
    assert d["info"]["sha256"] == S.sha256_file(p)
    with h5py.File(p, "r") as fh:
        for k in ("schema_version", "package_version", "config", "seed", "created", "kn", "omega", "collision",
                  "mu_ref", "bc", "x_left", "x_right", "t_end", "ic_kind"):
            assert k in fh.attrs
        assert fh["g"].shape == fh["h"].shape == (3, 6, 24) and fh["g"].dtype == np.float64
        assert fh["U"].shape == (3, 6, 3) and fh["fields"].shape == (3, 6, 5)
        assert fh["x"].shape == (6,) and fh["t"].shape == (3,) and fh["t"][0] == 0.0
        assert fh["v"].attrs["dv"] == d["dv"]
        np.testing.assert_array_equal(fh["g"][()], d["arrays"]["g"])


def test_truncated_shard_is_detected(shard) -> None:
    p, _ = shard
    size = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(S.ShardError, match="truncated or corrupted|corrupted"):
        S.validate_shard(p)


def test_bit_flip_in_the_data_is_detected(shard) -> None:
    p, d = shard
    with h5py.File(p, "r") as fh:
        off = fh["g"].id.get_offset()
    with open(p, "r+b") as fh:
        fh.seek(off + 8 * 17 + 3)
        b = fh.read(1)
        fh.seek(off + 8 * 17 + 3)
        fh.write(bytes([b[0] ^ 0x10]))
    assert S.sha256_file(p) != d["info"]["sha256"]
    with pytest.raises(S.ShardError, match="checksum mismatch|corrupted"):
        S.validate_shard(p, deep=True)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda fh: fh.__delitem__("h"), "dataset /h is missing"),
        (lambda fh: fh.attrs.__setitem__("schema_version", 2), "schema_version 2"),
        (lambda fh: fh.attrs.__delitem__("kn"), "'kn' is missing"),
        (lambda fh: (fh.__delitem__("U"), fh.create_dataset("U", data=np.zeros((3, 6, 4)))), "/U has shape"),
        (lambda fh: (fh.__delitem__("t"), fh.create_dataset("t", data=np.array([0.1, 0.2, 0.3]))), "/t must start at 0"),
        (lambda fh: fh.attrs.__setitem__("config", "{not json"), "not JSON"),
    ],
)
def test_schema_validation_rejects_a_wrong_file(shard, mutate, message: str) -> None:
    p, _ = shard
    with h5py.File(p, "r+") as fh:
        mutate(fh)
    with pytest.raises(S.ShardError, match=message):
        S.validate_shard(p, deep=False)


def test_non_hdf5_and_missing_files_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "shard_00001.h5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(S.ShardError, match="cannot be opened"):
        S.validate_shard(bad)
    with pytest.raises(S.ShardError, match="no such shard"):
        S.validate_shard(tmp_path / "nope.h5")


def test_inconsistent_moments_are_rejected(tmp_path: Path) -> None:
    arrays, dv = _arrays()
    arrays["U"] = arrays["U"] * 1.01
    p = tmp_path / S.shard_name(3)
    S.write_shard(p, arrays, dv, ATTRS)
    with pytest.raises(S.ShardError, match="moment vector"):
        S.validate_shard(p, deep=True)


def test_write_shard_refuses_bad_shapes(tmp_path: Path) -> None:
    arrays, dv = _arrays()
    arrays["g"] = arrays["g"][:, :, :-1]
    with pytest.raises(S.ShardError, match="/g has shape"):
        S.write_shard(tmp_path / "s.h5", arrays, dv, ATTRS)
    assert not list(tmp_path.iterdir())


def test_manifest_round_trip_and_checks(shard, tmp_path: Path) -> None:
    p, d = shard
    e = S.manifest_entry(p.name, 0, d["info"]["samples"], d["info"]["sha256"], 0.1, "waves")
    S.write_manifest(tmp_path, [e], extra={"dataset": "t"})
    man = S.read_manifest(tmp_path)
    assert man["schema_version"] == 1 and man["shards"] == [e] and man["dataset"] == "t"
    assert S.verify_manifest(tmp_path, deep=True) == [e]
    with pytest.raises(S.ShardError, match="duplicate"):
        S.write_manifest(tmp_path, [e, dict(e)])
    with open(p, "r+b") as fh:  # any changed byte breaks the file checksum
        fh.seek(-1, 2)
        b = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([b[0] ^ 1]))
    with pytest.raises(S.ShardError, match="SHA-256 differs"):
        S.verify_manifest(tmp_path)
    (tmp_path / S.MANIFEST).write_text("{broken")
    with pytest.raises(S.ShardError, match="not valid JSON"):
        S.read_manifest(tmp_path)


def test_content_hash_identifies_the_data_not_the_files(tmp_path: Path) -> None:
    """Rewriting the same data (other ``created``/``wall_s``, so other file bytes) keeps the hash; other data,
    another task id or a missing content checksum (old shards: the file SHA-256 stands in) change it."""
    arrays, dv = _arrays()

    def dataset(name: str, arr: dict, attrs: dict, with_digest: bool = True) -> Path:
        root = tmp_path / name
        root.mkdir()
        info = S.write_shard(root / S.shard_name(attrs["task_id"]), arr, dv, attrs)
        S.write_manifest(root, [S.manifest_entry(S.shard_name(attrs["task_id"]), attrs["task_id"], info["samples"],
                                                 info["sha256"], 0.1, "waves",
                                                 info["data_sha256"] if with_digest else None)])
        return root

    a = dataset("a", arrays, ATTRS)
    b = dataset("b", arrays, ATTRS | {"wall_s": 12.5})
    assert S.read_manifest(a)["shards"][0]["sha256"] != S.read_manifest(b)["shards"][0]["sha256"]
    assert S.content_hash(a) == S.content_hash(b)
    c = dataset("c", arrays, ATTRS, with_digest=False)  # the checksum read from the shard's attributes
    assert "data_sha256" not in S.read_manifest(c)["shards"][0] and S.content_hash(c) == S.content_hash(a)
    other = dict(arrays, g=arrays["g"] * (1 + 1e-12))
    assert S.content_hash(dataset("d", other, ATTRS)) != S.content_hash(a)
    assert S.content_hash(dataset("e", arrays, ATTRS | {"task_id": 1})) != S.content_hash(a)
    with h5py.File(c / S.shard_name(0), "r+") as fh:  # a shard written before the checksum existed
        del fh.attrs["data_sha256"]
    file_digest = f"file:{S.read_manifest(c)['shards'][0]['sha256']}"
    assert S.content_hash(c) != S.content_hash(a)
    assert S.content_hash(c) == S.content_hash(c, [dict(S.read_manifest(c)["shards"][0], data_sha256=file_digest)])
