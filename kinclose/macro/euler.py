"""Second-order finite-volume solver for the 1D Euler equations (and the driver NSF reuses).

Solves, for a monatomic gas (γ = 5/3, R = 1, p = ρT),
    ∂t U + ∂x F(U) = 0,   U = (ρ, ρu, E),   F = (ρu, ρu² + p, (E + p)u),   E = ½ρu² + (3/2)p,
with cell averages U_i (nx cells of width dx), the semi-discrete MUSCL–HLLC operator
    dU_i/dt = −(F̂_{i+½} − F̂_{i−½}) / dx,
(piecewise-linear reconstruction of (ρ, u, p) with a slope limiter, HLLC Riemann flux with
Einfeldt wave-speed bounds) and strong-stability-preserving Runge–Kutta of order 2 or 3 in time,
Δt = CFL · dx / max(|u| + c). The scheme is conservative: on a periodic domain Σ_i U_i dx is
constant to round-off.

Boundaries: "periodic", or "reservoir" where two ghost cells on each side hold the initial states
of the end cells for all time (DVM uses Maxwellian reservoirs of the same states).

The same driver (:func:`integrate`) advances the Navier–Stokes–Fourier system of
:mod:`kinclose.macro.nsf` when given viscous parameters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.macro import _kernels as K
from kinclose.physics import GAMMA, PhysicalStateError, primitive
from kinclose.problem import Fields, Problem

LIMITERS: dict[str, int] = {
    "none": K.LIMITER_NONE,
    "minmod": K.LIMITER_MINMOD,
    "vanleer": K.LIMITER_VANLEER,
    "mc": K.LIMITER_MC,
}
# Largest CFL number for which forward Euler (hence SSP-RK) with the limited MUSCL reconstruction
# is TVD for linear advection: Harten's coefficient ν[1 + φ(r_j)/2 − φ(r_{j−1})/(2 r_{j−1})] must
# stay <= 1, i.e. ν <= 1/(1 + max φ/2): 1 (first order), 2/3 (minmod, φ <= 1), 1/2 (van Leer, MC).
CFL_MAX: dict[str, float] = {"none": 1.0, "minmod": 2.0 / 3.0, "vanleer": 0.5, "mc": 0.5}
RK_ORDERS = (1, 2, 3)
VISCOUS_MODES = ("auto", "explicit", "rkl2")


@dataclass(frozen=True)
class Viscous:
    """Navier–Stokes–Fourier transport: μ = mu_ref T^ω, κ = kappa_factor · μ (= c_p μ / Pr)."""

    mu_ref: float
    omega: float
    kappa_factor: float
    mode: str = "auto"
    rkl2_safety: float = 0.8


def check_scheme(cfl: float, limiter: str, rk: int) -> None:
    """Raise ValueError for an unknown limiter / RK order or a CFL number above the stable bound."""
    if limiter not in LIMITERS:
        raise ValueError(f"unknown limiter {limiter!r}; choose one of {tuple(LIMITERS)}")
    if rk not in RK_ORDERS:
        raise ValueError(f"rk must be one of {RK_ORDERS} (SSP Runge–Kutta order), got {rk!r}")
    bound = CFL_MAX[limiter]
    if not (isinstance(cfl, (int, float)) and math.isfinite(cfl) and cfl > 0.0):
        raise ValueError(f"cfl must be a positive number, got {cfl!r}")
    if cfl > bound:
        raise ValueError(
            f"cfl={cfl!r} is above the stable bound {bound:.4g} of MUSCL with the {limiter!r} limiter "
            f"and SSP-RK{rk}; choose cfl <= {bound:.4g}"
        )


def rkl2_coefficients(s: int) -> tuple[NDArray[np.float64], ...]:
    """Coefficients (μ_j, ν_j, μ̃_j, γ̃_j), j = 1..s, of the s-stage second-order
    Runge–Kutta–Legendre super-time-stepping method (Meyer, Balsara & Aslam 2014):

        Y_1 = Y_0 + μ̃_1 τ M(Y_0),
        Y_j = μ_j Y_{j−1} + ν_j Y_{j−2} + (1 − μ_j − ν_j) Y_0 + μ̃_j τ M(Y_{j−1}) + γ̃_j τ M(Y_0),
        b_j = (j² + j − 2) / (2j(j + 1)) (b_0 = b_1 = b_2 = 1/3), a_j = 1 − b_j,
        w_1 = 4/(s² + s − 2), μ_j = (2j − 1) b_j / (j b_{j−1}), ν_j = −(j − 1) b_j / (j b_{j−2}),
        μ̃_j = μ_j w_1 (μ̃_1 = b_1 w_1), γ̃_j = −a_{j−1} μ̃_j.

    Stable for τ ≤ τ_FE (s² + s − 2)/4, τ_FE the forward-Euler limit. Arrays have index j (0 unused).
    """
    if s < 2:
        raise ValueError(f"RKL2 needs s >= 2 stages, got {s}")
    j = np.arange(s + 1, dtype=float)
    b = np.full(s + 1, 1.0 / 3.0)
    jj = j[2:]
    b[2:] = (jj * jj + jj - 2.0) / (2.0 * jj * (jj + 1.0))
    a = 1.0 - b
    w1 = 4.0 / (s * s + s - 2.0)
    mu = np.zeros(s + 1)
    nu = np.zeros(s + 1)
    mut = np.zeros(s + 1)
    gat = np.zeros(s + 1)
    mut[1] = b[1] * w1
    for k in range(2, s + 1):
        mu[k] = (2.0 * k - 1.0) / k * b[k] / b[k - 1]
        nu[k] = -(k - 1.0) / k * b[k] / b[k - 2]
        mut[k] = mu[k] * w1
        gat[k] = -a[k - 1] * mut[k]
    return mu, nu, mut, gat


def rkl2_stages(tau: float, tau_fe: float) -> int:
    """Smallest s >= 2 with τ <= τ_FE (s² + s − 2)/4."""
    r = tau / tau_fe
    s = int(math.ceil(0.5 * (-1.0 + math.sqrt(9.0 + 16.0 * r)) - 1e-12))
    return max(s, 2)


class _Integrator:
    """Time integration of cell averages with ghost cells (internal; see :func:`integrate`)."""

    def __init__(
        self,
        U0: NDArray[np.float64],
        dx: float,
        periodic: bool,
        cfl: float,
        limiter: str,
        rk: int,
        gamma: float,
        viscous: Viscous | None,
    ) -> None:
        nx = U0.shape[0]
        self.nx, self.dx, self.periodic = nx, float(dx), bool(periodic)
        self.cfl, self.lim, self.rk, self.gamma = float(cfl), LIMITERS[limiter], rk, float(gamma)
        self.cfl_max = CFL_MAX[limiter]
        self.visc = viscous
        n = nx + 2 * K.NG
        self.U = np.zeros((n, 3))
        self.U[K.NG : K.NG + nx] = U0
        self.left = np.ascontiguousarray(U0[0], dtype=float).copy()
        self.right = np.ascontiguousarray(U0[-1], dtype=float).copy()
        self.W = np.zeros((n, 3))
        self.R = np.zeros((n, 3))
        self.F = np.zeros((nx + 1, 3))
        self.Fv = np.zeros((nx + 1, 3))
        self.S = np.zeros(nx + 1)
        self.Q = np.zeros(nx + 1)
        self.U1 = np.zeros((n, 3))
        self.U2 = np.zeros((n, 3))
        self.t = 0.0
        self.steps = 0
        self.rkl2_steps = 0
        self.rkl2_stage_max = 0
        self.rkl2_stage_total = 0

    # -- operators ---------------------------------------------------------------------------
    def _prim(self, U: NDArray[np.float64]) -> None:
        K.fill_ghosts(U, self.periodic, self.left, self.right)
        bad = K.primitives(U, self.gamma, self.W)
        if bad >= 0:
            i = bad - K.NG
            raise PhysicalStateError(
                f"non-physical state (rho={self.W[bad, 0]!r}, p={self.W[bad, 2]!r}) in cell {i} at "
                f"t={self.t:.6g} after {self.steps} steps; reduce cfl (now {self.cfl}) or check the data"
            )

    def _rhs(self, U: NDArray[np.float64], hyperbolic: bool, viscous: bool) -> NDArray[np.float64]:
        self._prim(U)
        if hyperbolic:
            K.euler_rhs(self.W, self.dx, self.gamma, self.lim, self.F, self.R)
        else:
            self.R[:] = 0.0
        if viscous:
            v = self.visc
            K.viscous_faces(self.W, self.dx, v.mu_ref, v.omega, v.kappa_factor, self.S, self.Q, self.Fv)
            K.add_face_divergence(self.Fv, self.dx, 1.0, self.R)
        return self.R

    def _ssp_rk(self, dt: float, viscous: bool) -> None:
        U, U1, U2 = self.U, self.U1, self.U2
        K.axpby(1.0, U, dt, self._rhs(U, True, viscous), U1)
        if self.rk == 1:
            U[:] = U1
        elif self.rk == 2:
            K.axpby(1.0, U1, dt, self._rhs(U1, True, viscous), U2)
            K.axpby(0.5, U, 0.5, U2, U)
        else:
            K.axpby(1.0, U1, dt, self._rhs(U1, True, viscous), U2)
            K.axpby(0.75, U, 0.25, U2, U2)
            K.axpby(1.0, U2, dt, self._rhs(U2, True, viscous), U1)
            K.axpby(1.0 / 3.0, U, 2.0 / 3.0, U1, U)

    def _rkl2(self, tau: float, tau_fe: float) -> None:
        """Advance the viscous part alone by τ with RKL2 super-time-stepping."""
        s = rkl2_stages(tau, tau_fe)
        mu, nu, mut, gat = rkl2_coefficients(s)
        Y0 = self.U.copy()
        M0 = self._rhs(Y0, False, True).copy()
        Yjm2 = Y0.copy()
        Yjm1 = np.empty_like(Y0)
        K.axpby(1.0, Y0, mut[1] * tau, M0, Yjm1)
        Yj = np.empty_like(Y0)
        for j in range(2, s + 1):
            M1 = self._rhs(Yjm1, False, True)
            K.rkl2_combine(mu[j], Yjm1, nu[j], Yjm2, Y0, mut[j], M1, gat[j], M0, tau, Yj)
            Yjm2, Yjm1, Yj = Yjm1, Yj, Yjm2
        self.U[:] = Yjm1
        self.rkl2_steps += 1
        self.rkl2_stage_max = max(self.rkl2_stage_max, s)
        self.rkl2_stage_total += s

    # -- time step -----------------------------------------------------------------------------
    def step(self, t_end: float) -> None:
        self._prim(self.U)
        a = K.max_wave_speed(self.W, self.gamma)
        dx = self.dx
        dt_hyp = self.cfl * dx / a
        if self.visc is None:
            dt = min(dt_hyp, t_end - self.t)
            self._ssp_rk(dt, False)
        else:
            v = self.visc
            D = K.max_diffusivity(self.W, v.mu_ref, v.omega, v.kappa_factor)
            dt_fe_par = dx * dx / (2.0 * D)  # forward-Euler limit of the viscous part alone
            # forward Euler of hyperbolic + viscous is stable below 1/(1/dt_hyp_max + 1/dt_fe_par)
            dt_unsplit = self.cfl / (a / dx + self.cfl_max / dt_fe_par)
            split = v.mode == "rkl2" or (v.mode == "auto" and dt_unsplit < 0.5 * dt_hyp)
            if split:
                # Strang splitting: viscous half step (RKL2), hyperbolic step, viscous half step
                dt = min(dt_hyp, t_end - self.t)
                tau_fe = v.rkl2_safety * dt_fe_par
                self._rkl2(0.5 * dt, tau_fe)
                self._ssp_rk(dt, False)
                self._prim(self.U)
                D = K.max_diffusivity(self.W, v.mu_ref, v.omega, v.kappa_factor)
                self._rkl2(0.5 * dt, v.rkl2_safety * dx * dx / (2.0 * D))
            else:
                dt = min(dt_unsplit, t_end - self.t)
                self._ssp_rk(dt, True)
        self.t += dt
        self.steps += 1

    def interior(self) -> NDArray[np.float64]:
        return self.U[K.NG : K.NG + self.nx].copy()

    def face_sigma_q(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """σ, q at the nx + 1 faces of the current state (zeros without viscosity)."""
        if self.visc is None:
            return np.zeros(self.nx + 1), np.zeros(self.nx + 1)
        self._prim(self.U)
        v = self.visc
        K.viscous_faces(self.W, self.dx, v.mu_ref, v.omega, v.kappa_factor, self.S, self.Q, self.Fv)
        return self.S.copy(), self.Q.copy()


def integrate(
    U0: NDArray[np.float64],
    dx: float,
    t_end: float,
    *,
    periodic: bool,
    cfl: float = 0.4,
    limiter: str = "mc",
    rk: int = 3,
    gamma: float = GAMMA,
    viscous: Viscous | None = None,
    max_steps: int = 10_000_000,
) -> tuple[NDArray[np.float64], dict[str, Any], tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Advance cell averages ``U0`` (nx, 3) = (ρ, ρu, E) from t = 0 to ``t_end``.

    Parameters
    ----------
    U0 : (nx, 3) float64, conserved cell averages.
    dx : cell width.
    t_end : final time (>= 0).
    periodic : periodic domain; otherwise the end cells' initial states are reservoirs.
    cfl : Courant number of the hyperbolic part, 0 < cfl <= CFL_MAX[limiter].
    limiter : "mc" (default), "vanleer", "minmod" or "none" (first order).
    rk : SSP Runge–Kutta order (1, 2, 3).
    gamma : ratio of specific heats (the Riemann tests use γ = 1.4 too).
    viscous : NSF transport, or None for the Euler equations.
    max_steps : RuntimeError when exceeded.

    Returns
    -------
    U : (nx, 3) float64 at t_end; stats : dict; (sigma, q) : (nx + 1,) each at the faces.
    """
    check_scheme(cfl, limiter, rk)
    U0 = np.ascontiguousarray(U0, dtype=np.float64)
    if U0.ndim != 2 or U0.shape[1] != 3 or U0.shape[0] < 3:
        raise ValueError(f"U0 must have shape (nx >= 3, 3), got {U0.shape}")
    if viscous is not None and viscous.mode not in VISCOUS_MODES:
        raise ValueError(f"unknown viscous mode {viscous.mode!r}; choose one of {VISCOUS_MODES}")
    if viscous is not None and not (0.0 < viscous.rkl2_safety <= 1.0):
        raise ValueError(f"rkl2_safety must be in (0, 1], got {viscous.rkl2_safety!r}")
    integ = _Integrator(U0, dx, periodic, cfl, limiter, rk, gamma, viscous)
    total0 = U0.sum(axis=0) * dx
    t0 = time.perf_counter()
    while integ.t < t_end:
        if integ.steps >= max_steps:
            raise RuntimeError(f"max_steps={max_steps} reached at t={integ.t:.6g} < t_end={t_end:.6g}")
        integ.step(t_end)
    wall = time.perf_counter() - t0
    U = integ.interior()
    stats: dict[str, Any] = {
        "steps": integ.steps,
        "nx": integ.nx,
        "wall_s": wall,
        "cells_per_s": integ.nx * integ.steps / wall if wall > 0 else float("nan"),
        "cfl": cfl,
        "limiter": limiter,
        "rk": rk,
        "rkl2_steps": integ.rkl2_steps,
        "rkl2_stage_max": integ.rkl2_stage_max,
        "rkl2_stage_total": integ.rkl2_stage_total,
    }
    if periodic:
        stats["conservation_drift"] = (U.sum(axis=0) * dx - total0).tolist()
    return U, stats, integ.face_sigma_q()


def run_problem(
    problem: Problem,
    *,
    cfl: float = 0.4,
    limiter: str = "mc",
    rk: int = 3,
    max_steps: int = 10_000_000,
) -> Fields:
    """Solve the Euler equations (γ = 5/3) on ``problem`` until ``problem.t_end``.

    ``problem.kn``, ``omega`` and ``collision`` are ignored (the Kn → 0 limit); σ = q = 0.
    Unknown keyword options raise TypeError.

    Returns
    -------
    Fields with (nx,) arrays ρ, u, T at the cell centres and ``stats`` (steps, wall time,
    conservation drift on periodic domains).
    """
    U0 = np.stack([problem.rho, problem.rho * problem.u, 0.5 * problem.rho * problem.u**2 + 1.5 * problem.rho * problem.T], axis=1)
    U, stats, _ = integrate(
        U0, problem.dx, problem.t_end, periodic=problem.bc == "periodic", cfl=cfl, limiter=limiter, rk=rk,
        gamma=GAMMA, max_steps=max_steps,
    )
    rho, u, T = primitive(U)
    z = np.zeros_like(rho)
    return Fields(problem.x, rho, u, T, z, z.copy(), float(problem.t_end), {"model": "euler", **stats})
