"""Plain-NumPy reference of one DVM step (ARS(2,2,2) IMEX, MUSCL), for testing the numba kernels.

Same equations as ``kinclose.kinetic._kernels``; written for clarity, not speed.
Arrays: g, h (nx, nv) interior cells; reservoir rows (nv,).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from kinclose.kinetic.solver import DELTA, GAM


def limited_slope(a: NDArray, b: NDArray, limiter: str) -> NDArray:
    """Limited slope from backward difference a and forward difference b."""
    if limiter == "upwind":
        return np.zeros_like(a)
    if limiter == "fromm":
        return 0.5 * (a + b)
    same = a * b > 0
    s = np.sign(a)
    aa, bb = np.abs(a), np.abs(b)
    if limiter == "minmod":
        r = s * np.minimum(aa, bb)
    elif limiter == "vanleer":
        with np.errstate(divide="ignore", invalid="ignore"):
            r = 2 * a * b / (a + b)
    elif limiter == "mc":
        r = s * np.minimum(np.minimum(2 * aa, 2 * bb), 0.5 * (aa + bb))
    elif limiter == "superbee":
        r = s * np.maximum(np.minimum(2 * aa, bb), np.minimum(aa, 2 * bb))
    else:
        raise ValueError(limiter)
    return np.where(same, r, 0.0)


def pad(f: NDArray, bc: str, left: NDArray | None, right: NDArray | None) -> NDArray:
    """(nx, nv) → (nx + 4, nv) with two ghost cells per side."""
    if bc == "periodic":
        return np.concatenate([f[-2:], f, f[:2]])
    return np.concatenate([np.stack([left, left]), f, np.stack([right, right])])


def transport(fp: NDArray, v: NDArray, dx: float, limiter: str) -> NDArray:
    """−v ∂x f by upwind MUSCL on a padded (nx+4, nv) array → (nx, nv)."""
    d = np.diff(fp, axis=0)  # d[k] = f[k+1] − f[k], (nx+3, nv)
    slope = limited_slope(d[:-1], d[1:], limiter)  # slopes of cells 1 … nx+2
    left_state = fp[1:-2] + 0.5 * slope[:-1]  # face k+½ from cell k, faces 1.5 … nx+1.5
    right_state = fp[2:-1] - 0.5 * slope[1:]  # face k+½ from cell k+1
    flux = np.where(v > 0, v * left_state, v * right_state)  # faces between cells k=1..nx+1 and k+1
    return -(flux[1:] - flux[:-1]) / dx


def relax(g: NDArray, h: NDArray, v: NDArray, dv: float, a: float, mu_ref: float, omega: float,
          collision: str) -> tuple[NDArray, NDArray]:
    """Implicit collision step f = (f* + aν F⁺)/(1 + aν) with the conservative discrete target."""
    rho = g.sum(1) * dv
    mom = (v * g).sum(1) * dv
    en = 0.5 * (v * v * g + h).sum(1) * dv
    u = mom / rho
    T = (2 * en / rho - u * u) / 3
    nu = rho * T ** (1 - omega) / mu_ref
    an = (a * nu)[:, None]
    c = v[None, :] - u[:, None]
    Tc = T[:, None]
    xi = c / np.sqrt(Tc)
    G = rho[:, None] / np.sqrt(2 * math.pi * Tc) * np.exp(-0.5 * xi**2)
    alpha = np.zeros_like(rho)
    if collision == "shakhov":
        pr = 2.0 / 3.0
        q = 0.5 * (c * (c * c * g + h)).sum(1) * dv
        qn = q / (1 + a * nu * pr)
        alpha = (1 - pr) * qn / (5 * rho * T * T)
    al = alpha[:, None]
    gt = G * (1 + al * c * (xi**2 - 3))
    ht = 2 * Tc * G * (1 + al * c * (xi**2 - 1))
    phi = np.stack([G, G * xi, G * xi**2], axis=1)  # (nx, 3, nv)
    e = 0.5 * (v[None, :] ** 2 + 2 * Tc)
    A = np.stack([phi.sum(2), (phi * v).sum(2), (phi * e[:, None, :]).sum(2)], axis=1)  # (nx, 3 rows, 3)
    r = np.stack([rho / dv - gt.sum(1), mom / dv - (v * gt).sum(1), en / dv - 0.5 * (v * v * gt + ht).sum(1)], 1)
    coef = np.linalg.solve(A, r[..., None])[..., 0]
    corr = (coef[:, :, None] * phi).sum(1)
    gt = gt + corr
    ht = ht + 2 * Tc * corr
    return (g + an * gt) / (1 + an), (h + an * ht) / (1 + an)


def step(g: NDArray, h: NDArray, v: NDArray, dv: float, dx: float, dt: float, mu_ref: float, omega: float,
         collision: str = "bgk", limiter: str = "mc", bc: str = "periodic",
         left: tuple[NDArray, NDArray] | None = None,
         right: tuple[NDArray, NDArray] | None = None) -> tuple[NDArray, NDArray]:
    """One ARS(2,2,2) step; returns the new (g, h)."""
    lg, lh = left if left is not None else (None, None)
    rg, rh = right if right is not None else (None, None)

    def T(fg, fh):
        return (transport(pad(fg, bc, lg, rg), v, dx, limiter), transport(pad(fh, bc, lh, rh), v, dx, limiter))

    a = GAM * dt
    t1g, t1h = T(g, h)
    g2, h2 = relax(g + a * t1g, h + a * t1h, v, dv, a, mu_ref, omega, collision)
    c2g = (g2 - g - a * t1g) / a
    c2h = (h2 - h - a * t1h) / a
    t2g, t2h = T(g2, h2)
    g3 = g + dt * (DELTA * t1g + (1 - DELTA) * t2g) + dt * (1 - GAM) * c2g
    h3 = h + dt * (DELTA * t1h + (1 - DELTA) * t2h) + dt * (1 - GAM) * c2h
    return relax(g3, h3, v, dv, a, mu_ref, omega, collision)
