"""numba kernels of the 1D-3V BGK/Shakhov discrete-velocity method in Chu-reduced form.

Equations (Chu reduction, DESIGN §1), per discrete velocity v_j:

    ∂t g + v ∂x g = ν (G⁺ − g),   ∂t h + v ∂x h = ν (H⁺ − h),

g(v1) = ∫ f dv2 dv3, h(v1) = ∫ (v2² + v3²) f dv2 dv3, ν = ρ T^{1−ω} / μ_ref.
BGK: G⁺ = G = ρ (2πT)^{-1/2} exp(−c²/2T), H⁺ = 2T G, c = v − u.
Shakhov (Pr): with α = (1 − Pr) q / (5 p T),
    G⁺ = G [1 + α c (c²/T − 3)],  H⁺ = 2T G [1 + α c (c²/T − 1)].

Time stepping: ARS(2,2,2) IMEX Runge–Kutta (Ascher, Ruuth & Spiteri 1997), transport explicit,
collision implicit. Because collisions conserve (ρ, ρu, E) the implicit stage is explicit:
f = (f* + aν F⁺)/(1 + aν) with ν and F⁺ from the moments of f* (for Shakhov the heat flux relaxes
as q = q*/(1 + aν Pr)). The discrete target F⁺ is corrected by G·(a0 + a1 ξ + a2 ξ²), ξ = c/√T,
so that its discrete mass, momentum and energy equal those of f* to round-off.

Arrays: g, h are (nx + 4, nv) float64, C-contiguous, two ghost cells on each side.
Kernels take arrays and scalars only and write into preallocated outputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NGHOST = 2
LIMITERS = {"upwind": 0, "minmod": 1, "vanleer": 2, "mc": 3, "superbee": 4, "fromm": 5}

# numba fastmath without "nnan"/"ninf", so isfinite checks stay meaningful (CONVENTIONS), and
# without "reassoc": vectorised reductions would then depend on the arrays' memory alignment
# (loop peeling), and identical runs in different processes would differ in the last bits.
FASTMATH = {"nsz", "arcp", "contract", "afn"}

# error codes written per cell by the relaxation step
OK, BAD_DENSITY, BAD_TEMPERATURE, BAD_VALUE = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _slope(fm, f0, fp, limiter):
    """Limited slope of a cell from its neighbours; branch-free so the velocity loop vectorises."""
    a = f0 - fm
    b = fp - f0
    if limiter == 0:
        return 0.0
    if limiter == 5:
        return 0.5 * (a + b)
    if limiter == 2:
        ab = a * b
        return 2.0 * ab / (a + b) if ab > 0.0 else 0.0
    sg = 0.5 * (math.copysign(1.0, a) + math.copysign(1.0, b))
    aa = abs(a)
    bb = abs(b)
    if limiter == 1:
        return sg * min(aa, bb)
    if limiter == 3:
        return sg * min(2.0 * aa, 2.0 * bb, 0.5 * (aa + bb))
    return sg * max(min(2.0 * aa, bb), min(aa, 2.0 * bb))


@njit(cache=True, inline="always")
def _tpos(f, k, j, vj, limiter):
    """−(F_{k+½} − F_{k−½}) for v_j > 0 (upwind = left cell)."""
    fp = f[k, j] + 0.5 * _slope(f[k - 1, j], f[k, j], f[k + 1, j], limiter)
    fm = f[k - 1, j] + 0.5 * _slope(f[k - 2, j], f[k - 1, j], f[k, j], limiter)
    return -vj * (fp - fm)


@njit(cache=True, inline="always")
def _tneg(f, k, j, vj, limiter):
    """−(F_{k+½} − F_{k−½}) for v_j ≤ 0 (upwind = right cell)."""
    fp = f[k + 1, j] - 0.5 * _slope(f[k, j], f[k + 1, j], f[k + 2, j], limiter)
    fm = f[k, j] - 0.5 * _slope(f[k - 1, j], f[k, j], f[k + 1, j], limiter)
    return -vj * (fp - fm)


@njit(cache=True)
def _transport_row(f, k, v, j0, limiter, scale, out):
    """out[j] = scale · (−(F_{k+½} − F_{k−½})) for all velocities; v sorted, v[j] > 0 for j ≥ j0.

    The limiter branch is hoisted out of the loops so each loop is branch-free (SIMD).
    """
    nv = v.size
    if limiter == 3:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 3)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 3)
    elif limiter == 1:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 1)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 1)
    elif limiter == 2:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 2)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 2)
    elif limiter == 4:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 4)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 4)
    elif limiter == 5:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 5)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 5)
    else:
        for j in range(j0):
            out[j] = scale * _tneg(f, k, j, v[j], 0)
        for j in range(j0, nv):
            out[j] = scale * _tpos(f, k, j, v[j], 0)


@njit(cache=True)
def _first_positive(v):
    for j in range(v.size):
        if v[j] > 0.0:
            return j
    return v.size


GAUSS_BLOCK = 16  # nodes per exact restart of the Gaussian recurrence
GAUSS_MAX_STEP = 0.5  # largest Δv/√T for which the recurrence is used (else one exp per node)


@njit(cache=True, fastmath=FASTMATH)
def _gaussian_row(v, dv, u, sT, coef, G):
    """G[j] = coef exp(−ξ_j²/2), ξ_j = (v_j − u)/√T, on the uniform grid v (nv,) with spacing dv.

    With d = Δv/√T ≤ GAUSS_MAX_STEP, G_{j+1} = G_j r_j and r_{j+1} = r_j e^{−d²}, r_j = e^{−(ξ_j d + d²/2)}:
    two exp per GAUSS_BLOCK nodes (each block restarts from the exact value) instead of one per node; relative
    difference from the direct formula ≲ GAUSS_BLOCK² ulp. Coarser rows (d > GAUSS_MAX_STEP) and blocks that start
    where exp underflows (|ξ| > 38) take the direct formula, so G is positive wherever exp is.
    """
    nv = v.size
    d = dv / sT
    if d > GAUSS_MAX_STEP:
        for j in range(nv):
            xi = (v[j] - u) / sT
            G[j] = coef * math.exp(-0.5 * xi * xi)
        return
    q = math.exp(-d * d)
    for j0 in range(0, nv, GAUSS_BLOCK):
        xi = (v[j0] - u) / sT
        g = coef * math.exp(-0.5 * xi * xi)
        if g == 0.0:  # the block starts where exp underflows (|ξ| > 38; r might overflow): direct formula
            for j in range(j0, min(j0 + GAUSS_BLOCK, nv)):
                xi = (v[j] - u) / sT
                G[j] = coef * math.exp(-0.5 * xi * xi)
            continue
        r = math.exp(-(xi * d + 0.5 * d * d))
        for j in range(j0, min(j0 + GAUSS_BLOCK, nv)):
            G[j] = g
            g *= r
            r *= q


@njit(cache=True, fastmath=FASTMATH)
def _equilibrium_row(v, dv, rho, mom, en, alpha, gt, ht, G):
    """Conservative discrete equilibrium (BGK α = 0, Shakhov α ≠ 0) written into gt, ht (nv,).

    F⁺ = continuous target + G (c0 + c1 ξ + c2 ξ²) (also 2T × that for h), with c solving the
    3×3 system that makes Σ gt Δv = ρ, Σ v gt Δv = ρu, ½ Σ (v² gt + ht) Δv = E exactly.
    G (nv,) is a work buffer. Returns max |c_k| (the relative size of the correction: a
    grid-quality measure).
    """
    nv = v.size
    u = mom / rho
    T = (2.0 * en / rho - u * u) / 3.0
    sT = math.sqrt(T)
    coef = rho / math.sqrt(2.0 * math.pi * T)
    m0 = 0.0
    m1 = 0.0
    m2 = 0.0
    A00 = A01 = A02 = A10 = A11 = A12 = A20 = A21 = A22 = 0.0
    _gaussian_row(v, dv, u, sT, coef, G)
    for j in range(nv):
        c = v[j] - u
        xi = c / sT
        Gj = G[j]
        gj = Gj * (1.0 + alpha * c * (xi * xi - 3.0))
        hj = 2.0 * T * Gj * (1.0 + alpha * c * (xi * xi - 1.0))
        gt[j] = gj
        ht[j] = hj
        m0 += gj
        m1 += v[j] * gj
        m2 += v[j] * v[j] * gj + hj
        e = 0.5 * (v[j] * v[j] + 2.0 * T)
        p0 = Gj
        p1 = Gj * xi
        p2 = Gj * xi * xi
        A00 += p0
        A01 += p1
        A02 += p2
        A10 += v[j] * p0
        A11 += v[j] * p1
        A12 += v[j] * p2
        A20 += e * p0
        A21 += e * p1
        A22 += e * p2
    r0 = rho / dv - m0
    r1 = mom / dv - m1
    r2 = en / dv - 0.5 * m2
    # Cramer's rule for the 3×3 system A c = r
    det = A00 * (A11 * A22 - A12 * A21) - A01 * (A10 * A22 - A12 * A20) + A02 * (A10 * A21 - A11 * A20)
    c0 = (r0 * (A11 * A22 - A12 * A21) - A01 * (r1 * A22 - A12 * r2) + A02 * (r1 * A21 - A11 * r2)) / det
    c1 = (A00 * (r1 * A22 - A12 * r2) - r0 * (A10 * A22 - A12 * A20) + A02 * (A10 * r2 - r1 * A20)) / det
    c2 = (A00 * (A11 * r2 - r1 * A21) - A01 * (A10 * r2 - r1 * A20) + r0 * (A10 * A21 - A11 * A20)) / det
    for j in range(nv):
        xi = (v[j] - u) / sT
        corr = G[j] * (c0 + xi * (c1 + xi * c2))
        gt[j] += corr
        ht[j] += 2.0 * T * corr
    return max(abs(c0), abs(c1), abs(c2))


@njit(cache=True, fastmath=FASTMATH)
def _relax_row(g, h, work, v, dv, a, mu_ref, omega, pr, shakhov):
    """In place: g, h ← (f* + aν F⁺)/(1 + aν) for one cell; work rows 0–2 are scratch (nv,).

    Returns (error code, max |correction coefficient|).
    """
    nv = v.size
    rho = 0.0
    mom = 0.0
    en = 0.0
    for j in range(nv):
        rho += g[j]
        mom += v[j] * g[j]
        en += v[j] * v[j] * g[j] + h[j]
    rho *= dv
    mom *= dv
    en *= 0.5 * dv
    if not (rho > 0.0) or not math.isfinite(rho):
        return BAD_DENSITY if math.isfinite(rho) else BAD_VALUE, 0.0
    u = mom / rho
    T = (2.0 * en / rho - u * u) / 3.0
    if not (T > 0.0) or not math.isfinite(T):
        return BAD_TEMPERATURE if math.isfinite(T) else BAD_VALUE, 0.0
    nu = rho * T ** (1.0 - omega) / mu_ref
    an = a * nu
    if an == 0.0:
        return OK, 0.0
    alpha = 0.0
    if shakhov:
        qs = 0.0
        for j in range(nv):
            c = v[j] - u
            qs += c * (c * c * g[j] + h[j])
        qs *= 0.5 * dv
        qn = qs / (1.0 + an * pr)
        alpha = (1.0 - pr) * qn / (5.0 * rho * T * T)
    gt = work[0]
    ht = work[1]
    cmax = _equilibrium_row(v, dv, rho, mom, en, alpha, gt, ht, work[2])
    inv = 1.0 / (1.0 + an)
    for j in range(nv):
        g[j] = (g[j] + an * gt[j]) * inv
        h[j] = (h[j] + an * ht[j]) * inv
    return OK, cmax


@njit(cache=True, parallel=True)
def ars_stage2(g, h, v, dv, dx, dt, gam, limiter, mu_ref, omega, pr, shakhov, g2, h2, work, flag, corr):
    """Stage 2 of ARS(2,2,2): f2 = R_{γΔt}(f + γΔt T(f)) on interior rows of g2, h2.

    work (nx, 4, nv) is scratch space; flag, corr (nx,) receive error codes and correction sizes.
    """
    nx = g.shape[0] - 2 * NGHOST
    nv = v.size
    j0 = _first_positive(v)
    a = gam * dt
    adx = a / dx
    for i in prange(nx):
        k = i + NGHOST
        w = work[i]
        _transport_row(g, k, v, j0, limiter, adx, w[0])
        _transport_row(h, k, v, j0, limiter, adx, w[1])
        for j in range(nv):
            g2[k, j] = g[k, j] + w[0, j]
            h2[k, j] = h[k, j] + w[1, j]
        code, cm = _relax_row(g2[k], h2[k], w, v, dv, a, mu_ref, omega, pr, shakhov)
        flag[i] = code
        corr[i] = cm


@njit(cache=True, parallel=True)
def ars_stage3(g, h, g2, h2, v, dv, dx, dt, gam, delta, limiter, mu_ref, omega, pr, shakhov,
               gout, hout, work, flag, corr):
    """Final stage of ARS(2,2,2) (stiffly accurate, so f^{n+1} = f3).

    f3* = f + Δt[δ T(f) + (1−δ) T(f2)] + Δt(1−γ) C(f2), C(f2) = (f2 − f − γΔt T(f))/(γΔt);
    f^{n+1} = R_{γΔt}(f3*).
    """
    nx = g.shape[0] - 2 * NGHOST
    nv = v.size
    j0 = _first_positive(v)
    a = gam * dt
    c = (1.0 - gam) / gam
    idx = 1.0 / dx
    for i in prange(nx):
        k = i + NGHOST
        w = work[i]
        _transport_row(g, k, v, j0, limiter, idx, w[0])
        _transport_row(g2, k, v, j0, limiter, idx, w[1])
        _transport_row(h, k, v, j0, limiter, idx, w[2])
        _transport_row(h2, k, v, j0, limiter, idx, w[3])
        for j in range(nv):
            t1 = w[0, j]
            gout[k, j] = g[k, j] + dt * (delta * t1 + (1.0 - delta) * w[1, j]) + c * (g2[k, j] - g[k, j] - a * t1)
            t1 = w[2, j]
            hout[k, j] = h[k, j] + dt * (delta * t1 + (1.0 - delta) * w[3, j]) + c * (h2[k, j] - h[k, j] - a * t1)
        code, cm = _relax_row(gout[k], hout[k], w, v, dv, a, mu_ref, omega, pr, shakhov)
        flag[i] = code
        corr[i] = cm


@njit(cache=True)
def fill_ghosts(f, periodic, left, right):
    """Fill the two ghost rows on each side: periodic copy or fixed reservoir rows (nv,)."""
    n = f.shape[0]
    nv = f.shape[1]
    for gidx in range(NGHOST):
        for j in range(nv):
            if periodic:
                f[gidx, j] = f[n - 2 * NGHOST + gidx, j]
                f[n - NGHOST + gidx, j] = f[NGHOST + gidx, j]
            else:
                f[gidx, j] = left[j]
                f[n - NGHOST + gidx, j] = right[j]


@njit(cache=True, parallel=True)
def macro_fields(g, h, v, dv, out):
    """out (nx, 5) ← (ρ, u, T, σ, q) of the interior rows.

    σ = Σ c² g Δv − ρT,  q = ½ Σ c (c² g + h) Δv,  c = v − u.
    """
    nx = g.shape[0] - 2 * NGHOST
    nv = v.size
    for i in prange(nx):
        k = i + NGHOST
        rho = 0.0
        mom = 0.0
        en = 0.0
        for j in range(nv):
            rho += g[k, j]
            mom += v[j] * g[k, j]
            en += v[j] * v[j] * g[k, j] + h[k, j]
        rho *= dv
        u = mom * dv / rho
        T = (en * dv / rho - u * u) / 3.0
        s = 0.0
        q = 0.0
        for j in range(nv):
            c = v[j] - u
            s += c * c * g[k, j]
            q += c * (c * c * g[k, j] + h[k, j])
        out[i, 0] = rho
        out[i, 1] = u
        out[i, 2] = T
        out[i, 3] = s * dv - rho * T
        out[i, 4] = 0.5 * q * dv


@njit(cache=True, parallel=True)
def maxwellian_rows(rho, u, T, v, dv, g, h, work, corr):
    """Discrete conservative Maxwellians (g, h) with exact moments (ρ, ρu, E) per cell; rows (nx, nv).

    corr (nx,) receives the relative size of the moment correction (grid quality)."""
    nx = rho.size
    for i in prange(nx):
        mom = rho[i] * u[i]
        en = 0.5 * rho[i] * u[i] * u[i] + 1.5 * rho[i] * T[i]
        corr[i] = _equilibrium_row(v, dv, rho[i], mom, en, 0.0, g[i], h[i], work[i])


@njit(cache=True, parallel=True)
def stream_triad(a, b, c, s):
    """STREAM triad a = b + s c (bandwidth reference for the benchmark)."""
    for i in prange(a.size):
        a[i] = b[i] + s * c[i]


def empty_padded(nx: int, nv: int) -> np.ndarray:
    return np.zeros((nx + 2 * NGHOST, nv))
