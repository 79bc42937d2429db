"""Closures of the reduced moment system (seed eq. 13; DESIGN §6 and Appendix).

Generalized moments of a cell in its own frame (ρ, u, T), ξ = (v1 − u)/√T:

    W = (1/ρ) ∫ [a(ξ) g + b(ξ) h / T] dv1 ∈ R^M       (Chu-reduced g, h)

The reduced solver needs, for a shape with moments W, only invariant functions:

* σ̂(W) = σ/(ρT), q̂(W) = q/(ρT^{3/2})                     (flux of U)
* m(W; δ, τ) = (1/ρ) ∫ [a(ξ*) g + b(ξ*) h/T*] dv1        (moments in the frame (u*, T*))
* k(W; δ, τ) = (1/ρ) ∫ ξ [a(ξ*) g + b(ξ*) h/T*] dv1       (flux: ∫ v1 (...) = ρ[u m + √T k])

with ξ* = τ ξ + δ, δ = (u − u*)/√T*, τ = √(T/T*), and m(W; 0, 1) = W.
BGK source in the cell's own frame: R = ν ρ (W_eq − W), W_eq the moments of the Maxwellian shape.

Every closure — learned, Hermite, oracle — implements :class:`ShapeClosure`; the solver never
looks inside. ``cells`` tells a closure which cell each state was reconstructed from; only the
oracle uses it.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np
from numpy.typing import NDArray

WeightFn = Callable[[NDArray], NDArray]
"""ξ (n,) → weights (n, M)."""


class ShapeClosure(Protocol):
    n_moments: int
    xi_max: float  # bound of the characteristic speeds |λ − u| / √T used by the Rusanov flux

    def equilibrium(self) -> NDArray: ...  # (M,) W of the Maxwellian shape

    def stress_heat(self, W: NDArray, cells: NDArray) -> NDArray: ...  # (n, M) → (n, 2): σ̂, q̂

    def frame(self, W: NDArray, delta: NDArray, tau: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
        """(n, M), (n,), (n,) → m (n, M), k (n, M)."""
        ...


def hermite_weights(orders: tuple[int, ...] = (3, 4, 5)) -> tuple[WeightFn, WeightFn]:
    """a(ξ) = He_n(ξ)/√(n!) for the given orders (probabilists' Hermite), b ≡ 0."""
    orders = tuple(int(n) for n in orders)

    def a(xi: NDArray) -> NDArray:
        xi = np.asarray(xi, dtype=float)
        cols = []
        for n in orders:
            c = np.zeros(n + 1)
            c[n] = 1.0
            cols.append(np.polynomial.hermite_e.hermeval(xi, c) / math.sqrt(math.factorial(n)))
        return np.stack(cols, axis=-1)

    def b(xi: NDArray) -> NDArray:
        return np.zeros(np.shape(xi) + (len(orders),))

    return a, b


def shape_quadrature(g: NDArray, h: NDArray, v: NDArray, dv: float, a: WeightFn, b: WeightFn,
                     u_star: NDArray | None = None, T_star: NDArray | None = None
                     ) -> dict[str, NDArray]:
    """Exact closure quantities of Chu-reduced distributions by quadrature on their velocity grid.

    g, h : (n, nv) distributions; v (nv,); frames (u*, T*) (n,) default to each cell's own frame.
    Returns rho, u, T, sigma_hat, q_hat (n,), m and k (n, M) measured in the frame (u*, T*).
    """
    rho = g.sum(1) * dv
    u = (g * v).sum(1) * dv / rho
    T = ((g * v * v + h).sum(1) * dv / rho - u * u) / 3.0
    c = v[None, :] - u[:, None]
    sigma = (c * c * g).sum(1) * dv - rho * T
    q = 0.5 * (c * (c * c * g + h)).sum(1) * dv
    us = u if u_star is None else u_star
    Ts = T if T_star is None else T_star
    xs = (v[None, :] - us[:, None]) / np.sqrt(Ts)[:, None]
    A = a(xs)  # (n, nv, M)
    B = b(xs)
    dens = A * g[..., None] + B * (h / Ts[:, None])[..., None]
    m = dens.sum(1) * dv / rho[:, None]
    xi = c / np.sqrt(T)[:, None]
    k = (xi[..., None] * dens).sum(1) * dv / rho[:, None]
    return {"rho": rho, "u": u, "T": T, "sigma_hat": sigma / (rho * T), "q_hat": q / (rho * T**1.5), "m": m, "k": k}


class OracleClosure:
    """Exact closure from a concurrent kinetic (DVM) solution (the oracle test of DESIGN §6).

    For a state reconstructed from cell j the closure quantities are computed by quadrature from
    the DVM distribution of cell j: σ̂, q̂ and k exactly; the frame change as the exact increment
    m(W; δ, τ) = W + [m_DVM(δ, τ) − W_DVM], which equals the exact value when W = W_DVM and keeps
    m(·; 0, 1) the identity, so the solver's frame update is well posed.

    ``update(g, h)`` must be called with the DVM distributions (nx, nv) before each step.
    """

    def __init__(self, v: NDArray, dv: float, a: WeightFn, b: WeightFn, xi_max: float = 4.0) -> None:
        self.v = np.asarray(v, dtype=float)
        self.dv = float(dv)
        self.a, self.b = a, b
        self.n_moments = int(a(np.zeros(1)).shape[-1])
        self.xi_max = float(xi_max)
        self.g = self.h = None

    def update(self, g: NDArray, h: NDArray) -> None:
        self.g = np.asarray(g)
        self.h = np.asarray(h)
        self._own = shape_quadrature(self.g, self.h, self.v, self.dv, self.a, self.b)

    def moments(self) -> NDArray:
        """(nx, M) W of the current DVM distributions in their own frames."""
        return self._own["m"]

    def equilibrium(self) -> NDArray:
        v = np.linspace(-12, 12, 2401)
        G = np.exp(-0.5 * v * v)[None, :] / math.sqrt(2 * math.pi)
        return shape_quadrature(G, 2 * G, v, v[1] - v[0], self.a, self.b)["m"][0]

    def stress_heat(self, W: NDArray, cells: NDArray) -> NDArray:
        o = self._own
        return np.stack([o["sigma_hat"][cells], o["q_hat"][cells]], axis=1)

    def frame(self, W: NDArray, delta: NDArray, tau: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
        o = self._own
        # frame (u*, T*) of the requested (δ, τ) relative to the DVM cell's own state
        T_star = o["T"][cells] / tau**2
        u_star = o["u"][cells] - delta * np.sqrt(T_star)
        q = shape_quadrature(self.g[cells], self.h[cells], self.v, self.dv, self.a, self.b, u_star, T_star)
        return W + (q["m"] - o["m"][cells]), q["k"]


class MaxwellianClosure:
    """The closure of a shape that is always Maxwellian (σ̂ = q̂ = 0): the reduced model is then the
    Euler system for U. Exact m, k of the Maxwellian shape by quadrature; used for tests and as the
    ε → 0 limit of any consistent closure."""

    def __init__(self, a: WeightFn, b: WeightFn, xi_max: float = 2.0) -> None:
        self.a, self.b = a, b
        self.n_moments = int(a(np.zeros(1)).shape[-1])
        self.xi_max = float(xi_max)
        self._v = np.linspace(-12.0, 12.0, 241)
        G = np.exp(-0.5 * self._v**2) / math.sqrt(2 * math.pi)
        self._G, self._H = G[None, :], 2 * G[None, :]
        self._eq = self._quad(np.zeros(1), np.ones(1))[0][0]

    def _quad(self, delta: NDArray, tau: NDArray) -> tuple[NDArray, NDArray]:
        n = delta.size
        T_star = 1.0 / tau**2
        q = shape_quadrature(np.repeat(self._G, n, 0), np.repeat(self._H, n, 0), self._v, self._v[1] - self._v[0],
                             self.a, self.b, -delta * np.sqrt(T_star), T_star)
        return q["m"], q["k"]

    def equilibrium(self) -> NDArray:
        return self._eq.copy()

    def stress_heat(self, W: NDArray, cells: NDArray) -> NDArray:
        return np.zeros((W.shape[0], 2))

    def frame(self, W: NDArray, delta: NDArray, tau: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
        m, k = self._quad(np.asarray(delta, dtype=float), np.asarray(tau, dtype=float))
        return W + (m - self._eq), k
