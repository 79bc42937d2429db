"""Becker's solution of the steady Navier–Stokes–Fourier shock for Prandtl number 3/4.

Steady NSF shock in the shock frame (R = 1, γ = 5/3, c_p = 5/2), with constant fluxes
    m = ρu,   P = mu + p + σ,   m H₁ = m(u²/2 + (5/2)T) + σu + q,
    σ = −(4/3) μ(T) u',   q = −κ T',   κ = c_p μ / Pr.
For Pr = 3/4, κ = (10/3)μ and σu + q = −(4/3) μ d/dx(u²/2 + (5/2)T), so the total enthalpy is
constant through the shock (Becker 1922):
    T(u) = (2/5)(H₁ − u²/2),
and the momentum balance reduces to one ODE whose right side factors over the Rankine–Hugoniot
velocities u₁ > u₂ (the roots of 4u² − 5(P/m)u + 2H₁):
    u' = (3m / (5 μ(T(u)) u)) (u − u₁)(u − u₂).
Hence x(u) = ∫ 5 μ(T(u)) u / (3m (u − u₁)(u − u₂)) du: closed form for constant μ,
    x = (5μ / (3m(u₁ − u₂))) [u₁ ln(u₁ − u) − u₂ ln(u − u₂)] + const,
and a quadrature for general μ(T) = μ_ref T^ω. With u = u₂ + (u₁ − u₂) s, s = 1/(1 + e^{−z}),
the integrand becomes smooth and bounded,
    dx/dz = −5 μ(T(u(z))) u(z) / (3m (u₁ − u₂)),
which is integrated here by composite Gauss–Legendre quadrature (exact to round-off) and
inverted by Newton's method. Stress and heat flux follow algebraically:
    σ = 4m (u₁ − u₂)² s(1 − s) / (5u),   q = −uσ.
x = 0 where ρ = (ρ₁ + ρ₂)/2.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kinclose.physics import ShockStates
from kinclose.shockprofile import ShockProfile

PRANDTL_BECKER = 0.75
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)


class _Becker:
    def __init__(self, states: ShockStates, mu_ref: float, omega: float) -> None:
        s = states
        if not (s.mach > 1.0 and s.u1 > s.u2 > 0.0):
            raise ValueError(f"Becker's solution needs a compressive shock with Mach > 1, got mach={s.mach!r}")
        if not (mu_ref > 0.0 and math.isfinite(mu_ref)):
            raise ValueError(f"mu_ref must be positive, got {mu_ref!r}")
        self.s, self.mu_ref, self.omega = s, float(mu_ref), float(omega)
        self.m = s.rho1 * s.u1
        self.H = 0.5 * s.u1**2 + 2.5 * s.T1
        self.du = s.u1 - s.u2
        rho_mid = 0.5 * (s.rho1 + s.rho2)
        sc = (self.m / rho_mid - s.u2) / self.du
        self.zc = math.log(sc / (1.0 - sc))

    def u_of_z(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.s.u2 + self.du * _sigmoid(z)

    def T_of_u(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return 0.4 * (self.H - 0.5 * u * u)

    def dxdz(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        u = self.u_of_z(z)
        mu = self.mu_ref * self.T_of_u(u) ** self.omega
        return -5.0 * mu * u / (3.0 * self.m * self.du)

    def integral(self, za: NDArray[np.float64], zb: NDArray[np.float64]) -> NDArray[np.float64]:
        """∫_{za}^{zb} dx/dz dz by 12-point Gauss–Legendre (intervals kept short by the caller)."""
        za, zb = np.broadcast_arrays(np.asarray(za, float), np.asarray(zb, float))
        half = 0.5 * (zb - za)
        mid = 0.5 * (zb + za)
        zq = mid[..., None] + half[..., None] * _GL_NODES
        return half * (self.dxdz(zq) * _GL_WEIGHTS).sum(-1)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    z = np.asarray(z, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def becker_profile(
    states: ShockStates, x: ArrayLike, *, mu_ref: float, omega: float, z_max: float = 40.0, h: float = 0.05
) -> ShockProfile:
    """Becker's NSF shock (Pr = 3/4, μ = μ_ref T^ω) at positions ``x`` (x = 0: density mid-point).

    Parameters
    ----------
    states : upstream/downstream states (shock frame, u₁ > u₂ > 0).
    x : (n,) positions, in the length unit in which μ = μ_ref T^ω (λ₁ when μ_ref = ρ₁√T₁/(C(ω)T₁^ω)).
    mu_ref, omega : viscosity law.
    z_max : the table covers |z| <= z_max (relative deviation from the end states e^{−z_max});
        points beyond are given the end states.
    h : table spacing in z (each 12-point Gauss–Legendre panel is exact to round-off for h <= 0.1).

    Returns
    -------
    ShockProfile with model "becker" and (n,) arrays ρ, u, T, σ, q.
    """
    b = _Becker(states, mu_ref, omega)
    x = np.asarray(x, dtype=float)
    # table of x(z) on a uniform z grid containing z_c, decreasing in z
    n_hi = int(math.ceil((z_max - b.zc) / h))
    n_lo = int(math.ceil((z_max + b.zc) / h))
    zt = b.zc + h * np.arange(-n_lo, n_hi + 1)
    panels = b.integral(zt[:-1], zt[1:])
    X = np.concatenate([[0.0], np.cumsum(panels)])
    X -= X[n_lo]  # x(z_c) = 0
    # X is decreasing: search on −X
    k = np.clip(np.searchsorted(-X, -x) - 1, 0, zt.size - 2)
    inside = (x <= X[0]) & (x >= X[-1])
    z = zt[k] + (x - X[k]) / (X[k + 1] - X[k]) * h  # linear first guess
    for _ in range(30):
        fz = X[k] + b.integral(zt[k], z) - x
        dz = fz / b.dxdz(z)
        z = np.clip(z - dz, zt[k] - h, zt[k + 1] + h)
        if np.all(np.abs(dz[inside]) < 1e-14 * (1.0 + np.abs(z[inside]))):
            break
    z = np.where(inside, z, np.where(x > X[0], -np.inf, np.inf))
    sg = _sigmoid(z)
    u = states.u2 + b.du * sg
    T = b.T_of_u(u)
    rho = b.m / u
    sigma = 4.0 * b.m * b.du**2 * sg * (1.0 - sg) / (5.0 * u)
    q = -u * sigma
    return ShockProfile(
        x=x.copy(), rho=rho, u=u, T=T, sigma=sigma, q=q, states=states, model="becker",
        metrics={"prandtl": PRANDTL_BECKER, "mu_ref": mu_ref, "omega": omega},
    )


def becker_x_constant_mu(states: ShockStates, u: ArrayLike, mu: float) -> NDArray[np.float64]:
    """Closed form x(u) for constant μ (x = 0 at the density mid-point); u₂ < u < u₁."""
    s = states
    m = s.rho1 * s.u1
    u = np.asarray(u, dtype=float)

    def raw(v: NDArray[np.float64] | float) -> NDArray[np.float64]:
        return 5.0 * mu / (3.0 * m * (s.u1 - s.u2)) * (s.u1 * np.log(s.u1 - v) - s.u2 * np.log(v - s.u2))

    uc = m / (0.5 * (s.rho1 + s.rho2))
    return raw(u) - raw(uc)
