"""Reduced solver with a collision-source object: the exact BGK source as an object (R̂ = W_eq − W)
reproduces the built-in BGK relaxation (bit for bit with the Filbet–Jin penalisation at β = 1, to
round-off with the linearized scheme); the linearized step is exact for a linear source and keeps the
stiff limit independent of Δt, the penalisation does not; a learned source keeps a uniform Maxwellian
fixed and U conserved; bad sources are refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.source import BGKSource, LearnedSource, SourceEnsemble  # noqa: E402
from kinclose.physics import mu_ref_for_knudsen  # noqa: E402
from kinclose.reduced.solver import ReducedSolver  # noqa: E402

NX = 16


@pytest.fixture(scope="module")
def closure():
    # float64 inference: the default float32 path moves a uniform state by ~1e-8 per step by itself
    from kinclose.closure.learned import LearnedClosure
    from kinclose.pretrained import resolve

    return LearnedClosure.from_checkpoint(resolve("pretrained:mlc_small"), xi_max=5.0, inference="float64")


def _initial(cl):
    x = (np.arange(NX) + 0.5) / NX
    rho = 1 + 0.3 * np.sin(2 * np.pi * x)
    u = 0.3 * np.cos(2 * np.pi * x)
    T = 1 + 0.2 * np.sin(4 * np.pi * x + 0.3)
    W = cl.equilibrium()[None] + 0.02 * np.sin(2 * np.pi * x)[:, None]  # out of equilibrium
    return rho, u, T, W


def _learned_source(cl, beta=2.0, seed=0):
    M = cl.n_moments
    ens = SourceEnsemble(M=M, K=4, hidden=[8, 8], seed=seed)
    w_eq = cl.equilibrium()
    ens.set_statistics({"w_mean": w_eq, "w_std": np.full(M, 0.05), "w_eq": w_eq, "y_std": np.full(M, 0.05)})
    return LearnedSource(ens.eval(), {"beta": {"beta_eq": 1.0, "beta_q99": beta}})


def _run(cl, source, kn=0.01, steps=8, **kw):
    s = ReducedSolver(0, 1, NX, cl, mu_ref_for_knudsen(kn, 0.5), 0.5, "periodic", 0.4, source=source, **kw)
    s.set_state(*_initial(cl))
    for _ in range(steps):
        s.step()
    return s


class LinearSource:
    """R̂ = A (W_eq − W) with a constant symmetric positive definite A (M, M) of rates 0.5 … 2."""

    def __init__(self, w_eq, seed: int = 0) -> None:
        self.w_eq = np.asarray(w_eq, dtype=float)
        self.n_moments = M = self.w_eq.size
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(M, M)))
        self.A = q @ np.diag(np.linspace(0.5, 2.0, M)) @ q.T
        self.beta = 2.0

    def rate(self, W):
        return (self.w_eq[None] - W) @ self.A.T

    def rate_jacobian(self, W):
        return self.rate(W), np.broadcast_to(-self.A, (W.shape[0],) + self.A.shape)


@pytest.mark.parametrize("kn", [1e-3, 0.1])
def test_bgk_source_object_reproduces_the_bgk_solver(closure, kn) -> None:
    ref = _run(closure, None, kn)
    assert np.abs(ref.W - closure.equilibrium()).max() > 1e-6  # W is genuinely dynamic
    pen = _run(closure, BGKSource(closure.equilibrium(), beta=1.0), kn, source_scheme="penalized")
    # bit for bit: the explicit bracket is (W_eq − W) − 1·(W_eq − W) = 0 exactly, the rest is the BGK formula
    np.testing.assert_array_equal(pen.U, ref.U)
    np.testing.assert_array_equal(pen.W, ref.W)
    lin = _run(closure, BGKSource(closure.equilibrium(), beta=1.0), kn)
    np.testing.assert_allclose(lin.U, ref.U, rtol=1e-13, atol=0)
    np.testing.assert_allclose(lin.W, ref.W, rtol=0, atol=1e-13)
    # β does not enter the linearized step; with β > 1 the penalisation is a different splitting
    lin3 = _run(closure, BGKSource(closure.equilibrium(), beta=1.0), kn, source_beta_safety=3.0)
    np.testing.assert_array_equal(lin3.W, lin.W)
    pen3 = _run(closure, BGKSource(closure.equilibrium(), beta=1.0), kn, source_beta_safety=3.0,
                source_scheme="penalized")
    assert np.isfinite(pen3.W).all() and np.abs(pen3.W - ref.W).max() > 1e-8


def test_linearized_step_is_implicit_euler_for_a_linear_source(closure) -> None:
    src = LinearSource(closure.equilibrium())
    s = ReducedSolver(0, 1, NX, closure, mu_ref_for_knudsen(1e-3, 0.5), 0.5, "periodic", 0.4, source=src)
    rho, u, T, W = _initial(closure)
    s.set_state(rho, u, T, W)
    a = 0.01
    an = a * rho * T**0.5 / s.mu_ref
    exact = np.stack([np.linalg.solve(np.eye(src.n_moments) + k * src.A, W[i] + k * src.A @ src.w_eq)
                      for i, k in enumerate(an)])
    np.testing.assert_allclose(s._relax(s.U, W, a), exact, rtol=0, atol=1e-13)
    assert s.source_shifted_cells == 0
    pen = ReducedSolver(0, 1, NX, closure, s.mu_ref, 0.5, "periodic", 0.4, source=src, source_scheme="penalized")
    assert np.abs(pen._relax(s.U, W, a) - exact).max() > 1e-3  # the penalisation is not implicit Euler here


def _stiff_sigma_q(closure, source, scheme: str, substeps: int, kn: float = 1e-4, t_end: float = 0.03):
    s = ReducedSolver(0, 1, NX, closure, mu_ref_for_knudsen(kn, 0.5), 0.5, "periodic", 0.4, source=source,
                      source_scheme=scheme)
    s.set_state(*_initial(closure)[:3])
    while s.t < t_end - 1e-14:
        s.step(min(s.dt_max() / substeps, t_end - s.t))
    return s.fields_array()[:, 3:]


@pytest.mark.parametrize("scheme", ["linearized", "penalized"])
def test_stiff_limit_of_a_matrix_source_is_independent_of_the_time_step(closure, scheme) -> None:
    """ε = 1e-4, Δt ≈ 30 ε: σ and q (O(ε), set by the source's rates) against 8× smaller steps. The
    linearized step keeps them (time error only); the penalisation with β = 2 relaxes the slow modes by
    1 − λ/β per stage and returns O(1)-wrong σ, q (measured: 4.6 % vs 330 % on these 16 cells)."""
    src = LinearSource(closure.equilibrium())
    coarse = _stiff_sigma_q(closure, src, scheme, 1)
    fine = _stiff_sigma_q(closure, src, scheme, 8)
    rel = np.linalg.norm(coarse - fine, axis=0) / np.linalg.norm(fine, axis=0)
    if scheme == "linearized":
        assert rel.max() < 0.1, rel
    else:
        assert rel.min() > 0.5, rel


def test_uniform_maxwellian_is_a_fixed_point(closure) -> None:
    src = _learned_source(closure)
    w_eq = closure.equilibrium()
    assert np.all(src.rate(w_eq[None]) == 0.0)
    s = ReducedSolver(0, 1, NX, closure, mu_ref_for_knudsen(0.01, 0.5), 0.5, "periodic", 0.5, source=src)
    s.set_state(np.full(NX, 1.2), np.full(NX, 0.4), np.full(NX, 0.9))
    U0 = s.U.copy()
    for _ in range(5):
        s.step()
    np.testing.assert_allclose(s.U, U0, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(s.W, np.tile(w_eq, (NX, 1)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kn", [1e-3, 0.1])
def test_learned_source_conserves_U(closure, kn) -> None:
    src = _learned_source(closure, beta=3.0, seed=1)
    s = ReducedSolver(0, 1, NX, closure, mu_ref_for_knudsen(kn, 0.5), 0.5, "periodic", 0.4, source=src)
    s.set_state(*_initial(closure))
    U0 = s.U.sum(0)
    for _ in range(8):
        s.step()
    np.testing.assert_allclose(s.U.sum(0), U0, rtol=0, atol=1e-12 * np.abs(U0).max())
    assert np.isfinite(s.W).all()
    ref = _run(closure, None, kn)
    assert np.abs(s.W - ref.W).max() > 0  # the learned source acts


def test_bad_sources_are_refused(closure) -> None:
    mu = mu_ref_for_knudsen(0.1, 0.5)
    w_eq = closure.equilibrium()
    with pytest.raises(TypeError, match="rate"):
        ReducedSolver(0, 1, NX, closure, mu, source=object())
    with pytest.raises(ValueError, match="W_eq"):
        ReducedSolver(0, 1, NX, closure, mu, source=BGKSource(w_eq + 0.1))
    with pytest.raises(ValueError, match="moments"):
        ReducedSolver(0, 1, NX, closure, mu, source=BGKSource(np.zeros(w_eq.size + 1)))
    with pytest.raises(ValueError, match="beta"):
        ReducedSolver(0, 1, NX, closure, mu, source=BGKSource(w_eq, beta=0.0))
    with pytest.raises(ValueError, match="source_beta_safety"):
        ReducedSolver(0, 1, NX, closure, mu, source=BGKSource(w_eq), source_beta_safety=-1.0)
    with pytest.raises(ValueError, match="source_scheme"):
        ReducedSolver(0, 1, NX, closure, mu, source=BGKSource(w_eq), source_scheme="explicit")

    class RateOnly:
        beta = 1.0

        def rate(self, W):
            return w_eq[None] - W

    with pytest.raises(TypeError, match="rate_jacobian"):
        ReducedSolver(0, 1, NX, closure, mu, source=RateOnly())
    ReducedSolver(0, 1, NX, closure, mu, source=RateOnly(), source_scheme="penalized")


@pytest.mark.parametrize("scheme", ["linearized", "penalized"])
def test_a_non_finite_source_stops_with_a_clear_error(closure, scheme) -> None:
    from kinclose.physics import PhysicalStateError

    class Broken(LinearSource):
        def rate(self, W):
            R = super().rate(W)
            R[3, 1] = np.nan
            return R

    s = ReducedSolver(0, 1, NX, closure, mu_ref_for_knudsen(0.01, 0.5), 0.5, "periodic", 0.4,
                      source=Broken(closure.equilibrium()), source_scheme=scheme)
    s.set_state(*_initial(closure))
    with pytest.raises(PhysicalStateError, match="learned collision source returned non-finite values.*cell 3"):
        s.step()


def test_kinclose_solve_with_a_source_checkpoint(closure, tmp_path) -> None:
    from hydra import compose, initialize_config_module

    from kinclose.apps.solve import solve
    from kinclose.closure.source import save_source_checkpoint
    from kinclose.moments.train import DATA_SCHEMA_VERSION
    from kinclose.problem import Problem
    from kinclose.reduced.run import run_problem

    src = _learned_source(closure, beta=2.5)
    path = save_source_checkpoint(tmp_path / "source.pt", src.ensemble,
                                  {"data_schema_version": DATA_SCHEMA_VERSION, "beta": src.meta["beta"]})
    with initialize_config_module(config_module="kinclose.conf.solve", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=mlc", "model.options.closure=pretrained:mlc_small",
                                                       f"model.options.source={path}", "reference=null", "nx=16",
                                                       "t_end=0.005", "kn=0.01", "model.options.source_beta_safety=2"])
        default = compose(config_name="config", overrides=["model=mlc"])
    assert default.model.options.source is None
    met = solve(cfg, tmp_path / "run")
    assert met["stats"]["source"] == str(path) and met["stats"]["source_beta"] == pytest.approx(5.0)
    assert (tmp_path / "run" / "fields.csv").is_file()
    x = (np.arange(16) + 0.5) / 16
    prob = Problem(0, 1, 1 + 0.1 * np.sin(2 * np.pi * x), np.zeros(16), np.ones(16), kn=0.1, t_end=0.002,
                   collision="boltzmann")
    with pytest.raises(ValueError, match="source=<path of source.pt>"):
        run_problem(prob, closure)
    out = run_problem(prob, closure, source=str(path))
    assert np.isfinite(out.rho).all() and out.stats["source_beta"] == pytest.approx(2.5)


def test_shock_with_the_bgk_source_object_is_the_bgk_shock(closure) -> None:
    from kinclose.physics import rankine_hugoniot
    from kinclose.reduced.shock import reduced_shock

    kw = {"closure": closure, "dx": 0.5, "x_min": -8.0, "x_max": 8.0, "levels": 1, "max_steps": 100, "check_every": 50}
    states = rankine_hugoniot(2.0)
    ref = reduced_shock(states, **kw)
    p = reduced_shock(states, collision="boltzmann", source=BGKSource(closure.equilibrium(), beta=1.0),
                      source_scheme="penalized", **kw)
    lin = reduced_shock(states, collision="boltzmann", source=BGKSource(closure.equilibrium(), beta=1.0), **kw)
    for f in ("rho", "u", "T", "sigma", "q"):
        np.testing.assert_array_equal(getattr(p, f), getattr(ref, f))
        np.testing.assert_allclose(getattr(lin, f), getattr(ref, f), rtol=0,
                                   atol=1e-10 * np.abs(getattr(ref, f)).max())
    assert ref.metrics["source"] == "bgk" and p.metrics["source"] == "BGKSource"
    assert lin.metrics["source_scheme"] == "linearized" and ref.metrics["source_scheme"] is None
    assert np.abs(ref.sigma).max() > 0.01  # a genuine shock structure, not the initial guess
    with pytest.raises(ValueError, match="learned collision source"):
        reduced_shock(states, collision="boltzmann", **kw)
