"""scripts/boltzmann_shock.py regenerates the Mach 5.5 Boltzmann table and figure from the saved
profiles (``reuse_profiles=true``, the path that needs no GPU), solving the shipped Boltzmann-trained
MLC (closure + learned collision source) and the Mott-Smith shock on the CPU, and refuses to reuse missing
ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "boltzmann_shock.py"
SAVED = ROOT / "results" / "boltzmann_shock"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "reuse_profiles=true", f"out_dir={tmp_path}",
                           f"hydra.run.dir={tmp_path / 'h'}", *args], capture_output=True, text=True, timeout=600, check=False)


def test_table_and_figure_from_saved_profiles(tmp_path: Path) -> None:
    shutil.copytree(SAVED, tmp_path / "boltzmann_shock")
    run = _run(tmp_path, "~reduced.mlc_bgk")  # the BGK-trained row: the same code path, 30 s more
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "boltzmann_shock_M5.5.json").read_text())
    assert (tmp_path / "boltzmann_shock_M5.5.png").stat().st_size > 10_000
    saved = json.loads((SAVED / "dx0.25.json").read_text())
    fine = res["rows"]["Boltzmann, dx=0.25"]
    assert fine["inv_density_thickness"] == saved["inv_density_thickness"] and fine["converged"]
    # the reference is the finest grid that reached a steady state: dx = 0.125 ran out of device time
    assert res["device"] == "cuda" and res["finest_dx"] == 0.25
    assert not res["rows"]["Boltzmann, dx=0.125"]["converged"] and "Boltzmann, dx=0.125" in res["differences"]
    # hard spheres: the Boltzmann shock is thicker than BGK's and NSF's at the same Mach number
    for name in ("BGK, dx=0.25", "BGK, converged", "NSF, Pr = 2/3"):
        assert res["rows"][name]["inv_density_thickness"] > 1.2 * fine["inv_density_thickness"]
        assert res["differences"][name]["q_L2"] > 0.1
    assert "| Boltzmann, dx=0.5 |" in (tmp_path / "boltzmann_shock_M5.5.md").read_text()
    # the MLC trained on Boltzmann labels (pretrained:mlc_boltzmann) is steady and has the Boltzmann
    # shock's thickness to 10 % (BGK's is 43 % off) and its density profile to 3 % (BGK on the same grid: 3.2 %)
    mlc = res["rows"]["MLC, Boltzmann-trained"]
    assert mlc["converged"] and "MLC, BGK-trained" not in res["rows"]
    assert abs(mlc["inv_density_thickness"] / fine["inv_density_thickness"] - 1.0) < 0.1
    assert res["differences"]["MLC, Boltzmann-trained"]["rho_L2"] < 0.03
    # the Mott-Smith (u² moment) shock with the hard-sphere collision integral, which Hicks, Yen & Reilly
    # (1972) found to match the Boltzmann reciprocal thickness at Mach 2.5-8: within 5 %, density within 2 %
    ms = res["rows"]["Mott-Smith (u² moment)"]
    assert abs(ms["inv_density_thickness"] / fine["inv_density_thickness"] - 1.0) < 0.05
    assert res["differences"]["Mott-Smith (u² moment)"]["rho_L2"] < 0.02


def test_missing_profiles_are_refused(tmp_path: Path) -> None:
    run = _run(tmp_path)
    assert run.returncode != 0
    assert "reuse_profiles=true but" in run.stderr and "run with a GPU first" in run.stderr
