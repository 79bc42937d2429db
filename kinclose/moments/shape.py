"""Normalized shapes of Chu-reduced distributions (NumPy only; DESIGN §5).

A cell's distribution is given by g(v1) = ∫ f dv2 dv3 and h(v1) = ∫ (v2² + v3²) f dv2 dv3 on a
uniform velocity grid. With (ρ, u, T) the cell's own density, velocity and temperature and
ξ = (v1 − u)/√T, its *shape* is

    ĝ(ξ) = √T g(u + √T ξ) / ρ,          ĥ(ξ) = √T h(u + √T ξ) / (ρ T),

tabulated on a fixed, symmetric midpoint grid ξ_k = −ξ_max + (k + ½) Δξ (k = 0 … n−1) with
weight Δξ. Exactly, ∫ ĝ dξ = 1, ∫ ξ ĝ dξ = 0, ∫ (ξ² ĝ + ĥ) dξ = 3 (mass, momentum, energy);
on the grid these hold to interpolation and truncation accuracy. The shape is the same for
every (ρ, u, T): it is the Galilean- and scale-invariant content of f.

Inverse map: g(v) = ρ ĝ((v − u)/√T) / √T, h(v) = ρ √T ĥ((v − u)/√T) (zero outside the ξ grid).

Interpolation ("logcubic", default): a not-a-knot cubic spline through ln g (ln h) on the stored
grid, evaluated at u + √T ξ_k and exponentiated. It keeps the shape positive and reproduces a
Maxwellian (ln G is a parabola) to round-off, also narrow beams that linear interpolation would
smear. Values below REL_FLOOR (1e−30) of the cell's maximum, zeros, and isolated tiny negative
values (a DVM tail artefact) are floored there before taking logs, and the spline is clipped to at
most e× the larger of the two neighbouring nodes, so that it cannot overshoot next to a floored
node (a resolved Maxwellian never reaches that bound). "linear" interpolates g and h directly
(second order, also positive). "cubic" interpolates g and h themselves by the same not-a-knot
spline (index coordinate) and floors the result at REL_FLOOR × the row maximum: use it for data whose
tails hold many small negative values (the N = 16 Boltzmann DVM: ~15 % of the stored values), where
the floored ln g of "logcubic" has deep holes that the spline turns into tail overshoots (measured on
conf/dataset/boltzmann_small: σ/(ρT) from the shapes vs. the stored grid, RMS error 0.16 with
"logcubic", 0.14 "linear", 0.0016 "cubic").

Entropy (reduced, kinclose.kinetic.moments): η = Σ g [ln(g²/(π h)) − 1] Δv. In shape variables

    η = ρ [η̂ + ln ρ − (3/2) ln T],      η̂ = ∫ ĝ [ln(ĝ²/(π ĥ)) − 1] dξ,

(using ∫ ĝ dξ = 1); η̂ is the invariant "entropy per unit mass" of the shape. For the Maxwellian
shape ĝ = φ(ξ) = e^{−ξ²/2}/√(2π), ĥ = 2φ: η̂_M = −(3/2) ln(2π) − 3/2.

Hermite moments of the shape (DESIGN §5, HermMLC). The weights w(ξ, s), s = |v⊥|²/T, are affine in
s, so a moment is ∫ [a(ξ) ĝ + b(ξ) ĥ] dξ with w = a + b s. With He_n the probabilists' Hermite
polynomials and L(s) = s/2 − 1 the first Laguerre polynomial of the perpendicular energy:

* basis "orders": W_k = ∫ He_n(ξ) ĝ dξ / √(n!), n = 3 … 2 + M (one moment per order n, the
  v1-Hermite moments that are not fixed by ρ, u, T in 1D);
* basis "graded": the Chu-reduced 3D Hermite moments in order of total degree, starting with the
  first one that (ρ, u, T) do not fix: He_2(ξ)/√2 (= normal stress σ/(ρT)/√2), He_3/√6,
  ξ L(s), He_4/√24, He_2 L(s)/√2, He_5/√120, He_3 L(s)/√6, … i.e. for degree d ≥ 2 first
  He_d(ξ) then He_{d−2}(ξ) L(s) (d ≥ 3).

Every one of them vanishes on the Maxwellian shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

from kinclose.kinetic.moments import conserved

REL_FLOOR = 1e-30
"""Smallest value, relative to the row maximum, that the log interpolation resolves; smaller,
zero or negative stored values are represented by it (they are below any meaningful accuracy)."""

ETA_MAXWELLIAN = -1.5 * math.log(2.0 * math.pi) - 1.5
"""η̂ of the Maxwellian shape."""

METHODS = ("logcubic", "linear", "cubic")
HERMITE_BASES = ("orders", "graded")


class VelocityCoverageError(ValueError):
    """The stored velocity grid does not cover u + √T ξ for the whole ξ grid of some cells."""


@dataclass(frozen=True)
class XiGrid:
    """Symmetric midpoint grid on [−xi_max, xi_max] with ``n`` nodes, weight ``dxi``."""

    xi_max: float = 6.0
    n: int = 96

    def __post_init__(self) -> None:
        if not (math.isfinite(self.xi_max) and self.xi_max > 0):
            raise ValueError(f"xi_max must be positive and finite, got {self.xi_max!r}")
        if int(self.n) < 8 or int(self.n) % 2:
            raise ValueError(f"the xi grid needs an even n >= 8 (symmetric about 0), got {self.n!r}")

    @property
    def dxi(self) -> float:
        return 2.0 * self.xi_max / self.n

    @property
    def xi(self) -> NDArray[np.float64]:
        """(n,) nodes ξ_k = −ξ_max + (k + ½) Δξ."""
        return -self.xi_max + (np.arange(self.n) + 0.5) * self.dxi


# ---------------------------------------------------------------------- interpolation
def _interp_rows(y: NDArray, x0: float, dx: float, xq: NDArray, method: str) -> NDArray:
    """Interpolate each row of ``y`` (n, m), tabulated at x0 + j dx, at the points ``xq`` (n, k).

    Points must lie in [x0, x0 + (m−1) dx] (callers check); see the module docstring for methods.
    """
    n, m = y.shape
    pos = (xq - x0) / dx
    k = np.clip(np.floor(pos).astype(np.int64), 0, m - 2)
    t = pos - k
    rows = np.arange(n)[:, None]
    if method == "linear":
        return (1.0 - t) * y[rows, k] + t * y[rows, k + 1]
    if method == "cubic":
        cs = CubicSpline(np.arange(m, dtype=float), y, axis=1, bc_type="not-a-knot")
        c = np.transpose(cs.c, (2, 1, 0))
        cc = c[rows, k]
        val = ((cc[..., 0] * t + cc[..., 1]) * t + cc[..., 2]) * t + cc[..., 3]
        return np.maximum(val, np.max(y, axis=1, keepdims=True) * REL_FLOOR)
    if method != "logcubic":
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {METHODS}")
    # ln y with a floor REL_FLOOR × (row maximum): values below it, zeros and the isolated tiny
    # negative values a DVM may leave in far tails carry no information at that level
    ymax = np.max(y, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(np.maximum(y, ymax * REL_FLOOR))
    # the spline is built in the index coordinate, so that any affine change of the velocity
    # variable (shift by u, scale by √T) gives the same interpolant to round-off
    cs = CubicSpline(np.arange(m, dtype=float), ly, axis=1, bc_type="not-a-knot")
    c = np.transpose(cs.c, (2, 1, 0))  # (n, m-1, 4), highest power first
    cc = c[rows, k]  # (n, k, 4)
    val = ((cc[..., 0] * t + cc[..., 1]) * t + cc[..., 2]) * t + cc[..., 3]
    # guard against spline overshoot next to floored values: a resolved smooth ln y exceeds the
    # larger of its two nodes by at most Δv²/(8T) < 1 between them (so a Maxwellian is untouched)
    hi = np.maximum(ly[rows, k], ly[rows, k + 1]) + 1.0
    with np.errstate(divide="ignore"):
        val = np.clip(val, np.log(ymax * REL_FLOOR), hi)
    return np.exp(val)


def primitive_from_gh(g: NDArray, h: NDArray, v: NDArray, dv: float) -> tuple[NDArray, NDArray, NDArray]:
    """(ρ, u, T) of each cell from its discrete moments; g, h (..., nv); returns three (...) arrays."""
    U = conserved(g, h, v, dv)
    rho = U[..., 0]
    u = U[..., 1] / rho
    T = (2.0 * U[..., 2] / rho - u * u) / 3.0
    return rho, u, T


def coverage(u: NDArray, T: NDArray, v: NDArray, grid: XiGrid) -> dict:
    """How many cells have u + √T ξ outside the stored nodes [v_0, v_{nv−1}] for some ξ node.

    Returns ``{"n_cells", "n_bad", "xi_max_covered", "v_needed": (lo, hi), "worst": index}``;
    ``xi_max_covered`` is the largest ξ_max whose outermost node every cell covers.
    """
    u = np.asarray(u, dtype=float).ravel()
    sT = np.sqrt(np.asarray(T, dtype=float).ravel())
    x_out = grid.xi[-1]  # outermost node, = xi_max − dxi/2
    lo = u - sT * x_out
    hi = u + sT * x_out
    bad = (lo < v[0]) | (hi > v[-1])
    reach = np.minimum((u - v[0]) / sT, (v[-1] - u) / sT)  # largest |ξ| covered by each cell
    covered = float(reach.min()) + 0.5 * grid.dxi  # convert outermost node → xi_max
    return {
        "n_cells": int(u.size),
        "n_bad": int(bad.sum()),
        "xi_max_covered": covered,
        "v_needed": (float(lo.min()), float(hi.max())),
        "worst": int(np.argmin(reach)),
    }


def check_coverage(u: NDArray, T: NDArray, v: NDArray, grid: XiGrid, where: str = "data") -> dict:
    """Raise :class:`VelocityCoverageError` (cell count and fix in the message) unless every cell's
    ξ grid, mapped back to u + √T ξ, lies inside the stored velocity nodes."""
    rep = coverage(u, T, v, grid)
    if rep["n_bad"]:
        lo, hi = rep["v_needed"]
        u_ = np.asarray(u, dtype=float).ravel()[rep["worst"]]
        T_ = np.asarray(T, dtype=float).ravel()[rep["worst"]]
        raise VelocityCoverageError(
            f"{where}: {rep['n_bad']} of {rep['n_cells']} cells are not covered by the stored velocity grid "
            f"[{v[0]:.4g}, {v[-1]:.4g}] (nodes): their xi grid [-{grid.xi_max:g}, {grid.xi_max:g}] mapped to "
            f"u + sqrt(T) xi leaves it (worst cell u={u_:.4g}, T={T_:.4g}). Fix: relabel with a velocity grid "
            f"covering at least [{lo:.4g}, {hi:.4g}] (u ± {grid.xi_max:g} sqrt(T) of every state, e.g. a larger "
            f"T margin), or lower xi_max to <= {max(rep['xi_max_covered'], 0.0):.3g} (what every cell covers)."
        )
    return rep


# ---------------------------------------------------------------------- shape maps
def to_shape(
    g: NDArray,
    h: NDArray,
    v: NDArray,
    dv: float,
    grid: XiGrid,
    method: str = "logcubic",
    prim: tuple[NDArray, NDArray, NDArray] | None = None,
    check: bool = True,
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """Normalized shapes of cells.

    Parameters
    ----------
    g, h : (n, nv) float64, Chu-reduced distributions on the uniform nodes ``v`` (nv,), spacing dv.
    grid : the ξ grid.
    prim : optional (ρ, u, T), each (n,); by default from the discrete moments of (g, h).
    check : raise :class:`VelocityCoverageError` if a cell's ξ grid leaves the stored nodes.

    Returns
    -------
    G, H : (n, grid.n) shapes ĝ, ĥ; rho, u, T : (n,).
    """
    g = np.atleast_2d(np.asarray(g, dtype=float))
    h = np.atleast_2d(np.asarray(h, dtype=float))
    v = np.asarray(v, dtype=float)
    if prim is None:
        rho, u, T = primitive_from_gh(g, h, v, dv)
    else:
        rho, u, T = (np.asarray(a, dtype=float).ravel() for a in prim)
    if np.any(~(rho > 0)) or np.any(~(T > 0)):
        i = int(np.flatnonzero(~((rho > 0) & (T > 0)))[0])
        raise ValueError(f"cell {i} has rho={rho[i]!r}, T={T[i]!r}; shapes need rho > 0 and T > 0")
    if check:
        check_coverage(u, T, v, grid)
    sT = np.sqrt(T)
    xq = u[:, None] + sT[:, None] * grid.xi[None, :]
    x0 = float(v[0])
    G = _interp_rows(g, x0, dv, xq, method) * (sT / rho)[:, None]
    H = _interp_rows(h, x0, dv, xq, method) / (rho * sT)[:, None]
    return G, H, rho, u, T


def from_shape(
    G: NDArray, H: NDArray, rho: NDArray, u: NDArray, T: NDArray, v: NDArray, grid: XiGrid,
    method: str = "logcubic",
) -> tuple[NDArray, NDArray]:
    """Inverse of :func:`to_shape`: (g, h) each (n, nv) on the nodes ``v`` from shapes (n, grid.n).

    g(v) = ρ ĝ(ξ)/√T, h(v) = ρ √T ĥ(ξ), ξ = (v − u)/√T; zero where ξ is outside the ξ nodes.
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    H = np.atleast_2d(np.asarray(H, dtype=float))
    rho, u, T = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (rho, u, T))
    sT = np.sqrt(T)
    xq = (np.asarray(v, dtype=float)[None, :] - u[:, None]) / sT[:, None]
    xi = grid.xi
    inside = (xq >= xi[0]) & (xq <= xi[-1])
    xc = np.clip(xq, xi[0], xi[-1])
    g = np.where(inside, _interp_rows(G, float(xi[0]), grid.dxi, xc, method), 0.0) * (rho / sT)[:, None]
    h = np.where(inside, _interp_rows(H, float(xi[0]), grid.dxi, xc, method), 0.0) * (rho * sT)[:, None]
    return g, h


def shape_moments(G: NDArray, H: NDArray, grid: XiGrid) -> NDArray[np.float64]:
    """(..., 3): discrete ∫ ĝ, ∫ ξ ĝ, ∫ (ξ² ĝ + ĥ) dξ — exactly (1, 0, 3) for an exact shape."""
    xi = grid.xi
    return np.stack([G.sum(-1), (xi * G).sum(-1), (xi * xi * G + H).sum(-1)], axis=-1) * grid.dxi


def maxwellian_shape(grid: XiGrid) -> tuple[NDArray, NDArray]:
    """Exact Maxwellian shape on the ξ nodes: ĝ = φ(ξ) = e^{−ξ²/2}/√(2π), ĥ = 2φ."""
    phi = np.exp(-0.5 * grid.xi**2) / math.sqrt(2.0 * math.pi)
    return phi, 2.0 * phi


# ---------------------------------------------------------------------- entropy
def shape_entropy(G: NDArray, H: NDArray, grid: XiGrid) -> NDArray[np.float64]:
    """η̂ = Σ ĝ [ln(ĝ²/(π ĥ)) − 1] Δξ per shape (...); NaN where ĝ > 0 but ĥ <= 0."""
    return _entropy_sum(G, H) * grid.dxi


def _entropy_sum(g: NDArray, h: NDArray) -> NDArray:
    """Σ g [2 ln g − ln h − ln π − 1] over the last axis, terms with g = 0 dropped.

    Written with logarithms of g and h separately: g² underflows for g < 1e−154 (far tails), which
    would turn ln(g²/(π h)) into −inf.
    """
    g = np.asarray(g, dtype=float)
    h = np.asarray(h, dtype=float)
    pos = g > 0
    ok = pos & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        integrand = np.where(ok, g * (2.0 * np.log(np.where(ok, g, 1.0)) - np.log(np.where(ok, h, 1.0))
                                      - math.log(math.pi) - 1.0), 0.0)
    # g > 0 with h <= 0 is not a distribution (η undefined): NaN for that cell
    return np.where((pos & ~ok).any(-1), np.nan, integrand.sum(-1))


def entropy_from_shape(eta_hat: NDArray, rho: NDArray, T: NDArray) -> NDArray[np.float64]:
    """Reduced entropy of the full distribution: η = ρ [η̂ + ln ρ − (3/2) ln T]."""
    rho = np.asarray(rho, dtype=float)
    return rho * (np.asarray(eta_hat, dtype=float) + np.log(rho) - 1.5 * np.log(np.asarray(T, dtype=float)))


def full_entropy(g: NDArray, h: NDArray, dv: float) -> NDArray[np.float64]:
    """Reduced entropy of the full f on its velocity grid: η = Σ g [ln(g²/(π h)) − 1] Δv.

    Same formula as ``kinclose.kinetic.moments.entropy``, evaluated without forming g² (which
    underflows in far tails and makes that function return −inf for such grids). NaN for cells
    with g > 0 and h <= 0 somewhere (not a distribution; η undefined).
    """
    return _entropy_sum(g, h) * dv


# ---------------------------------------------------------------------- Hermite moments
def _hermite_table(xi: NDArray, nmax: int) -> NDArray:
    """(nmax+1, len(xi)) probabilists' Hermite polynomials He_0 … He_nmax (three-term recurrence)."""
    He = np.empty((nmax + 1, xi.size))
    He[0] = 1.0
    if nmax >= 1:
        He[1] = xi
    for n in range(1, nmax):
        He[n + 1] = xi * He[n] - n * He[n - 1]
    return He


def hermite_terms(M: int, basis: str = "orders") -> list[tuple[int, int]]:
    """The M (n, l) pairs of the weights He_n(ξ) L(s)^l / √(n!), l ∈ {0, 1}, in order."""
    if M < 1:
        raise ValueError(f"need M >= 1 Hermite moments, got {M}")
    if basis == "orders":
        return [(n, 0) for n in range(3, 3 + M)]
    if basis == "graded":
        terms: list[tuple[int, int]] = []
        d = 2
        while len(terms) < M:
            terms.append((d, 0))
            if d >= 3:
                terms.append((d - 2, 1))
            d += 1
        return terms[:M]
    raise ValueError(f"unknown Hermite basis {basis!r}; choose one of {HERMITE_BASES}")


def hermite_weights(grid: XiGrid, M: int, basis: str = "orders") -> tuple[NDArray, NDArray]:
    """(a, b), each (grid.n, M): W_k = Σ [a_k(ξ) ĝ + b_k(ξ) ĥ] Δξ are the Hermite moments.

    w = He_n(ξ) L(s)^l / √(n!) with L(s) = s/2 − 1: l = 0 gives a = He_n/√(n!), b = 0;
    l = 1 gives a = −He_n/√(n!), b = He_n/(2√(n!)) (since ∫ s f dv⊥ / T ↔ ĥ).
    For l = 0 a constant of the size of the Gaussian's truncation error is subtracted so that the
    discrete moments of the Maxwellian shape vanish to round-off.
    """
    terms = hermite_terms(M, basis)
    nmax = max(n for n, _ in terms)
    He = _hermite_table(grid.xi, nmax)
    phi, _ = maxwellian_shape(grid)
    a = np.zeros((grid.n, M))
    b = np.zeros((grid.n, M))
    for k, (n, l) in enumerate(terms):
        p = He[n] / math.sqrt(math.factorial(n))
        if l == 0:
            # remove the tiny constant (truncation of the Gaussian at ±ξ_max, e.g. 2e-6 for He_4 at
            # ξ_max = 6) that keeps the discrete moment of the Maxwellian shape from being 0
            a[:, k] = p - (p * phi).sum() / phi.sum()
        else:
            a[:, k] = -p
            b[:, k] = 0.5 * p
    return a, b


def hermite_moments(G: NDArray, H: NDArray, grid: XiGrid, M: int, basis: str = "orders") -> NDArray[np.float64]:
    """(n, M) Hermite moments of shapes G, H (n, grid.n); zero for the Maxwellian shape."""
    a, b = hermite_weights(grid, M, basis)
    return (np.asarray(G) @ a + np.asarray(H) @ b) * grid.dxi
