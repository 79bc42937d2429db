"""The shock benchmark shows saved profiles of other runs (the GPU Boltzmann shock) beside the solved
models: read at their Mach number only, compared with the reference, a missing file reported."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import open_dict

from kinclose.bench.shock import run
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import read_saved_profile

ROOT = Path(__file__).resolve().parents[2]
SAVED = ROOT / "results" / "boltzmann_shock" / "dx0.25.csv"


def _cfg(tmp_path, overrides, saved=None):
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="bench", overrides=[f"out_dir={tmp_path}", "models=[nsf,euler]", "reference=nsf",
                                                       *overrides])
    if saved is not None:
        with open_dict(cfg):
            cfg.saved_profiles = saved
    return cfg


def test_saved_boltzmann_profile_in_the_benchmark(tmp_path):
    missing = tmp_path / "none.csv"
    run(_cfg(tmp_path, [], {"dvm-boltzmann": {"M5.5": str(SAVED)}, "gone": {"M5.5": str(missing)},
                            "other": {"M2": str(missing)}}))
    out = json.loads((tmp_path / "shock_M5.5.json").read_text())
    row = out["models"]["dvm-boltzmann"]
    saved = json.loads(SAVED.with_suffix(".json").read_text())
    assert row["inv_density_thickness"] == pytest.approx(saved["inv_density_thickness"], rel=1e-12)
    assert row["wall_s"] == saved["wall_s"] and row["converged"]
    # against NSF (Pr = 1, the bench's BGK collision): the Boltzmann shock is 2x thicker, q far off
    assert row["q_L2"] > 0.3 and out["models"]["nsf"]["rho_L2"] == 0.0
    assert out["saved_profiles"] == {"dvm-boltzmann": str(SAVED)}
    assert "not read" in out["failures"]["gone"] and "other" not in out["failures"]
    md = (tmp_path / "shock_M5.5.md").read_text()
    assert "dvm-boltzmann: read from" in md and "| gone | failed: not read" in md
    # a Mach 2 benchmark does not show the Mach 5.5 profile
    run(_cfg(tmp_path, ["mach=2.0"]))
    assert "dvm-boltzmann" not in json.loads((tmp_path / "shock_M2.json").read_text())["models"]


def test_saved_profile_of_another_mach_is_refused():
    with pytest.raises(ValueError, match="is for Mach 5.5, not 3"):
        read_saved_profile(SAVED, rankine_hugoniot(3.0), "dvm-boltzmann")
    with pytest.raises(FileNotFoundError, match="is missing"):
        read_saved_profile(SAVED.with_name("nothing.csv"), rankine_hugoniot(5.5), "dvm-boltzmann")
