"""``scripts/compare_closures.py`` (hyperbolicity ablation, data scaling, seed variance) on a tiny setting:
spectrum, shock and sweep entries per closure, each closure's own moments checkpoint and run options, the
Markdown table and its per-recipe summary."""

import json
import subprocess
import sys
from pathlib import Path

from kinclose.moments._synthetic import write_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_closures.py"


def test_compare_closures_tiny(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, n_shards=1, seed=3, kn_range=(0.1, 1.0), nx=16, nv=96, nt=2, t_end=0.05)
    closures = ('closures=[{name: a, path: "pretrained:mlc_small"}, '
                '{name: b, path: "pretrained:hermmlc_small", moments: "pretrained:hermmlc_small", options: {cfl: 0.4}}]')
    args = [closures, f"spectrum_dataset={data}", "spectrum_states=16", "mach=1.5", "sweep.kns=[1.0]", "sweep.nxs=[16]",
            "sweep.n_cases=1", "sweep.t_end=0.02", "name=tiny", "title=Tiny", f"out_dir={tmp_path / 'out'}",
            f"hydra.run.dir={tmp_path / 'hydra'}", "+groups=[{name: both, members: [a, b]}]"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert list(res["closures"]) == ["a", "b"] and res["n_states"] == 16
    assert res["closures"]["b"]["moments"] == "pretrained:hermmlc_small"
    for entry in res["closures"].values():
        assert 0.0 <= entry["spectrum"]["states_complex"] <= 1.0 and entry["spectrum"]["speed_max"] > 0
        assert entry["shock"]["converged"] and 0 < entry["shock"]["errors"]["rho_L2"] < 0.2
    assert set(res["sweeps"]["16"]["models"]) == {"a", "b"} and not res["sweeps"]["16"]["failures"]
    md = (tmp_path / "out" / "tiny.md").read_text()
    assert md.startswith("# Tiny") and "| a | rho |" in md and "| b | q |" in md
    # per-case differences from the first closure (one case: no standard error)
    case = res["sweeps"]["16"]["cases"][0]["errors"]
    assert f"| a − b | rho | {100 * (case['a']['rho'] - case['b']['rho']):+.2f} |" in md
    assert "Reduced-model options that differ from `conf/model/mlc.yaml`: b: cfl = 0.4." in md
    # the per-recipe summary: mean (min–max) of the two closures; columns of absent sweeps are "–"
    row = next(line for line in md.splitlines() if line.startswith("| both | 2 |"))
    rho = [res["closures"][n]["shock"]["errors"]["rho_L2"] for n in ("a", "b")]
    assert f"{sum(rho) / 2:.1%} ({min(rho):.1%}–{max(rho):.1%})" in row and row.endswith("| – | – |")
    # a failed run marks its cells: their means are over the runs that finished
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare_closures", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res["sweeps"]["16"]["failures"].append({"model": "b", "kn": 1.0, "case": {}, "error": "PhysicalStateError"})
    md = mod.markdown(res)
    assert "| b | rho |" in md and "(1 of 1 failed)" in next(x for x in md.splitlines() if x.startswith("| b | rho |"))
    assert "(1 of 1 failed)" not in next(x for x in md.splitlines() if x.startswith("| a | rho |"))


def test_compare_closures_rejects_unknown_run_options(tmp_path: Path) -> None:
    closures = 'closures=[{name: a, path: "pretrained:mlc_small", options: {cfll: 0.3}}]'
    run = subprocess.run([sys.executable, str(SCRIPT), closures, f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'h'}"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode != 0 and "unknown option(s) ['cfll']" in run.stderr
