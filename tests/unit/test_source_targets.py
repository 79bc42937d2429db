"""Source targets R̂ = Ψ(Q̂g, Q̂h)/ν (kinclose.closure.source): for the BGK collision term
ν(M − f) of stored shapes they equal W_eq − W up to quadrature/interpolation; on a Maxwellian
(Boltzmann operator, equilibrium preserving) they vanish."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinclose.closure.source import collision_rate, collision_shapes, source_targets
from kinclose.data.label import DatasetSpec, make_tasks, run_task
from kinclose.moments.encoders import HermiteEncoder, LearnedEncoder
from kinclose.moments.shape import XiGrid, primitive_from_gh, to_shape


def _encoders(grid: XiGrid):
    torch.manual_seed(0)
    return [LearnedEncoder(grid, 4, hidden=(16, 16)), HermiteEncoder(grid, 4)]


def _bgk_terms(g, h, v, dv, nu):
    """ν (G_M − g), ν (H_M − h) with the sampled Maxwellian of the cells' discrete moments."""
    rho, u, T = primitive_from_gh(g, h, v, dv)
    GM = rho[:, None] / np.sqrt(2 * np.pi * T[:, None]) * np.exp(-0.5 * (v[None] - u[:, None]) ** 2 / T[:, None])
    return nu[:, None] * (GM - g), nu[:, None] * (2 * T[:, None] * GM - h)


def _check_identity(g, h, v, dv, mu_ref, omega, grid, method, rtol):
    rho, u, T = primitive_from_gh(g, h, v, dv)
    nu = collision_rate(rho, T, mu_ref, omega)
    Qg, Qh = _bgk_terms(g, h, v, dv, nu)
    G, H, *_ = to_shape(g, h, v, dv, grid, method)
    QG, QH = collision_shapes(Qg, Qh, v, dv, rho, u, T, grid, method)
    for enc in _encoders(grid):
        W, R = source_targets(enc, G, H, QG, QH, nu)
        expect = enc.w_eq().detach().numpy()[None] - W
        scale = np.abs(expect).max()
        assert scale > 1e-3  # genuinely out of equilibrium
        np.testing.assert_allclose(R, expect, rtol=0, atol=rtol * scale, err_msg=f"{type(enc).__name__} {method}")


def test_bgk_identity_on_bimaxwellian_mixtures() -> None:
    v = np.linspace(-14, 14, 281)
    dv = v[1] - v[0]
    rng = np.random.default_rng(1)
    n = 20
    g = np.zeros((n, v.size))
    h = np.zeros((n, v.size))
    for _ in range(2):  # two drifting bi-Maxwellians per cell
        w = rng.uniform(0.3, 1.0, n)[:, None]
        uu = rng.uniform(-1.0, 1.0, n)[:, None]
        Tp = rng.uniform(0.6, 2.0, n)[:, None]
        Tq = rng.uniform(0.6, 2.0, n)[:, None]
        gi = w / np.sqrt(2 * np.pi * Tp) * np.exp(-0.5 * (v - uu) ** 2 / Tp)
        g += gi
        h += 2 * Tq * gi
    _check_identity(g, h, v, dv, mu_ref=0.3, omega=0.5, grid=XiGrid(6.0, 96), method="logcubic", rtol=2e-5)
    _check_identity(g, h, v, dv, mu_ref=0.3, omega=0.81, grid=XiGrid(6.0, 96), method="linear", rtol=2e-3)


def test_bgk_identity_on_stored_bgk_shapes(tmp_path) -> None:
    spec = DatasetSpec(name="t", n_tasks=1, seed=11, nx=16, nv=96, t_end=0.02, n_snapshots=2,
                       ranges={"kn": [0.05, 0.1], "noneq_fraction": 1.0})
    task = make_tasks(spec)[0]
    res = run_task(task, tmp_path, threads=1)
    from kinclose.data.dataset import load_shard

    d = load_shard(tmp_path / res["file"])
    nv = d["v"].size
    g, h = d["g"].reshape(-1, nv), d["h"].reshape(-1, nv)
    _check_identity(g, h, d["v"], d["dv"], d["attrs"]["mu_ref"], d["attrs"]["omega"], XiGrid(6.0, 96),
                    "logcubic", rtol=1e-3)


def test_maxwellian_gives_zero_source() -> None:
    from kinclose.kinetic.boltzmann_dvm import BoltzmannDVMSolver

    s = BoltzmannDVMSolver(0.0, 1.0, 4, 12, 8.0, 0.2, mu_ref=0.1, n_dirs=6, grid_rtol=0.05, tail_tol=1e-4)
    rho, u, T = np.array([1.0, 1.2, 0.9, 1.1]), np.array([0.1, 0.3, -0.2, 0.0]), np.array([1.0, 1.3, 1.1, 0.9])
    s.set_maxwellian(rho, u, T)
    Qg, Qh = s.reduced_collision_terms()
    g, h = s.reduced()
    v, dv = s.v1d[0], s.h
    grid = XiGrid(4.0, 48)
    r, uu, TT = primitive_from_gh(g, h, v, dv)
    nu = collision_rate(r, TT, 0.1, 0.5)
    QG, QH = collision_shapes(Qg, Qh, v, dv, r, uu, TT, grid)
    for enc in _encoders(grid):
        _, R = source_targets(enc, *to_shape(g, h, v, dv, grid)[:2], QG, QH, nu)
        np.testing.assert_allclose(R, 0.0, rtol=0, atol=1e-12)
    # a non-equilibrium state: the Boltzmann source is O(1) (sanity of the scale above)
    f = s.distribution().copy()
    f[:, :6] *= 1.3
    s.set_distribution(f)
    Qg, Qh = s.reduced_collision_terms()
    assert np.abs(Qg).max() > 1e-3


def test_bad_interpolation_method() -> None:
    v = np.linspace(-5, 5, 11)
    with pytest.raises(ValueError, match="unknown interpolation method"):
        collision_shapes(np.zeros((1, 11)), np.zeros((1, 11)), v, 1.0, np.ones(1), np.zeros(1), np.ones(1),
                         XiGrid(3.0, 8), "spline")


def test_cubic_shape_interpolation_with_negative_tails() -> None:
    """Shapes of a coarse-grid Maxwellian (Δv = √T, as the N = 16 Boltzmann DVM) whose tails beyond
    4 thermal speeds hold small negative values: "cubic" keeps σ/(ρT) ≈ 0 and the shape positive,
    the floored ln g of "logcubic" overshoots (σ̂ ≈ 0.6), "linear" has its O(Δv²/T) bias (≈ 1/6)."""
    from kinclose.closure.targets import stress_heat_targets

    v = -8.0 + (np.arange(16) + 0.5) * 1.0
    g = (np.exp(-0.5 * (v - 0.3) ** 2) / np.sqrt(2 * np.pi))[None]
    g[0, np.abs(v - 0.3) > 4.0] = -1e-5 * g.max()
    h = 2.0 * g
    grid = XiGrid(5.0, 80)
    sig = {}
    for m in ("cubic", "logcubic", "linear"):
        G, H, *_ = to_shape(g, h, v, 1.0, grid, m)
        if m != "linear":  # linear passes the negative values through
            assert np.all(G > 0) and np.all(H > 0), m
        sig[m] = stress_heat_targets(G, H, grid)[0, 0]
    assert abs(sig["cubic"]) < 3e-3 and sig["logcubic"] > 0.1 and sig["linear"] > 0.1, sig
