"""The main job end to end at a tiny setting: label → moments → closure → one ELT iteration →
shock benchmark (Mach 2, coarse grids), through the installed console script."""

import json
import os
import shutil
import subprocess

import pytest

EXE = shutil.which("kinclose-pipeline")


@pytest.mark.slow
@pytest.mark.skipif(EXE is None, reason="kinclose-pipeline not installed")
def test_tiny_pipeline(tmp_path):
    args = [EXE, f"out_dir={tmp_path}", "elt.n_initial=4", "elt.n_candidates=3", "elt.per_iteration_budget=2",
            "elt.label_budget=2", "elt.n_heldout=2", "elt.explore_samples=2", "elt.cluster.kind=serial",
            "elt.cluster.threads=1", "elt.device=cpu", "elt.dataset.nx=16", "elt.dataset.nv=64",
            "elt.dataset.v_width=6.5", "elt.dataset.T_margin=1.5", "elt.dataset.t_end=0.02",
            "elt.dataset.n_snapshots=3", "elt.moments.epochs=2", "elt.moments.M=3", "elt.moments.n_xi=48",
            "elt.closure.epochs=3", "shock.mach=2.0", "shock.models=[dvm,nsf,euler,mlc]",
            "+shock.overrides.dvm.dx=0.25", "+shock.overrides.dvm.nv=48", "+shock.overrides.dvm.levels=1",
            "+shock.overrides.dvm.x_min=-10.0", "+shock.overrides.dvm.x_max=8.0", "+shock.overrides.mlc.dx=0.5",
            "+shock.overrides.mlc.x_min=-10.0", "+shock.overrides.mlc.x_max=8.0", "+shock.overrides.mlc.tol=1.0e-3"]
    env = dict(os.environ, MPLBACKEND="Agg", TQDM_DISABLE="1")
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads((tmp_path / "pipeline_summary.json").read_text())
    assert summary["elt"]["labeled"] == 6
    rows = summary["shock"]["models"]
    assert "dvm" in rows and "nsf" in rows
    # the learned closure of this tiny run may fail on the shock: then it is reported, not hidden
    assert "mlc" in rows or "mlc" in summary["shock"]["failures"]
    for name in ("dvm", "mlc"):  # the solver's own time (no loading) is part of the whole call's
        if name in rows:
            assert 0.0 < rows[name]["solve_s"] <= rows[name]["wall_s"], rows[name]
    assert rows["nsf"]["solve_s"] is None and "| solve (s) |" in (tmp_path / "shock_M2.md").read_text()
    for f in ("shock_M2.png", "shock_M2.md", "shock_M2.json"):
        assert (tmp_path / f).exists()


@pytest.mark.parametrize("override, word", [("shock.models=[dvm,nsf,foo]", "unknown model 'foo'"),
                                            ("shock.reference=nsf", None), ("shock.mach=0.9", "Mach > 1"),
                                            ("+shock.overrides.mlc.bogus=1", "bogus"),
                                            ("elt.max_iterations=0", "max_iterations")])
def test_pipeline_checks_the_benchmark_before_the_loop(tmp_path, monkeypatch, override, word):
    """A typo in the benchmark part stops the main job at once, not after the labeling and training."""
    from hydra import compose, initialize_config_module

    from kinclose import elt
    from kinclose.apps.pipeline import pipeline

    monkeypatch.setattr(elt, "run_elt", lambda *a, **k: pytest.fail("the loop started before the config was checked"))
    overrides = [f"out_dir={tmp_path / 'out'}", override]
    if word is None:  # a reference that is not among the models
        overrides.append("shock.models=[dvm,euler]")
        word = "must be one of models"
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="pipeline", overrides=overrides)
    with pytest.raises((ValueError, KeyError), match=word):
        pipeline(cfg)
    assert not (tmp_path / "out").exists()
