r"""1D-3V discrete-velocity solver with the full Boltzmann (VHS) collision operator.

Equation (DESIGN §1): ∂t f + v1 ∂x f = Q(f), f = f(x, v), v ∈ [c − L, c + L]³ on the N³
cell-centred grid of :class:`kinclose.kinetic.boltzmann.FastSpectralBoltzmann` (fast spectral
Mouhot–Pareschi operator, kernel constant from μ_ref so that ε = λ_ref/L means the same as for BGK,
λ = 2(5−2ω)(7−2ω)/(15√(2π)) · μ/(ρ√T), hard spheres 16/(5√(2π)) μ/(ρ√T)).

Discretisation
--------------
* Storage: f of shape (nx, N, N, N) is kept as a padded (nx + 4, N³) array with v1 the slowest
  velocity index, so the flattened v1 array is non-decreasing and the BGK transport kernel
  :func:`kinclose.kinetic._kernels._transport_row` (MUSCL, limiter, upwind by the sign of v1) is
  reused unchanged; boundaries (periodic / Maxwellian reservoirs) by ``_kernels.fill_ghosts``.
* Time: ARS(2,2,2) IMEX Runge–Kutta with the BGK penalisation of Filbet & Jin (J. Comput. Phys.
  229, 2010): ∂t f = [T(f) + Q(f) − P(f)] + P(f), P(f) = β (M[f] − f); the bracket is explicit,
  P implicit. Transport T and Q conserve (ρ, ρu, E) and so does P, hence M[f] of an implicit
  stage is the Maxwellian of the explicit prediction f*, and the implicit stage is closed form,
  f = (f* + aβ M[f*]) / (1 + aβ), a = γΔt — exactly as in the BGK DVM. β is fixed per cell and per
  step: β_i = max(max_v ν_i(v), p_i/μ_i) with ν(v) the operator's (truncated) loss frequency at
  the start of the step (an upper bound of the stiffness of Q's loss term).
* Δt = CFL Δx / max|v1| independent of ε (asymptotic preserving, Euler limit as ε → 0).
* M[f] is a conservative discrete Maxwellian: the sampled Maxwellian with the moments of f times
  a correction 1 + c0 + c·ξ + c4|ξ|² (ξ = (v − u)/√T) whose 5 coefficients make the discrete mass,
  momentum (3 components) and energy equal those of f to round-off. max|c_k| measures the grid
  quality; above ``grid_rtol`` a :class:`VelocityGridError` is raised (grid too narrow/coarse).
* Q is made conservative by the operator's L² projection, so ρ, ρu, E are conserved to round-off
  on periodic domains. With ``equilibrium_preserving=True`` the solver uses Q(f) − Q(M[f]) (Filbet,
  Pareschi & Rey 2015, with *our* conservative M[f]) so discrete Maxwellians are exact fixed
  points; it doubles the collision cost. Without it a uniform Maxwellian drifts at the rate of the
  spectral operator's equilibrium error |Q(M)| (see tests/validation/test_boltzmann_dvm.py).

Cost (measured on the shared, loaded 2-core machine, hard spheres, n_dirs = 25 directions on the
half sphere): one Q evaluation per cell ≈ 1.3 ms at N = 16, 2.2 ms at N = 20, 9.5 ms at N = 32,
66 ms at N = 48; a step costs 3 Q per cell with ``equilibrium_preserving`` (default), 2 without;
the numba transport/relaxation kernels are ≈ 5 % of the time. Mach 1.5 shock (N = 20, nx = 40,
Δx = λ1/2, 450 steps to residual 2e-4): 129 s. Mach 5.5: see :func:`steady_shock_boltzmann`.

Chu reduction of the output: ``reduced()`` returns g = Σ f Δv2Δv3 and h = Σ (v2² + v3²) f Δv2Δv3,
(nx, N), so the labeling schema for (g, h) applies unchanged.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Sequence

import numpy as np
from numba import njit, prange
from numpy.typing import ArrayLike, NDArray

from kinclose.kinetic import _kernels as K
from kinclose.kinetic._kernels import BAD_DENSITY, BAD_TEMPERATURE, BAD_VALUE, NGHOST, OK
from kinclose.kinetic.boltzmann import FastSpectralBoltzmann
from kinclose.kinetic.grid import DEFAULT_WIDTH, GRID_RTOL, VelocityGridError
from kinclose.kinetic.shock import check_shock_options, march_steady, shift_rows
from kinclose.kinetic.solver import CFL_MAX, DELTA, GAM, advance_to, check_stage, checked_dt
from kinclose.physics import check_domain_and_gas, check_state

log = logging.getLogger(__name__)

__all__ = ["BoltzmannDVMSolver", "box_for_states", "steady_shock_boltzmann", "run_problem_boltzmann"]

N_MAX = 48
"""Largest N accepted (N³ velocities per cell; N = 48 is already ≈ 110k nodes per cell)."""
N_MAX_TORCH = 96
"""Largest N of the torch solver on a device (N = 64: 2.1 MB per cell and array in float64)."""


# ====================================================================== numba kernels
# (object-free, arrays/scalars only; they would live in a ``_kernels`` module but this file is
# the only one owned by part B of issue 9)


@njit(cache=True)
def _solve5(A, b):
    """Solve the 5×5 system A x = b in place (Gaussian elimination, partial pivoting); returns x."""
    n = 5
    for p in range(n):
        piv = p
        amax = abs(A[p, p])
        for r in range(p + 1, n):
            if abs(A[r, p]) > amax:
                amax = abs(A[r, p])
                piv = r
        if piv != p:
            for c in range(n):
                tmp = A[p, c]
                A[p, c] = A[piv, c]
                A[piv, c] = tmp
            tmp = b[p]
            b[p] = b[piv]
            b[piv] = tmp
        for r in range(p + 1, n):
            fac = A[r, p] / A[p, p]
            for c in range(p, n):
                A[r, c] -= fac * A[p, c]
            b[r] -= fac * b[p]
    for p in range(n - 1, -1, -1):
        s = b[p]
        for c in range(p + 1, n):
            s -= A[p, c] * b[c]
        b[p] = s / A[p, p]
    return b


@njit(cache=True)
def _moments_row(f, v1, v2, v3, dv, m):
    """m (5,) ← (ρ, ρu1, ρu2, ρu3, E) of one flattened cell f (N³,); plain sums (no fastmath)."""
    n = v1.size
    r = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    e = 0.0
    j = 0
    for i1 in range(n):
        for i2 in range(n):
            for i3 in range(n):
                fj = f[j]
                r += fj
                a1 += v1[i1] * fj
                a2 += v2[i2] * fj
                a3 += v3[i3] * fj
                e += (v1[i1] * v1[i1] + v2[i2] * v2[i2] + v3[i3] * v3[i3]) * fj
                j += 1
    m[0] = r * dv
    m[1] = a1 * dv
    m[2] = a2 * dv
    m[3] = a3 * dv
    m[4] = 0.5 * e * dv


@njit(cache=True)
def _maxwellian_row(m, v1, v2, v3, dv, out, e1, e2, e3, A, b):
    """Conservative discrete Maxwellian with moments m = (ρ, ρu1, ρu2, ρu3, E) into out (N³,).

    out = M_s (1 + c0 + c1ξ1 + c2ξ2 + c3ξ3 + c4|ξ|²), M_s the sampled Maxwellian, the c_k solving the
    5×5 system that makes the discrete moments of out equal m. e1, e2, e3 (N,), A (5, 5), b (5,)
    are scratch. Returns (error code, max |c_k|).
    """
    n = v1.size
    rho = m[0]
    if not math.isfinite(rho):
        return BAD_VALUE, 0.0
    if not (rho > 0.0):
        return BAD_DENSITY, 0.0
    u1 = m[1] / rho
    u2 = m[2] / rho
    u3 = m[3] / rho
    T = (2.0 * m[4] / rho - u1 * u1 - u2 * u2 - u3 * u3) / 3.0
    if not math.isfinite(T):
        return BAD_VALUE, 0.0
    if not (T > 0.0):
        return BAD_TEMPERATURE, 0.0
    sT = math.sqrt(T)
    coef = rho * (2.0 * math.pi * T) ** -1.5
    for i in range(n):
        e1[i] = math.exp(-0.5 * (v1[i] - u1) ** 2 / T)
        e2[i] = math.exp(-0.5 * (v2[i] - u2) ** 2 / T)
        e3[i] = math.exp(-0.5 * (v3[i] - u3) ** 2 / T)
    for a in range(5):
        b[a] = 0.0
        for c in range(5):
            A[a, c] = 0.0
    j = 0
    for i1 in range(n):
        x1 = (v1[i1] - u1) / sT
        for i2 in range(n):
            x2 = (v2[i2] - u2) / sT
            w12 = coef * e1[i1] * e2[i2]
            for i3 in range(n):
                x3 = (v3[i3] - u3) / sT
                Ms = w12 * e3[i3]
                out[j] = Ms
                phi1 = v1[i1]
                phi2 = v2[i2]
                phi3 = v3[i3]
                phi4 = 0.5 * (phi1 * phi1 + phi2 * phi2 + phi3 * phi3)
                xx = x1 * x1 + x2 * x2 + x3 * x3
                for a in range(5):
                    if a == 0:
                        pa = Ms
                    elif a == 1:
                        pa = phi1 * Ms
                    elif a == 2:
                        pa = phi2 * Ms
                    elif a == 3:
                        pa = phi3 * Ms
                    else:
                        pa = phi4 * Ms
                    b[a] += pa
                    A[a, 0] += pa
                    A[a, 1] += pa * x1
                    A[a, 2] += pa * x2
                    A[a, 3] += pa * x3
                    A[a, 4] += pa * xx
                j += 1
    for a in range(5):
        b[a] = m[a] / dv - b[a]
    A0 = A.copy()
    cmax = 0.0
    # two passes: the second (iterative refinement with the same matrix) removes the O(cond(A) ε)
    # moment residual of the first, so the moments match to round-off even when aβ ≫ 1 amplifies it
    for it in range(2):
        if it == 1:
            mm = np.empty(5)
            _moments_row(out, v1, v2, v3, dv, mm)
            for a in range(5):
                b[a] = (m[a] - mm[a]) / dv
                for cc in range(5):
                    A[a, cc] = A0[a, cc]
        c = _solve5(A, b)
        for a in range(5):
            if not math.isfinite(c[a]):
                return BAD_VALUE, 0.0
        if it == 0:
            for a in range(5):
                cmax = max(cmax, abs(c[a]))
        j = 0
        for i1 in range(n):
            x1 = (v1[i1] - u1) / sT
            for i2 in range(n):
                x2 = (v2[i2] - u2) / sT
                w12 = coef * e1[i1] * e2[i2]
                for i3 in range(n):
                    x3 = (v3[i3] - u3) / sT
                    out[j] += w12 * e3[i3] * (c[0] + c[1] * x1 + c[2] * x2 + c[3] * x3
                                              + c[4] * (x1 * x1 + x2 * x2 + x3 * x3))
                    j += 1
    return OK, cmax


@njit(cache=True, parallel=True)
def maxwellian_cells(f, v1, v2, v3, dv, out, flag, corr):
    """out[i] ← conservative discrete Maxwellian of the interior row i + 2 of padded f (nx+4, N³)."""
    nx = out.shape[0]
    n = v1.size
    for i in prange(nx):
        m = np.empty(5)
        _moments_row(f[i + NGHOST], v1, v2, v3, dv, m)
        code, cm = _maxwellian_row(m, v1, v2, v3, dv, out[i], np.empty(n), np.empty(n), np.empty(n),
                                   np.empty((5, 5)), np.empty(5))
        flag[i] = code
        corr[i] = cm


@njit(cache=True, parallel=True)
def maxwellian_states(rho, u1, T, v1, v2, v3, dv, out, flag, corr):
    """out (n, N³) ← conservative discrete Maxwellians of the states (ρ, (u1, 0, 0), T), each (n,)."""
    nc = rho.size
    n = v1.size
    for i in prange(nc):
        m = np.empty(5)
        m[0] = rho[i]
        m[1] = rho[i] * u1[i]
        m[2] = 0.0
        m[3] = 0.0
        m[4] = 0.5 * rho[i] * u1[i] * u1[i] + 1.5 * rho[i] * T[i]
        code, cm = _maxwellian_row(m, v1, v2, v3, dv, out[i], np.empty(n), np.empty(n), np.empty(n),
                                   np.empty((5, 5)), np.empty(5))
        flag[i] = code
        corr[i] = cm


@njit(cache=True)
def _relax_row(fs, Mt, an, v1, v2, v3, dv, e1, e2, e3, A, b, m):
    """In place fs ← (fs + an M[fs]) / (1 + an); Mt (N³,) receives M[fs]. Returns (code, corr)."""
    _moments_row(fs, v1, v2, v3, dv, m)
    code, cm = _maxwellian_row(m, v1, v2, v3, dv, Mt, e1, e2, e3, A, b)
    if code != OK:
        return code, cm
    inv = 1.0 / (1.0 + an)
    for j in range(fs.size):
        fs[j] = (fs[j] + an * Mt[j]) * inv
    return OK, cm


@njit(cache=True, parallel=True)
def bz_stage2(f, Q1, M1, beta, vflat, v1, v2, v3, j0, dv, dx, dt, gam, limiter, f2, M2, work, flag, corr):
    """Stage 2 of ARS(2,2,2): f2 = R_{γΔt}(f + γΔt [T(f) + Q1 − β(M1 − f)]) on interior rows.

    vflat (N³,) is the non-decreasing flattened v1 (transport, upwinding from index j0 on);
    v1, v2, v3 (N,) are the 1D nodes (moments and Maxwellians).

    f, f2 (nx+4, N³) padded; Q1, M1, M2 (nx, N³); beta (nx,); work (nx, 2, N³) scratch;
    M2 receives M[f2]; flag, corr (nx,) error codes and Maxwellian-correction sizes.
    """
    nx = f.shape[0] - 2 * NGHOST
    nv = f.shape[1]
    n = v1.size
    a = gam * dt
    for i in prange(nx):
        k = i + NGHOST
        w = work[i, 0]
        K._transport_row(f, k, vflat, j0, limiter, 1.0 / dx, w)
        b_ = beta[i]
        for j in range(nv):
            f2[k, j] = f[k, j] + a * (w[j] + Q1[i, j] - b_ * (M1[i, j] - f[k, j]))
        code, cm = _relax_row(f2[k], M2[i], a * b_, v1, v2, v3, dv, np.empty(n), np.empty(n), np.empty(n),
                              np.empty((5, 5)), np.empty(5), np.empty(5))
        flag[i] = code
        corr[i] = cm


@njit(cache=True, parallel=True)
def bz_stage3(f, f2, Q1, M1, Q2, M2, beta, vflat, v1, v2, v3, j0, dv, dx, dt, gam, delta, limiter, fout, M3,
              work, flag, corr):
    """Final stage of ARS(2,2,2) (stiffly accurate: f^{n+1} = f3).

    f3* = f + Δt[δ E1 + (1−δ) E2] + Δt(1−γ) β(M2 − f2),  E_s = T(f_s) + Q_s − β(M_s − f_s);
    f^{n+1} = R_{γΔt}(f3*); M3 (nx, N³) receives M[f^{n+1}].
    """
    nx = f.shape[0] - 2 * NGHOST
    nv = f.shape[1]
    n = v1.size
    a = gam * dt
    for i in prange(nx):
        k = i + NGHOST
        w0 = work[i, 0]
        w1 = work[i, 1]
        K._transport_row(f, k, vflat, j0, limiter, 1.0 / dx, w0)
        K._transport_row(f2, k, vflat, j0, limiter, 1.0 / dx, w1)
        b_ = beta[i]
        for j in range(nv):
            e1 = w0[j] + Q1[i, j] - b_ * (M1[i, j] - f[k, j])
            i2 = b_ * (M2[i, j] - f2[k, j])
            e2 = w1[j] + Q2[i, j] - i2
            fout[k, j] = f[k, j] + dt * (delta * e1 + (1.0 - delta) * e2 + (1.0 - gam) * i2)
        code, cm = _relax_row(fout[k], M3[i], a * b_, v1, v2, v3, dv, np.empty(n), np.empty(n), np.empty(n),
                              np.empty((5, 5)), np.empty(5), np.empty(5))
        flag[i] = code
        corr[i] = cm


@njit(cache=True, parallel=True)
def fields_cells(f, v1, v2, v3, dv, out):
    """out (nx, 5) ← (ρ, u, T, σ, q) of the interior rows of padded f (nx+4, N³).

    u = u1, σ = ∫ c1² f dv − ρT, q = ½ ∫ c1 |c|² f dv with c = v − (u1, u2, u3).
    """
    nx = out.shape[0]
    n = v1.size
    for i in prange(nx):
        row = f[i + NGHOST]
        m = np.empty(5)
        _moments_row(row, v1, v2, v3, dv, m)
        rho = m[0]
        u1 = m[1] / rho
        u2 = m[2] / rho
        u3 = m[3] / rho
        T = (2.0 * m[4] / rho - u1 * u1 - u2 * u2 - u3 * u3) / 3.0
        s = 0.0
        q = 0.0
        j = 0
        for i1 in range(n):
            c1 = v1[i1] - u1
            for i2 in range(n):
                c2 = v2[i2] - u2
                for i3 in range(n):
                    c3 = v3[i3] - u3
                    fj = row[j]
                    s += c1 * c1 * fj
                    q += c1 * (c1 * c1 + c2 * c2 + c3 * c3) * fj
                    j += 1
        out[i, 0] = rho
        out[i, 1] = u1
        out[i, 2] = T
        out[i, 3] = s * dv - rho * T
        out[i, 4] = 0.5 * q * dv


@njit(cache=True, parallel=True)
def reduce_cells(f, v2, v3, dv23, g, h):
    """Chu reduction of the interior rows: g (nx, N) = Σ f Δv2Δv3, h = Σ (v2² + v3²) f Δv2Δv3."""
    nx = g.shape[0]
    n = v2.size
    for i in prange(nx):
        row = f[i + NGHOST]
        j = 0
        for i1 in range(n):
            sg = 0.0
            sh = 0.0
            for i2 in range(n):
                for i3 in range(n):
                    fj = row[j]
                    sg += fj
                    sh += (v2[i2] * v2[i2] + v3[i3] * v3[i3]) * fj
                    j += 1
            g[i, i1] = sg * dv23
            h[i, i1] = sh * dv23


# ====================================================================== solver


def box_for_states(u: ArrayLike, T: ArrayLike, width: float = DEFAULT_WIDTH) -> tuple[float, float]:
    """Cubic velocity box (L, c1) covering u ± width √T in v1 and ± width √T in v2, v3 for all states.

    Parameters
    ----------
    u, T : array_like, bulk velocities (along x) and temperatures of the states present.
    width : half-width in thermal speeds.

    Returns
    -------
    L : float, half width of [c − L, c + L]³; c1 : float, centre along v1 (c2 = c3 = 0).
    """
    u = np.asarray(u, dtype=float).ravel()
    T = np.asarray(T, dtype=float).ravel()
    check_state(np.ones_like(T), u, T, where="velocity-box states")
    s = width * np.sqrt(T)
    lo, hi = float(np.min(u - s)), float(np.max(u + s))
    return max(0.5 * (hi - lo), float(np.max(s))), 0.5 * (lo + hi)


class BoltzmannDVMSolver:
    """Discrete-velocity solver of ∂t f + v1 ∂x f = Q(f) on x ∈ [x_left, x_right) with ``nx`` cells.

    Parameters
    ----------
    x_left, x_right, nx : domain and number of cells (nx ≥ 4).
    n : velocity points per direction N (even, 4 ≤ N ≤ 48).
    L : half width of the velocity box [c − L, c + L]³.
    center : float (c1, with c2 = c3 = 0) or 3 floats; box centre.
    mu_ref : viscosity coefficient, μ = μ_ref T^ω; ``math.inf`` gives free streaming (Q = 0).
    omega : VHS exponent ω ∈ [0.5, 1] (0.5 hard spheres, 1 Maxwell molecules).
    bc : "periodic" or "reservoir"; reservoirs ``left``/``right`` are (ρ, u, T) tuples.
    cfl : max|v1| Δt/Δx, 0 < cfl ≤ 1.
    limiter : one of ``_kernels.LIMITERS``.
    left, right : reservoir states (ρ, u, T) for ``bc="reservoir"``.
    n_dirs : directions on the half sphere of the spectral operator (rounded up to a Lebedev rule).
    equilibrium_preserving : use Q(f) − Q(M[f]) (exact discrete Maxwellian fixed points, 2× cost).
    grid_rtol : largest accepted Maxwellian correction max|c_k| (grid quality, as the BGK DVM).
    tail_tol : largest relative Maxwellian mass outside the box (operator's narrow-grid check).
    threads : numba threads (None: leave as is).
    """

    n_max = N_MAX
    """Largest accepted N (the torch subclass on a GPU allows more)."""

    def __init__(
        self,
        x_left: float,
        x_right: float,
        nx: int,
        n: int,
        L: float,
        center: float | Sequence[float] = 0.0,
        mu_ref: float = 1.0,
        omega: float = 0.5,
        bc: str = "periodic",
        cfl: float = 0.5,
        limiter: str = "mc",
        left: tuple[float, float, float] | None = None,
        right: tuple[float, float, float] | None = None,
        n_dirs: int = 25,
        equilibrium_preserving: bool = True,
        grid_rtol: float = GRID_RTOL,
        tail_tol: float = 1e-8,
        threads: int | None = None,
    ) -> None:
        if not (0.0 < cfl <= CFL_MAX):
            raise ValueError(f"cfl={cfl} is outside the stable range (0, {CFL_MAX}]; lower cfl")
        if limiter not in K.LIMITERS:
            raise ValueError(f"unknown limiter {limiter!r}; choose one of {sorted(K.LIMITERS)}")
        if bc not in ("periodic", "reservoir"):
            raise ValueError(f"unknown boundary condition {bc!r}; choose 'periodic' or 'reservoir'")
        if nx < 4:
            raise ValueError(f"nx must be >= 4, got {nx}")
        check_domain_and_gas(x_left, x_right, mu_ref, omega)
        if not (isinstance(n, (int, np.integer)) and 4 <= n <= self.n_max and n % 2 == 0):
            raise ValueError(
                f"n (velocity points per direction) must be an even integer in [4, {self.n_max}], got {n!r}; "
                f"the Boltzmann DVM stores n³ velocities per cell, use n = 16…32"
            )
        if not (math.isfinite(L) and L > 0.0):
            raise ValueError(f"L must be positive and finite, got {L!r}")
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        if c.size == 1:
            c = np.array([float(c[0]), 0.0, 0.0])
        if c.shape != (3,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center must be a finite float or 3 finite floats, got {center!r}")
        if threads is not None:
            import numba

            numba.set_num_threads(int(threads))
        self.x_left, self.x_right, self.nx = float(x_left), float(x_right), int(nx)
        self.dx = (self.x_right - self.x_left) / self.nx
        self.n = int(n)
        self.L = float(L)
        self.center = c
        self.mu_ref = float(mu_ref)
        self.omega = float(omega)
        self.periodic = bc == "periodic"
        self.cfl = float(cfl)
        self.limiter = limiter
        self.grid_rtol = float(grid_rtol)
        self.tail_tol = float(tail_tol)
        self.equilibrium_preserving = bool(equilibrium_preserving)
        self.collisions = math.isfinite(self.mu_ref)
        self.op: FastSpectralBoltzmann | None = None
        if self.collisions:
            self.op = FastSpectralBoltzmann(self.n, self.L, self.omega, mu_ref=self.mu_ref, n_dirs=n_dirs,
                                            center=c, tail_tol=tail_tol)
        elif not (0.5 <= self.omega <= 1.0):
            raise ValueError(f"omega must lie in [0.5, 1], got {omega!r}")
        self.h = 2.0 * self.L / self.n
        self.dv = self.h**3
        self.v1d = [np.ascontiguousarray(c[i] - self.L + (np.arange(self.n) + 0.5) * self.h) for i in range(3)]
        if self.op is not None:  # same grid as the operator's (why: Q acts on our nodal values)
            assert all(np.allclose(a, b, rtol=0, atol=1e-13 * self.L) for a, b in zip(self.v1d, self.op.v1d))
        self.nv = self.n**3
        self.v1 = np.ascontiguousarray(np.repeat(self.v1d[0], self.n * self.n))  # flat, non-decreasing
        self.j0 = int(np.searchsorted(self.v1, 0.0, side="right"))
        self.t = 0.0
        self.steps = 0
        self.collision_wall_s = 0.0
        self.transport_wall_s = 0.0
        self._allocate()
        if not self.periodic:
            if left is None or right is None:
                raise ValueError("reservoir boundaries need left=(rho, u, T) and right=(rho, u, T)")
            self.set_reservoirs(left, right)

    def _allocate(self) -> None:
        """Preallocate f (padded), the stage arrays and the reservoir rows."""
        nx, nv = self.nx, self.nv
        self.f = K.empty_padded(nx, nv)
        self._f2 = K.empty_padded(nx, nv)
        self._fn = K.empty_padded(nx, nv)
        self._Q1 = np.zeros((nx, nv))
        self._Q2 = np.zeros((nx, nv))
        self._M1 = np.zeros((nx, nv))
        self._M2 = np.zeros((nx, nv))
        self._M3 = np.zeros((nx, nv))
        self._QM = np.zeros((nx, nv)) if self.equilibrium_preserving else np.zeros((0, nv))
        self._beta = np.zeros(nx)
        self._work = np.zeros((nx, 2, nv))
        self._flag = np.zeros(nx, dtype=np.int64)
        self._corr = np.zeros(nx)
        self._left = np.zeros(nv)
        self._right = np.zeros(nv)

    # ------------------------------------------------------------------ setup
    @property
    def x(self) -> NDArray[np.float64]:
        """(nx,) cell centres."""
        return self.x_left + (np.arange(self.nx) + 0.5) * self.dx

    @property
    def dt_max(self) -> float:
        """Δt = CFL Δx / max|v1| (independent of the Knudsen number)."""
        return self.cfl * self.dx / float(np.max(np.abs(self.v1d[0])))

    def check_covers(self, rho: ArrayLike, u: ArrayLike, T: ArrayLike, where: str = "state") -> None:
        """Raise :class:`VelocityGridError` if a Maxwellian (ρ, (u, 0, 0), T) has more than ``tail_tol``
        of its mass outside the box (the operator's narrow-grid check) or needs a moment correction
        above ``grid_rtol`` (grid too coarse)."""
        rho, u, T = (np.atleast_1d(np.asarray(a, dtype=float)).ravel() for a in (rho, u, T))
        check_state(rho, u, T, where=where)
        from scipy.special import ndtr

        lo = self.center - self.L
        hi = self.center + self.L
        for i in range(rho.size):
            uu = np.array([u[i], 0.0, 0.0])
            st = math.sqrt(T[i])
            outside = 1.0 - float(np.prod(ndtr((hi - uu) / st) - ndtr((lo - uu) / st)))
            if outside > self.tail_tol:
                raise VelocityGridError(
                    f"velocity box [c-L, c+L]^3 (L={self.L:g}, c={self.center.tolist()}) too narrow for the {where} "
                    f"rho={rho[i]:.4g}, u={u[i]:.4g}, T={T[i]:.4g}: relative mass {outside:.2e} > tail_tol="
                    f"{self.tail_tol:g} outside; use box_for_states() to choose L and the centre"
                )
        if self.op is not None:  # the operator's own check (same tail criterion)
            for i in range(rho.size):
                try:
                    self.op.check_input(self.op.maxwellian(rho[i], [u[i], 0.0, 0.0], T[i]))
                except ValueError as exc:
                    raise VelocityGridError(f"{where}: {exc}") from exc
        out = np.empty((rho.size, self.nv))
        flag = np.zeros(rho.size, dtype=np.int64)
        corr = np.zeros(rho.size)
        maxwellian_states(rho, u, T, *self.v1d, self.dv, out, flag, corr)
        if np.any(corr > self.grid_rtol):
            i = int(np.argmax(corr))
            raise VelocityGridError(
                f"the Maxwellian of the {where} rho={rho[i]:.4g}, u={u[i]:.4g}, T={T[i]:.4g} needs a relative moment "
                f"correction {corr[i]:.2e} > grid_rtol={self.grid_rtol:g} on the N={self.n} grid (dv={self.h:.3g}, "
                f"sqrt(T)={math.sqrt(T[i]):.3g}): the grid is too coarse, raise n"
            )

    def maxwellians(self, rho: ArrayLike, u: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
        """Conservative discrete Maxwellians of states (ρ, (u, 0, 0), T), each (m,) → (m, N³)."""
        rho, u, T = (np.ascontiguousarray(np.atleast_1d(a), dtype=np.float64) for a in (rho, u, T))
        out = np.empty((rho.size, self.nv))
        flag = np.zeros(rho.size, dtype=np.int64)
        corr = np.zeros(rho.size)
        maxwellian_states(rho, u, T, *self.v1d, self.dv, out, flag, corr)
        if np.any(flag):
            raise ValueError(f"invalid Maxwellian state(s): error codes {flag.tolist()}")
        return out

    def set_reservoirs(self, left: tuple[float, float, float], right: tuple[float, float, float]) -> None:
        """Reservoir (ghost-cell) Maxwellians for ``bc="reservoir"``; each (ρ, u, T)."""
        for name, st in (("left", left), ("right", right)):
            self.check_covers(st[0], st[1], st[2], where=f"{name} reservoir")
        self._left = self._to_storage(self.maxwellians(left[0], left[1], left[2])[0])
        self._right = self._to_storage(self.maxwellians(right[0], right[1], right[2])[0])

    def set_maxwellian(self, rho: NDArray, u: NDArray, T: NDArray) -> None:
        """Initialise with the local conservative discrete Maxwellian of (ρ, u, T), each (nx,)."""
        rho, u, T = (np.ascontiguousarray(np.broadcast_to(a, (self.nx,)), dtype=np.float64) for a in (rho, u, T))
        self.check_covers(rho, u, T, where="initial data")
        self.interior[:] = self._to_storage(self.maxwellians(rho, u, T))

    def set_distribution(self, f: ArrayLike) -> None:
        """Initialise with an arbitrary distribution f (nx, N, N, N) or (nx, N³), f ≥ 0, finite."""
        a = np.asarray(f, dtype=float)
        if a.shape not in ((self.nx, self.n, self.n, self.n), (self.nx, self.nv)):
            raise ValueError(f"f must have shape {(self.nx, self.n, self.n, self.n)}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("f must be finite")
        if np.any(a < 0):
            raise ValueError("f must be non-negative")
        self.interior[:] = self._to_storage(a.reshape(self.nx, self.nv))

    def _to_storage(self, a: NDArray[np.float64]) -> NDArray[np.float64]:
        """Host rows (m, N³) as the solver stores f (here: a C-contiguous float64 array)."""
        return np.ascontiguousarray(a, dtype=np.float64)

    # ------------------------------------------------------------------ stepping
    def _collide(self, f_rows: NDArray, M: NDArray | None, out: NDArray, beta: NDArray | None) -> None:
        """out[i] ← Q(f_i) (conservative); beta[i] ← β_i (stage 1 only).

        Equilibrium preserving: with M given, self._QM[i] ← Q(M_i) is computed first (stage 1);
        it is subtracted at both stages (frozen within the step: M[f2] − M[f^n] = O(Δt), so the
        change of the O(spectral error) correction is O(Δt · |Q(M)|); a uniform discrete Maxwellian
        stays an exact fixed point and the cost is 3 instead of 4 Q evaluations per step).
        """
        op = self.op
        assert op is not None
        N = self.n
        for i in range(self.nx):
            fi = f_rows[i].reshape(N, N, N)
            gain, nu = op.gain_loss(fi)
            q = gain - nu * fi
            if self.equilibrium_preserving:
                if M is not None:
                    Mi = M[i].reshape(N, N, N)
                    gm, num = op.gain_loss(Mi)
                    self._QM[i] = (gm - num * Mi).reshape(-1)
                q -= self._QM[i].reshape(N, N, N)
            op.project(q)
            out[i] = q.reshape(-1)
            if beta is not None:
                rho = f_rows[i].sum() * self.dv
                # p/μ bound too: the spectral ν(v) can undershoot on very coarse grids
                beta[i] = max(float(nu.max()), float(self._p_over_mu_cell(f_rows[i], rho)))

    def _p_over_mu_cell(self, fi: NDArray, rho: float) -> float:
        m = np.empty(5)
        _moments_row(fi, *self.v1d, self.dv, m)
        u = m[1:4] / m[0]
        T = (2.0 * m[4] / m[0] - u @ u) / 3.0
        return rho * max(T, 0.0) ** (1.0 - self.omega) / self.mu_ref

    def step(self, dt: float | None = None) -> None:
        """One ARS(2,2,2) step of size ``dt`` (default and maximum: ``dt_max``)."""
        dt = checked_dt(self, dt)
        lim = K.LIMITERS[self.limiter]
        v1, v2, v3 = self.v1d
        K.fill_ghosts(self.f, self.periodic, self._left, self._right)
        t0 = time.perf_counter()
        if self.collisions:
            maxwellian_cells(self.f, v1, v2, v3, self.dv, self._M1, self._flag, self._corr)
            self._check("stage 1")
            self._collide(self.f[NGHOST:-NGHOST], self._M1, self._Q1, self._beta)
        else:
            self._Q1[:] = 0.0
            self._M1[:] = 0.0
            self._beta[:] = 0.0
        t1 = time.perf_counter()
        bz_stage2(self.f, self._Q1, self._M1, self._beta, self.v1, v1, v2, v3, self.j0, self.dv, self.dx, dt, GAM,
                  lim, self._f2, self._M2, self._work, self._flag, self._corr)
        self._check("stage 2")
        K.fill_ghosts(self._f2, self.periodic, self._left, self._right)
        t2 = time.perf_counter()
        if self.collisions:
            self._collide(self._f2[NGHOST:-NGHOST], None, self._Q2, None)
        else:
            self._Q2[:] = 0.0
            self._M2[:] = 0.0
        t3 = time.perf_counter()
        bz_stage3(self.f, self._f2, self._Q1, self._M1, self._Q2, self._M2, self._beta, self.v1, v1, v2, v3, self.j0,
                  self.dv, self.dx, dt, GAM, DELTA, lim, self._fn, self._M3, self._work, self._flag, self._corr)
        self._check("stage 3")
        t4 = time.perf_counter()
        self.collision_wall_s += (t1 - t0) + (t3 - t2)
        self.transport_wall_s += (t2 - t1) + (t4 - t3)
        self.f, self._fn = self._fn, self.f
        self.t += dt
        self.steps += 1

    def _check(self, where: str) -> None:
        check_stage(self, where, "Boltzmann DVM",
                    f"the velocity box [c-L, c+L]^3 (L={self.L:g}, c={self.center.tolist()}, N={self.n})",
                    "box is too narrow or too coarse for this state; widen L or raise n")

    def run(self, t_end: float, progress: bool | None = None, log_every_s: float = 30.0) -> None:
        """Advance to ``t_end`` (the last step is shortened to land on it)."""
        advance_to(self, t_end, progress, log_every_s, "Boltzmann DVM")

    # ------------------------------------------------------------------ output
    def fields_array(self) -> NDArray[np.float64]:
        """(nx, 5) array of ρ, u, T, σ, q."""
        out = np.empty((self.nx, 5))
        fields_cells(self.f, *self.v1d, self.dv, out)
        return out

    def fields(self):  # -> kinclose.problem.Fields
        from kinclose.problem import Fields

        a = self.fields_array()
        return Fields(self.x, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], self.t,
                      stats={"steps": self.steps, "n": self.n, "nv": self.nv, "L": self.L,
                             "center": self.center.tolist(), "collision": "boltzmann"})

    def totals(self) -> NDArray[np.float64]:
        """(3,) total mass, momentum (x) and energy Σ_i U_i Δx (plain sums, no fastmath)."""
        f = self.f[NGHOST:-NGHOST]
        v1, v2, v3 = self.v1d
        sq = (v1[:, None, None] ** 2 + v2[None, :, None] ** 2 + v3[None, None, :] ** 2).reshape(-1)
        return np.array([f.sum(), (f * self.v1).sum(), 0.5 * (f * sq).sum()]) * self.dv * self.dx

    def shift_cells(self, shift: int) -> None:
        """Move the interior profile by ``shift`` cells towards x = 0, refilling with the reservoirs."""
        shift_rows(self.f[NGHOST:-NGHOST], shift, self._left, self._right)

    @property
    def interior(self) -> NDArray[np.float64]:
        """View (nx, N³) of f without ghost cells (v1 slowest index)."""
        return self.f[NGHOST:-NGHOST]

    def distribution(self) -> NDArray[np.float64]:
        """View (nx, N, N, N) of f without ghost cells, indices (v1, v2, v3)."""
        return self.interior.reshape(self.nx, self.n, self.n, self.n)

    def reduced(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Chu-reduced (g, h), each (nx, N) on the v1 nodes ``v1d[0]`` with Δv1 = h:
        g = Σ f Δv2Δv3, h = Σ (v2² + v3²) f Δv2Δv3."""
        g = np.empty((self.nx, self.n))
        h = np.empty((self.nx, self.n))
        reduce_cells(self.f, self.v1d[1], self.v1d[2], self.h * self.h, g, h)
        return g, h

    def reduced_collision_terms(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Chu-reduced collision terms of the current state, computed as the time step does
        (conservative projection, and Q(f) − Q(M[f]) with the conservative discrete Maxwellian M[f]
        when ``equilibrium_preserving``):

            Qg = Σ_{v2,v3} Q(f) Δv2Δv3,   Qh = Σ_{v2,v3} (v2² + v3²) Q(f) Δv2Δv3,   each (nx, N).

        Free streaming (μ_ref = inf) gives zeros.
        """
        nx, N, nv = self.nx, self.n, self.nv
        Qg = np.zeros((nx, N))
        Qh = np.zeros((nx, N))
        if self.op is None:
            return Qg, Qh
        M = None
        if self.equilibrium_preserving:
            M = np.empty((nx, nv))
            maxwellian_cells(self.f, *self.v1d, self.dv, M, self._flag, self._corr)
            self._check("collision term")
        Qp = K.empty_padded(nx, nv)  # reduce_cells reads the interior rows of a padded array
        self._collide(self.interior, M, Qp[NGHOST:-NGHOST], None)
        reduce_cells(Qp, self.v1d[1], self.v1d[2], self.h * self.h, Qg, Qh)
        return Qg, Qh


# ====================================================================== drivers


def run_problem_boltzmann(
    problem: Any,
    n: int = 16,
    cfl: float = 0.5,
    limiter: str = "mc",
    v_width: float = DEFAULT_WIDTH,
    T_margin: float = 1.5,
    n_dirs: int = 25,
    equilibrium_preserving: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
    grid_rtol: float = GRID_RTOL,
    tail_tol: float = 1e-8,
):
    """Run the Boltzmann DVM on a :class:`kinclose.problem.Problem` until ``problem.t_end``.

    The cubic box covers u ± v_width √(T_margin T) of every initial state (:func:`box_for_states`);
    ``grid_rtol`` and ``tail_tol`` are the grid checks of :class:`BoltzmannDVMSolver`.
    Returns :class:`kinclose.problem.Fields` (stats hold wall time and the grid).
    """
    L, c1 = box_for_states(problem.u, problem.T * T_margin, v_width)
    left = right = None
    if problem.bc == "reservoir":
        left = (problem.rho[0], problem.u[0], problem.T[0])
        right = (problem.rho[-1], problem.u[-1], problem.T[-1])
    s = BoltzmannDVMSolver(problem.x_left, problem.x_right, problem.nx, n, L, c1, problem.mu_ref, problem.omega,
                           problem.bc, cfl, limiter, left, right, n_dirs=n_dirs,
                           equilibrium_preserving=equilibrium_preserving, threads=threads, grid_rtol=grid_rtol,
                           tail_tol=tail_tol)
    s.set_maxwellian(problem.rho, problem.u, problem.T)
    t0 = time.perf_counter()
    s.run(problem.t_end, progress=progress)
    out = s.fields()
    out.stats["wall_s"] = time.perf_counter() - t0
    return out


def steady_shock_boltzmann(
    states: Any,
    *,
    omega: float = 0.5,
    x_min: float = -15.0,
    x_max: float = 10.0,
    dx: float = 0.25,
    nv: int = 16,
    v_width: float = DEFAULT_WIDTH,
    T_margin: float = 1.0,
    cfl: float = 0.9,
    limiter: str = "mc",
    tol: float = 1e-4,
    levels: int = 1,
    max_steps: int = 20000,
    check_every: int = 25,
    n_dirs: int = 25,
    equilibrium_preserving: bool = True,
    initial: Any = "bgk",
    threads: int | None = None,
    progress: bool | None = None,
    device: str | None = None,
    collision_dtype: str = "float64",
    max_wall_s: float = math.inf,
):
    """Steady Boltzmann (VHS) shock by pinned time marching; x in λ1, profile not yet centred.

    Same method as :func:`kinclose.kinetic.shock.steady_shock` (which dispatches here for
    ``collision="boltzmann"``): reservoirs hold the Rankine–Hugoniot Maxwellians, the profile is
    re-centred by whole cells, and marching stops when the drift-corrected density residual is below
    ``tol``. ``nv`` is the number of velocity points **per direction** N (the grid has N³ nodes).

    The initial profile is, with ``initial="bgk"``, the local Maxwellian of the converged BGK DVM
    shock on the same x grid (cheap; it removes most of the transient, the steady state does not
    depend on it), a tanh step with ``initial="tanh"``, or the local Maxwellian of a given profile
    (any object with arrays ``x``, ``rho``, ``u``, ``T``, e.g. a coarser Boltzmann
    :class:`~kinclose.shockprofile.ShockProfile`; centred, it is interpolated onto the grid).

    Resolution rule: the 1e-8 Maxwellian-correction check needs Δv ≲ 0.8 √T1 upstream and the box
    must cover u ± 6.5 √T of both states. ``device`` (e.g. ``"cuda"``) runs the torch solver
    :class:`~kinclose.kinetic.boltzmann_torch.TorchBoltzmannDVMSolver` (N up to 96) with the FFT work
    in ``collision_dtype``; ``max_wall_s`` bounds the marching time (split evenly over the levels, the
    time a level leaves unused goes to the next; ``metrics["converged"]`` says whether tol was met).
    Measured (loaded 2-core machine): Mach 1.5, N = 20
    (L = 7.9), nx = 40 (Δx = λ1/2, [−12, 8]), tol 2e-4: 450 steps, 129 s, λ1/δ = 0.152 (BGK at the
    same Δx: 0.190). Mach 5.5: L ≈ 23 ⇒ N = 64; on the CPU Q ≈ 165 ms per cell, 3 Q per cell and step,
    so the 800 steps × 60 cells (Δx = λ1/2 on [−20, 10], from the BGK profile) would take ≈ 7 h; with
    ``device="cuda"`` they took 115 s on one H100 (scripts/boltzmann_shock.py, results/).
    """
    from kinclose.kinetic.shock import prolong, steady_shock
    from kinclose.physics import mfp_coefficient
    from kinclose.shockprofile import ShockProfile

    check_shock_options(omega, x_min, x_max, dx, levels, tol, max_steps, check_every)
    n_max = max_n(device)
    if not (isinstance(nv, (int, np.integer)) and nv <= n_max):
        raise ValueError(
            f"collision='boltzmann' uses nv = N points per velocity direction (N³ nodes per cell, at most {n_max}"
            f"{'' if device else ' on the CPU'}); got nv={nv}. "
            f"Use e.g. model.nv=16 (Mach <= 2) with model.dx=0.25 model.levels=1 model.tol=1e-4"
        )
    if collision_dtype not in ("float64", "float32"):
        raise ValueError(f"collision_dtype must be 'float64' or 'float32', got {collision_dtype!r}")
    if isinstance(initial, str) and initial not in ("bgk", "tanh"):
        raise ValueError(f"initial must be 'bgk', 'tanh' or a profile with x, rho, u, T; got {initial!r}")
    s = states
    L, c1 = box_for_states([s.u1, s.u2], [s.T1, s.T2 * T_margin], v_width)
    mu_ref = 1.0 / mfp_coefficient(omega)  # λ1 = 1 for ρ1 = T1 = 1
    coarse = 2 ** (levels - 1)
    nx_coarse = max(8, int(round((x_max - x_min) / (dx * coarse))))

    t0 = time.perf_counter()
    bgk_wall = 0.0
    level_steps = []
    solver = None
    total_updates = cell_steps = 0
    coll_wall = 0.0
    for level in range(levels):
        nx = nx_coarse * 2**level
        new = make_solver(x_min, x_max, nx, int(nv), L, c1, mu_ref, omega, "reservoir", cfl, limiter,
                          left=(s.rho1, s.u1, s.T1), right=(s.rho2, s.u2, s.T2), n_dirs=n_dirs,
                          equilibrium_preserving=equilibrium_preserving, threads=threads, device=device,
                          collision_dtype=collision_dtype)
        if solver is None:
            if not isinstance(initial, str):
                new.set_maxwellian(*(np.interp(new.x, initial.x, getattr(initial, k)) for k in ("rho", "u", "T")))
            elif initial == "bgk":
                tb = time.perf_counter()
                bgk = steady_shock(s, collision="bgk", omega=omega, x_min=x_min, x_max=x_max,
                                   dx=(x_max - x_min) / nx, nv=64, levels=1, tol=10.0 * tol, progress=False,
                                   threads=threads)
                bgk_wall = time.perf_counter() - tb
                new.set_maxwellian(bgk.rho, bgk.u, bgk.T)
            else:
                w = 0.5 * (1.0 + np.tanh(new.x / 2.0))
                new.set_maxwellian(s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w,
                                   s.T1 + (s.T2 - s.T1) * w)
        else:
            new.interior[:] = new._to_storage(prolong(solver.distribution().reshape(solver.nx, solver.nv)))
        solver = new
        last = level == levels - 1
        budget = (max_wall_s - (time.perf_counter() - t0)) / (levels - level)
        residual, drift, shifts = march_steady(solver, s, tol if last else 10.0 * tol, max_steps, check_every, progress,
                                               shift_cells=_shift_cells, max_wall_s=budget)
        level_steps.append(solver.steps)
        total_updates += solver.steps * nx * solver.nv
        cell_steps += solver.steps * nx
        coll_wall += solver.collision_wall_s
    wall = time.perf_counter() - t0
    converged = residual < tol
    if not converged:
        log.warning("Boltzmann shock not converged after %d steps: residual %.3e > tol %.1e", solver.steps,
                    residual, tol)
    f = solver.fields_array()
    metrics = {
        "collision": "boltzmann",
        "nx": solver.nx,
        "nv": solver.nv,
        "n_per_dim": solver.n,
        "n_dirs": int(solver.op.dirs.shape[0]),
        "L": L,
        "center_v1": c1,
        "dv": solver.h,
        "dx": solver.dx,
        "cfl": cfl,
        "limiter": limiter,
        "levels": levels,
        "initial": initial if isinstance(initial, str) else "profile",
        "steps": solver.steps,
        "steps_per_level": level_steps,
        "t_final": solver.t,
        "residual": residual,
        "tol": tol,
        "converged": bool(converged),
        "recentre_shifts": shifts,
        "drift_speed": drift,
        "solve_wall_s": wall,
        "bgk_initial_wall_s": bgk_wall,
        "collision_wall_s": coll_wall,
        "device": "cpu (numba)" if device is None else str(device),
        "collision_dtype": collision_dtype,
        "max_wall_s": max_wall_s,
        "updates_per_s": total_updates / wall,
        "cell_steps": cell_steps,
    }
    return ShockProfile(solver.x.copy(), f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], states, "dvm", metrics)


def _shift_cells(solver: BoltzmannDVMSolver, shift: int) -> None:
    solver.shift_cells(shift)


def max_n(device: str | None) -> int:
    """Largest N per velocity direction of the solver :func:`make_solver` builds for ``device``."""
    return N_MAX if device is None else N_MAX_TORCH


def make_solver(*args: Any, device: str | None = None, collision_dtype: str = "float64",
                **kwargs: Any) -> BoltzmannDVMSolver:
    """``BoltzmannDVMSolver(*args, **kwargs)``; with a torch ``device`` the same scheme in
    :class:`~kinclose.kinetic.boltzmann_torch.TorchBoltzmannDVMSolver` with the FFT work in
    ``collision_dtype`` (imported lazily: torch stays out of the numerical core)."""
    if device is None:
        return BoltzmannDVMSolver(*args, **kwargs)
    import torch

    from kinclose.kinetic.boltzmann_torch import TorchBoltzmannDVMSolver

    return TorchBoltzmannDVMSolver(*args, device=device, collision_dtype=getattr(torch, collision_dtype), **kwargs)
