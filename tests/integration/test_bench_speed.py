"""``scripts/bench_speed.py`` on a tiny setting: sweep, shock and batch-scaling rows, with the reduced
model's inference share, in the Markdown table and the JSON."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_speed.py"


def test_bench_speed_tiny(tmp_path: Path) -> None:
    args = ["mach=1.5", "shock_models=[nsf]", "sweep_kns=[0.1]", "sweep_nx=16", "sweep_t_end=0.005",
            "inference=[float32]", "scaling_nx=[16,32]", "scaling_steps=2", f"out_dir={tmp_path}",
            f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / "speed_table.json").read_text())["rows"]
    problems = {r["problem"] for r in rows}
    assert problems == {"sweep eps=0.1", "shock M1.5", "2 steps, 16 cells", "2 steps, 32 cells"}
    for nx in (16, 32):
        r = next(r for r in rows if r["problem"] == f"2 steps, {nx} cells")
        assert r["model"] == "mlc (float32)" and r["cell_steps"] == 2 * nx and r["nx"] == nx
        assert 0.0 < r["inference_share"] < 1.0 and r["closure_calls"] > 0
    md = (tmp_path / "speed_table.md").read_text()
    assert "| 2 steps, 32 cells | mlc (float32) |" in md


def test_bench_speed_shock_with_newton_rows(tmp_path: Path) -> None:
    """A coarse Mach 2 shock: DVM, MLC time-marched and MLC by the implicit steady solver (three runs each, the
    median run shown), with the errors of each profile against this run's DVM."""
    mlc = "{x_min: -12.0, x_max: 6.0, dx: 0.5, levels: 1}"
    dvm = "{x_min: -12.0, x_max: 6.0, dx: 0.25, levels: 1, nv: 48}"
    args = ["mach=2.0", "shock_models=[dvm,mlc]", "sweep_kns=[0.1]", "sweep_nx=16", "sweep_t_end=0.005",
            "inference=[float32]", "scaling_nx=[]", f"+overrides.mlc={mlc}", f"+overrides.dvm={dvm}",
            "shock_repeats=3", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r["model"]: r for r in json.loads((tmp_path / "speed_table.json").read_text())["rows"]
            if r["problem"] == "shock M2"}
    assert set(rows) == {"dvm", "mlc (float32)", "mlc newton (float64)"}
    newton, march = rows["mlc newton (float64)"], rows["mlc (float32)"]
    assert newton["converged"] and march["converged"]
    assert newton["cell_steps"] is None and newton["cell_residual_evals"] > 0 and march["cell_steps"] > 0
    assert newton["fallback_cell_steps"] is None  # Newton finished: no time step
    for r in rows.values():  # three runs each; the row is the median one
        assert len(r["walls_s"]) == 3 and r["wall_s"] == sorted(r["walls_s"])[1]
    assert 0 < newton["inference_s"] < newton["wall_s"]
    for r in rows.values():  # the solver's own time: part of the wall, without setup and diagnostics
        assert 0 < r["solve_s"] <= r["wall_s"]
    for r in (newton, march):
        assert set(r["errors_L2"]) == {"rho", "u", "T", "sigma", "q"}
        assert 0 < r["errors_L2"]["rho"] < 0.2  # a Mach 2 shock on a coarse grid, not a jump
    md = (tmp_path / "speed_table.md").read_text()
    assert "cell·residuals)" in md and "| shock M2 | mlc newton (float64) |" in md
    ratio = newton["solve_s"] / rows["dvm"]["solve_s"]
    assert f"| {newton['solve_s']:.2f} |" in md and f"| {ratio:.2f} |" in md and "| solve / DVM |" in md
    assert "Shock profiles against this run's DVM" in md and "the median of 3 runs in a row" in md


def test_newton_row_names_its_fallback_march() -> None:
    """A Newton row whose level was time-marched shows those steps next to its residual count."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod._fallback({"fallback_cell_steps": 12000}) == " + 12,000 cell·steps of fallback march"
    assert mod._fallback({"fallback_cell_steps": None}) == "" and mod._fallback({}) == ""


def test_bench_speed_refuses_zero_repeats(tmp_path: Path) -> None:
    """``shock_repeats=0`` stops before any problem runs, with a message, and writes nothing."""
    args = ["shock_repeats=0", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode != 0 and "shock_repeats must be >= 1" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "speed_table.json").exists()
