r"""Mott-Smith bimodal shock (the ξ_x² moment) with the VHS collision integral of the fast spectral operator.

The distribution is a mixture of the upstream and downstream Rankine–Hugoniot Maxwellians,

    f(x, ξ) = (1 − ν(x)) f1(ξ) + ν(x) f2(ξ),

which carries the same mass flux for every ν (ρ1 u1 = ρ2 u2), and so do its momentum and energy fluxes
(they are linear in f). The moment equation of φ = ξ_x²,  d/dx ∫ ξ_x φ f dξ = ∫ φ Q(f, f) dξ, becomes

    (M2 − M1) ν' = ν (1 − ν) J,   M_i = ∫ ξ_x³ f_i dξ = ρ_i (u_i³ + 3 u_i T_i),
    J = ∫ ξ_x² [Q(f1, f2) + Q(f2, f1)] dξ = ∫ ξ_x² [Q(f1 + f2) − Q(f1) − Q(f2)] dξ

(Q bilinear, Q(f_i, f_i) = 0), so ν = 1 / (1 + exp(−x/ℓ)) with ℓ = (M2 − M1)/J, and the inverse density
thickness is λ1/(4ℓ). J is evaluated by :class:`~kinclose.kinetic.boltzmann.FastSpectralBoltzmann` on an N³
box around both states. For Maxwell molecules (ω = 1) it is exact: J = −(2/3) ρ1 ρ2 (u1 − u2)²/μ_ref
(the stress relaxes at p/μ), the check of the quadrature in the tests.

Hicks, Yen & Reilly ("The internal structure of shock waves", J. Fluid Mech., 1972; the Boltzmann equation for
hard spheres solved with Nordsieck's Monte Carlo collision integral, M1 = 1.1 … 10) state that the reciprocal
shock thickness agrees with that of the Mott-Smith shock (u² moment) for M1 = 2.5 … 8: an independent
reference for the hard-sphere Boltzmann shock.

Units as the kinetic shock: R = 1, ρ1 = T1 = 1, u1 = Ma √(5/3), x in upstream VHS mean free paths λ1
(μ_ref = 1/C(ω), :func:`kinclose.physics.mfp_coefficient`).
"""

from __future__ import annotations

import math

import numpy as np

from kinclose.physics import ShockStates, mfp_coefficient
from kinclose.shockprofile import ShockProfile


def mott_smith_rate(states: ShockStates, omega: float, n: int = 48, n_dirs: int = 25,
                    v_width: float = 8.0) -> dict[str, float]:
    """J, M1, M2 and ℓ = (M2 − M1)/J of the module docstring; ``v_width``: the box covers u_i ± v_width √T_i
    (the spectral operator truncates relative speeds at ~1.2 L; 6.5 thermal speeds under-count J by 0.6 %
    for Maxwell molecules at Mach 2, 8 by 0.03 %)."""
    from kinclose.kinetic.boltzmann import FastSpectralBoltzmann
    from kinclose.kinetic.boltzmann_dvm import box_for_states

    s = states
    L, c1 = box_for_states([s.u1, s.u2], [s.T1, s.T2], v_width)
    mu_ref = 1.0 / mfp_coefficient(omega)
    op = FastSpectralBoltzmann(n, L, omega, mu_ref=mu_ref, n_dirs=n_dirs, center=(c1, 0.0, 0.0), tail_tol=1e-6)
    f1 = op.maxwellian(s.rho1, (s.u1, 0.0, 0.0), s.T1)
    f2 = op.maxwellian(s.rho2, (s.u2, 0.0, 0.0), s.T2)
    cross = op(f1 + f2) - op(f1) - op(f2)
    J = float(np.sum(op.v1d[0][:, None, None] ** 2 * cross) * op.dv)
    M1 = s.rho1 * (s.u1**3 + 3.0 * s.u1 * s.T1)
    M2 = s.rho2 * (s.u2**3 + 3.0 * s.u2 * s.T2)
    ell = (M2 - M1) / J
    if not (math.isfinite(ell) and ell > 0.0):
        raise ArithmeticError(f"Mott-Smith length (M2 - M1)/J = {ell!r} is not positive: J = {J!r}")
    return {"J": J, "M1": M1, "M2": M2, "ell": ell, "mu_ref": mu_ref, "n": n, "n_dirs": n_dirs, "L": L, "c1": c1}


def mott_smith_shock(states: ShockStates, *, omega: float = 0.5, n: int = 48, n_dirs: int = 25,
                     v_width: float = 8.0, x_min: float = -20.0, x_max: float = 10.0,
                     dx: float = 0.05) -> ShockProfile:
    """The Mott-Smith profile on cell centres of [x_min, x_max) (ν = 1/2 at x = 0): ρ, u, T, σ = P_xx − p and
    q = ∫ c_x |c|²/2 f of the bimodal distribution, with weights w1 = (1 − ν) ρ1, w2 = ν ρ2, d_i = u_i − u:
    ρ u = w1 u1 + w2 u2, 3 ρ T = Σ w_i (3 T_i + d_i²), σ = (2/3) w1 w2 (u1 − u2)²/ρ, q = Σ w_i d_i (d_i² + 5 T_i)/2."""
    s = states
    rate = mott_smith_rate(s, omega, n, n_dirs, v_width)
    nx = max(8, round((x_max - x_min) / dx))
    x = x_min + (np.arange(nx) + 0.5) * (x_max - x_min) / nx
    nu = 0.5 * (1.0 + np.tanh(0.5 * x / rate["ell"]))  # = 1/(1 + exp(-x/ell)), without overflow
    w1, w2 = (1.0 - nu) * s.rho1, nu * s.rho2
    rho = w1 + w2
    u = (w1 * s.u1 + w2 * s.u2) / rho
    d1, d2 = s.u1 - u, s.u2 - u
    T = (w1 * (3.0 * s.T1 + d1**2) + w2 * (3.0 * s.T2 + d2**2)) / (3.0 * rho)
    sigma = (2.0 / 3.0) * w1 * w2 * (s.u1 - s.u2) ** 2 / rho
    q = 0.5 * (w1 * d1 * (d1**2 + 5.0 * s.T1) + w2 * d2 * (d2**2 + 5.0 * s.T2))
    metrics = {**rate, "omega": omega, "v_width": v_width, "inv_density_thickness_exact": 1.0 / (4.0 * rate["ell"]),
               "converged": True}
    return ShockProfile(x, rho, u, T, sigma, q, s, "mott-smith", metrics)
