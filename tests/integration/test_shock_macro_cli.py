"""The installed ``kinclose-shock`` console script with model=nsf and model=euler: the output
contract of model=dvm (profiles.csv, metrics.json, profiles.png) and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import read_csv

EXE = shutil.which("kinclose-shock")
pytestmark = pytest.mark.skipif(EXE is None, reason="kinclose-shock console script is not installed")

COMMON_KEYS = {
    "mach", "model", "nx", "inv_density_thickness", "density_temperature_separation", "T_max",
    "rho2_rh", "u2_rh", "T2_rh", "mass_flux_mismatch", "momentum_flux_mismatch", "energy_flux_mismatch",
    "omega", "collision", "wall_s",
}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("model, extra_keys", [("nsf", {"ode_nfev", "prandtl", "mu_ref"}), ("euler", {"dx"})])
def test_cli_writes_the_shock_contract(tmp_path: Path, model: str, extra_keys: set[str]) -> None:
    out = tmp_path / "run"
    res = _run([f"model={model}", "mach=3", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "profiles.png").stat().st_size > 1000
    header = (out / "profiles.csv").read_text().splitlines()[0]
    assert header == "x,rho,u,T,sigma,q"
    prof = read_csv(out / "profiles.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    missing = (COMMON_KEYS | extra_keys) - set(metrics)
    assert not missing, f"metrics.json lacks {sorted(missing)}"
    st = rankine_hugoniot(3.0)
    assert metrics["model"] == model and metrics["mach"] == 3.0
    np.testing.assert_allclose(metrics["rho2_rh"], st.rho2, rtol=1e-14, atol=0)
    np.testing.assert_allclose([prof["rho"][0], prof["u"][0], prof["T"][0]], [st.rho1, st.u1, st.T1], rtol=1e-9, atol=0)
    np.testing.assert_allclose([prof["rho"][-1], prof["u"][-1], prof["T"][-1]], [st.rho2, st.u2, st.T2], rtol=1e-9, atol=0)
    assert max(metrics[k] for k in ("mass_flux_mismatch", "momentum_flux_mismatch", "energy_flux_mismatch")) < 1e-12
    assert prof["x"].size == metrics["nx"]
    if model == "euler":
        np.testing.assert_array_equal(prof["sigma"], 0.0)
        np.testing.assert_allclose(metrics["inv_density_thickness"], 1.0 / metrics["dx"], rtol=1e-10, atol=0)
    else:
        # NSF shock of Mach 3 is a few λ1 thick, and the ODE solve is quick
        assert 0.2 < metrics["inv_density_thickness"] < 1.5
        assert metrics["wall_s"] < 1.0
        assert metrics["prandtl"] == 1.0  # BGK by default


def test_cli_prandtl_override_and_collision(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run(["model=nsf", "collision=shakhov", "model.prandtl=0.75", "model.nx=401", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prandtl"] == 0.75 and metrics["collision"] == "shakhov" and metrics["nx"] == 401


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=nsf", "model.nx_cells=10"], "nx_cells"),
        (["model=euler", "mach=1.0"], "Mach > 1"),
        (["model=nsf", "mach=0.5"], "Mach > 1"),
    ],
)
def test_cli_rejects_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    res = _run([*args, f"hydra.run.dir={tmp_path / 'bad'}"], cwd=tmp_path)
    assert res.returncode != 0
    assert message in res.stderr + res.stdout
    assert not (tmp_path / "bad" / "metrics.json").exists()
