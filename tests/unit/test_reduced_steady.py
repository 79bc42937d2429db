"""The implicit steady solver of the reduced model (kinclose.reduced.steady): the smooth limiter, the batched
residual against the solver's own rates, the coloured Jacobian against a column-by-column one, and the
Newton iteration against time marching (same steady shock, same limiter)."""

import math

import numpy as np
import pytest

from kinclose.closure.source import BGKSource
from kinclose.kinetic.shock import march_steady
from kinclose.physics import mfp_coefficient, rankine_hugoniot
from kinclose.pretrained import distilled_student
from kinclose.reduced.closure import MaxwellianClosure, hermite_weights
from kinclose.reduced.run import load_closure
from kinclose.reduced.shock import _shift, reduced_shock
from kinclose.reduced.solver import SMOOTH_EPS, ReducedSolver, _limited_slope
from kinclose.reduced.steady import (
    batched_residual,
    check_newton_ready,
    coloured_jacobian,
    newton_steady,
    steady_residual,
)
from kinclose.shockprofile import center


@pytest.fixture(scope="module")
def closure64():
    return load_closure("pretrained:mlc_small_shock2", 5.0, inference="float64")


def _shock_solver(closure, nx=24, outflow="characteristic", limiter="vanleer", mach=3.0, steps=15):
    """A reservoir solver with the RH states of ``mach`` on [-12, 6) λ1, marched ``steps`` steps from a tanh."""
    s = rankine_hugoniot(mach)
    sol = ReducedSolver(-12.0, 6.0, nx, closure, 1.0 / mfp_coefficient(0.5), 0.5, "reservoir", 0.9,
                        left=(s.rho1, s.u1, s.T1), right=(s.rho2, s.u2, s.T2), limiter=limiter, outflow=outflow)
    w = 0.5 * (1.0 + np.tanh(sol.x / 2.0))
    sol.set_state(s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w, s.T1 + (s.T2 - s.T1) * w)
    for _ in range(steps):
        sol.step()
    return sol


def test_smooth_van_leer_slope():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    e = SMOOTH_EPS
    sa, sb = np.sqrt(a * a + e), np.sqrt(b * b + e)
    np.testing.assert_allclose(_limited_slope(a, b, "vanleer"), (a * sb + b * sa) / (sa + sb))
    np.testing.assert_allclose(_limited_slope(a, a, "vanleer"), a, rtol=1e-14)  # a straight line keeps its slope
    assert np.all(_limited_slope(a, -a, "vanleer") == 0)  # an extremum: no slope
    tiny = 1e-3 * math.sqrt(e) * np.array([1.0, -2.0])  # differences far below √e: the central slope
    np.testing.assert_allclose(_limited_slope(tiny[:1], tiny[1:], "vanleer"), 0.5 * tiny.sum(), rtol=1e-5)
    big = 1e3 * math.sqrt(e) * np.array([1.0, 3.0])  # far above √e: van Leer's harmonic mean 2ab/(a + b)
    np.testing.assert_allclose(_limited_slope(big[:1], big[1:], "vanleer"), 2 * big.prod() / big.sum(), rtol=1e-5)
    h = 1e-7  # differentiable at a = b = 0, where MC has a corner
    d = (_limited_slope(np.array([h]), np.array([0.0]), "vanleer") - _limited_slope(np.array([-h]), np.array([0.0]), "vanleer")) / (2 * h)
    np.testing.assert_allclose(d, 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="vanleer"):
        ReducedSolver(0, 1, 8, MaxwellianClosure(*hermite_weights((3,))), 1.0, limiter="superbee")


@pytest.mark.parametrize("outflow", ["reservoir", "characteristic"])
def test_batched_residual_is_the_solver_rate(closure64, outflow):
    """The B grids laid side by side give each grid's own transport rates (to round-off); the residual of a
    uniform equilibrium state is zero."""
    sol = _shock_solver(closure64, outflow=outflow)
    y = np.concatenate([sol.U, sol.W], axis=1)
    Y = y[None] * (1.0 + 1e-3 * np.random.default_rng(1).normal(size=(3,) + y.shape))
    R = batched_residual(sol, Y)
    for b in range(3):
        dU, _ = sol.transport_rates(Y[b, :, :3], Y[b, :, 3:])
        np.testing.assert_allclose(R[b, :, :3], dU, rtol=0, atol=1e-12 * np.abs(dU).max())
        np.testing.assert_allclose(R[b], steady_residual(sol, Y[b, :, :3], Y[b, :, 3:]), rtol=0,
                                   atol=1e-12 * np.abs(R[b]).max())
    s = rankine_hugoniot(3.0)
    flat = ReducedSolver(0, 1, 10, closure64, 1.0, 0.5, "reservoir", 0.9, left=(s.rho1, s.u1, s.T1),
                         right=(s.rho1, s.u1, s.T1), limiter="vanleer", outflow=outflow)
    flat.set_state(np.full(10, s.rho1), np.full(10, s.u1), np.full(10, s.T1))
    assert np.abs(steady_residual(flat, flat.U, flat.W)).max() < 1e-9


class _CountingClosure:
    """A closure that counts the rows it evaluates (everything else forwarded)."""

    def __init__(self, inner):
        self.inner, self.rows = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stress_heat(self, W, cells=None):
        self.rows += W.shape[0]
        return self.inner.stress_heat(W, cells)

    def frame(self, W, delta, tau, cells=None):
        self.rows += W.shape[0]
        return self.inner.frame(W, delta, tau, cells)


@pytest.mark.parametrize("outflow", ["reservoir", "characteristic"])
def test_jacobian_batch_reuses_the_rows_of_the_unperturbed_grid(closure64, outflow):
    """``reuse_last``: states that differ from the last one in a few cells (a Jacobian's columns, boundary cells
    included) give the residual of evaluating every row, while the closure sees under half the rows."""
    sol = _shock_solver(closure64, outflow=outflow)
    y = np.concatenate([sol.U, sol.W], axis=1)
    nx, nvar = y.shape
    Y = np.repeat(y[None], 2 * nvar + 2, axis=0)
    for k in range(nvar):  # every variable of cells 0, 5, 10, ... and of cells 3, 8, ..., nx - 1
        Y[k, 0::5, k] *= 1.0 + 1e-7
        Y[nvar + k, 3::5, k] *= 1.0 - 1e-7
    Y[-2, nx // 2, 3:] += 1e-3  # W of one cell only
    counted = _CountingClosure(closure64)
    R = batched_residual(sol, Y, counted)
    full_rows = counted.rows
    counted.rows = 0
    R_reuse = batched_residual(sol, Y, counted, reuse_last=True)
    assert counted.rows < 0.5 * full_rows, (counted.rows, full_rows)
    np.testing.assert_allclose(R_reuse, R, rtol=0, atol=1e-13 * np.abs(R).max())
    np.testing.assert_allclose(batched_residual(sol, Y[-1:], counted, reuse_last=True), R[-1:], rtol=0,
                               atol=1e-13 * np.abs(R).max())  # one grid: nothing to reuse


def test_residual_with_a_bgk_source_object_is_the_built_in_one(closure64):
    """The learned-source path of the residual (ν R̂(W)) with R̂ = W_eq − W equals the built-in BGK source."""
    sol = _shock_solver(closure64)
    R = steady_residual(sol, sol.U, sol.W)
    sol.source = BGKSource(closure64.equilibrium(), beta=1.0)
    np.testing.assert_allclose(steady_residual(sol, sol.U, sol.W), R, rtol=0, atol=1e-12 * np.abs(R).max())


def test_coloured_jacobian_matches_column_by_column(closure64):
    """The 5-coloured Jacobian equals the plain one (one residual per column) on a tiny grid."""
    sol = _shock_solver(closure64, nx=12)
    y = np.concatenate([sol.U, sol.W], axis=1)
    R0 = steady_residual(sol, y[:, :3], y[:, 3:])
    J = coloured_jacobian(sol, y).toarray()
    h_all = 1e-7 * np.maximum(np.abs(y), 1e-2)
    ref = np.zeros_like(J)
    nvar = y.shape[1]
    for j in range(sol.nx):
        for k in range(nvar):
            yp = y.copy()
            yp[j, k] += h_all[j, k]
            ref[:, j * nvar + k] = ((steady_residual(sol, yp[:, :3], yp[:, 3:]) - R0) / h_all[j, k]).ravel()
    assert np.abs(J - ref).max() < 1e-6 * np.abs(ref).max()  # round-off / h; a colouring error would be O(1)
    assert np.count_nonzero(ref[np.abs(np.subtract.outer(np.arange(J.shape[0]) // nvar,
                                                          np.arange(J.shape[1]) // nvar)) > 2]) == 0


def test_newton_keeps_the_marched_steady_state(closure64):
    """Same zero set: from a profile time-marched to the drift-corrected residual 1e-6, Newton to 1e-10 moves
    every variable by less than 1e-5 of its size (it moves ∝ the marching tolerance: ~1e-5 from 1e-5)."""
    s = rankine_hugoniot(3.0)
    sol = _shock_solver(closure64, nx=36, steps=0)
    march_steady(sol, s, 1e-6, 5000, 50, False, shift_cells=_shift)
    y0 = np.concatenate([sol.U, sol.W], axis=1)
    info = newton_steady(sol, 1e-10, s.rho1 * s.u1, cfl0=1e3)
    assert info["converged"] and info["jacobians"] <= 2, info
    change = np.abs(np.concatenate([sol.U, sol.W], axis=1) - y0).max(0) / np.abs(y0).max(0)
    assert change.max() < 1e-5, change


def test_jacobian_kept_while_its_linear_model_predicts_the_steps(closure64):
    """At a small fixed pseudo-CFL every step reduces ‖F‖ slowly (ratio above ``refresh``) but as J's linear model
    predicts: J is not recomputed (the rule before recomputed it 4 times in 8 steps), and ‖F‖ still falls."""
    s = rankine_hugoniot(3.0)
    sol = _shock_solver(closure64)
    F0 = np.abs(steady_residual(sol, sol.U, sol.W)[:, 0]).max() / (s.rho1 * s.u1)
    info = newton_steady(sol, 1e-12, s.rho1 * s.u1, cfl0=1.0, cfl_max=1.0, max_iter=8)
    assert info["iterations"] == 8 and info["jacobians"] == 1, info
    assert info["residual"] < 0.5 * F0, (info, F0)


def test_reduced_shock_newton_option():
    """``reduced_shock(steady="newton")``: converged on both levels, fewer cell·residual evaluations than the
    marching's cell·steps, the RH state downstream, and the marching's profile (both smooth van Leer) up to the
    sub-cell shift of the centring on Δx = λ1/2."""
    s = rankine_hugoniot(3.0)
    kw = {"closure": "pretrained:mlc_small_shock2", "dx": 0.5, "cfl": 0.9, "xi_max": 5.0, "tol": 1e-5, "x_min": -16.0,
          "x_max": 8.0, "levels": 2, "limiter": "vanleer"}
    march = reduced_shock(s, steady="march", **kw)
    newton = reduced_shock(s, steady="newton", **kw)
    m = newton.metrics
    assert march.metrics["converged"] and m["converged"] and m["residual"] < 1e-5
    assert m["steady_solver"] == "newton" and m["cell_steps"] is None and m["steps"] is None
    assert len(m["newton_per_level"]) == 2 and m["cell_residual_evals"] < march.metrics["cell_steps"]
    assert abs(m["drift_speed"]) < 1e-4
    a, b = center(march), center(newton)
    for name in ("rho", "u", "T", "sigma", "q"):
        ref = getattr(a, name)
        diff = np.interp(a.x, b.x, getattr(b, name)) - ref
        assert np.abs(diff).max() < 0.02 * np.abs(ref - ref[0]).max(), name
    np.testing.assert_allclose([newton.rho[-1], newton.u[-1], newton.T[-1]], [s.rho2, s.u2, s.T2], rtol=2e-3)


def test_newton_from_a_perturbed_steady_state_converges_fast(closure64):
    """Near the solution the bordered Newton iteration (the shock position fixed by the phase condition)
    needs few Jacobians, and a converged solution stays one."""
    sol = _shock_solver(closure64, nx=32, steps=0)
    s = rankine_hugoniot(3.0)
    first = newton_steady(sol, 1e-8, s.rho1 * s.u1)
    assert first["converged"]
    y = np.concatenate([sol.U, sol.W], axis=1)
    sol.U = sol.U * (1.0 + 1e-3 * np.exp(-(sol.x / 2.0) ** 2))[:, None]
    again = newton_steady(sol, 1e-8, s.rho1 * s.u1, cfl0=1e4)
    assert again["converged"] and again["jacobians"] <= 4, again
    assert np.abs(np.concatenate([sol.U, sol.W], axis=1) - y).max() < 1e-3 * np.abs(y).max()
    assert newton_steady(sol, 1e-8, s.rho1 * s.u1)["iterations"] <= 1  # restarts from shift speed 0


def test_jacobian_closure_changes_the_iterations_not_the_solution(closure64):
    """Jacobians from another closure of the same moments (the shipped distilled student of the ensemble)
    converge to the solver closure's own steady state."""
    s = rankine_hugoniot(3.0)
    other = load_closure("pretrained:mlc_small_shock2_distilled", 5.0, inference="float64")
    out = []
    for jc in (None, other):
        sol = _shock_solver(closure64, nx=32, steps=0)
        info = newton_steady(sol, 1e-9, s.rho1 * s.u1, jacobian_closure=jc)
        assert info["converged"], info
        out.append(np.concatenate([sol.U, sol.W], axis=1))
    # the phase condition pins each run to its start, so both sit at the same position
    assert np.abs(out[1] - out[0]).max() < 1e-6 * np.abs(out[0]).max()
    with pytest.raises(ValueError, match="closure.s moments"):
        newton_steady(_shock_solver(closure64, steps=0), 1e-5, 1.0,
                      jacobian_closure=load_closure("pretrained:hermmlc_small", 5.0, inference="float64"))
    with pytest.raises(ValueError, match="float64"):
        newton_steady(_shock_solver(closure64, steps=0), 1e-5, 1.0,
                      jacobian_closure=load_closure("pretrained:mlc_small_shock", 5.0))
    with pytest.raises(ValueError, match="steady='newton' only"):
        reduced_shock(s, closure="pretrained:mlc_small_shock2", jacobian_closure="pretrained:mlc_small_shock")


def test_newton_reports_what_it_did_not_finish(closure64):
    s = rankine_hugoniot(3.0)
    info = newton_steady(_shock_solver(closure64, steps=0), 1e-12, s.rho1 * s.u1, max_iter=3)
    assert not info["converged"] and info["iterations"] == 3 and info["residual"] > 1e-12
    kw = {"closure": "pretrained:mlc_small_shock2", "dx": 1.0, "x_min": -12.0, "x_max": 6.0, "levels": 1, "cfl": 0.9,
          "xi_max": 5.0, "steady": "newton", "limiter": "vanleer", "newton_max_iter": 2}
    p = reduced_shock(s, newton_fallback=False, **kw)
    assert not p.metrics["converged"] and p.metrics["newton_per_level"][0]["iterations"] == 2
    assert p.metrics["steps_per_level"] == [0]  # no time step without the fallback
    assert p.metrics["steps"] is None and p.metrics["cell_steps"] is None
    assert p.metrics["newton_fallback_levels"] == []


def test_newton_falls_back_to_marching(caplog):
    """A level that Newton does not finish (here: 2 iterations allowed) is time-marched from Newton's last state
    to the tolerance, reported in ``newton_fallback_levels`` and with a warning."""
    s = rankine_hugoniot(3.0)
    kw = {"closure": "pretrained:mlc_small_shock2", "dx": 0.5, "x_min": -16.0, "x_max": 8.0, "levels": 2, "cfl": 0.9,
          "xi_max": 5.0, "steady": "newton", "limiter": "vanleer", "max_steps": 5000}
    with caplog.at_level("WARNING", logger="kinclose.reduced.shock"):
        p = reduced_shock(s, newton_max_iter=2, **kw)
    m = p.metrics
    assert m["converged"] and m["residual"] < 1e-5 and m["newton_fallback_levels"] == [0, 1]
    assert [d["iterations"] for d in m["newton_per_level"]] == [2, 2]
    assert all(d["march_steps"] > 0 for d in m["newton_per_level"])
    assert m["steps_per_level"] == [d["march_steps"] for d in m["newton_per_level"]]
    assert m["steps"] == m["steps_per_level"][-1]  # the fallback's time steps are counted, as in a march
    assert m["cell_steps"] == 24 * m["steps_per_level"][0] + 48 * m["steps_per_level"][1]
    assert "time-marching" in caplog.text
    ref = reduced_shock(s, **kw)  # Newton alone: the same steady state, up to the sub-cell shift of the centring
    assert ref.metrics["newton_fallback_levels"] == [] and ref.metrics["converged"]
    a, b = center(ref), center(p)
    for name, rtol in (("rho", 0.01), ("T", 0.01), ("q", 0.05)):
        r = getattr(a, name)
        assert np.abs(np.interp(a.x, b.x, getattr(b, name)) - r).max() < rtol * np.abs(r - r[0]).max(), name


def test_jacobian_closure_auto():
    """"auto" takes the shipped distilled student of a pretrained closure when there is one."""
    assert distilled_student("pretrained:mlc_small_shock2") == "pretrained:mlc_small_shock2_distilled"
    assert distilled_student("pretrained:hermmlc_small") is None
    assert distilled_student("outputs/train/closure/closure.pt") is None
    s = rankine_hugoniot(3.0)
    kw = {"dx": 1.0, "x_min": -12.0, "x_max": 6.0, "levels": 1, "cfl": 0.9, "xi_max": 5.0, "jacobian_closure": "auto"}
    p = reduced_shock(s, closure="pretrained:mlc_small_shock2", steady="newton", limiter="vanleer", **kw)
    assert p.metrics["jacobian_closure"] == "pretrained:mlc_small_shock2_distilled" and p.metrics["converged"]
    p = reduced_shock(s, closure="pretrained:hermmlc_small", steady="newton", limiter="vanleer", **kw)
    assert p.metrics["jacobian_closure"] is None and p.metrics["converged"]
    p = reduced_shock(s, closure="pretrained:mlc_small_shock2", steady="march", max_steps=50, **kw)  # auto: nothing
    assert p.metrics["jacobian_closure"] is None


def test_newton_rejects_what_it_cannot_solve(closure64):
    s = rankine_hugoniot(3.0)
    with pytest.raises(ValueError, match="limiter='vanleer'"):
        reduced_shock(s, closure="pretrained:mlc_small_shock2", steady="newton", limiter="mc")
    with pytest.raises(ValueError, match="unknown steady solver"):
        reduced_shock(s, closure="pretrained:mlc_small_shock2", steady="implicit")
    with pytest.raises(ValueError, match="switches branches"):
        check_newton_ready(_shock_solver(closure64, limiter="mc", steps=0))
    periodic = ReducedSolver(0, 1, 8, closure64, 1.0, limiter="vanleer")
    with pytest.raises(ValueError, match="bc='reservoir'"):
        check_newton_ready(periodic)
    with pytest.raises(ValueError, match="float64"):
        check_newton_ready(_shock_solver(load_closure("pretrained:mlc_small_shock2", 5.0), steps=0))
    with pytest.raises(ValueError, match="refresh"):
        newton_steady(_shock_solver(closure64, steps=0), 1e-5, 1.0, refresh=1.5)
