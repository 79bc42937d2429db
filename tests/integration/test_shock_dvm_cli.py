"""The installed ``kinclose-shock`` console script with the kinetic model."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from kinclose.shockprofile import read_csv

EXE = shutil.which("kinclose-shock")


def _run(*args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(EXE is None, reason="kinclose-shock not installed")
def test_shock_cli_dvm_writes_contract(tmp_path):
    out = tmp_path / "run"
    r = _run("model=dvm", "collision=bgk", "mach=2.0", "omega=0.5", "model.dx=0.25", "model.nv=48",
             "model.x_min=-15", "model.levels=1", f"hydra.run.dir={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    prof = read_csv(out / "profiles.csv")
    assert list(prof) == ["x", "rho", "u", "T", "sigma", "q"]
    i0 = np.argmin(np.abs(prof["x"]))
    assert abs(prof["x"][i0]) < 0.25  # x = 0 at the density mid-point
    m = json.loads((out / "metrics.json").read_text())
    for key in ("mach", "omega", "model", "collision", "nx", "nv", "steps", "residual", "wall_s",
                "inv_density_thickness", "T_max", "updates_per_s", "mass_flux_mismatch",
                "momentum_flux_mismatch", "energy_flux_mismatch"):
        assert key in m, key
    assert m["model"] == "dvm" and m["mach"] == 2.0
    assert (out / "profiles.png").stat().st_size > 10_000


@pytest.mark.skipif(EXE is None, reason="kinclose-shock not installed")
@pytest.mark.parametrize("args, message", [
    (["mach=0.8"], "Mach > 1"),
    (["model.cfl=1.5"], "cfl"),
    (["model.nx_typo=3"], "nx_typo"),
])
def test_shock_cli_rejects_bad_input(tmp_path, args, message):
    r = _run(*args, f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout
    assert not (tmp_path / "bad" / "profiles.csv").exists()
