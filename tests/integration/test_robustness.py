"""``scripts/robustness.py`` on a tiny setting: blow-up count, conservation drift and the Galilean check
(own steps and a common fixed step at three grids) in the JSON and the Markdown summary."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "robustness.py"


def test_robustness_tiny(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["n_cases=2", "nx=8", "horizon_factor=1.0", f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((out / "robustness.json").read_text())
    assert res["n_cases"] == 2 and res["blowups"] == 0 and res["max_conservation_drift"] < 1e-12
    gal = res["galilean_max_rel_difference"]
    assert set(gal) == {f"nx={n}{tag}" for n in (8, 16, 32) for tag in ("", ", common dt")}
    for d in gal.values():
        assert d["shift"] > 0 and min(d["steps"]) > 0 and all(0 <= d[k] < 0.5 for k in ("rho", "u", "T", "sigma", "q"))
    for n in (8, 16, 32):  # one fixed step: both runs take the same number of steps
        a, b = gal[f"nx={n}, common dt"]["steps"]
        assert a == b
    md = (out / "robustness.md").read_text()
    assert "**0**" in md and "nx=32, common dt" in md


def test_robustness_refuses_settings_that_would_report_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad in ("n_cases=0", "horizon_factor=-1"):
        run = subprocess.run([sys.executable, str(SCRIPT), bad, f"out_dir={out}", f"hydra.run.dir={tmp_path / 'h'}"],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode != 0 and "need n_cases >= 1" in run.stderr
    assert not out.exists()
