"""Steady normal-shock profiles of the macroscopic models for ``kinclose-shock``.

NSF (``nsf_shock``): in the shock frame the steady NSF equations (R = 1, γ = 5/3) have the
constant fluxes m = ρ₁u₁, P = m u₁ + ρ₁T₁, H₁ = u₁²/2 + (5/2)T₁, and reduce to the ODE system
    (4/3) μ(T) u' = m u + m T/u − P                      (momentum, σ = −(4/3)μu'),
    κ(T) T'       = m((3/2)T − u²/2 − H₁) + P u          (energy,  q = −κT'),
μ = μ_ref T^ω, κ = (5/2) μ / Pr, whose equilibria are the Rankine–Hugoniot states. The upstream
state is a node and the downstream state a saddle; the shock is the saddle's one-dimensional
stable manifold. It is traced by leaving the downstream state along the eigenvector of the negative
eigenvalue (offset δ, linearization error O(δ²)) and integrating towards −x with an 8th-order
Runge–Kutta method (DOP853, rtol 1e-12) until the upstream state is reached to ~1e-12. σ and q
are evaluated from the algebraic right-hand sides, so the three fluxes are constant to round-off.

Euler (``euler_shock``): the Rankine–Hugoniot jump on a uniform grid, σ = q = 0.

Both return x in upstream mean free paths λ₁ (VHS), i.e. μ_ref = ρ₁√T₁ / (C(ω) T₁^ω), which is
1/C(ω) for ρ₁ = T₁ = 1, with x = 0 at the density mid-point (ρ₁ + ρ₂)/2.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import solve_ivp

from kinclose.macro.nsf import kappa_factor
from kinclose.physics import ShockStates, check_state, mfp_coefficient
from kinclose.problem import PRANDTL
from kinclose.shockprofile import ShockProfile


def _check_states(states: ShockStates) -> None:
    if not isinstance(states, ShockStates):
        raise TypeError(f"states must be a kinclose.physics.ShockStates, got {type(states).__name__}")
    if not (math.isfinite(states.mach) and states.mach > 1.0):
        raise ValueError(f"a normal shock needs Mach > 1, got mach={states.mach!r}; choose mach > 1")
    check_state([states.rho1, states.rho2], [states.u1, states.u2], [states.T1, states.T2], where="shock states")
    s = states
    F1 = np.array([s.rho1 * s.u1, s.rho1 * s.u1**2 + s.rho1 * s.T1, s.rho1 * s.u1 * (0.5 * s.u1**2 + 2.5 * s.T1)])
    F2 = np.array([s.rho2 * s.u2, s.rho2 * s.u2**2 + s.rho2 * s.T2, s.rho2 * s.u2 * (0.5 * s.u2**2 + 2.5 * s.T2)])
    mismatch = np.abs(F2 - F1) / np.abs(F1)
    if not (s.u1 > s.u2 > 0.0) or mismatch.max() > 1e-10:
        raise ValueError(
            f"shock states are not a compressive Rankine–Hugoniot pair (flux mismatch {mismatch.max():.3g}, "
            f"u1={s.u1!r}, u2={s.u2!r}); build them with kinclose.physics.rankine_hugoniot"
        )


def _grid(nx: int, half_width: float) -> NDArray[np.float64]:
    if not (isinstance(nx, int) and nx >= 3):
        raise ValueError(f"nx must be an integer >= 3, got {nx!r}")
    if not (half_width > 0.0 and math.isfinite(half_width)):
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    return np.linspace(-half_width, half_width, nx)


def lambda1_mu_ref(states: ShockStates, omega: float) -> float:
    """μ_ref for which the upstream VHS mean free path is 1: μ_ref = ρ₁√T₁ / (C(ω) T₁^ω)."""
    return states.rho1 * math.sqrt(states.T1) / (mfp_coefficient(omega) * states.T1**omega)


def nsf_shock(
    states: ShockStates,
    *,
    collision: str,
    omega: float,
    nx: int = 1201,
    half_width: float = 30.0,
    prandtl: float | None = None,
    rtol: float = 1e-12,
) -> ShockProfile:
    """Steady NSF shock profile between the Rankine–Hugoniot states (ODE route, see module doc).

    Parameters
    ----------
    states : upstream/downstream states from :func:`kinclose.physics.rankine_hugoniot`.
    collision : kinetic model whose Prandtl number NSF uses ("bgk" 1, "shakhov" 2/3, ...).
    omega : VHS exponent, μ = μ_ref T^ω.
    nx : number of output points, uniform on [−half_width, half_width] (odd nx puts a point on x = 0).
    half_width : half the output range, in λ₁.
    prandtl : override of the Prandtl number (None: from ``collision``; 0.75 is Becker's case).
    rtol : relative tolerance of the ODE integration.

    Returns
    -------
    ShockProfile (model "nsf") with (nx,) arrays and metrics ``ode_nfev``, ``ode_steps``,
    ``ode_span`` (integrated length in λ₁), ``prandtl``, ``mu_ref``, ``solve_s``.
    """
    t0 = time.perf_counter()
    _check_states(states)
    if collision not in PRANDTL:
        raise ValueError(f"unknown collision model {collision!r}; choose one of {tuple(PRANDTL)}")
    if not (math.isfinite(omega) and 0.0 <= omega <= 1.0):
        raise ValueError(f"omega must be in [0, 1], got {omega!r}")
    if not (0.0 < rtol < 1e-3):
        raise ValueError(f"rtol must be in (0, 1e-3), got {rtol!r}")
    pr = PRANDTL[collision] if prandtl is None else prandtl
    kf = kappa_factor(pr)
    x_out = _grid(nx, half_width)
    s = states
    mu_ref = lambda1_mu_ref(s, omega)
    m = s.rho1 * s.u1
    P = m * s.u1 + s.rho1 * s.T1
    H1 = 0.5 * s.u1**2 + 2.5 * s.T1

    def g(u: Any, T: Any) -> tuple[Any, Any]:
        """(−σ, −q) = ((4/3)μu', κT') as functions of (u, T)."""
        return m * u + m * T / u - P, m * (1.5 * T - 0.5 * u * u - H1) + P * u

    def rhs(_x: float, y: NDArray[np.float64]) -> NDArray[np.float64]:
        u, T = y
        mu = mu_ref * T**omega
        g1, g2 = g(u, T)
        return np.array([0.75 * g1 / mu, g2 / (kf * mu)])

    # linearization at the downstream saddle (g = 0 there, so μ's derivative drops out)
    mu2 = mu_ref * s.T2**omega
    J = np.array(
        [
            [0.75 / mu2 * (m - m * s.T2 / s.u2**2), 0.75 / mu2 * m / s.u2],
            [(P - m * s.u2) / (kf * mu2), 1.5 * m / (kf * mu2)],
        ]
    )
    lam, vec = np.linalg.eig(J)
    if not (np.isreal(lam).all() and lam.real.min() < 0.0 < lam.real.max()):
        raise RuntimeError(f"downstream state is not a saddle of the NSF shock ODE (eigenvalues {lam})")
    i_neg = int(np.argmin(lam.real))
    lam_neg = float(lam[i_neg].real)
    v = vec[:, i_neg].real
    v = v / v[0]  # u increases towards the upstream state
    delta = 1e-8 * (s.u1 - s.u2)
    y0 = np.array([s.u2, s.T2]) + delta * v
    du, dT = s.u1 - s.u2, abs(s.T2 - s.T1)
    rho_mid = 0.5 * (s.rho1 + s.rho2)
    u_mid = m / rho_mid

    def reached_upstream(_x: float, y: NDArray[np.float64]) -> float:
        return max(abs(y[0] - s.u1) / du, abs(y[1] - s.T1) / dT) - 1e-12

    reached_upstream.terminal = True  # type: ignore[attr-defined]

    def mid(_x: float, y: NDArray[np.float64]) -> float:
        return y[0] - u_mid

    span = 1e4 * max(1.0, s.T2**omega)  # far beyond any NSF shock width; the event stops earlier
    sol = solve_ivp(
        rhs, (0.0, -span), y0, method="DOP853", rtol=rtol, atol=1e-14 * max(s.u1, s.T2),
        dense_output=True, events=(reached_upstream, mid),
    )
    if sol.status != 1:
        raise RuntimeError(f"NSF shock ODE did not reach the upstream state: {sol.message}")
    if sol.t_events[1].size != 1:
        raise RuntimeError("NSF shock ODE: density mid-point not crossed exactly once")
    x_mid = float(sol.t_events[1][0])
    x_end = float(sol.t[-1])
    # shift so that ρ = (ρ₁+ρ₂)/2 at x = 0: ODE coordinate ξ = x + x_mid
    xi = x_out + x_mid
    u = np.empty_like(x_out)
    T = np.empty_like(x_out)
    down = xi > 0.0
    up = xi < x_end
    inside = ~(down | up)
    u[inside], T[inside] = sol.sol(xi[inside])
    # beyond the starting point: the linearized saddle solution
    e = np.exp(lam_neg * xi[down])
    u[down] = s.u2 + delta * v[0] * e
    T[down] = s.T2 + delta * v[1] * e
    u[up], T[up] = sol.y[0, -1], sol.y[1, -1]
    g1, g2 = g(u, T)
    prof = ShockProfile(
        x=x_out, rho=m / u, u=u, T=T, sigma=-g1, q=-g2, states=s, model="nsf",
        metrics={
            "method": "ode-dop853",
            "ode_nfev": int(sol.nfev),
            "ode_steps": int(sol.t.size - 1),
            "ode_span": float(-x_end),
            "ode_rtol": rtol,
            "prandtl": float(pr),
            "mu_ref": mu_ref,
            "saddle_eigenvalues": [float(l.real) for l in lam],
            "solve_s": time.perf_counter() - t0,
        },
    )
    return prof


def euler_shock(
    states: ShockStates,
    *,
    collision: str,
    omega: float,
    nx: int = 1200,
    half_width: float = 30.0,
) -> ShockProfile:
    """The Euler (Kn → 0) shock: the Rankine–Hugoniot jump at x = 0 on a uniform grid.

    Parameters
    ----------
    states : Rankine–Hugoniot states.
    collision, omega : accepted for the common signature; they do not change the jump.
    nx : number of cell centres on [−half_width, half_width] (even nx puts a face on x = 0).
    half_width : in λ₁.

    Returns
    -------
    ShockProfile (model "euler"), σ = q = 0.
    """
    _check_states(states)
    if collision not in PRANDTL:
        raise ValueError(f"unknown collision model {collision!r}; choose one of {tuple(PRANDTL)}")
    if not (math.isfinite(omega) and 0.0 <= omega <= 1.0):
        raise ValueError(f"omega must be in [0, 1], got {omega!r}")
    if not (isinstance(nx, int) and nx >= 2):
        raise ValueError(f"nx must be an integer >= 2, got {nx!r}")
    if not (half_width > 0.0 and math.isfinite(half_width)):
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    dx = 2.0 * half_width / nx
    x = -half_width + (np.arange(nx) + 0.5) * dx
    s = states
    up = x < 0.0
    rho = np.where(up, s.rho1, s.rho2)
    u = np.where(up, s.u1, s.u2)
    T = np.where(up, s.T1, s.T2)
    z = np.zeros(nx)
    return ShockProfile(
        x=x, rho=rho, u=u, T=T, sigma=z, q=z.copy(), states=s, model="euler",
        metrics={"method": "rankine-hugoniot jump", "dx": dx},
    )
