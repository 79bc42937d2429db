"""``scripts/label_shocks.py``: steady DVM shock profiles as shards, merged with a labeled dataset."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from kinclose.data.schema import validate_shard
from kinclose.kinetic.moments import conserved

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "label_shocks.py"


def _script():
    spec = importlib.util.spec_from_file_location("label_shocks", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shock_shards_merge_with_a_dataset(bgk_dataset: Path, tmp_path: Path) -> None:
    from kinclose.moments.shape import XiGrid
    from kinclose.moments.train import load_dataset

    out = tmp_path / "merged"
    _script().main(["--base", str(bgk_dataset), "--out", str(out), "--machs", "2.5", "--stride", "2"])
    man = json.loads((out / "manifest.json").read_text())
    base = json.loads((bgk_dataset / "manifest.json").read_text())
    files = [e["file"] for e in man["shards"]]
    assert files == [f"b_{e['file']}" for e in base["shards"]] + ["shock_M2.5_0.h5", "shock_M2.5_1.h5"]
    assert [e["sha256"] for e in man["shards"][:len(base["shards"])]] == [e["sha256"] for e in base["shards"]]
    shock = [validate_shard(out / f) for f in files[-2:]]
    assert all(a["ic_kind"] == "shock" and a["mach"] == 2.5 for a in shock)
    assert 0.3 < man["shards"][-1]["kn"] < 0.6  # λ1/δ_ρ of a Mach 2.5 BGK shock (ω = 0.5)
    import h5py

    with h5py.File(out / files[-2]) as f0, h5py.File(out / files[-1]) as f1:
        x = np.concatenate([f0["x"][:], f1["x"][:]])
        # the two interleaved shards hold every cell of the profile once
        assert np.all(np.diff(np.sort(x)) > 0) and x.size == f0["g"].shape[1] + f1["g"].shape[1]
        g, h, v, dv = f0["g"][0], f0["h"][0], f0["v"][:], float(f0["v"].attrs["dv"])
        np.testing.assert_allclose(f0["U"][0], conserved(g, h, v, dv), rtol=1e-13)
        rho, u = f0["fields"][0][:, 0], f0["fields"][0][:, 1]
        U = f0["U"][0]  # the stored profile fields are the moments of the stored distributions
        np.testing.assert_allclose(U[:, 0], rho, rtol=1e-12)
        np.testing.assert_allclose(U[:, 1] / U[:, 0], u, rtol=1e-12)
        # steady shock: constant mass flux ρu through the profile (to the marching tolerance)
        assert np.ptp(rho * u) < 1e-3 * np.mean(rho * u)
    data = load_dataset(out, XiGrid(6.0, 96))  # the merged manifest loads like any dataset
    assert len(data) == sum(e["samples"] for e in man["shards"])


def test_benchmark_mach_numbers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="benchmark Mach numbers"):
        _script().main(["--base", str(tmp_path), "--out", str(tmp_path / "o"), "--machs", "5.5"])
