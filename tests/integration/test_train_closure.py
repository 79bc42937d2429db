"""Closure stage end to end on a tiny BGK dataset: ``train_closure`` (learned and Hermite moments),
the checkpoint round trip and its errors, :class:`LearnedClosure` in the reduced solver, the flux
Jacobian diagnostic, and one subprocess run of the installed ``kinclose-train stage=closure``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.conf import compose  # noqa: E402

EXE = shutil.which("kinclose-train")
MOMENTS_ARGS = ["threads=1", "stage.epochs=3", "stage.batch_size=32", "stage.encoder_hidden=[16,16]",
                "stage.decoder_hidden=[32,32]"]
CLOSURE_ARGS = ["threads=1", "stage.epochs=40", "stage.patience=15", "stage.batch_size=16", "stage.hidden=[32,32]"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(bgk_dataset: Path) -> Path:
    return bgk_dataset


def _train(root: Path, out: Path, encoder: str, extra: tuple[str, ...] = ()) -> dict:
    from kinclose.closure.train import train_closure
    from kinclose.moments.train import train_moments

    torch.set_num_threads(1)
    train_moments(compose("train", ["stage=moments", f"stage.model={encoder}", f"data.root={root}", *MOMENTS_ARGS, *extra]),
                  out / "moments")
    cfg = compose("train", ["stage=closure", f"data.root={root}", f"moments_ckpt={out / 'moments' / 'moments.pt'}",
                    *CLOSURE_ARGS])
    return train_closure(cfg, out / "closure")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("closure_run")
    return out, _train(dataset, out, "learned")


def test_config_composes_with_the_closure_stage() -> None:
    cfg = compose("train", ["stage=closure", "moments_ckpt=x.pt", "stage.K=5"])
    assert cfg.stage.name == "closure" and cfg.moments_ckpt == "x.pt" and cfg.stage.K == 5
    assert cfg.stage.frames.delta_max == 0.5 and list(cfg.stage.hidden) and cfg.data.root
    assert compose("train", ["stage=moments"]).stage.name == "moments"  # the other stage is unaffected


def test_training_reduces_the_validation_loss_and_writes_artefacts(trained) -> None:
    out, m = trained
    run = out / "closure"
    for name in ("closure.pt", "metrics.json", "learning_curve.png"):
        assert (run / name).stat().st_size > 500, name
    assert m["K"] == 4 and m["M"] == 3 and m["encoder"] == "learned"
    for first, best in zip(m["first_val_loss"], m["best_val_loss"]):
        assert best < 0.3 * first, (first, best)
    assert m["identity_defect"] < 1e-13
    for key in ("sigma_hat", "q_hat", "m", "k"):
        assert np.isfinite(m["val"]["all"][key]["rel_rmse"]), key
    assert m["val"]["per_decade"] and set(m["W_range"]) >= {"min", "max"}
    assert len(m["moments_checkpoint_sha256"]) == 64 and m["data"]["dataset_hash"]
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["val"]["all"]["q_hat"]["rmse"] == m["val"]["all"]["q_hat"]["rmse"]


def test_members_fitted_side_by_side_are_the_sequential_ones(trained, dataset: Path, tmp_path: Path) -> None:
    """stage.workers=2 fits the members in two spawned processes: the same weights and histories as one process
    at the same thread count (one torch thread)."""
    from kinclose.closure.train import member_workers, train_closure

    out, _ = trained
    runs, states = {}, {}
    for w in (1, 2):
        cfg = compose("train", ["stage=closure", f"data.root={dataset}", f"moments_ckpt={out / 'moments' / 'moments.pt'}",
                                *CLOSURE_ARGS, "stage.K=2", "stage.epochs=4", f"stage.workers={w}"])
        runs[w] = train_closure(cfg, tmp_path / f"w{w}")
        states[w] = torch.load(tmp_path / f"w{w}" / "closure.pt", weights_only=True)["state_dict"]
    np.testing.assert_equal(*[[{k: v for k, v in h.items() if k != "wall_s"} for h in runs[w]["history"]]
                              for w in (1, 2)])  # the loss curves, bit for bit (epoch 0 has no train loss: NaN)
    assert states[1].keys() == states[2].keys()
    assert all(torch.equal(states[1][k], states[2][k]) for k in states[1])
    assert member_workers(8, 4, None) == 4 and member_workers(2, 4, None) == 2
    assert member_workers("auto", 4, os.cpu_count()) == 1 and member_workers("auto", 1, None) == 1
    with pytest.raises(ValueError, match="stage.workers must be"):
        member_workers(0, 4, None)


def test_a_rerun_of_a_killed_stage_fits_only_the_members_it_had_not_finished(trained, dataset: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    """Each fitted member is kept in ``<run>/members`` under the key of its inputs: after a kill during member 1 the
    rerun loads member 0 and fits member 1, and the checkpoint equals that of an uninterrupted run bit for bit; other
    options, or a damaged member file, mean a fresh fit."""
    import kinclose.closure.train as train_mod

    out, _ = trained
    args = ["stage=closure", f"data.root={dataset}", f"moments_ckpt={out / 'moments' / 'moments.pt'}", *CLOSURE_ARGS,
            "stage.K=2", "stage.epochs=4"]
    real, fitted, kill = train_mod.fit_member, [], []

    def counting(member, train, val, **kw):  # one function for every run: it is part of a member's key
        if kw["name"] in kill:
            raise KeyboardInterrupt("killed")
        fitted.append(kw["name"])
        return real(member, train, val, **kw)

    def state(run: Path) -> dict:
        return torch.load(run / "closure.pt", weights_only=True)["state_dict"]

    monkeypatch.setattr(train_mod, "fit_member", counting)
    whole = train_mod.train_closure(compose("train", args), tmp_path / "whole")
    kill.append("member 1")
    with pytest.raises(KeyboardInterrupt):
        train_mod.train_closure(compose("train", args), tmp_path / "killed")
    assert sorted(p.name for p in (tmp_path / "killed" / "members").iterdir()) == ["member_0.pt"]
    assert not (tmp_path / "killed" / "closure.pt").exists()
    kill.clear()
    fitted.clear()
    resumed = train_mod.train_closure(compose("train", args), tmp_path / "killed")
    assert fitted == ["member 1"]
    a, b = state(tmp_path / "whole"), state(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_equal(*[[{k: v for k, v in h.items() if k != "wall_s"} for h in r["history"]]
                              for r in (whole, resumed)])
    fitted.clear()  # other options: both members fitted again
    train_mod.train_closure(compose("train", [*args, "stage.lr=2e-3"]), tmp_path / "killed")
    assert fitted == ["member 0", "member 1"]
    (tmp_path / "killed" / "members" / "member_0.pt").write_bytes(b"damaged")
    fitted.clear()
    train_mod.train_closure(compose("train", [*args, "stage.lr=2e-3"]), tmp_path / "killed")
    assert fitted == ["member 0"]


def test_hyperbolicity_penalty_in_the_closure_stage(trained, dataset: Path, tmp_path: Path) -> None:
    """The penalised stage runs from the config, records its options and the spectrum of the result, and
    leaves fewer non-hyperbolic validation states than the unpenalised run of the same data."""
    from kinclose.closure.train import train_closure

    out, m_default = trained
    assert m_default["hyperbolicity"]["weight"] == 0.1  # conf/stage/closure.yaml
    args = ["stage=closure", f"data.root={dataset}", f"moments_ckpt={out / 'moments' / 'moments.pt'}", *CLOSURE_ARGS,
            "stage.hyperbolicity.s_max=4.0"]
    m0 = train_closure(compose("train", [*args, "stage.hyperbolicity.weight=0.0"]), tmp_path / "closure0")
    m1 = train_closure(compose("train", [*args, "stage.hyperbolicity.weight=10.0"]), tmp_path / "closure1")
    assert m1["hyperbolicity"]["weight"] == 10.0 and m0["hyperbolicity"]["weight"] == 0.0
    assert all("val_penalty" in h for h in m1["history"])
    s0, s1 = m0["characteristic_speeds"], m1["characteristic_speeds"]
    for s in (s0, s1):
        assert set(s) >= {"validation", "stretched_1.5", "equilibrium"} and len(s["equilibrium"]) == 3 + 3
    bad = lambda s: s["stretched_1.5"]["states_complex"] + s["stretched_1.5"]["fraction_above_xi_max"]  # noqa: E731
    assert bad(s1) < bad(s0), (s0, s1)
    with pytest.raises(ValueError, match="unknown stage.hyperbolicity keys"):
        train_closure(compose("train", ["stage=closure", f"data.root={dataset}", f"moments_ckpt={out / 'moments' / 'moments.pt'}",
                                "+stage.hyperbolicity.wieght=1"]), tmp_path / "bad")


def test_checkpoint_round_trip(trained, dataset: Path) -> None:
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.train import CHECKPOINT_FORMAT, errors, file_sha256, load_closure_checkpoint, predict
    from kinclose.closure.targets import build_targets, FrameSampling
    from kinclose.moments.train import load_checkpoint, load_dataset, split

    out, m = trained
    raw = torch.load(out / "closure" / "closure.pt", weights_only=True)  # plain tensors and builtins only
    assert raw["format"] == CHECKPOINT_FORMAT and raw["class"] == "Ensemble" and raw["kwargs"]["K"] == 4
    assert raw["moments_checkpoint_sha256"] == file_sha256(out / "moments" / "moments.pt")
    assert raw["dataset_hash"] == m["data"]["dataset_hash"] and raw["data_schema_version"] == 1
    ens, meta = load_closure_checkpoint(out / "closure" / "closure.pt")
    # rebuild the validation targets exactly as training did and reproduce the reported errors
    moments, _ = load_checkpoint(out / "moments" / "moments.pt")
    data = load_dataset(dataset, moments.grid)
    t = build_targets(data, moments.encoder, FrameSampling(**meta["frames"]), np.random.default_rng(0 + 104729))
    _, iva, _ = split(data, 0.2, 0)
    err = errors(predict(ens, t.subset(iva)), t.subset(iva))
    for key in ("sigma_hat", "q_hat", "m", "k"):
        np.testing.assert_allclose(err["all"][key]["rmse"], m["val"]["all"][key]["rmse"], rtol=1e-12, atol=0)
    # two independent loads give identical outputs
    a = LearnedClosure.from_checkpoint(out / "closure" / "closure.pt")
    b = LearnedClosure.from_checkpoint(out / "closure" / "closure.pt")
    W = t.W[:20]
    np.testing.assert_array_equal(a.stress_heat(W, None), b.stress_heat(W, None))
    np.testing.assert_array_equal(a.frame(W, t.delta[:20, 1], t.tau[:20, 1], None)[1],
                                  b.frame(W, t.delta[:20, 1], t.tau[:20, 1], None)[1])
    np.testing.assert_array_equal(a.equilibrium(), np.asarray(m["W_eq"]))


def test_corrupted_and_foreign_checkpoints_give_clear_errors(trained, tmp_path: Path) -> None:
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.train import ClosureCheckpointError

    out, _ = trained
    good = out / "closure" / "closure.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ClosureCheckpointError, match="corrupted or truncated"):
        LearnedClosure.from_checkpoint(cut)
    obj = torch.load(good, weights_only=True)
    old = tmp_path / "old.pt"
    torch.save({**obj, "closure_version": 0}, old)
    with pytest.raises(ClosureCheckpointError, match="closure version 0 .*this code has closure version 1"):
        LearnedClosure.from_checkpoint(old)
    schema = tmp_path / "schema.pt"
    torch.save({**obj, "data_schema_version": 2}, schema)
    with pytest.raises(ClosureCheckpointError, match="data schema version 2"):
        LearnedClosure.from_checkpoint(schema)
    bad_w = tmp_path / "badw.pt"
    torch.save({**obj, "kwargs": {**obj["kwargs"], "hidden": [8]}}, bad_w)
    with pytest.raises(ClosureCheckpointError, match="weights do not fit"):
        LearnedClosure.from_checkpoint(bad_w)
    with pytest.raises(ClosureCheckpointError, match="not a kinclose closure checkpoint"):
        LearnedClosure.from_checkpoint(out / "moments" / "moments.pt")
    with pytest.raises(ClosureCheckpointError, match="does not exist"):
        LearnedClosure.from_checkpoint(tmp_path / "nothing.pt")


def test_learned_closure_in_the_reduced_solver(trained, smooth_wave_run) -> None:
    """~20 steps on smooth periodic data: U conserved to round-off, ρ, T > 0, W finite."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.physics import primitive

    out, m = trained
    cl = LearnedClosure.from_checkpoint(out / "closure" / "closure.pt")
    # the Rusanov bound defaults to the one stored in the checkpoint (stage.xi_max); an argument overrides it
    assert cl.xi_max == cl.meta["xi_max"] == 5.0 and cl.n_moments == 3 and cl.equilibrium().shape == (3,)
    assert LearnedClosure.from_checkpoint(out / "closure" / "closure.pt", xi_max=3.5).xi_max == 3.5
    red = smooth_wave_run(cl, 20)
    r, _, Tn = primitive(red.U)
    assert np.all(r > 0) and np.all(Tn > 0) and np.all(np.isfinite(red.W))
    f = red.fields_array()
    assert np.all(np.isfinite(f)) and np.abs(f[:, 3]).max() > 0  # a non-trivial stress develops


def test_learned_closure_diagnostics(trained) -> None:
    from kinclose.closure.learned import LearnedClosure
    from kinclose.physics import conservative

    out, m = trained
    cl = LearnedClosure.from_checkpoint(out / "closure" / "closure.pt")
    lo, hi = np.asarray(m["W_range"]["min"]), np.asarray(m["W_range"]["max"])
    rng = np.random.default_rng(0)
    W_in = lo + (hi - lo) * rng.uniform(size=(50, 3))
    W_out = W_in.copy()
    W_out[:5, 1] = hi[1] + 1.0
    # identity frame exact; variance per output and state, m part zero at (0, 1)
    mm, _ = cl.frame(W_in, np.zeros(50), np.ones(50), None)
    np.testing.assert_array_equal(mm, W_in)
    var = cl.variance(W_in)
    assert var.shape == (50, 2 + 2 * 3) and np.all(var[:, 2:5] == 0) and np.all(var[:, :2] > 0)
    assert np.all(cl.variance(W_in, 0.3, 1.2)[:, 2:5] > 0)
    # range check: reported, not clipped
    assert cl.check_range(W_in)["fraction"] == 0.0
    rep = cl.check_range(W_out)
    assert rep["fraction"] == 0.1 and list(rep["indices"]) == [0, 1, 2, 3, 4] and rep["per_component"][1] == 5
    # flux Jacobian eigenvalues: shapes and fractions
    U = conservative(1 + rng.uniform(0, 1, 50), rng.uniform(-1, 1, 50), 1 + rng.uniform(0, 1, 50))
    for fd in (True, False):
        ev = cl.flux_jacobian_eigenvalues(U, W_in, frame_derivatives=fd)
        assert ev["eigenvalues"].shape == (50, 6)
        assert 0.0 <= ev["fraction_complex"] <= ev["fraction_states_complex"] <= 1.0
        assert np.isfinite(ev["max_speed"])


def test_flux_jacobian_of_a_closure_without_learned_terms_is_euler_plus_advection() -> None:
    """With σ̂ = q̂ = 0, m = W and a constant k the closed system is Euler plus passive moments: the
    eigenvalues are u ± √(5T/3) and u (M + 1 times), all real."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.networks import Ensemble
    from kinclose.physics import conservative

    ens = Ensemble(M=2, K=4, hidden=(8,), seed=0)
    with torch.no_grad():
        for mem in ens.members:
            for net in (mem.stress_heat.net, mem.frame.net):
                net[-1].weight.zero_()
                net[-1].bias.zero_()
        ens.set_statistics({"k_mean": [0.3, -0.2]})
    cl = LearnedClosure(ens.eval(), {"W_range": {"min": [-1, -1], "max": [1, 1], "std": [1, 1]}})
    rng = np.random.default_rng(1)
    rho, u, T = 1 + rng.uniform(0, 1, 10), rng.uniform(-2, 2, 10), 0.5 + rng.uniform(0, 1, 10)
    W = rng.normal(size=(10, 2))
    for fd in (True, False):
        ev = cl.flux_jacobian_eigenvalues(conservative(rho, u, T), W, frame_derivatives=fd)
        lam = np.sort(ev["eigenvalues"].real, axis=1)
        c = np.sqrt(5 * T / 3)
        expect = np.sort(np.stack([u - c, u, u, u, u + c], 1), axis=1)
        np.testing.assert_allclose(lam, expect, rtol=0, atol=1e-7)  # triple eigenvalue: ~√eps accuracy
        assert ev["fraction_complex"] == 0.0 or np.abs(ev["eigenvalues"].imag).max() < 1e-7
        np.testing.assert_allclose(ev["max_speed"], np.sqrt(5 / 3), rtol=1e-7)


def test_hermite_moments_go_through_the_same_pipeline(tmp_path: Path, dataset: Path) -> None:
    from kinclose.closure.learned import LearnedClosure

    # the "graded" Hermite basis starts with He_2/√2 = σ̂/√2; with basis "orders" (He_3 … He_5) σ̂ is not
    # determined by W in 3 velocity dimensions (T fixes only the trace of the second moments)
    m = _train(dataset, tmp_path, "hermite", ("stage.hermite_basis=graded",))
    assert m["encoder"] == "hermite" and m["identity_defect"] < 1e-13
    np.testing.assert_allclose(m["W_eq"], 0.0, rtol=0, atol=1e-14)
    for first, best in zip(m["first_val_loss"], m["best_val_loss"]):
        assert best < 0.3 * first, (first, best)
    cl = LearnedClosure.from_checkpoint(tmp_path / "closure" / "closure.pt")
    np.testing.assert_allclose(cl.stress_heat(np.zeros((1, 3)), None), 0.0, rtol=0, atol=1e-15)  # anchored


def test_velocity_quadrature_targets_through_the_stage(trained, tmp_path: Path, dataset: Path) -> None:
    """stage.quadrature=velocity: targets from the stored distributions (frame (0, 1) reproduces W bitwise),
    recorded in the metrics and the checkpoint; a bad name is refused before the dataset is read."""
    from kinclose.closure.train import load_closure_checkpoint, train_closure

    out, _ = trained
    base = ["stage=closure", f"data.root={dataset}", f"moments_ckpt={out / 'moments' / 'moments.pt'}", *CLOSURE_ARGS,
            "stage.epochs=4"]
    m = train_closure(compose("train", [*base, "stage.quadrature=velocity"]), tmp_path / "vel")
    assert m["quadrature"] == "velocity" and m["identity_defect"] == 0.0
    assert np.isfinite(m["best_val_loss"]).all()
    _, meta = load_closure_checkpoint(tmp_path / "vel" / "closure.pt")
    assert meta["quadrature"] == "velocity"
    with pytest.raises(ValueError, match="stage.quadrature='trapezoid'"):
        train_closure(compose("train", [*base, "stage.quadrature=trapezoid"]), tmp_path / "bad")


@pytest.mark.skipif(EXE is None, reason="kinclose-train console script is not installed")
def test_cli_trains_moments_then_closure(tmp_path: Path, dataset: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", TQDM_DISABLE="1")

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([EXE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    res = run(["stage=moments", f"data.root={dataset}", f"hydra.run.dir={tmp_path / 'm'}", *MOMENTS_ARGS])
    assert res.returncode == 0, res.stderr[-3000:]
    res = run(["stage=closure", f"moments_ckpt={tmp_path / 'm' / 'moments.pt'}", f"data.root={dataset}",
               f"hydra.run.dir={tmp_path / 'c'}", "stage.K=4", "stage.epochs=5", *CLOSURE_ARGS[:1]])
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("closure.pt", "metrics.json", "learning_curve.png"):
        assert (tmp_path / "c" / name).stat().st_size > 500, name
    met = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert met["stage"] == "closure" and met["config"]["moments_ckpt"].endswith("moments.pt")
    # a missing moments checkpoint is a one-line error, not a traceback
    res = run(["stage=closure", f"data.root={dataset}", f"hydra.run.dir={tmp_path / 'x'}"])
    assert res.returncode == 2 and "needs the moments checkpoint" in res.stderr and "Traceback" not in res.stderr


def test_structured_hermite_closures_through_the_stage(trained, tmp_path: Path, dataset: Path, smooth_wave_run) -> None:
    """stage.structure=hermite learns only the two top moments of a graded Hermite set (σ̂, q̂ exact in W, so
    their validation error is the ξ-grid's normalization error, far below a network's); stage.structure=grad
    trains nothing and has the larger flux error; both load and run in the reduced solver; the learned encoder
    and distillation refuse them with clear errors."""
    from kinclose.closure.distill import DistillError, distill
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.train import load_closure_checkpoint, train_closure

    free = _train(dataset, tmp_path, "hermite", ("stage.hermite_basis=graded", "stage.M=4"))
    mck = tmp_path / "moments" / "moments.pt"
    res = {}
    for structure in ("hermite", "grad"):
        cfg = compose("train", ["stage=closure", f"data.root={dataset}", f"moments_ckpt={mck}", *CLOSURE_ARGS,
                                f"stage.structure={structure}"])
        res[structure] = train_closure(cfg, tmp_path / structure)
    h, g = res["hermite"], res["grad"]
    assert h["model_kwargs"]["structure"] == "hermite" and h["model_kwargs"]["terms"] == [[2, 0], [3, 0], [1, 1], [4, 0]]
    assert g["best_val_loss"] == [] and not (tmp_path / "grad" / "learning_curve.png").exists()
    for key in ("sigma_hat", "q_hat"):
        assert h["val"]["all"][key]["rel_rmse"] == g["val"]["all"][key]["rel_rmse"]  # same exact algebra
        assert h["val"]["all"][key]["rel_rmse"] < 0.5 * free["val"]["all"][key]["rel_rmse"]
    assert h["val"]["all"]["k"]["rel_rmse"] < 0.7 * g["val"]["all"]["k"]["rel_rmse"]
    ens, meta = load_closure_checkpoint(tmp_path / "hermite" / "closure.pt")
    assert ens.structure == "hermite" and meta["xi_max"] == 5.0
    red = smooth_wave_run(LearnedClosure.from_checkpoint(tmp_path / "hermite" / "closure.pt"), 20)
    assert np.all(np.isfinite(red.W)) and np.abs(red.fields_array()[:, 4]).max() > 0
    with pytest.raises(DistillError, match="structured Hermite closure"):
        distill(ens, meta)
    with pytest.raises(ValueError, match="stage.structure='grade'"):
        train_closure(compose("train", ["stage=closure", f"data.root={dataset}", f"moments_ckpt={mck}", *CLOSURE_ARGS,
                                        "stage.structure=grade"]), tmp_path / "x")
    with pytest.raises(ValueError, match="graded Hermite encoder"):
        train_closure(compose("train", ["stage=closure", f"data.root={dataset}", *CLOSURE_ARGS, "stage.structure=grad",
                                        f"moments_ckpt={trained[0] / 'moments' / 'moments.pt'}"]), tmp_path / "x")
