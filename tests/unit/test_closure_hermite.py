"""Structured Hermite closure (``kinclose.closure.hermite``): the exact algebra against quadrature of
synthetic shapes, the bitwise identity frame, torch = NumPy = fused paths, Grad's characteristic speeds at
equilibrium (roots of Hermite polynomials), and clear errors for moment sets it cannot close."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.hermite import HermiteAlgebra  # noqa: E402
from kinclose.moments.shape import XiGrid, hermite_terms  # noqa: E402


def _shapes(grid: XiGrid, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-Gaussian ĝ with ∫ ĝ = 1, ∫ ξ ĝ = 0 and a shifted Gaussian ĥ with ∫ (ξ² ĝ + ĥ) = 3 (wide grid)."""
    xi, dx = grid.xi, grid.dxi
    rng = np.random.default_rng(seed)

    def gauss(m: float, s: float) -> np.ndarray:
        return np.exp(-0.5 * ((xi - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))

    G, H = [], []
    for _ in range(n):
        w, m1 = rng.uniform(0.2, 0.8), rng.uniform(-0.8, 0.8)
        s1, s2 = rng.uniform(0.6, 1.2, 2)
        g = w * gauss(m1, s1) + (1 - w) * gauss(-w * m1 / (1 - w), s2)
        h = gauss(rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.3))
        h *= (3.0 - (xi * xi * g).sum() * dx) / (h.sum() * dx)
        G.append(g)
        H.append(h)
    return np.array(G), np.array(H)


@pytest.mark.parametrize("M", [3, 4, 6, 8])
def test_algebra_reproduces_quadrature_of_shapes(M: int) -> None:
    """σ̂, q̂ exact in W; with the true top moments, m and k in random frames equal the quadrature targets of
    ``closure.targets`` (which evaluate the encoder's weight functions at τξ + δ) to round-off."""
    from kinclose.closure.targets import encode, encoder_weight_functions, frame_targets, stress_heat_targets
    from kinclose.moments.encoders import HermiteEncoder

    grid = XiGrid(12.0, 800)  # wide and fine: the shapes' truncation and the encoder's offsets are ~1e-16
    G, H = _shapes(grid, 6)
    enc = HermiteEncoder(grid, M, "graded").double()
    alg = HermiteAlgebra.from_encoder(enc)
    W = encode(enc, G, H)
    rng = np.random.default_rng(M)
    delta = rng.uniform(-0.5, 0.5, (6, 3))
    tau = np.exp(rng.uniform(-0.4, 0.4, (6, 3)))
    delta[:, 0], tau[:, 0] = 0.0, 1.0
    m, k = frame_targets(G, H, grid, encoder_weight_functions(enc), delta, tau)
    np.testing.assert_allclose(alg.stress_heat(W), stress_heat_targets(G, H, grid), rtol=0, atol=1e-13)
    r = alg.top_from_flux(W, k[:, 0])
    assert np.abs(r).max() > 1e-2  # the shapes are far from Grad's r = 0
    for f in range(3):
        mm, kk = alg.frame(W, r, delta[:, f], tau[:, f])
        np.testing.assert_allclose(mm, m[:, f], rtol=0, atol=1e-12)
        np.testing.assert_allclose(kk, k[:, f], rtol=0, atol=1e-12 * max(1.0, np.abs(k).max()))
        mt, kt = alg.frame(*(torch.tensor(a) for a in (W, r, delta[:, f], tau[:, f])), xp=torch)
        np.testing.assert_allclose(mt.numpy(), mm, rtol=0, atol=1e-13)
        np.testing.assert_allclose(kt.numpy(), kk, rtol=0, atol=1e-12)
    # Grad (r = 0) gets every flux but the two top ones exactly
    _, kg = alg.frame(W, np.zeros_like(r), delta[:, 1], tau[:, 1])
    top = [alg.g_cols[alg.n_g], alg.h_cols[alg.n_h]]
    rest = [i for i in range(M) if i not in top]
    np.testing.assert_allclose(kg[:, rest], k[:, 1, rest], rtol=0, atol=1e-12 * max(1.0, np.abs(k).max()))
    assert np.abs(kg[:, top] - k[:, 1, top]).max() > 1e-3


@pytest.mark.parametrize("structure", ["hermite", "grad"])
def test_structured_ensemble_identity_frame_and_paths(structure: str) -> None:
    """m(W; 0, 1) = W bitwise; fused float64 = torch path; float32 close; σ̂, q̂ without variance."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.networks import Ensemble

    terms = hermite_terms(6, "graded")
    ens = Ensemble(M=6, K=4, hidden=[16], seed=1, structure=structure, terms=terms)
    ens.set_statistics({"r_std": [0.3, 0.2], "w_std": np.full(6, 0.1)})
    rng = np.random.default_rng(2)
    W = rng.normal(0, 0.1, (40, 6))
    delta, tau = rng.uniform(-0.4, 0.4, 40), np.exp(rng.uniform(-0.3, 0.3, 40))
    ref = LearnedClosure(ens, {}, 5.0, inference="torch")
    f64 = LearnedClosure(ens, {}, 5.0, inference="float64")
    f32 = LearnedClosure(ens, {}, 5.0)
    for cl in (ref, f64, f32):
        m0, _ = cl.frame(W, np.zeros(40), np.ones(40))
        np.testing.assert_array_equal(m0, W)
    for a, b in zip(f64.frame(W, delta, tau), ref.frame(W, delta, tau)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)
    for a, b in zip(f32.frame(W, delta, tau), ref.frame(W, delta, tau)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(f64.stress_heat(W), ref.stress_heat(W), rtol=0, atol=1e-15)
    var = f64.variance(W, delta, tau)
    assert np.all(var[:, :2] == 0)  # σ̂, q̂ are exact: every member agrees
    assert (np.all(var[:, 2:] == 0) if structure == "grad" else var[:, 2:].max() > 0)
    # the equilibrium is a fixed point of the anchored top moments: r(W_eq) = 0 → Maxwellian fluxes
    m, k = f64.frame(np.zeros((1, 6)), np.array([0.3]), np.array([1.2]))
    g = LearnedClosure(Ensemble(M=6, K=1, structure="grad", terms=terms), {}, 5.0).frame(
        np.zeros((1, 6)), np.array([0.3]), np.array([1.2]))
    np.testing.assert_allclose(m, g[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(k, g[1], rtol=0, atol=1e-15)


@pytest.mark.parametrize("M", [6, 7, 8])
def test_grad_speeds_at_equilibrium_are_hermite_roots(M: int) -> None:
    """Linearized at a Maxwellian, Grad's closure of the g chain (orders ≤ N_g) and the h chain (≤ N_h, N_h ≥ 2 so
    that the temperature perturbation stays inside it) has speeds u + √T × roots of He_(N_g+1) and He_(N_h+1)
    (through the solver's flux Jacobian with its frame derivatives)."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.networks import Ensemble
    from kinclose.physics import conservative

    terms = hermite_terms(M, "graded")
    cl = LearnedClosure(Ensemble(M=M, K=1, structure="grad", terms=terms), {}, 5.0)
    alg = HermiteAlgebra(terms)
    assert alg.n_h >= 2
    rho, u, T = 1.3, 0.4, 0.8
    ev = cl.flux_jacobian_eigenvalues(conservative(np.array([rho]), np.array([u]), np.array([T])), np.zeros((1, M)))
    roots = [np.polynomial.hermite_e.hermeroots([0] * (n + 1) + [1]) for n in (alg.n_g, alg.n_h)]
    expect = np.sort(u + math.sqrt(T) * np.concatenate(roots))
    np.testing.assert_allclose(np.sort(ev["eigenvalues"][0].real), expect, rtol=0, atol=1e-10)
    assert np.abs(ev["eigenvalues"].imag).max() < 1e-10


def test_sets_it_cannot_close_give_clear_errors() -> None:
    from kinclose.closure.networks import Ensemble
    from kinclose.moments.encoders import HermiteEncoder, LearnedEncoder

    for terms in ([(3, 0), (4, 0), (5, 0)],  # the "orders" basis: σ̂ is not in W
                  [(2, 0), (3, 0), (2, 1)],  # (1, 1) missing
                  [(2, 0), (3, 0), (1, 1), (5, 0)],  # (4, 0) missing
                  [(2, 0), (1, 1)]):  # N_g < 3
        with pytest.raises(ValueError, match="graded set closed downward"):
            HermiteAlgebra(terms)
    with pytest.raises(ValueError, match="graded Hermite encoder"):
        HermiteAlgebra.from_encoder(HermiteEncoder(XiGrid(), 3, "orders"))
    with pytest.raises(ValueError, match="graded Hermite encoder"):
        HermiteAlgebra.from_encoder(LearnedEncoder(XiGrid(), 3))
    with pytest.raises(ValueError, match="unknown closure structure"):
        Ensemble(M=4, structure="grade", terms=hermite_terms(4, "graded"))
    with pytest.raises(ValueError, match="needs the M=4 Hermite terms"):
        Ensemble(M=4, structure="grad")


def test_clip_evaluates_fluxes_at_the_training_box() -> None:
    """``clip=True``: σ̂, q̂ and k at W clipped to the training box, m at the true W, clipped states counted and
    reported by the solver's diagnostics; clear errors without a training range or for a closure object."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.networks import Ensemble
    from kinclose.reduced.run import closure_diagnostics, load_closure

    ens = Ensemble(M=6, K=4, hidden=[8], seed=3, structure="hermite", terms=hermite_terms(6, "graded"))
    meta = {"W_range": {"min": [-0.05] * 6, "max": [0.05] * 6, "std": [0.02] * 6}}
    plain, clipped = LearnedClosure(ens, meta, 5.0), LearnedClosure(ens, meta, 5.0, clip=True)
    rng = np.random.default_rng(4)
    W = rng.uniform(-0.04, 0.04, (10, 6))
    W[:3, 2] = 0.3  # three states outside the box
    d, t = np.full(10, 0.3), np.full(10, 1.2)
    Wc = np.clip(W, -0.05, 0.05)
    m, k = clipped.frame(W, d, t)
    np.testing.assert_array_equal(m, plain.frame(W, d, t)[0])
    # only the clipped rows are evaluated again (a smaller batch may round differently in float32)
    np.testing.assert_allclose(k, plain.frame(Wc, d, t)[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(k[3:], plain.frame(W, d, t)[1][3:])
    np.testing.assert_array_equal(clipped.stress_heat(W), plain.stress_heat(Wc))
    assert clipped.clip_counts == {"evaluated": 20, "clipped": 6}
    U = np.tile([1.0, 0.0, 1.5], (10, 1))
    assert closure_diagnostics(clipped, U, W)["clipped_flux_state_fraction"] == 0.3
    assert "clipped_flux_state_fraction" not in closure_diagnostics(plain, U, W)
    with pytest.raises(ValueError, match="needs the training range"):
        LearnedClosure(ens, {}, 5.0, clip=True)
    with pytest.raises(ValueError, match="checkpoint"):
        load_closure(plain, clip=True)
