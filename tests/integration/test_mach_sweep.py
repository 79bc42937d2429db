"""Mach sweep of the shock benchmark (``kinclose.bench.mach``) on a tiny setting: output keys, the
per-(Mach, model) cache, failures and unknown options; and the installed ``kinclose-bench`` script."""

import json
import os
import shutil
import subprocess

import pytest
from hydra import compose, initialize_config_module

import kinclose.bench.mach as mach_mod
from kinclose.bench.mach import run_mach_sweep
from kinclose.closure.train import ClosureCheckpointError
from kinclose.shockprofile import FIELDS

# a coarse kinetic reference: ~1 s per Mach number; one numba thread (robust when the cores are shared)
COARSE_DVM = ["+overrides.dvm.dx=0.25", "+overrides.dvm.nv=48", "+overrides.dvm.levels=2", "+overrides.dvm.x_min=-20.0",
              "+overrides.dvm.threads=1"]
ROW_KEYS = {"mach", "model", "jump", "inv_density_thickness", "density_temperature_separation", "wall_s", "converged",
            "residual", "failure", "cached", "options", "precursor"} | {f"{f}_{n}" for f in FIELDS for n in ("L2", "Linf")}


def _cfg(tmp_path, overrides):
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        return compose(config_name="mach_sweep", overrides=[f"out_dir={tmp_path / 'results'}"] + overrides)


def test_mach_sweep_tiny_and_resume(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, ["machs=[1.5,2.0]", "models=[dvm,nsf,euler]"] + COARSE_DVM)
    cache = tmp_path / "cache"
    result = run_mach_sweep(cfg, cache)

    out = json.loads((tmp_path / "results" / "mach_sweep.json").read_text())
    assert out["machs"] == [1.5, 2.0] and out["models"] == ["dvm", "nsf", "euler"] and out["reference"] == "dvm"
    assert {"collision", "omega", "units", "rows", "config"} <= set(out)
    assert len(out["rows"]) == 6
    by = {(r["mach"], r["model"]): r for r in out["rows"]}
    for r in out["rows"]:
        assert set(r) >= ROW_KEYS
        assert r["failure"] is None and r["converged"] is True and r["cached"] is False
    for m in (1.5, 2.0):
        ref = by[(m, "dvm")]
        assert all(ref[f"{f}_{n}"] == 0.0 for f in FIELDS for n in ("L2", "Linf"))
        assert ref["options"]["nv"] == 48
        assert by[(m, "euler")]["jump"] is True and by[(m, "euler")]["inv_density_thickness"] is None
        assert by[(m, "euler")]["sigma_L2"] == pytest.approx(1.0, rel=1e-12)
        assert 0.0 < by[(m, "nsf")]["rho_L2"] < 0.1
        assert ref["precursor"] is None and by[(m, "euler")]["precursor"] is None
        pc = by[(m, "nsf")]["precursor"]
        assert -20.0 < pc["x_front"] < 0.0 and all(0.0 <= pc[f"{f}_share_upstream"] <= 1.0 for f in FIELDS)
        assert all(pc[f"{f}_L2_downstream"] <= by[(m, "nsf")][f"{f}_L2"] for f in FIELDS)
    # NSF Mach 2, BGK (Pr = 1), omega = 0.5: 1/delta = 0.372
    assert 0.3 < by[(2.0, "nsf")]["inv_density_thickness"] < 0.45
    assert 0.25 < by[(2.0, "dvm")]["inv_density_thickness"] < 0.45
    assert by[(1.5, "dvm")]["inv_density_thickness"] < by[(2.0, "dvm")]["inv_density_thickness"]
    for name in ("mach_sweep.md", "mach_sweep.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0
    md = (tmp_path / "results" / "mach_sweep.md").read_text()
    assert "jump" in md and "λ1" in md and "Ma = 1.5" in md and "Errors upstream of the model's front" in md
    assert (cache / "M2" / "nsf.json").exists()

    # the second call reads every entry from the cache: the solver must not run
    def boom(*args, **kwargs):
        raise AssertionError("solver called although the entry is cached")

    monkeypatch.setattr(mach_mod, "solve_model", boom)
    again = run_mach_sweep(cfg, cache)
    assert all(r["cached"] for r in again["rows"])
    for a, b in zip(result["rows"], again["rows"]):
        assert a["inv_density_thickness"] == b["inv_density_thickness"] and a["rho_L2"] == b["rho_L2"]

    # a changed option recomputes that model only, at every Mach number; run-time options (threads)
    # are not part of the cache key
    calls = []
    monkeypatch.undo()  # the real solve_model again
    solve = mach_mod.solve_model

    def counting(states, name, **kwargs):
        calls.append((states.mach, name))
        return solve(states, name, **kwargs)

    monkeypatch.setattr(mach_mod, "solve_model", counting)
    coarse_2threads = [o.replace("threads=1", "threads=2") for o in COARSE_DVM]
    cfg2 = _cfg(tmp_path, ["machs=[1.5,2.0]", "models=[dvm,nsf,euler]", "+overrides.nsf.nx=601"] + coarse_2threads)
    third = run_mach_sweep(cfg2, cache)
    assert sorted(calls) == [(1.5, "nsf"), (2.0, "nsf")]
    assert [r["cached"] for r in third["rows"] if r["model"] != "nsf"] == [True] * 4

    # changed code (the digest of the package sources) recomputes every entry
    calls.clear()
    monkeypatch.setattr(mach_mod, "source_digest", lambda: "edited")
    fourth = run_mach_sweep(cfg2, cache)
    assert len(calls) == 6 and not any(r["cached"] for r in fourth["rows"])


def test_failure_is_reported_and_per_mach_options(tmp_path, monkeypatch):
    solve = mach_mod.solve_model

    def flaky(states, name, **kwargs):
        if name == "euler" and states.mach == 2.0:
            raise RuntimeError("deliberate failure")
        return solve(states, name, **kwargs)

    monkeypatch.setattr(mach_mod, "solve_model", flaky)
    cfg = _cfg(tmp_path, ["machs=[1.5,2.0]", "models=[nsf,euler]", "reference=nsf",
                          "mach_overrides=[{mach: 2.0, nsf: {nx: 601}}]"])
    result = run_mach_sweep(cfg, tmp_path / "cache")
    by = {(r["mach"], r["model"]): r for r in result["rows"]}
    bad = by[(2.0, "euler")]
    assert bad["failure"] == "RuntimeError: deliberate failure"
    assert bad["rho_L2"] is None and bad["inv_density_thickness"] is None
    assert by[(1.5, "euler")]["failure"] is None and by[(1.5, "euler")]["rho_L2"] > 0
    assert by[(2.0, "nsf")]["options"]["nx"] == 601 and by[(1.5, "nsf")]["options"]["nx"] == 1201
    md = (tmp_path / "results" / "mach_sweep.md").read_text()
    assert "failed" in md and "deliberate failure" in md


def _no_solve(*args, **kwargs):
    raise AssertionError("solver called before the options were checked")


@pytest.mark.parametrize("override, error, word", [("+overrides.nsf.nxx=3", KeyError, "nxx"),
                                                   ("mach_overrides=[{mach: 2.0, dvm: {nvv: 3}}]", KeyError, "nvv"),
                                                   ("machs=[]", ValueError, "machs is empty"),
                                                   ("models=[dvm,foo]", ValueError, "unknown model 'foo'"),
                                                   ("+overrides.mlc.closure=/nonexistent/closure.pt", ClosureCheckpointError,
                                                    "closure checkpoint /nonexistent/closure.pt does not exist")])
def test_bad_options_raise_before_solving(tmp_path, monkeypatch, override, error, word):
    monkeypatch.setattr(mach_mod, "solve_model", _no_solve)
    cfg = _cfg(tmp_path, ["machs=[1.5,2.0]", "models=[dvm,nsf,mlc]", override])
    with pytest.raises(error, match=word):
        run_mach_sweep(cfg, tmp_path / "cache")


def test_kinclose_bench_refuses_unknown_models_and_options_before_solving(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from kinclose.bench import shock as shock_mod

    monkeypatch.setattr(shock_mod, "solve_model", _no_solve)
    for override, error, word in (("models=[dvm,foo]", ValueError, "unknown model 'foo'"),
                                  ("+overrides.mlc.bogus=1", KeyError, "bogus"),
                                  ("+overrides.mlc.closure=/nonexistent/closure.pt", ClosureCheckpointError, "does not exist"),
                                  ("+overrides.hermmlc.closure=pretrained:nosuch", FileNotFoundError,
                                   "no shipped closure 'nosuch'")):
        with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
            cfg = compose(config_name="bench", overrides=[f"out_dir={tmp_path}", override])
        with pytest.raises(error, match=word):
            shock_mod.run(cfg)
    assert not any(tmp_path.iterdir())


BENCH = shutil.which("kinclose-bench")


@pytest.mark.skipif(BENCH is None, reason="kinclose-bench not installed (pip install -e .)")
def test_kinclose_bench_console_script(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    r = subprocess.run([BENCH, "--help"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and "mach: 5.5" in r.stdout
    r = subprocess.run([BENCH, "mach=2.0", "models=[nsf,euler]", "reference=nsf", f"out_dir={tmp_path}",
                        f"hydra.run.dir={tmp_path / 'run'}"], env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "shock_M2.json").read_text())
    assert set(out["models"]) == {"nsf", "euler"} and out["models"]["nsf"]["rho_L2"] == 0.0
    assert (tmp_path / "shock_M2.md").exists() and (tmp_path / "shock_M2.png").exists()
