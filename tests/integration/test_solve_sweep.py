"""``kinclose-solve`` (installed console script) and the Knudsen sweep on a tiny setting."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from kinclose.apps.sweep import sweep

EXE = shutil.which("kinclose-solve")


@pytest.mark.skipif(EXE is None, reason="kinclose-solve not installed")
@pytest.mark.parametrize("model", ["dvm", "nsf", "euler"])
def test_solve_cli(tmp_path, model):
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    r = subprocess.run([EXE, f"model={model}", "nx=32", "t_end=0.02", "ic.kind=jumps", f"hydra.run.dir={tmp_path}"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = np.loadtxt(tmp_path / "fields.csv", delimiter=",", skiprows=1)
    assert data.shape == (32, 6) and np.all(np.isfinite(data))
    assert np.all(data[:, 1] > 0) and np.all(data[:, 3] > 0)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["model"] == model and m["nx"] == 32 and m["reference"] == "dvm"
    assert (tmp_path / "fields.png").exists()
    if model == "dvm":  # the reference itself: nothing to score
        assert "errors" not in m and not (tmp_path / "fields_dvm.csv").exists()
    else:
        assert set(m["errors"]) == {model} and all(0 < v < 0.5 for v in m["errors"][model].values())
        assert np.loadtxt(tmp_path / "fields_dvm.csv", delimiter=",", skiprows=1).shape == (32, 6)


def test_solve_scores_every_model_against_the_reference(tmp_path):
    """model=mlc with compare=[nsf, euler] and a refined DVM reference: the errors in metrics.json are those of
    the written fields (recomputed from the CSVs against fields_dvm.csv), and at ε = 1e-2 MLC and NSF carry the
    normal stress that Euler lacks."""
    from kinclose.apps.solve import solve
    from kinclose.bench.sweep import errors
    from kinclose.problem import Fields

    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=mlc", "nx=32", "t_end=0.02", "kn=0.01",
                                                       "compare=[nsf,euler,mlc]", "reference_refine=2"])
    m = solve(cfg, tmp_path)
    assert m["compare"] == ["nsf", "euler"] and m["reference_refine"] == 2 and set(m["errors"]) == {"mlc", "nsf", "euler"}

    def read(name):
        a = np.loadtxt(tmp_path / name, delimiter=",", skiprows=1).T
        return Fields(*a, t=0.02, stats={})

    ref = read("fields_dvm.csv")
    for model, name in (("mlc", "fields.csv"), ("nsf", "fields_nsf.csv"), ("euler", "fields_euler.csv")):
        np.testing.assert_allclose(list(errors(read(name), ref).values()), list(m["errors"][model].values()),
                                   rtol=1e-9)
    e = m["errors"]
    assert e["euler"]["sigma"] > 2 * max(e["mlc"]["sigma"], e["nsf"]["sigma"]), e


def test_solve_scores_compared_models_against_the_solved_reference(tmp_path):
    """model=dvm is its own reference: the compared model is scored against it."""
    from kinclose.apps.solve import solve

    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=dvm", "nx=16", "t_end=0.01", "compare=[euler]",
                                                       "reference_refine=4"])
    m = solve(cfg, tmp_path)
    assert m["reference"] == "dvm" and m["reference_refine"] == 1 and set(m["errors"]) == {"euler"}
    assert (tmp_path / "fields_euler.csv").exists() and not (tmp_path / "fields_dvm.csv").exists()


def test_solve_rejects_an_unknown_compared_model(tmp_path):
    from kinclose.apps.solve import solve

    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=nsf", "nx=16", "compare=[bgk]"])
    with pytest.raises(ValueError, match="unknown model 'bgk' in reference/compare; choose from dvm, nsf"):
        solve(cfg, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything ran or was written


@pytest.mark.parametrize("override, message", [("nx=0", "nx must be an integer >= 4, got 0"),
                                               ("nx=64.5", "nx must be an integer >= 4, got 64.5"),
                                               ("ic.seed=-1", "ic.seed must be an integer >= 0"),
                                               ("reference_refine=1.5", "reference_refine must be an integer >= 1"),
                                               ("omega=3", "omega must lie in")])
def test_solve_rejects_a_bad_grid_or_gas_before_running(tmp_path, override, message):
    from kinclose.apps.solve import solve

    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=dvm", override])
    with pytest.raises(ValueError, match=message):
        solve(cfg, tmp_path)
    assert not any(tmp_path.iterdir())


def _solve_cfg(*overrides):
    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_solve_riemann_problem_is_sods_shock_tube_between_reservoirs(tmp_path):
    """ic.kind=riemann: Euler at ε = 1e-3 on 200 cells is within 2.5 % (L1) of the exact Riemann solution of the
    default (Sod) states, NSF within 3 % (L2) of the DVM, and the figure and metrics name the problem."""
    from kinclose.apps.solve import solve
    from kinclose.macro.riemann import cell_averages
    from kinclose.macro.riemann import solve as riemann

    m = solve(_solve_cfg("model=euler", "ic.kind=riemann", "kn=1e-3", "nx=200", "compare=[nsf]"), tmp_path)
    assert m["bc"] == "reservoir" and m["ic"] == {"kind": "riemann", "left": [1.0, 0.0, 1.0],
                                                     "right": [0.125, 0.0, 0.8], "x0": 0.0}
    f = np.loadtxt(tmp_path / "fields.csv", delimiter=",", skiprows=1)
    rho, u, p = cell_averages(riemann(1.0, 0.0, 1.0, 0.125, 0.0, 0.1), np.linspace(-0.5, 0.5, 201), 0.1)
    for got, exact in ((f[:, 1], rho), (f[:, 2], u), (f[:, 3], p / rho)):
        assert np.mean(np.abs(got - exact)) / np.mean(np.abs(exact) + 1e-300) < 0.025
    assert all(v < 0.03 for v in m["errors"]["nsf"].values())  # NSF against the DVM near the continuum limit
    assert (tmp_path / "fields.png").exists()


@pytest.mark.parametrize("override, message", [("ic.left=[1,0]", "ic.left must be three numbers"),
                                               ("ic.right=[1,0,x]", "ic.right must be three numbers"),
                                               ("ic.right=[1,0,-1]", "T must be > 0")])
def test_solve_riemann_refuses_bad_states(tmp_path, override, message):
    from kinclose.apps.solve import solve

    with pytest.raises(ValueError, match=message):
        solve(_solve_cfg("model=euler", "ic.kind=riemann", override), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(EXE is None, reason="kinclose-solve not installed")
def test_solve_cli_rejects_unknown_option(tmp_path):
    r = subprocess.run([EXE, "model=dvm", "model.options.nvv=3", f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "nvv" in r.stderr


@pytest.mark.parametrize("override, message", [("nx=16.5", "nx must be an integer >= 4, got 16.5"),
                                               ("n_cases=0", "n_cases must be an integer >= 1, got 0"),
                                               ("seed=1.5", "seed must be an integer >= 0")])
def test_sweep_rejects_non_integer_sizes_before_running(tmp_path, monkeypatch, override, message):
    import kinclose.apps.sweep as app

    def never(*args, **kwargs):
        raise AssertionError("the sweep ran before its sizes were checked")

    monkeypatch.setattr(app, "run_sweep", never)
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="sweep", overrides=[override, f"out_dir={tmp_path / 'out'}"])
    with pytest.raises(ValueError, match=message):
        sweep(cfg)
    assert not any(tmp_path.iterdir())


def test_sweep_tiny(tmp_path):
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="sweep", overrides=["n_cases=1", "kns=[1e-2,1.0]", "nx=16", "reference_refine=2",
                                                      "t_end=0.02", "reference_options={nv: 96}", "~models.hermmlc",
                                                      f"out_dir={tmp_path}"])
    table = sweep(cfg)
    assert table["kns"] == [1e-2, 1.0]
    for name in ("nsf", "euler"):
        errs = table["models"][name]["errors"]
        assert set(errs) == {"rho", "u", "T", "sigma", "q"}
        assert all(np.isfinite(v) and v >= 0 for f in errs.values() for v in f)
    # Euler has no stress or heat flux: its σ error is the size of the kinetic σ itself, larger at ε = 1
    assert table["models"]["euler"]["errors"]["sigma"][1] > table["models"]["euler"]["errors"]["sigma"][0]
    for f in ("knudsen_sweep.md", "knudsen_sweep.json", "knudsen_sweep.png"):
        assert (tmp_path / f).exists()
    # the learned closure reports its eigenvalue / training-range diagnostics per ε; NSF has none
    d = table["models"]["mlc"]["diagnostics"]
    assert all(len(d[k]) == 2 for k in ("complex_eigenvalue_fraction", "max_characteristic_speed"))
    assert all(0.0 <= v <= 1.0 for v in d["complex_eigenvalue_fraction"])
    assert all(v > 1.0 for v in d["max_characteristic_speed"])  # at least the sound speed
    assert not any(np.isfinite(v).any() for v in table["models"]["nsf"].get("diagnostics", {}).values())
    assert "Closure diagnostics" in (tmp_path / "knudsen_sweep.md").read_text()
    # per-case errors are kept with their kind; the mean of a one-case ε is that case's error
    assert len(table["cases"]) == 2 and {c["kind"] for c in table["cases"]} <= {"waves", "jumps", "mixture"}
    assert table["cases"][1]["errors"]["nsf"]["rho"] == table["models"]["nsf"]["errors"]["rho"][1]


def test_sweep_by_kind_table():
    from kinclose.bench.sweep import by_kind

    e = lambda v: {"rho": v, "T": v, "q": v}  # noqa: E731
    table = {"kns": [1.0], "models": {"m": {}},
             "cases": [{"kn": 1.0, "kind": "waves", "errors": {"m": e(0.1)}},
                       {"kn": 1.0, "kind": "jumps", "errors": {"m": e(0.2)}},
                       {"kn": 1.0, "kind": "waves", "errors": {"m": e(0.3)}}]}
    lines = by_kind(table)
    assert "| m | waves | 20.0% / 20.0% / 20.0% |" in lines and "| m | jumps | 20.0% / 20.0% / 20.0% |" in lines
    assert by_kind({**table, "cases": table["cases"][:1]}) == []  # one kind: no split
