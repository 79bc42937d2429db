"""Uniform velocity grids for the Chu-reduced (1D in v1) discrete-velocity method.

Nodes are cell midpoints v_j = v_min + (j + ½) Δv, j = 0 … nv−1, with quadrature weight Δv
(the midpoint rule integrates smooth, rapidly decaying functions spectrally accurately).
Bounds are derived from the states present: [min(u − w√T), max(u + w√T)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from kinclose.physics import check_state

DEFAULT_WIDTH = 6.5
"""Half-width in thermal speeds; 6.5 keeps the lost mass/energy of every state below 1e-8."""

GRID_RTOL = 1e-8
"""Largest relative mass or energy error of a state's Maxwellian on the grid that is accepted."""


class VelocityGridError(ValueError):
    """The velocity grid cannot represent a state (too narrow or too coarse)."""


@dataclass(frozen=True)
class VelocityGrid:
    """Uniform 1D velocity grid: nodes ``v`` (nv,), spacing ``dv``."""

    v_min: float
    v_max: float
    nv: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.v_min) and np.isfinite(self.v_max) and self.v_max > self.v_min):
            raise ValueError(f"velocity grid needs finite v_min < v_max, got [{self.v_min}, {self.v_max}]")
        if not (isinstance(self.nv, (int, np.integer)) and not isinstance(self.nv, bool) and self.nv >= 8):
            raise ValueError(f"velocity grid needs an integer nv >= 8, got {self.nv!r}")

    @property
    def dv(self) -> float:
        return (self.v_max - self.v_min) / self.nv

    @property
    def v(self) -> NDArray[np.float64]:
        return self.v_min + (np.arange(self.nv) + 0.5) * self.dv

    @classmethod
    def for_states(cls, u: ArrayLike, T: ArrayLike, nv: int, width: float = DEFAULT_WIDTH) -> "VelocityGrid":
        """Grid covering u ± width·√T of every state (u, T arrays of any shape)."""
        u = np.asarray(u, dtype=float).ravel()
        T = np.asarray(T, dtype=float).ravel()
        check_state(np.ones_like(T), u, T, where="velocity-grid states")
        s = width * np.sqrt(T)
        return cls(float(np.min(u - s)), float(np.max(u + s)), nv)

    def maxwellian_errors(self, rho: ArrayLike, u: ArrayLike, T: ArrayLike) -> tuple[NDArray, NDArray]:
        """Relative mass and energy errors of each state's Maxwellian on this grid.

        Mass Σ G Δv vs ρ and energy ½ Σ (v² + 2T) G Δv vs E = ½ρu² + (3/2)ρT.
        """
        rho, u, T = (np.atleast_1d(np.asarray(a, dtype=float)).ravel() for a in (rho, u, T))
        v = self.v[None, :]
        G = rho[:, None] / np.sqrt(2 * np.pi * T[:, None]) * np.exp(-0.5 * (v - u[:, None]) ** 2 / T[:, None])
        mass = G.sum(axis=1) * self.dv
        energy = 0.5 * ((v**2 + 2 * T[:, None]) * G).sum(axis=1) * self.dv
        E = 0.5 * rho * u**2 + 1.5 * rho * T
        return np.abs(mass - rho) / rho, np.abs(energy - E) / E

    def check_covers(self, rho: ArrayLike, u: ArrayLike, T: ArrayLike, rtol: float = GRID_RTOL) -> None:
        """Raise :class:`VelocityGridError` if a state's Maxwellian loses more than ``rtol``
        of its mass or energy on this grid (too narrow: widen the bounds; too coarse: raise nv)."""
        rho, u, T = (np.atleast_1d(np.asarray(a, dtype=float)).ravel() for a in (rho, u, T))
        em, ee = self.maxwellian_errors(rho, u, T)
        err = np.maximum(em, ee)
        if np.any(err > rtol):
            i = int(np.argmax(err))
            need_lo = u[i] - DEFAULT_WIDTH * np.sqrt(T[i])
            need_hi = u[i] + DEFAULT_WIDTH * np.sqrt(T[i])
            hint = (
                f"widen the grid to at least [{min(self.v_min, need_lo):.3g}, {max(self.v_max, need_hi):.3g}]"
                if (need_lo < self.v_min or need_hi > self.v_max)
                else f"refine it: dv = {self.dv:.3g} is too coarse for sqrt(T) = {np.sqrt(T[i]):.3g}, raise nv"
            )
            raise VelocityGridError(
                f"velocity grid [{self.v_min:.4g}, {self.v_max:.4g}] with nv={self.nv} loses a relative "
                f"{err[i]:.2e} (> {rtol:g}) of the mass/energy of the state rho={rho[i]:.4g}, u={u[i]:.4g}, "
                f"T={T[i]:.4g}; {hint}"
            )
