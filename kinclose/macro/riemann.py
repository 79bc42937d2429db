"""Exact Riemann solver for the 1D Euler equations of a polytropic gas (the Kn → 0 reference).

Solves
    ∂t ρ + ∂x(ρu) = 0,  ∂t(ρu) + ∂x(ρu² + p) = 0,  ∂t E + ∂x((E + p)u) = 0,
    E = ½ρu² + p/(γ − 1),
with piecewise-constant data (ρ_L, u_L, p_L) for x < x0 and (ρ_R, u_R, p_R) for x > x0.
The star pressure p* is the root of
    f(p) = f_L(p) + f_R(p) + (u_R − u_L) = 0,
    f_K(p) = (p − p_K) √(A_K / (p + B_K))                       if p > p_K (shock),
    f_K(p) = 2 c_K/(γ−1) [(p/p_K)^((γ−1)/(2γ)) − 1]            if p ≤ p_K (rarefaction),
    A_K = 2/((γ+1)ρ_K),  B_K = p_K (γ−1)/(γ+1),
found by Newton iteration, and u* = ½(u_L + u_R) + ½(f_R(p*) − f_L(p*)) (Toro, "Riemann Solvers
and Numerical Methods for Fluid Dynamics", ch. 4; written here from the equations above).
The self-similar solution is then sampled at ξ = (x − x0)/t.

Default γ = 5/3 (monatomic gas, R = 1, T = p/ρ). Data that would create a vacuum are rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kinclose.physics import GAMMA, PhysicalStateError

__all__ = ["RiemannSolution", "solve", "sample", "exact_solution", "cell_averages"]


@dataclass(frozen=True)
class RiemannSolution:
    """Star region of a Riemann problem and the speeds of the waves bounding it.

    Attributes
    ----------
    rho_l, u_l, p_l, rho_r, u_r, p_r : left and right data.
    p_star, u_star : pressure and velocity of the star region.
    rho_star_l, rho_star_r : densities left and right of the contact.
    left_wave, right_wave : "shock" or "rarefaction".
    gamma : ratio of specific heats.
    iterations : Newton iterations used.
    """

    rho_l: float
    u_l: float
    p_l: float
    rho_r: float
    u_r: float
    p_r: float
    p_star: float
    u_star: float
    rho_star_l: float
    rho_star_r: float
    left_wave: str
    right_wave: str
    gamma: float
    iterations: int

    @property
    def c_l(self) -> float:
        return math.sqrt(self.gamma * self.p_l / self.rho_l)

    @property
    def c_r(self) -> float:
        return math.sqrt(self.gamma * self.p_r / self.rho_r)

    def wave_speeds(self) -> dict[str, float]:
        """Speeds of the left wave (shock speed, or head and tail of the fan), contact, right wave."""
        g = self.gamma
        out: dict[str, float] = {"contact": self.u_star}
        if self.left_wave == "shock":
            out["left_shock"] = self.u_l - self.c_l * math.sqrt(
                (g + 1) / (2 * g) * self.p_star / self.p_l + (g - 1) / (2 * g)
            )
        else:
            c_star_l = self.c_l * (self.p_star / self.p_l) ** ((g - 1) / (2 * g))
            out["left_head"] = self.u_l - self.c_l
            out["left_tail"] = self.u_star - c_star_l
        if self.right_wave == "shock":
            out["right_shock"] = self.u_r + self.c_r * math.sqrt(
                (g + 1) / (2 * g) * self.p_star / self.p_r + (g - 1) / (2 * g)
            )
        else:
            c_star_r = self.c_r * (self.p_star / self.p_r) ** ((g - 1) / (2 * g))
            out["right_head"] = self.u_r + self.c_r
            out["right_tail"] = self.u_star + c_star_r
        return out


def _f_k(p: float, rho_k: float, p_k: float, c_k: float, g: float) -> tuple[float, float]:
    """f_K(p) and its derivative (see module docstring)."""
    if p > p_k:
        a = 2.0 / ((g + 1.0) * rho_k)
        b = p_k * (g - 1.0) / (g + 1.0)
        s = math.sqrt(a / (p + b))
        return (p - p_k) * s, s * (1.0 - 0.5 * (p - p_k) / (b + p))
    r = p / p_k
    f = 2.0 * c_k / (g - 1.0) * (r ** ((g - 1.0) / (2.0 * g)) - 1.0)
    df = r ** (-(g + 1.0) / (2.0 * g)) / (rho_k * c_k)
    return f, df


def solve(
    rho_l: float,
    u_l: float,
    p_l: float,
    rho_r: float,
    u_r: float,
    p_r: float,
    gamma: float = GAMMA,
    tol: float = 1e-14,
    max_iter: int = 100,
) -> RiemannSolution:
    """Star state of the Riemann problem (ρ_L, u_L, p_L | ρ_R, u_R, p_R).

    Parameters
    ----------
    rho_l, u_l, p_l, rho_r, u_r, p_r : left/right density, velocity, pressure (ρ, p > 0).
    gamma : ratio of specific heats (> 1); 5/3 for the monatomic gas of kinclose.
    tol : relative change of p* at which Newton's iteration stops.
    max_iter : Newton iterations before giving up (RuntimeError).

    Returns
    -------
    RiemannSolution

    Raises
    ------
    PhysicalStateError
        Non-positive or non-finite ρ or p, or data that generate a vacuum
        (u_R − u_L ≥ 2(c_L + c_R)/(γ − 1)).
    """
    vals = dict(rho_l=rho_l, u_l=u_l, p_l=p_l, rho_r=rho_r, u_r=u_r, p_r=p_r)
    for k, v in vals.items():
        if not math.isfinite(v):
            raise PhysicalStateError(f"Riemann data: {k} is not finite ({v!r})")
        if k[0] in "rp" and v <= 0.0:
            raise PhysicalStateError(f"Riemann data: {k} must be > 0, got {v!r}")
    if not (gamma > 1.0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be > 1, got {gamma!r}")
    g = gamma
    c_l = math.sqrt(g * p_l / rho_l)
    c_r = math.sqrt(g * p_r / rho_r)
    du = u_r - u_l
    du_crit = 2.0 * (c_l + c_r) / (g - 1.0)
    if du >= du_crit:
        raise PhysicalStateError(
            f"Riemann data generate a vacuum: u_R − u_L = {du!r} >= 2(c_L + c_R)/(γ−1) = {du_crit!r}"
        )
    # initial guess: two-rarefaction approximation (exact when both waves are rarefactions),
    # falling back to the PVRS estimate when it predicts shocks
    z = (g - 1.0) / (2.0 * g)
    p_tr = ((c_l + c_r - 0.5 * (g - 1.0) * du) / (c_l / p_l**z + c_r / p_r**z)) ** (1.0 / z)
    p_pv = 0.5 * (p_l + p_r) - 0.125 * du * (rho_l + rho_r) * (c_l + c_r)
    p = p_tr if p_tr <= min(p_l, p_r) else max(p_pv, 1e-8 * min(p_l, p_r))
    p = max(p, 1e-300)
    it = 0
    for it in range(1, max_iter + 1):
        fl, dfl = _f_k(p, rho_l, p_l, c_l, g)
        fr, dfr = _f_k(p, rho_r, p_r, c_r, g)
        p_new = p - (fl + fr + du) / (dfl + dfr)
        if p_new <= 0.0:  # f is increasing and concave: halve towards 0 instead of overshooting
            p_new = 0.5 * p
        change = 2.0 * abs(p_new - p) / (p_new + p)
        p = p_new
        if change < tol:
            break
    else:
        raise RuntimeError(f"exact Riemann solver: Newton did not converge in {max_iter} iterations")
    fl, _ = _f_k(p, rho_l, p_l, c_l, g)
    fr, _ = _f_k(p, rho_r, p_r, c_r, g)
    u = 0.5 * (u_l + u_r) + 0.5 * (fr - fl)
    gm = (g - 1.0) / (g + 1.0)

    def rho_star(rho_k: float, p_k: float) -> tuple[float, str]:
        r = p / p_k
        if p > p_k:
            return rho_k * (r + gm) / (gm * r + 1.0), "shock"
        return rho_k * r ** (1.0 / g), "rarefaction"

    rsl, wl = rho_star(rho_l, p_l)
    rsr, wr = rho_star(rho_r, p_r)
    return RiemannSolution(rho_l, u_l, p_l, rho_r, u_r, p_r, p, u, rsl, rsr, wl, wr, g, it)


def sample(sol: RiemannSolution, xi: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Self-similar solution at ξ = (x − x0)/t.

    Parameters
    ----------
    sol : star state from :func:`solve`.
    xi : (n,) float64, similarity coordinates.

    Returns
    -------
    rho, u, p : (n,) float64 each.
    """
    xi = np.atleast_1d(np.asarray(xi, dtype=float))
    g = sol.gamma
    rho = np.empty_like(xi)
    u = np.empty_like(xi)
    p = np.empty_like(xi)
    left = xi <= sol.u_star
    for side, mask in (("l", left), ("r", ~left)):
        s = -1.0 if side == "l" else 1.0  # mirror the right side onto the left-wave formulas
        rho_k, u_k, p_k = (getattr(sol, f"{n}_{side}") for n in ("rho", "u", "p"))
        c_k = math.sqrt(g * p_k / rho_k)
        rho_s = sol.rho_star_l if side == "l" else sol.rho_star_r
        xs = xi[mask]
        wave = sol.left_wave if side == "l" else sol.right_wave
        r_out = np.full(xs.shape, rho_s)
        u_out = np.full(xs.shape, sol.u_star)
        p_out = np.full(xs.shape, sol.p_star)
        if wave == "shock":
            S = u_k + s * c_k * math.sqrt((g + 1) / (2 * g) * sol.p_star / p_k + (g - 1) / (2 * g))
            outside = s * (xs - S) >= 0.0  # data side of the shock
            r_out[outside], u_out[outside], p_out[outside] = rho_k, u_k, p_k
        else:
            c_star = c_k * (sol.p_star / p_k) ** ((g - 1) / (2 * g))
            head = u_k + s * c_k
            tail = sol.u_star + s * c_star
            outside = s * (xs - head) >= 0.0
            fan = (~outside) & (s * (xs - tail) > 0.0)
            r_out[outside], u_out[outside], p_out[outside] = rho_k, u_k, p_k
            xf = xs[fan]
            # inside the fan: u − s·c = ξ and the Riemann invariant u − s 2c/(γ−1) = u_k − s 2c_k/(γ−1)
            cf = 2.0 / (g + 1.0) * (c_k - s * (g - 1.0) / 2.0 * (u_k - xf))
            u_out[fan] = xf - s * cf
            r_out[fan] = rho_k * (cf / c_k) ** (2.0 / (g - 1.0))
            p_out[fan] = p_k * (cf / c_k) ** (2.0 * g / (g - 1.0))
        rho[mask], u[mask], p[mask] = r_out, u_out, p_out
    return rho, u, p


def exact_solution(
    sol: RiemannSolution, x: ArrayLike, t: float, x0: float = 0.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Point values (ρ, u, p) at positions x (n,) and time t ≥ 0 for a jump initially at x0."""
    x = np.atleast_1d(np.asarray(x, dtype=float))
    if t < 0.0:
        raise ValueError(f"t must be >= 0, got {t!r}")
    if t == 0.0:
        left = x < x0
        return (np.where(left, sol.rho_l, sol.rho_r), np.where(left, sol.u_l, sol.u_r), np.where(left, sol.p_l, sol.p_r))
    return sample(sol, (x - x0) / t)


def cell_averages(
    sol: RiemannSolution, x_faces: ArrayLike, t: float, x0: float = 0.0, nsub: int = 64
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Cell averages of the conserved variables, returned as primitive (ρ, u, p) per cell.

    Parameters
    ----------
    x_faces : (n + 1,) increasing cell faces.
    nsub : Gauss–Legendre points per cell (discontinuities make the quadrature first-order
        accurate in 1/nsub within the one cell that holds a wave, which is enough for L1 errors).

    Returns
    -------
    rho, u, p : (n,) float64, primitive variables of the cell-averaged conserved state.
    """
    xf = np.asarray(x_faces, dtype=float)
    nodes, weights = np.polynomial.legendre.leggauss(nsub)
    a, b = xf[:-1, None], xf[1:, None]
    xq = 0.5 * (a + b) + 0.5 * (b - a) * nodes[None, :]
    r, u, p = exact_solution(sol, xq.ravel(), t, x0)
    r, u, p = r.reshape(xq.shape), u.reshape(xq.shape), p.reshape(xq.shape)
    w = 0.5 * weights[None, :]
    m = (w * r).sum(1)
    mom = (w * r * u).sum(1)
    E = (w * (0.5 * r * u * u + p / (sol.gamma - 1.0))).sum(1)
    uu = mom / m
    return m, uu, (sol.gamma - 1.0) * (E - 0.5 * m * uu * uu)
