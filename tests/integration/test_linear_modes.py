"""Linear modes (kinclose.bench.linear): the kinetic and NSF damping rates agree with the
Chapman–Enskog (Navier–Stokes, Pr = 1) rate at small ε; Euler does not damp; the script writes its files."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kinclose.bench.linear import (amplitude, initial_state, linear_theory, markdown, navier_stokes_rate,
                                   run_linear_modes)

ROOT = Path(__file__).resolve().parents[2]


def test_amplitude_and_modes():
    x = -0.5 + (np.arange(32) + 0.5) / 32
    rho, u, T = initial_state("sound", x, 1e-3)
    assert abs(amplitude(x, rho) - 1e-3) < 1e-15  # cos kx has Â = a
    np.testing.assert_allclose(u / (rho - 1), math.sqrt(5 / 3))
    rho, u, T = initial_state("entropy", x, 1e-3)
    np.testing.assert_allclose(rho + T, 2.0)
    with pytest.raises(ValueError, match="unknown mode"):
        initial_state("shear", x, 1e-3)
    with pytest.raises(ValueError, match="amplitude"):
        run_linear_modes([0.1], {}, nx=16, t_end=0.1, a=0.5)
    with pytest.raises(ValueError, match="kns is empty"):
        run_linear_modes([], {}, nx=16, t_end=0.1, a=1e-3)
    with pytest.raises(FileNotFoundError, match="no shipped closure 'nosuch'"):  # before any solve
        run_linear_modes([0.1], {"mlc": {"closure": "pretrained:nosuch"}}, nx=16, t_end=0.1, a=1e-3)


def test_solvers_reproduce_the_grid_free_linear_theory_at_eps_1():
    """The DVM against the exact linearized BGK response, and the reduced solver with the shipped MLC
    against the linearized closed system (kinclose.closure.linear_response): damping and phase speed."""
    t = run_linear_modes([1.0], {"mlc": {"closure": "pretrained:mlc_small", "xi_max": 5.0}}, nx=32, t_end=0.3,
                         a=1e-3, reference_options={"nv": 48}, reference_refine=2)
    th = linear_theory([1.0], 0.3, {"mlc": "pretrained:mlc_small"})
    for model, theory in (("dvm", "kinetic"), ("mlc", "mlc")):
        for mode in ("entropy", "sound"):
            assert t["results"][mode][model][0]["damping"] == pytest.approx(th[theory][mode][0], rel=0.03), (model, mode)
        assert t["results"]["sound"][model][0]["phase_speed"] == pytest.approx(th[theory]["phase_speed"][0], rel=0.02)


def test_damping_rates_match_navier_stokes_at_small_eps():
    kn = 0.01
    t = run_linear_modes([kn], {"nsf": {}, "euler": {}}, nx=32, t_end=0.3, a=1e-3,
                         reference_options={"nv": 48}, reference_refine=2)
    g_ns = navier_stokes_rate(kn)
    for mode in ("entropy", "sound"):
        res = t["results"][mode]
        assert res["dvm"][0]["damping"] == pytest.approx(g_ns, rel=0.1), mode   # kinetic = Chapman–Enskog
        assert res["nsf"][0]["damping"] == pytest.approx(g_ns, rel=0.1), mode
        assert abs(res["euler"][0]["damping"]) < 0.2 * g_ns, mode              # only numerical damping
    c = t["results"]["sound"]["dvm"][0]["phase_speed"]
    assert c == pytest.approx(math.sqrt(5 / 3), rel=0.01)
    assert "entropy mode" in markdown(t) and not t["failures"]


def test_linear_modes_script(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "linear_modes.py"), "kns=[0.1]", "nx=16", "t_end=0.1",
           "~models.mlc", "~models.hermmlc", "~models.euler", "reference_options={nv: 32}", "reference_refine=1",
           f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/hydra"]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True)
    d = json.loads((tmp_path / "linear_modes.json").read_text())
    assert set(d["results"]) == {"entropy", "sound"} and set(d["results"]["sound"]) == {"dvm", "nsf"}
    assert (tmp_path / "linear_modes.png").stat().st_size > 0
