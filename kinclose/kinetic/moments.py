"""Moments of Chu-reduced distributions (g, h) on a uniform velocity grid (NumPy reference).

g(v1) = ∫ f dv2 dv3, h(v1) = ∫ (v2² + v3²) f dv2 dv3; arrays (..., nv), weights Δv.

ρ = Σ g Δv,  ρu = Σ v g Δv,  E = ½ Σ (v² g + h) Δv,  3ρT = Σ (c² g + h) Δv,
σ = ∫ (c1² − |c|²/3) f dv = Σ c² g Δv − ρT,   q = ½ ∫ c1 |c|² f dv = ½ Σ c (c² g + h) Δv.

Reduced entropy: the distribution Maxwellian in (v2, v3) at each v1 with the given g, h is
f = g/(2πθ) exp(−|v⊥|²/2θ), θ = h/(2g), and η = ∫ f ln f dv = Σ g [ln(g²/(π h)) − 1] Δv.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def conserved(g: NDArray, h: NDArray, v: NDArray, dv: float) -> NDArray[np.float64]:
    """(..., nv) → (..., 3): U = (ρ, ρu, E)."""
    rho = g.sum(-1) * dv
    mom = (g * v).sum(-1) * dv
    en = 0.5 * (g * v * v + h).sum(-1) * dv
    return np.stack([rho, mom, en], axis=-1)


def fields(g: NDArray, h: NDArray, v: NDArray, dv: float) -> dict[str, NDArray[np.float64]]:
    """(..., nv) → dict of (...) arrays rho, u, T, sigma, q."""
    U = conserved(g, h, v, dv)
    rho = U[..., 0]
    u = U[..., 1] / rho
    T = (2.0 * U[..., 2] / rho - u * u) / 3.0
    c = v - u[..., None]
    sigma = (c * c * g).sum(-1) * dv - rho * T
    q = 0.5 * (c * (c * c * g + h)).sum(-1) * dv
    return {"rho": rho, "u": u, "T": T, "sigma": sigma, "q": q}


def maxwellian(rho, u, T, v: NDArray) -> tuple[NDArray, NDArray]:
    """Chu-reduced Maxwellian: G = ρ (2πT)^{-1/2} exp(−(v−u)²/2T), H = 2T G; shapes (..., nv)."""
    rho, u, T = (np.asarray(a, dtype=float)[..., None] for a in (rho, u, T))
    G = rho / np.sqrt(2 * np.pi * T) * np.exp(-0.5 * (v - u) ** 2 / T)
    return G, 2.0 * T * G


def entropy(g: NDArray, h: NDArray, dv: float) -> NDArray[np.float64]:
    """Reduced entropy η = Σ g [2 ln g − ln(π h) − 1] Δv per cell (...); nodes with g ≤ 0 or h ≤ 0
    (far tails) contribute 0. Written with logarithms so that tiny tails do not underflow."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (g > 0) & (h > 0)
        integrand = np.where(ok, g * (2.0 * np.log(np.where(ok, g, 1.0)) - np.log(np.pi * np.where(ok, h, 1.0)) - 1.0), 0.0)
    return integrand.sum(-1) * dv


def maxwellian_entropy(rho, T) -> NDArray[np.float64]:
    """Exact η of the 3D Maxwellian: ρ [ln(ρ/(2πT)^{3/2}) − 3/2]."""
    rho = np.asarray(rho, dtype=float)
    T = np.asarray(T, dtype=float)
    return rho * (np.log(rho / (2 * np.pi * T) ** 1.5) - 1.5)
