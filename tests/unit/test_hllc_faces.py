"""The batched HLLC kernel (used by the reduced solver's ``ap`` flux) against a plain NumPy HLLC."""

import numpy as np

from kinclose.macro._kernels import hllc_faces
from kinclose.physics import GAMMA


def _hllc_numpy(WL, WR, g):
    """Toro's HLLC with Einfeldt (Roe-average) bounds, vectorized; W = (ρ, u, p) (n, 3)."""
    (rl, ul, pl), (rr, ur, pr) = WL.T, WR.T
    El, Er = pl / (g - 1) + 0.5 * rl * ul**2, pr / (g - 1) + 0.5 * rr * ur**2
    wl, wr = np.sqrt(rl), np.sqrt(rr)
    ua = (wl * ul + wr * ur) / (wl + wr)
    Ha = (wl * (El + pl) / rl + wr * (Er + pr) / rr) / (wl + wr)
    ca = np.sqrt((g - 1) * (Ha - 0.5 * ua**2))
    SL = np.minimum(ul - np.sqrt(g * pl / rl), ua - ca)
    SR = np.maximum(ur + np.sqrt(g * pr / rr), ua + ca)
    SM = (pr - pl + rl * ul * (SL - ul) - rr * ur * (SR - ur)) / (rl * (SL - ul) - rr * (SR - ur))

    def flux(r, u, p, E):
        return np.stack([r * u, r * u * u + p, (E + p) * u], 1)

    def star(r, u, p, E, S):
        f = r * (S - u) / (S - SM)
        return np.stack([f, f * SM, f * (E / r + (SM - u) * (SM + p / (r * (S - u))))], 1)

    FL, FR = flux(rl, ul, pl, El), flux(rr, ur, pr, Er)
    UL, UR = np.stack([rl, rl * ul, El], 1), np.stack([rr, rr * ur, Er], 1)
    FsL = FL + SL[:, None] * (star(rl, ul, pl, El, SL) - UL)
    FsR = FR + SR[:, None] * (star(rr, ur, pr, Er, SR) - UR)
    return np.select([(SL >= 0)[:, None], (SR <= 0)[:, None], (SM >= 0)[:, None]], [FL, FR, FsL], FsR)


def test_hllc_faces_matches_numpy_reference():
    rng = np.random.default_rng(7)
    n = 200  # subsonic and supersonic faces in both directions
    WL = np.stack([rng.uniform(0.2, 3, n), rng.uniform(-6, 6, n), rng.uniform(0.1, 5, n)], 1)
    WR = np.stack([rng.uniform(0.2, 3, n), rng.uniform(-6, 6, n), rng.uniform(0.1, 5, n)], 1)
    F = np.empty((n, 3))
    hllc_faces(WL, WR, GAMMA, F)
    np.testing.assert_allclose(F, _hllc_numpy(WL, WR, GAMMA), rtol=1e-12, atol=1e-12)
    # consistency: equal states give the physical flux
    hllc_faces(WL, WL.copy(), GAMMA, F)
    r, u, p = WL.T
    E = p / (GAMMA - 1) + 0.5 * r * u * u
    np.testing.assert_allclose(F, np.stack([r * u, r * u * u + p, (E + p) * u], 1), rtol=1e-12, atol=1e-12)
