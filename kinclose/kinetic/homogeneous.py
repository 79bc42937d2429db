r"""Spatially homogeneous Boltzmann equation ∂f/∂t = Q(f) on an N³ velocity grid.

Q is :class:`kinclose.kinetic.boltzmann.FastSpectralBoltzmann`; the Knudsen number enters only
through μ_ref (:meth:`FastSpectralBoltzmann.from_knudsen`), so t is measured in the same units as
for BGK with ν = p/μ(T).

Time integrators
----------------
- ``"rk2"`` (Heun) and ``"rk3"`` (Shu–Osher SSP-RK3): explicit, Δt = cfl / ν_max with
  ν_max = max(max_v ν(v), p/μ(T)), ν(v) the loss frequency of the operator (Q's stiffness).
- ``"imex"``: BGK penalisation of Filbet & Jin (J. Comput. Phys. 229, 2010),
  ∂_t f = [Q(f) − P(f)] + P(f), P(f) = β (M[f] − f), β = max_v ν(v), with P implicit and Q − P
  explicit through the stiffly accurate ARS(2,2,2) IMEX Runge–Kutta pair (Ascher, Ruuth &
  Spiteri 1997). Since Q and P conserve mass, momentum and energy, M[f] is fixed during a step,
  so each implicit stage is explicit in closed form. Δt may then exceed 1/ν (stiff regime).

The discrete Maxwellian M[f] used by the penalisation is corrected by the same constrained L²
projection as Q, so its discrete moments equal those of f to round-off.

Entropy: η(f) = Σ f ln f Δv over nodes with f > 0 (0 ln 0 = 0); small negative values that a
spectral method may produce in far tails are thus ignored and the diagnostic ``neg_mass`` reports
their mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
from numpy.typing import NDArray

from kinclose.kinetic.boltzmann import FastSpectralBoltzmann

__all__ = ["entropy", "stress_tensor", "time_step", "conserved_maxwellian", "RelaxationResult", "relax"]


def entropy(f: NDArray[np.float64], dv: float) -> float:
    """η = Σ_{f>0} f ln f Δv for nodal values f (N, N, N); cell volume ``dv``."""
    pos = f > 0.0
    fp = f[pos]
    return float(np.sum(fp * np.log(fp)) * dv)


def stress_tensor(op: FastSpectralBoltzmann, f: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pressure tensor P_ij = ∫ c_i c_j f dv, c = v − u; returns (3, 3) float64."""
    rho, u, _ = op.moments(f)
    c = [vi - ui for vi, ui in zip(op.v1d, u)]
    C = np.meshgrid(*c, indexing="ij")
    P = np.empty((3, 3))
    for i in range(3):
        for j in range(i, 3):
            P[i, j] = P[j, i] = float(np.sum(C[i] * C[j] * f) * op.dv)
    return P


def conserved_maxwellian(op: FastSpectralBoltzmann, f: NDArray[np.float64]) -> NDArray[np.float64]:
    """Maxwellian with the moments of f whose *discrete* moments equal those of f to round-off."""
    rho, u, T = op.moments(f)
    M = op.maxwellian(rho, u, T)
    d = op._Cm @ (f - M).reshape(-1)
    M.reshape(-1)[:] += op._proj @ d
    return M


def time_step(op: FastSpectralBoltzmann, f: NDArray[np.float64], cfl: float = 0.5) -> float:
    """Explicit step Δt = cfl / ν_max, ν_max = max(max_v ν(v), p/μ(T)).

    Parameters
    ----------
    op : FastSpectralBoltzmann
    f : (N, N, N) float64
    cfl : float
        Fraction of 1/ν_max (RK2 is stable for ν Δt ≤ 2, RK3 for ≤ 2.5 on the loss part).
    """
    rho, _, T = op.moments(f)
    nu = float(np.max(op.collision_frequency(f)))
    nu_bgk = rho * T / (op.mu_ref * T**op.omega)
    return cfl / max(nu, nu_bgk)


@dataclass
class RelaxationResult:
    """History of a homogeneous relaxation.

    Attributes
    ----------
    t : (nt,) float64
        Times of the records (every step).
    mass, energy : (nt,) float64
        ∫ f dv and ∫ |v|²/2 f dv.
    momentum : (nt, 3) float64
    stress : (nt, 3, 3) float64
        Pressure tensor P_ij.
    entropy : (nt,) float64
        η(f) (see module docstring).
    neg_mass : (nt,) float64
        Σ_{f<0} |f| Δv.
    f : (N, N, N) float64
        Final distribution.
    snapshots : dict[float, (N, N, N) float64]
        Distributions at the requested ``save_times`` (first step reaching each time).
    """

    t: NDArray[np.float64]
    mass: NDArray[np.float64]
    momentum: NDArray[np.float64]
    energy: NDArray[np.float64]
    stress: NDArray[np.float64]
    entropy: NDArray[np.float64]
    neg_mass: NDArray[np.float64]
    f: NDArray[np.float64]
    snapshots: dict[float, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def temperatures(self) -> NDArray[np.float64]:
        """Directional temperatures P_ii / ρ, (nt, 3)."""
        return np.diagonal(self.stress, axis1=1, axis2=2) / self.mass[:, None]


def _record(op: FastSpectralBoltzmann, f: NDArray[np.float64], rec: dict[str, list]) -> None:
    m = op._Cm @ f.reshape(-1) * op.dv
    c = op.center
    mom = m[1:4] + m[0] * c
    en = 0.5 * (m[4] + 2.0 * (m[1:4] @ c) + m[0] * (c @ c))
    rec["mass"].append(m[0])
    rec["momentum"].append(mom)
    rec["energy"].append(en)
    rec["stress"].append(stress_tensor(op, f))
    rec["entropy"].append(entropy(f, op.dv))
    rec["neg_mass"].append(float(-np.sum(f[f < 0.0]) * op.dv))


def relax(
    op: FastSpectralBoltzmann,
    f0: NDArray[np.float64],
    t_end: float,
    method: Literal["rk2", "rk3", "imex"] = "rk3",
    cfl: float = 0.5,
    dt: float | None = None,
    save_times: tuple[float, ...] = (),
    callback: Callable[[float, NDArray[np.float64]], None] | None = None,
) -> RelaxationResult:
    """Integrate ∂f/∂t = Q(f) from t = 0 to ``t_end``.

    Parameters
    ----------
    op : FastSpectralBoltzmann
        Collision operator (its grid defines f's shape).
    f0 : (N, N, N) float64
        Initial distribution at the nodes.
    t_end : float
        Final time (≥ 0).
    method : {"rk2", "rk3", "imex"}
        Time integrator (module docstring).
    cfl : float
        Δt = cfl / ν_max when ``dt`` is None (evaluated once from f0; ν_max only decreases as f
        relaxes for the kernels used here, and the last step is shortened to hit t_end).
    dt : float, optional
        Fixed time step overriding ``cfl``.
    save_times : tuple of float
        Times at which to keep a copy of f (the first step end at or after each).
    callback : callable, optional
        Called as ``callback(t, f)`` after every step.

    Returns
    -------
    RelaxationResult
    """
    if not (math.isfinite(t_end) and t_end >= 0.0):
        raise ValueError(f"t_end must be finite and >= 0, got {t_end!r}")
    if method not in ("rk2", "rk3", "imex"):
        raise ValueError(f"unknown method {method!r}; use 'rk2', 'rk3' or 'imex'")
    f = op.check_input(f0).copy()
    if dt is None:
        if not (cfl > 0.0 and math.isfinite(cfl)):
            raise ValueError(f"cfl must be positive, got {cfl!r}")
        dt = time_step(op, f, cfl)
    elif not (dt > 0.0 and math.isfinite(dt)):
        raise ValueError(f"dt must be positive and finite, got {dt!r}")
    beta = float(np.max(op.collision_frequency(f))) if method == "imex" else 0.0

    rec: dict[str, list] = {k: [] for k in ("t", "mass", "momentum", "energy", "stress", "entropy", "neg_mass")}
    rec["t"].append(0.0)
    _record(op, f, rec)
    pending = sorted(float(s) for s in save_times)
    snapshots: dict[float, NDArray[np.float64]] = {}
    while pending and pending[0] <= 0.0:
        snapshots[pending.pop(0)] = f.copy()

    t = 0.0
    while t < t_end * (1.0 - 1e-14):
        h = min(dt, t_end - t)
        if method == "rk2":
            k1 = op(f)
            f1 = f + h * k1
            f = 0.5 * (f + f1 + h * op(f1))
        elif method == "rk3":
            f1 = f + h * op(f)
            f2 = 0.75 * f + 0.25 * (f1 + h * op(f1))
            f = f / 3.0 + 2.0 / 3.0 * (f2 + h * op(f2))
        else:
            f = _ars222_step(op, f, h, beta)
        t += h
        rec["t"].append(t)
        _record(op, f, rec)
        while pending and pending[0] <= t * (1.0 + 1e-12):
            snapshots[pending.pop(0)] = f.copy()
        if callback is not None:
            callback(t, f)

    return RelaxationResult(
        t=np.asarray(rec["t"]),
        mass=np.asarray(rec["mass"]),
        momentum=np.asarray(rec["momentum"]),
        energy=np.asarray(rec["energy"]),
        stress=np.asarray(rec["stress"]),
        entropy=np.asarray(rec["entropy"]),
        neg_mass=np.asarray(rec["neg_mass"]),
        f=f,
        snapshots=snapshots,
    )


def _ars222_step(op: FastSpectralBoltzmann, f: NDArray[np.float64], h: float, beta: float) -> NDArray[np.float64]:
    """One ARS(2,2,2) step of ∂f/∂t = [Q − P](f) + P(f), P(f) = β(M − f), M fixed in the step."""
    g = 1.0 - 1.0 / math.sqrt(2.0)
    d = 1.0 - 1.0 / (2.0 * g)
    M = conserved_maxwellian(op, f)

    def implicit(rhs: NDArray[np.float64]) -> NDArray[np.float64]:
        # F = rhs + h g β (M − F)  ⇒  F = (rhs + h g β M) / (1 + h g β)
        return (rhs + h * g * beta * M) / (1.0 + h * g * beta)

    E1 = op(f) - beta * (M - f)
    F2 = implicit(f + h * g * E1)
    I2 = beta * (M - F2)
    E2 = op(F2) - I2
    F3 = implicit(f + h * (d * E1 + (1.0 - d) * E2) + h * (1.0 - g) * I2)
    return F3
