"""numba kernels of the macroscopic finite-volume solvers (Euler, Navier–Stokes–Fourier).

Only ``@njit`` functions of arrays, ints and floats that write into preallocated outputs.
State arrays ``U`` have shape (nx + 2*NG, 3) with NG = 2 ghost cells on each side and columns
(ρ, ρu, E), E = ½ρu² + p/(γ−1). Physical constants are arguments.

The kernels are serial: one stage over ~1e3 cells costs microseconds, less than the start-up of
a parallel region, and the tree's CPUs are shared (CONVENTIONS allows ``prange`` only where it pays).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NG = 2

LIMITER_NONE = 0
LIMITER_MINMOD = 1
LIMITER_VANLEER = 2
LIMITER_MC = 3


@njit(cache=True)
def _slope(dm, dp, limiter):
    """Limited slope from the backward and forward differences dm, dp."""
    if limiter == 0 or dm * dp <= 0.0:
        return 0.0
    if limiter == 1:
        return dm if abs(dm) < abs(dp) else dp
    if limiter == 2:
        return 2.0 * dm * dp / (dm + dp)
    # monotonized central
    c = 0.5 * (dm + dp)
    a = min(abs(2.0 * dm), abs(2.0 * dp), abs(c))
    return a if c > 0.0 else -a


@njit(cache=True)
def fill_ghosts(U, periodic, left_state, right_state):
    """Ghost cells: periodic copies, or fixed reservoir states (3,) on the left/right."""
    n = U.shape[0]
    for g in range(NG):
        for k in range(3):
            if periodic:
                U[g, k] = U[n - 2 * NG + g, k]
                U[n - NG + g, k] = U[NG + g, k]
            else:
                U[g, k] = left_state[k]
                U[n - NG + g, k] = right_state[k]


@njit(cache=True)
def _hllc(rl, ul, pl, rr, ur, pr, gamma, out):
    """HLLC flux (Toro) with Einfeldt (Roe-average) wave-speed bounds, written into out (3,)."""
    gm1 = gamma - 1.0
    El = pl / gm1 + 0.5 * rl * ul * ul
    Er = pr / gm1 + 0.5 * rr * ur * ur
    cl = math.sqrt(gamma * pl / rl)
    cr = math.sqrt(gamma * pr / rr)
    sl_ = math.sqrt(rl)
    sr_ = math.sqrt(rr)
    ua = (sl_ * ul + sr_ * ur) / (sl_ + sr_)
    Hl = (El + pl) / rl
    Hr = (Er + pr) / rr
    Ha = (sl_ * Hl + sr_ * Hr) / (sl_ + sr_)
    ca = math.sqrt(max(gm1 * (Ha - 0.5 * ua * ua), 1e-300))
    SL = min(ul - cl, ua - ca)
    SR = max(ur + cr, ua + ca)
    if SL >= 0.0:
        out[0] = rl * ul
        out[1] = rl * ul * ul + pl
        out[2] = (El + pl) * ul
        return
    if SR <= 0.0:
        out[0] = rr * ur
        out[1] = rr * ur * ur + pr
        out[2] = (Er + pr) * ur
        return
    SM = (pr - pl + rl * ul * (SL - ul) - rr * ur * (SR - ur)) / (rl * (SL - ul) - rr * (SR - ur))
    if SM >= 0.0:
        f0 = rl * ul
        f1 = rl * ul * ul + pl
        f2 = (El + pl) * ul
        fac = rl * (SL - ul) / (SL - SM)
        s0 = fac
        s1 = fac * SM
        s2 = fac * (El / rl + (SM - ul) * (SM + pl / (rl * (SL - ul))))
        out[0] = f0 + SL * (s0 - rl)
        out[1] = f1 + SL * (s1 - rl * ul)
        out[2] = f2 + SL * (s2 - El)
    else:
        f0 = rr * ur
        f1 = rr * ur * ur + pr
        f2 = (Er + pr) * ur
        fac = rr * (SR - ur) / (SR - SM)
        s0 = fac
        s1 = fac * SM
        s2 = fac * (Er / rr + (SM - ur) * (SM + pr / (rr * (SR - ur))))
        out[0] = f0 + SR * (s0 - rr)
        out[1] = f1 + SR * (s1 - rr * ur)
        out[2] = f2 + SR * (s2 - Er)


@njit(cache=True)
def hllc_faces(WL, WR, gamma, F):
    """HLLC fluxes F[f] (n, 3) of the face states WL[f], WR[f] (n, 3) primitive (ρ, u, p)."""
    for f in range(WL.shape[0]):
        _hllc(WL[f, 0], WL[f, 1], WL[f, 2], WR[f, 0], WR[f, 1], WR[f, 2], gamma, F[f])


@njit(cache=True)
def primitives(U, gamma, W):
    """W[i] = (ρ, u, p) of U[i]; returns the index of the first cell with ρ ≤ 0 or p ≤ 0
    (or a NaN), −1 if all are physical."""
    bad = -1
    for i in range(U.shape[0]):
        r = U[i, 0]
        u = U[i, 1] / r
        p = (gamma - 1.0) * (U[i, 2] - 0.5 * r * u * u)
        W[i, 0] = r
        W[i, 1] = u
        W[i, 2] = p
        if bad < 0 and not (r > 0.0 and p > 0.0):
            bad = i
    return bad


@njit(cache=True)
def max_wave_speed(W, gamma):
    """max over cells of |u| + c, W (n, 3) primitive."""
    a = 0.0
    for i in range(W.shape[0]):
        s = abs(W[i, 1]) + math.sqrt(gamma * W[i, 2] / W[i, 0])
        if s > a:
            a = s
    return a


@njit(cache=True)
def euler_rhs(W, dx, gamma, limiter, F, R):
    """Semi-discrete MUSCL–HLLC operator R = −(F_{i+½} − F_{i−½})/dx on interior cells.

    W : (nx + 2NG, 3) primitive (ρ, u, p) with ghosts filled; F : (nx + 1, 3) face fluxes
    (output, face j is between cells NG−1+j and NG+j); R : (nx + 2NG, 3) output (ghost rows
    untouched). Reconstruction is piecewise linear in (ρ, u, p) with the given limiter.
    """
    n = W.shape[0]
    nx = n - 2 * NG
    wl = np.empty(3)
    wr = np.empty(3)
    f = np.empty(3)
    for j in range(nx + 1):
        i = NG - 1 + j  # left cell of the face
        for k in range(3):
            sl = _slope(W[i, k] - W[i - 1, k], W[i + 1, k] - W[i, k], limiter)
            sr = _slope(W[i + 1, k] - W[i, k], W[i + 2, k] - W[i + 1, k], limiter)
            wl[k] = W[i, k] + 0.5 * sl
            wr[k] = W[i + 1, k] - 0.5 * sr
        if not (wl[0] > 0.0 and wl[2] > 0.0 and wr[0] > 0.0 and wr[2] > 0.0):
            # the limited reconstruction lost positivity: fall back to first order at this face
            for k in range(3):
                wl[k] = W[i, k]
                wr[k] = W[i + 1, k]
        _hllc(wl[0], wl[1], wl[2], wr[0], wr[1], wr[2], gamma, f)
        for k in range(3):
            F[j, k] = f[k]
    inv = 1.0 / dx
    for j in range(nx):
        for k in range(3):
            R[NG + j, k] = -(F[j + 1, k] - F[j, k]) * inv


@njit(cache=True)
def viscous_faces(W, dx, mu_ref, omega, kappa_factor, S, Q, Fv):
    """NSF viscous/heat-conduction face fluxes Fv (nx + 1, 3) = (0, σ, σu + q) at each face.

    σ = −(4/3) μ ∂x u, q = −κ ∂x T, μ = μ_ref T^ω, κ = kappa_factor · μ, T = p/ρ (R = 1),
    central differences across the face and face values of T, u as averages of the two cells.
    S, Q : (nx + 1,) outputs σ and q at the faces.
    """
    n = W.shape[0]
    nx = n - 2 * NG
    inv = 1.0 / dx
    for j in range(nx + 1):
        i = NG - 1 + j
        Tl = W[i, 2] / W[i, 0]
        Tr = W[i + 1, 2] / W[i + 1, 0]
        Tf = 0.5 * (Tl + Tr)
        mu = mu_ref * Tf**omega
        sig = -(4.0 / 3.0) * mu * (W[i + 1, 1] - W[i, 1]) * inv
        q = -kappa_factor * mu * (Tr - Tl) * inv
        S[j] = sig
        Q[j] = q
        Fv[j, 0] = 0.0
        Fv[j, 1] = sig
        Fv[j, 2] = sig * 0.5 * (W[i, 1] + W[i + 1, 1]) + q


@njit(cache=True)
def add_face_divergence(Fv, dx, scale, R):
    """R[interior] += −scale (Fv_{i+½} − Fv_{i−½})/dx (Fv (nx + 1, 3), R (nx + 2NG, 3))."""
    nx = Fv.shape[0] - 1
    inv = scale / dx
    for j in range(nx):
        for k in range(3):
            R[NG + j, k] -= (Fv[j + 1, k] - Fv[j, k]) * inv


@njit(cache=True)
def max_diffusivity(W, mu_ref, omega, kappa_factor):
    """max over faces of the largest diffusivity max((4/3)μ, κ/c_v)/ρ, c_v = 1/(γ−1) = 3/2 taken
    from the energy equation ρ c_v ∂t T = ∂x(κ ∂x T) (face μ at the average T, smaller ρ)."""
    d = 0.0
    cv = 1.5
    for i in range(W.shape[0] - 1):
        Tf = 0.5 * (W[i, 2] / W[i, 0] + W[i + 1, 2] / W[i + 1, 0])
        mu = mu_ref * Tf**omega
        r = min(W[i, 0], W[i + 1, 0])
        v = max(4.0 / 3.0, kappa_factor / cv) * mu / r
        if v > d:
            d = v
    return d


@njit(cache=True)
def axpby(a, X, b, Y, out):
    """out = a X + b Y elementwise over 2D arrays of equal shape."""
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            out[i, k] = a * X[i, k] + b * Y[i, k]


@njit(cache=True)
def rkl2_combine(mu, Y1, nu, Y2, Y0, mu_t, M1, gam_t, M0, dt, out):
    """RKL2 stage: out = μ Y_{j−1} + ν Y_{j−2} + (1 − μ − ν) Y0 + μ̃ dt M(Y_{j−1}) + γ̃ dt M(Y0)."""
    c = 1.0 - mu - nu
    for i in range(Y0.shape[0]):
        for k in range(3):
            out[i, k] = (
                mu * Y1[i, k] + nu * Y2[i, k] + c * Y0[i, k] + mu_t * dt * M1[i, k] + gam_t * dt * M0[i, k]
            )
