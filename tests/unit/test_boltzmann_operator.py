"""Unit tests of the fast spectral Boltzmann operator (tiny grids, a few seconds in total)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import lebedev_rule
from scipy.special import j1

from kinclose.kinetic.boltzmann import (
    FastSpectralBoltzmann,
    collide_cells,
    kernel_constant,
    sphere_directions,
)
from kinclose.physics import mu_ref_for_knudsen


def _two_maxwellians(op: FastSpectralBoltzmann) -> np.ndarray:
    return op.maxwellian(0.6, [0.8, 0.0, 0.0], 0.9) + op.maxwellian(0.4, [-0.7, 0.5, 0.2], 0.6)


@pytest.fixture(scope="module")
def hs8() -> FastSpectralBoltzmann:
    return FastSpectralBoltzmann(8, 6.5, 0.5, mu_ref=1.0, n_dirs=25, conservative=False)


# ------------------------------------------------------------------ constants and quadrature
def test_kernel_constant_known_limits() -> None:
    # Maxwell molecules: stress relaxation rate 2πCρ = p/μ  =>  C = 1/(2π μ_ref)
    assert kernel_constant(1.0, 0.7) == pytest.approx(1.0 / (2.0 * math.pi * 0.7), rel=1e-14)
    # hard spheres, B = |g| d²/4:  μ = (5/16) sqrt(π T) / (π d²)  (Chapman–Cowling)
    d = 0.9
    mu_hs = 5.0 / 16.0 * math.sqrt(math.pi) / (math.pi * d * d)
    assert kernel_constant(0.5, mu_hs) == pytest.approx(d * d / 4.0, rel=1e-14)
    with pytest.raises(ValueError, match="omega"):
        kernel_constant(0.3, 1.0)


@pytest.mark.parametrize("rule", ["lebedev", "product"])
def test_half_sphere_rule_integrates_even_polynomials(rule: str) -> None:
    e, w = sphere_directions(40, rule)
    assert e.shape[0] >= 40
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=0, atol=1e-14)
    assert w.sum() == pytest.approx(2.0 * math.pi, rel=1e-13)
    # ∫_{half sphere} x² = 2π/3, ∫ x²y² = 2π/15
    assert np.sum(w * e[:, 0] ** 2) == pytest.approx(2.0 * math.pi / 3.0, rel=1e-12)
    assert np.sum(w * e[:, 0] ** 2 * e[:, 1] ** 2) == pytest.approx(2.0 * math.pi / 15.0, rel=1e-12)


def test_from_knudsen_uses_physics_convention() -> None:
    op = FastSpectralBoltzmann.from_knudsen(8, 6.5, kn=0.3, omega=0.81, n_dirs=6)
    assert op.mu_ref == pytest.approx(mu_ref_for_knudsen(0.3, 0.81), rel=1e-15)
    assert op.C == pytest.approx(kernel_constant(0.81, op.mu_ref), rel=1e-15)


def test_hard_spheres_kernel_is_rank_one_maxwell_is_low_rank() -> None:
    hs = FastSpectralBoltzmann(8, 6.5, 0.5, n_dirs=6)
    mm = FastSpectralBoltzmann(8, 6.5, 1.0, n_dirs=6)
    assert hs.rank == 1
    assert 2 <= mm.rank <= 12


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda op, f: f[0], "3D array"),
        (lambda op, f: np.zeros((8, 8, 6)), "shape"),
        (lambda op, f: np.where(np.arange(f.size).reshape(f.shape) == 17, np.nan, f), "not finite"),
        (lambda op, f: -f, "density"),
        (lambda op, f: f.astype(complex), "real"),
        (lambda op, f: op.maxwellian(1.0, [3.0, 0.0, 0.0], 1.0), "too narrow"),
    ],
    ids=["2d", "shape", "nan", "negative-density", "complex", "narrow-grid"],
)
def test_bad_input_raises_clear_value_error(hs8: FastSpectralBoltzmann, make, match: str) -> None:
    f = _two_maxwellians(hs8)
    with pytest.raises(ValueError, match=match):
        hs8(make(hs8, f))


def test_narrow_grid_message_names_required_width(hs8: FastSpectralBoltzmann) -> None:
    with pytest.raises(ValueError, match=r"use L >= \d"):
        hs8(hs8.maxwellian(1.0, [0.0, 0.0, 0.0], 4.0))


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="even integer"):
        FastSpectralBoltzmann(9, 6.0, 0.5)
    with pytest.raises(ValueError, match="L must be positive"):
        FastSpectralBoltzmann(8, -1.0, 0.5)
    with pytest.raises(ValueError, match="center"):
        FastSpectralBoltzmann(8, 6.0, 0.5, center=(0.0, 1.0))


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize("omega", [0.5, 1.0])
def test_conservative_correction_round_off(omega: float) -> None:
    op = FastSpectralBoltzmann(12, 7.0, omega, n_dirs=13, center=(0.3, -0.2, 0.1))
    rng = np.random.default_rng(4)
    f = _two_maxwellians(op) * (1.0 + 0.1 * rng.random(op.shape))
    q = op(f)
    V = op.velocity_mesh()
    for phi in (np.ones(op.shape), V[0], V[1], V[2], V[0] ** 2 + V[1] ** 2 + V[2] ** 2):
        scale = np.sum(np.abs(phi * q))
        assert abs(np.sum(phi * q)) <= 1e-12 * scale


def test_collide_cells_matches_single_cell(hs8: FastSpectralBoltzmann) -> None:
    f = np.stack([_two_maxwellians(hs8), hs8.maxwellian(1.2, [0.1, 0.0, 0.0], 1.1)])
    out = np.empty_like(f)
    res = collide_cells(hs8, f, out)
    assert res is out
    for i in range(2):
        np.testing.assert_allclose(out[i], hs8(f[i]), rtol=0, atol=1e-15 * np.abs(out[i]).max())
    with pytest.raises(ValueError, match="nx"):
        hs8.collide_cells(f[0])


def test_galilean_shift_of_grid_and_data() -> None:
    a = FastSpectralBoltzmann(8, 6.5, 0.5, n_dirs=13)
    c = np.array([1.5, -0.5, 0.25])
    b = FastSpectralBoltzmann(8, 6.5, 0.5, n_dirs=13, center=c)
    fa = _two_maxwellians(a)
    fb = b.maxwellian(0.6, c + [0.8, 0.0, 0.0], 0.9) + b.maxwellian(0.4, c + [-0.7, 0.5, 0.2], 0.6)
    np.testing.assert_allclose(fa, fb, rtol=1e-12, atol=1e-14)
    qa, qb = a(fa), b(fb)
    np.testing.assert_allclose(qa, qb, rtol=0, atol=1e-10 * np.abs(qa).max())


def test_uncached_multipliers_give_same_result() -> None:
    kw = dict(n_dirs=13, conservative=False)
    a = FastSpectralBoltzmann(8, 6.5, 1.0, **kw)
    b = FastSpectralBoltzmann(8, 6.5, 1.0, max_cache_bytes=0, chunk=5, **kw)
    f = _two_maxwellians(a)
    np.testing.assert_allclose(a(f), b(f), rtol=0, atol=1e-13 * np.abs(a(f)).max())


# ------------------------------------------------------------------ direct O(N^6) reference
def _direct_spectral_hs(
    f: np.ndarray, L: float, C: float, R: float, e: np.ndarray, w: np.ndarray, invariant: bool = False
) -> np.ndarray:
    """Non-fast spectral Carleman sum Q̂_k = Σ_{l+m≡k} [B(l,m) − B(m,m)] f̂_l f̂_m (hard spheres).

    B(l, m) = Σ_e w_e φ(l·e) ψ(|Π_e⊥ m|) with the closed forms
    φ(s) = 8C ∫_0^R ρ cos(ρs) dρ, ψ(t) = 2π ∫_0^R ρ J0(ρt) dρ = 2πR J1(Rt)/t (Mouhot–Pareschi 2006).
    Evaluated pair by pair in plain NumPy, O(N⁶ M). With ``invariant=True`` (an angular rule that
    is exact to the needed degree) B depends on (|l|², |m|², l·m) only and is evaluated once per
    distinct key (rotation invariance of the exact integral).
    """
    N = f.shape[0]
    fh = np.fft.fftn(f) / N**3
    idx = np.fft.fftfreq(N, 1.0 / N).astype(int)
    I = np.stack(np.meshgrid(idx, idx, idx, indexing="ij"), -1).reshape(-1, 3)
    ok = ~(np.abs(I) == N // 2).any(axis=1)
    k = np.pi / L * I

    def phi(s: np.ndarray) -> np.ndarray:
        s = np.abs(s)
        small = s * R < 1e-4
        ss = np.where(small, 1.0, s)
        val = R * np.sin(R * ss) / ss + (np.cos(R * ss) - 1.0) / ss**2
        return 8.0 * C * np.where(small, 0.5 * R * R * (1.0 - (R * s) ** 2 / 4.0), val)

    def psi(t: np.ndarray) -> np.ndarray:
        small = t * R < 1e-6
        tt = np.where(small, 1.0, t)
        return 2.0 * np.pi * np.where(small, 0.5 * R * R, R * j1(R * tt) / tt)

    def B(l: np.ndarray, m: np.ndarray) -> np.ndarray:  # l, m: (P, 3)
        out = np.zeros(l.shape[0])
        for j0 in range(0, e.shape[0], 64):
            ee, ww = e[j0 : j0 + 64], w[j0 : j0 + 64]
            s = l @ ee.T
            sm = m @ ee.T
            t = np.sqrt(np.maximum(np.sum(m * m, axis=1)[:, None] - sm**2, 0.0))
            out += (phi(s) * psi(t)) @ ww
        return out

    Iok, kok, fok = I[ok], k[ok], fh.reshape(-1)[ok]
    P = Iok.shape[0]
    li, mi = np.meshgrid(np.arange(P), np.arange(P), indexing="ij")
    li, mi = li.ravel(), mi.ravel()
    if invariant:
        n2 = np.sum(Iok**2, axis=1)
        key = (n2[li] * 4096 + n2[mi]) * 8192 + (np.sum(Iok[li] * Iok[mi], axis=1) + 4096)
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        gain_w = B(kok[li[first]], kok[mi[first]])[inv]
    else:
        gain_w = B(kok[li], kok[mi])
    loss_w = B(kok, kok)
    Qh = np.zeros(N**3, dtype=complex)
    lin = lambda J: (((J[:, 0] % N) * N + (J[:, 1] % N)) * N + (J[:, 2] % N))  # noqa: E731
    np.add.at(Qh, lin(Iok[li] + Iok[mi]), gain_w * fok[li] * fok[mi])
    fl = fh.reshape(-1)
    for j in range(P):  # loss: Σ_m B(m,m) f̂_m f̂_{k−m}, k − m over the whole grid
        np.add.at(Qh, lin(Iok[j] + I), -loss_w[j] * fok[j] * fl)
    return np.real(np.fft.ifftn(Qh.reshape(N, N, N)) * N**3)


def test_fast_equals_direct_sum_with_same_directions(hs8: FastSpectralBoltzmann) -> None:
    f = _two_maxwellians(hs8)
    q_direct = _direct_spectral_hs(f, hs8.L, hs8.C, hs8.R, hs8.dirs, hs8.dir_weights)
    q_fast = hs8(f)
    # identical discrete operator: only the spline tables of φ, ψ differ (≲ 1e-9)
    np.testing.assert_allclose(q_fast, q_direct, rtol=0, atol=1e-8 * np.abs(q_direct).max())


def test_fast_converges_to_direct_sum_with_exact_angles(hs8: FastSpectralBoltzmann) -> None:
    f = _two_maxwellians(hs8)
    x, w = lebedev_rule(131)  # 5810 points, exact for degree 131: the "exact" angular integral
    x = x.T
    keep = x[:, 2] > 1e-12
    keep |= (np.abs(x[:, 2]) <= 1e-12) & ((x[:, 1] > 1e-12) | ((np.abs(x[:, 1]) <= 1e-12) & (x[:, 0] > 0)))
    q_exact = _direct_spectral_hs(f, hs8.L, hs8.C, hs8.R, x[keep], w[keep], invariant=True)
    scale = np.abs(q_exact).max()
    errs = []
    for n_dirs in (13, 55, 151):
        op = FastSpectralBoltzmann(8, hs8.L, 0.5, n_dirs=n_dirs, conservative=False)
        errs.append(np.abs(op(f) - q_exact).max() / scale)
    # quadrature error in the direction rule only, decreasing with M
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-5  # measured 0.36, 4.6e-3, 1.9e-6 for M = 13, 55, 151


def test_equilibrium_preserving_form_annihilates_maxwellians() -> None:
    op = FastSpectralBoltzmann(8, 6.5, 0.5, n_dirs=13, equilibrium_preserving=True)
    M = op.maxwellian(1.1, [0.2, -0.1, 0.0], 0.9)
    f = _two_maxwellians(op)
    assert np.abs(op(M)).max() <= 1e-13 * np.abs(op(f)).max()
