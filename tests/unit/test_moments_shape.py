"""Normalized shapes of Chu-reduced distributions (kinclose.moments.shape, NumPy only).

Shape ĝ(ξ) = √T g(u + √T ξ)/ρ, ĥ(ξ) = √T h(u + √T ξ)/(ρT), ξ = (v1 − u)/√T; reduced entropy
η = ρ [η̂ + ln ρ − 1.5 ln T]; Hermite moments vanish on the Maxwellian shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.moments import maxwellian, maxwellian_entropy
from kinclose.kinetic.solver import DVMSolver
from kinclose.moments.shape import (
    ETA_MAXWELLIAN,
    VelocityCoverageError,
    XiGrid,
    check_coverage,
    entropy_from_shape,
    from_shape,
    full_entropy,
    hermite_moments,
    maxwellian_shape,
    shape_entropy,
    shape_moments,
    to_shape,
)
from kinclose.physics import mu_ref_for_knudsen

GRID = XiGrid(8.0, 128)
STATES = (np.array([1.0, 0.3, 2.5]), np.array([0.0, -1.2, 0.7]), np.array([1.0, 0.4, 3.0]))


def _dvm_cells(kn=0.2, nx=24, nv=160, steps=40, width=11.0, seed=3):
    """Non-equilibrium cells: BGK DVM from random smooth Maxwellian data, (nx, nv) g, h and the grid."""
    rng = np.random.default_rng(seed)
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.4 * np.sin(2 * np.pi * x + rng.uniform(0, 6))
    u = 0.5 * np.cos(2 * np.pi * x + rng.uniform(0, 6))
    T = 1 + 0.5 * np.sin(2 * np.pi * x + rng.uniform(0, 6))
    grid = VelocityGrid.for_states(u, 2.0 * T, nv, width=width)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(kn, 0.5), 0.5, "bgk", "periodic", 0.5, "mc", threads=1)
    s.set_maxwellian(rho, u, T)
    for _ in range(steps):
        s.step()
    g, h = s.interior
    return g.copy(), h.copy(), grid


def test_maxwellian_maps_to_the_maxwellian_shape():
    rho, u, T = STATES
    vg = VelocityGrid.for_states(u, T, 240, width=11.0)
    g, h = maxwellian(rho, u, T, vg.v)
    G, H, r, uu, TT = to_shape(g, h, vg.v, vg.dv, GRID)
    np.testing.assert_allclose([r, uu, TT], [rho, u, T], rtol=1e-13, atol=1e-14)
    phi, h2 = maxwellian_shape(GRID)
    # log-cubic interpolation reproduces a Gaussian (ln G a parabola) to round-off
    np.testing.assert_allclose(G, np.broadcast_to(phi, G.shape), rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(H, np.broadcast_to(h2, H.shape), rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(shape_moments(G, H, GRID), np.tile([1.0, 0.0, 3.0], (3, 1)), rtol=0, atol=1e-12)
    # entropy: shape → full distribution equals the exact Maxwellian entropy and the grid sum
    eta_hat = shape_entropy(G, H, GRID)
    np.testing.assert_allclose(eta_hat, ETA_MAXWELLIAN, rtol=1e-12, atol=0)
    np.testing.assert_allclose(entropy_from_shape(eta_hat, rho, T), maxwellian_entropy(rho, T), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(full_entropy(g, h, vg.dv), maxwellian_entropy(rho, T), rtol=1e-11, atol=1e-12)
    # inverse map back onto the stored grid
    g2, h2_ = from_shape(G, H, rho, u, T, vg.v, GRID)
    np.testing.assert_allclose(g2, g, rtol=0, atol=1e-11 * g.max())
    np.testing.assert_allclose(h2_, h, rtol=0, atol=1e-11 * h.max())


def test_shift_and_scale_give_the_same_shape_to_roundoff():
    """u → a + s u, T → s² T (grid and values transformed alike): identical shape and moments."""
    g, h, vg = _dvm_cells()
    G, H, rho, u, T = to_shape(g, h, vg.v, vg.dv, GRID)
    for a, s, c in ((3.7, 1.0, 1.0), (-2.0, 0.37, 2.5), (0.5, 2.9, 0.1)):
        v2 = a + s * vg.v
        G2, H2, rho2, u2, T2 = to_shape(c * g / s, c * s * h, v2, s * vg.dv, GRID)
        np.testing.assert_allclose([rho2, u2, T2], [c * rho, a + s * u, s * s * T], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(G2, G, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(H2, H, rtol=1e-10, atol=1e-14)
        for basis in ("orders", "graded"):
            np.testing.assert_allclose(hermite_moments(G2, H2, GRID, 6, basis), hermite_moments(G, H, GRID, 6, basis),
                                       rtol=0, atol=1e-12)


def test_same_shape_on_a_fixed_grid_agrees_to_fourth_order():
    """A bi-Maxwellian shape placed at two (u, T) on one stored grid: the shapes agree up to the
    interpolation error, which falls at fourth order (cubic spline) when the stored grid is refined."""

    def shapes(nv):
        vg = VelocityGrid(-14.0, 14.0, nv)

        def cell(u, T):
            # mixture of two Maxwellians (a beam) whose shape does not depend on (u, T)
            g1, h1 = maxwellian(0.7, u - 0.6 * math.sqrt(T), 0.5 * T, vg.v)
            g2, h2 = maxwellian(0.3, u + 1.4 * math.sqrt(T), 0.38 * T, vg.v)
            return g1 + g2, h1 + h2

        ga, ha = cell(0.0, 1.0)
        gb, hb = cell(1.3, 2.2)
        A = to_shape(ga[None], ha[None], vg.v, vg.dv, GRID)
        B = to_shape(gb[None], hb[None], vg.v, vg.dv, GRID)
        return max(np.abs(B[0] - A[0]).max(), np.abs(B[1] - A[1]).max() / 2)

    e1, e2 = shapes(280), shapes(560)
    assert e2 < 5e-7, (e1, e2)
    assert e1 / e2 > 10.0, (e1, e2)  # ≈ 16 for fourth order


def test_nonequilibrium_roundtrip_and_entropy_consistency():
    g, h, vg = _dvm_cells()
    G, H, rho, u, T = to_shape(g, h, vg.v, vg.dv, GRID)
    assert np.all(G > 0) and np.all(H > 0)
    # interpolation from nv = 160 nodes (measured defect ≈ 6e-6) and the ξ window
    np.testing.assert_allclose(shape_moments(G, H, GRID), np.tile([1.0, 0.0, 3.0], (G.shape[0], 1)), rtol=0, atol=2e-5)
    g2, h2 = from_shape(G, H, rho, u, T, vg.v, GRID)
    # two interpolations (v → ξ → v) of DVM data, whose v-dependence carries the limiter's kinks:
    # measured max error 2.3e-4 of the peak (exact shapes such as Maxwellians come back to 1e-11)
    np.testing.assert_allclose(g2, g, rtol=0, atol=1e-3 * g.max())
    np.testing.assert_allclose(h2, h, rtol=0, atol=1e-3 * h.max())
    # η from the shape vs the reduced entropy of the full f on its own grid: quadrature on two
    # different grids of interpolated, limiter-kinked data (measured 2.2e-6 relative)
    np.testing.assert_allclose(entropy_from_shape(shape_entropy(G, H, GRID), rho, T), full_entropy(g, h, vg.dv),
                               rtol=1e-5, atol=0)
    # the cells are really out of equilibrium
    assert np.abs(hermite_moments(G, H, GRID, 3, "graded")).max() > 1e-2


def test_hermite_moments_of_known_shapes():
    xi = GRID.xi
    phi, _ = maxwellian_shape(GRID)
    for basis in ("orders", "graded"):
        np.testing.assert_allclose(hermite_moments(phi[None], 2 * phi[None], GRID, 6, basis), 0.0, rtol=0, atol=1e-14)
    a, b, c = 0.3, -0.2, 0.25
    he3 = xi**3 - 3 * xi
    he4 = xi**4 - 6 * xi**2 + 3
    G = phi * (1 + a * he3 / 6 + b * he4 / 24)
    H = 2 * phi * (1 + c * xi)
    W = hermite_moments(G[None], H[None], GRID, 3, "orders")[0]
    # quadrature: the Gaussian truncated at |ξ| = 8 times degree-9 polynomials (He_5 He_4) leaves ~1e-10
    np.testing.assert_allclose(W, [a / math.sqrt(6), b / math.sqrt(24), 0.0], rtol=0, atol=1e-9)
    # graded: He_2 (∫ξ²ĝ − 1 = σ/ρT = 0 here), He_3, ξ L(s) = ∫ ξ (ĥ/2 − ĝ) = c, He_4, He_2 L(s); since
    # ĥ/2 − ĝ = φ (c ξ − a He_3/6 − b He_4/24), the last one vanishes by orthogonality
    Wg = hermite_moments(G[None], H[None], GRID, 5, "graded")[0]
    np.testing.assert_allclose(Wg, [0.0, a / math.sqrt(6), c, b / math.sqrt(24), 0.0], rtol=0, atol=1e-9)


def test_tail_artefacts_do_not_spoil_the_shape():
    """Zeros, underflow and an isolated tiny negative value in a far tail (as a DVM may leave them):
    the log interpolation floors them and cannot overshoot; the bulk of the shape is untouched."""
    vg = VelocityGrid(-12.0, 12.0, 160)
    g, h = maxwellian(np.array([1.0]), np.array([0.0]), np.array([1.0]), vg.v)
    g, h = g.copy(), h.copy()
    j = int(np.searchsorted(vg.v, 6.0))
    h[0, j] = -1.3e-7 * h.max()  # isolated negative value next to values ~1e-8 of the peak
    g[0, -20:] = 0.0              # underflowed tail
    G, H, *_ = to_shape(g, h, vg.v, vg.dv, GRID)
    phi, h2 = maxwellian_shape(GRID)
    assert np.all(G > 0) and np.all(H > 0)
    assert G.max() <= np.e * phi.max() and H.max() <= np.e * h2.max()
    # the artefacts shift the cell's discrete (ρ, u, T) by ~1e-8 (the negative h lowers E), hence rtol 1e-6
    inner = np.abs(GRID.xi) < 4.0
    np.testing.assert_allclose(G[0, inner], phi[inner], rtol=1e-6, atol=0)
    np.testing.assert_allclose(H[0, inner], h2[inner], rtol=1e-5, atol=0)
    np.testing.assert_allclose(shape_moments(G, H, GRID)[0], [1.0, 0.0, 3.0], rtol=0, atol=1e-6)
    assert np.isnan(full_entropy(g, h, vg.dv)[0])  # η of a "distribution" with h < 0 is undefined
    assert np.isfinite(shape_entropy(G, H, GRID)[0])


def test_uncovered_cells_stop_with_count_and_fix():
    g, h, vg = _dvm_cells(width=11.0)
    # crop the stored grid: the ξ window of some cells then leaves it
    k = 50
    v, gc, hc = vg.v[k:-k], g[:, k:-k], h[:, k:-k]
    G, H, rho, u, T = to_shape(g, h, vg.v, vg.dv, GRID)
    with pytest.raises(VelocityCoverageError, match=r"(\d+) of 24 cells are not covered") as exc:
        to_shape(gc, hc, v, vg.dv, GRID, prim=(rho, u, T))
    msg = str(exc.value)
    assert "Fix: relabel with a velocity grid covering at least" in msg and "lower xi_max to <=" in msg
    # the suggested xi_max works
    xi_ok = float(msg.split("lower xi_max to <= ")[1].split(" ")[0])
    check_coverage(u, T, v, XiGrid(xi_ok * 0.999, 64))


@pytest.mark.parametrize("bad", [dict(xi_max=0.0), dict(n=7), dict(n=4), dict(xi_max=float("inf"))])
def test_xi_grid_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        XiGrid(**{"xi_max": 6.0, "n": 64, **bad})
