"""Closure targets (kinclose.closure.targets) against exact quadrature on the stored velocity grid
(``kinclose.reduced.closure.shape_quadrature``) for DVM (BGK) data, learned and Hermite encoders.

The targets integrate the interpolated shape on the ξ grid; ``shape_quadrature`` sums the stored
distribution on its own velocity grid. They agree to interpolation accuracy: the difference is small
and shrinks when the velocity grid is refined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.targets import (  # noqa: E402
    FrameSampling,
    build_targets,
    encode,
    encoder_weight_functions,
    frame_targets,
    sample_frames,
    stress_heat_targets,
)
from kinclose.moments.decoders import MomentAutoencoder  # noqa: E402
from kinclose.moments.shape import to_shape  # noqa: E402
from kinclose.moments.train import ShapeData  # noqa: E402
from kinclose.reduced.closure import shape_quadrature  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _dvm_cells(nv: int, tmp: Path) -> tuple:
    """(g, h, v, dv) of a smooth-wave BGK run (ε = 0.2, 16 cells, 2 snapshots) on nv velocities;
    the same initial data for every nv (same seed)."""
    import h5py

    from kinclose.moments._synthetic import write_shard

    path = tmp / f"waves_{nv}.h5"
    write_shard(path, 0, 0.2, np.random.default_rng(7), nx=16, nv=nv, nt=2, t_end=0.1, kind="waves")
    with h5py.File(path, "r") as f:
        v = f["v"][:]
        return f["g"][:].reshape(-1, nv), f["h"][:].reshape(-1, nv), v, float(f["v"].attrs["dv"])


def _model(encoder: str) -> MomentAutoencoder:
    """learned (M = 3), hermite (graded, M = 3) or flux (learned encoder with the stress, heat flux and their
    fluxes fixed and nothing learned, M = 4)."""
    torch.manual_seed(3)
    if encoder == "flux":
        return MomentAutoencoder(encoder="learned", M=4, xi_max=8.0, n_xi=128, decoder_hidden=(16,),
                                 stress_heat_moments=True, flux_moments=True)
    return MomentAutoencoder(encoder=encoder, M=3, xi_max=8.0, n_xi=128, encoder_hidden=(16, 16),
                             decoder_hidden=(16,), hermite_basis="graded")


def _max_errors(nv: int, encoder: str, tmp: Path) -> np.ndarray:
    """max |target − exact| of (σ̂, q̂, m, k) over cells and 4 frames (the first (0, 1)), scaled by the
    largest |exact| value of each quantity."""
    g, h, v, dv = _dvm_cells(nv, tmp)
    model = _model(encoder)
    G, H, rho, u, T = to_shape(g, h, v, dv, model.grid)
    wf = encoder_weight_functions(model.encoder)
    delta, tau = sample_frames(G.shape[0], FrameSampling(4, 0.5, 0.7, 1.4), np.random.default_rng(0))
    m, k = frame_targets(G, H, model.grid, wf, delta, tau)
    sh = stress_heat_targets(G, H, model.grid)
    err = np.zeros(4)
    for j in range(delta.shape[1]):
        T_star = T / tau[:, j] ** 2
        u_star = u - delta[:, j] * np.sqrt(T_star)
        ex = shape_quadrature(g, h, v, dv, wf.a_np, wf.b_np, u_star, T_star)
        err[2] = max(err[2], np.abs(m[:, j] - ex["m"]).max() / np.abs(ex["m"]).max())
        err[3] = max(err[3], np.abs(k[:, j] - ex["k"]).max() / np.abs(ex["k"]).max())
    err[0] = np.abs(sh[:, 0] - ex["sigma_hat"]).max() / np.abs(ex["sigma_hat"]).max()
    err[1] = np.abs(sh[:, 1] - ex["q_hat"]).max() / np.abs(ex["q_hat"]).max()
    return err


@pytest.mark.parametrize("encoder", ["learned", "hermite", "flux"])
def test_targets_match_exact_quadrature_to_interpolation_accuracy(encoder: str, tmp_path: Path) -> None:
    e48 = _max_errors(48, encoder, tmp_path)
    e96 = _max_errors(96, encoder, tmp_path)
    # small on a coarse grid (dv ≈ 0.4 √T) …
    assert np.all(e48 < 2e-3), e48
    # … and converging with the velocity grid (the DVM solutions differ slightly between the grids,
    # but each comparison is with its own exact quadrature)
    assert np.all(e96 < e48 / 4), (e48, e96)
    assert np.all(e96 < 2e-4), e96


@pytest.mark.parametrize("encoder", ["learned", "hermite", "flux"])
def test_identity_frame_reproduces_the_encoder(encoder: str, tmp_path: Path) -> None:
    g, h, v, dv = _dvm_cells(48, tmp_path)
    model = _model(encoder)
    G, H, *_ = to_shape(g, h, v, dv, model.grid)
    W = encode(model.encoder, G, H)
    n = G.shape[0]
    m, _ = frame_targets(G, H, model.grid, encoder_weight_functions(model.encoder), np.zeros((n, 1)), np.ones((n, 1)))
    np.testing.assert_allclose(m[:, 0], W, rtol=0, atol=1e-14)
    # and the weight functions equal the encoder's tabulated weights on the ξ nodes
    a_tab, b_tab = (w.detach().numpy() for w in model.encoder.weights())
    wf = encoder_weight_functions(model.encoder)
    np.testing.assert_allclose(wf.a_np(model.grid.xi), a_tab, rtol=0, atol=1e-14)
    np.testing.assert_allclose(wf.b_np(model.grid.xi), b_tab, rtol=0, atol=1e-14)


def test_maxwellian_targets_are_exact() -> None:
    """For the Maxwellian shape σ̂ = q̂ = 0 and, for Hermite moments, m(W_eq; δ, τ) is known in closed
    form: the moments of N(δ, τ²) — e.g. ∫ He_2(τξ+δ)/√2 φ dξ = (τ² − 1 + δ²)/√2."""
    from kinclose.moments.shape import maxwellian_shape

    model = MomentAutoencoder(encoder="hermite", M=1, xi_max=8.0, n_xi=128, hermite_basis="graded")  # He_2/√2
    G, H = maxwellian_shape(model.grid)
    sh = stress_heat_targets(G[None], H[None], model.grid)
    np.testing.assert_allclose(sh, 0.0, rtol=0, atol=1e-12)
    delta = np.array([[0.0, 0.3, -0.5, 0.1]])
    tau = np.array([[1.0, 0.8, 1.3, 1.4]])
    m, k = frame_targets(G[None], H[None], model.grid, encoder_weight_functions(model.encoder), delta, tau)
    c = -1 / np.sqrt(2) - float(encoder_weight_functions(model.encoder).a_np(np.zeros(1))[0, 0])  # tiny offset
    np.testing.assert_allclose(m[0, :, 0], (tau[0] ** 2 - 1 + delta[0] ** 2) / np.sqrt(2) - c, rtol=0, atol=1e-12)
    # k = ∫ ξ He_2(τξ+δ)/√2 φ dξ = 2τδ/√2
    np.testing.assert_allclose(k[0, :, 0], 2 * tau[0] * delta[0] / np.sqrt(2), rtol=0, atol=1e-12)


def test_frame_sampling_ranges_and_identity_column() -> None:
    s = FrameSampling(5, 0.4, 0.8, 1.25)
    d, t = sample_frames(1000, s, np.random.default_rng(1))
    assert d.shape == t.shape == (1000, 5)
    assert np.all(d[:, 0] == 0) and np.all(t[:, 0] == 1)
    assert np.abs(d).max() <= 0.4 and t.min() >= 0.8 and t.max() <= 1.25
    assert np.abs(d[:, 1:]).max() > 0.35 and t[:, 1:].min() < 0.82 and t[:, 1:].max() > 1.2
    with pytest.raises(ValueError, match="tau_min <= 1 <= tau_max"):
        FrameSampling(4, 0.5, 1.1, 1.4)


def _shape_data(cells: list[tuple], grid) -> ShapeData:
    """ShapeData of cells given as (g (n, nv), h, v, dv) groups ("shards", each its own velocity grid),
    with the stored distributions kept as ``load_dataset(..., keep_raw=True)`` keeps them."""
    parts = [to_shape(g, h, v, dv, grid, check=False) for g, h, v, dv in cells]
    G, H, rho, u, T = (np.concatenate(p) for p in zip(*parts))
    n = rho.size
    shard = np.concatenate([np.full(c[0].shape[0], i) for i, c in enumerate(cells)])
    return ShapeData(G, H, np.zeros(n), rho, u, T, np.ones(n), shard, np.zeros(n),
                     raw=[(v, dv, g, h) for g, h, v, dv in cells])


def _mixture(v: np.ndarray, comps: list[tuple]) -> tuple:
    """g, h (1, nv) of a mixture of Maxwellians (ρ_i, u_i, T_i) and its exact σ̂, q̂:
    σ = Σ ρ_i [(u_i − u)² + T_i] − ρT, q = ½ Σ ρ_i c_i (c_i² + 5 T_i), c_i = u_i − u."""
    g = sum(r / np.sqrt(2 * np.pi * T) * np.exp(-(v - u) ** 2 / (2 * T)) for r, u, T in comps)
    h = sum(2 * T * r / np.sqrt(2 * np.pi * T) * np.exp(-(v - u) ** 2 / (2 * T)) for r, u, T in comps)
    rho = sum(r for r, _, _ in comps)
    u = sum(r * ui for r, ui, _ in comps) / rho
    T = sum(r * ((ui - u) ** 2 + 3 * Ti) for r, ui, Ti in comps) / (3 * rho)
    sig = sum(r * ((ui - u) ** 2 + Ti) for r, ui, Ti in comps) / (rho * T) - 1
    q = 0.5 * sum(r * (ui - u) * ((ui - u) ** 2 + 5 * Ti) for r, ui, Ti in comps) / (rho * T ** 1.5)
    return g[None], h[None], sig, q


def test_velocity_quadrature_keeps_the_tail_that_the_xi_grid_truncates() -> None:
    """A cold cell with 2 % hot particles streaming in (the ε ≳ 0.1 case): on its ξ grid (ξ_max = 6)
    the hot particles sit at ξ ≈ 6.8 ± 4.6, so the ξ-grid targets miss q̂ = 10.3 by a factor ~17 and
    get the sign of σ̂ wrong; the velocity-grid targets are the exact moments."""
    v = np.linspace(-14.0, 16.0, 751)
    dv = float(v[1] - v[0])
    g, h, sig, q = _mixture(v, [(1.0, 0.0, 0.05), (0.02, 3.0, 4.0)])
    model = MomentAutoencoder(encoder="hermite", M=3, xi_max=6.0, n_xi=96, hermite_basis="graded")
    data = _shape_data([(g, h, v, dv)], model.grid)
    t_xi = build_targets(data, model.encoder, FrameSampling(), np.random.default_rng(0), quadrature="xi")
    t_v = build_targets(data, model.encoder, FrameSampling(), np.random.default_rng(0), quadrature="velocity")
    np.testing.assert_allclose(t_v.sh[0], [sig, q], rtol=1e-8)
    assert sig > 0.5 and q > 10.0
    assert t_xi.sh[0, 0] < 0 and t_xi.sh[0, 1] < 0.1 * q  # what the truncated shape gives
    # W_0 (graded Hermite: a = He_2/√2 − c, c the encoder's constant offset) is exact too:
    # ∫ a ĝ = σ̂/√2 − c with a(0) = −1/√2 − c
    a0 = float(encoder_weight_functions(model.encoder).a_np(np.zeros(1))[0, 0])
    assert t_v.W[0, 0] == pytest.approx(sig / np.sqrt(2) + 1 / np.sqrt(2) + a0, rel=1e-8)
    assert abs(t_xi.W[0, 0] - t_v.W[0, 0]) > 0.5


@pytest.mark.parametrize("encoder", ["learned", "hermite"])
def test_velocity_quadrature_targets(encoder: str, tmp_path: Path) -> None:
    """On resolved DVM data the velocity-grid targets equal the ξ-grid ones to interpolation accuracy,
    frame (0, 1) reproduces W bitwise, shards with different velocity grids stay in order, and the same
    rng gives the same frames in both."""
    model = _model(encoder)
    cells = [_dvm_cells(96, tmp_path), _dvm_cells(64, tmp_path)]
    data = _shape_data(cells, model.grid)
    sampling = FrameSampling(4, 0.5, 0.7, 1.4)
    t_xi = build_targets(data, model.encoder, sampling, np.random.default_rng(5), quadrature="xi")
    t_v = build_targets(data, model.encoder, sampling, np.random.default_rng(5), quadrature="velocity")
    np.testing.assert_array_equal(t_v.delta, t_xi.delta)
    np.testing.assert_array_equal(t_v.m[:, 0], t_v.W)
    for a, b in ((t_v.W, t_xi.W), (t_v.sh, t_xi.sh), (t_v.m, t_xi.m), (t_v.k, t_xi.k)):
        assert np.abs(a - b).max() < 2e-3 * np.abs(a).max()
    # the second shard's cells are its own: its first cell's σ̂ is that of its own stored f
    g, h, v, dv = cells[1]
    n0 = cells[0][0].shape[0]
    wf = encoder_weight_functions(model.encoder)
    ex = shape_quadrature(g[:1], h[:1], v, dv, wf.a_np, wf.b_np)
    assert t_v.sh[n0, 0] == ex["sigma_hat"][0] and t_v.sh[n0, 1] == ex["q_hat"][0]


def test_velocity_quadrature_needs_the_stored_distributions(tmp_path: Path) -> None:
    model = _model("hermite")
    data = _shape_data([_dvm_cells(48, tmp_path)], model.grid)
    data.raw = []
    with pytest.raises(ValueError, match="keep_raw=True"):
        build_targets(data, model.encoder, FrameSampling(), np.random.default_rng(0), quadrature="velocity")
    with pytest.raises(ValueError, match="unknown closure-target quadrature 'simpson'"):
        build_targets(data, model.encoder, FrameSampling(), np.random.default_rng(0), quadrature="simpson")
