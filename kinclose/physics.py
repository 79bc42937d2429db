"""Gas physics shared by every model: units, VHS viscosity, Knudsen number, Rankine–Hugoniot.

Units and conventions (DESIGN §1)
---------------------------------
Monatomic gas, gas constant R = 1 (T has units of velocity²), γ = 5/3.
U = (ρ, ρu, E), E = ½ρu² + (3/2)ρT, p = ρT.

Viscosity (variable hard spheres): μ(T) = μ_ref (T / T_ref)^ω with T_ref = 1.

Mean free path (VHS):  λ = C(ω) μ / (ρ √T),  C(ω) = 2(5−2ω)(7−2ω) / (15 √(2π))
(hard spheres ω = 0.5: C = 16 / (5 √(2π))).

Knudsen number: ε = λ_ref / L with λ_ref the mean free path of the reference state
(ρ_ref, T_ref) = (1, 1) and L the reference length. Hence μ_ref = ε L √T_ref ρ_ref / C(ω).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

GAMMA = 5.0 / 3.0
BENCHMARK_MACHS = (1.5, 2.0, 3.0, 4.0, 5.5, 7.0, 8.0)  # the Mach sweep's shocks (issue 8): never training data


def benchmark_machs_in(machs: ArrayLike) -> list[float]:
    """The Mach numbers of ``machs`` that are benchmark Mach numbers (``BENCHMARK_MACHS``, to rounding)."""
    return [float(m) for m in np.atleast_1d(np.asarray(machs, dtype=float))
            if any(math.isclose(float(m), b) for b in BENCHMARK_MACHS)]


class PhysicalStateError(ValueError):
    """A state that no model can represent: non-positive ρ or T, NaN or inf."""


def check_state(rho: ArrayLike, u: ArrayLike, T: ArrayLike, where: str = "state") -> None:
    """Raise :class:`PhysicalStateError` unless ρ > 0, T > 0 and all values are finite.

    The message names the first offending value and its index.
    """
    for name, arr in (("rho", rho), ("u", u), ("T", T)):
        a = np.asarray(arr, dtype=float)
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise PhysicalStateError(
                f"{where}: {name} is not finite (value {a.ravel()[i]!r} at index {i}); "
                "check the initial data or reduce the time step"
            )
        if name in ("rho", "T"):
            nonpos = a <= 0.0
            if nonpos.any():
                i = int(np.flatnonzero(nonpos.ravel())[0])
                raise PhysicalStateError(
                    f"{where}: {name} must be > 0, got {a.ravel()[i]!r} at index {i}; "
                    f"give a positive {'density' if name == 'rho' else 'temperature'}"
                )


def mfp_coefficient(omega: float) -> float:
    """C(ω) in λ = C(ω) μ / (ρ √T) (VHS mean free path)."""
    return 2.0 * (5.0 - 2.0 * omega) * (7.0 - 2.0 * omega) / (15.0 * math.sqrt(2.0 * math.pi))


def viscosity(T: ArrayLike, mu_ref: float, omega: float) -> NDArray[np.float64]:
    """μ(T) = μ_ref T^ω (T_ref = 1)."""
    return mu_ref * np.asarray(T, dtype=float) ** omega


def mean_free_path(rho: ArrayLike, T: ArrayLike, mu_ref: float, omega: float) -> NDArray[np.float64]:
    """VHS mean free path λ = C(ω) μ(T) / (ρ √T)."""
    T = np.asarray(T, dtype=float)
    return mfp_coefficient(omega) * viscosity(T, mu_ref, omega) / (np.asarray(rho, dtype=float) * np.sqrt(T))


def check_vhs_omega(omega: float) -> None:
    """Raise unless 0.5 ≤ ω ≤ 1, the VHS range from hard spheres to Maxwell molecules (C(ω) of the mean free
    path turns negative at ω = 2.5)."""
    if not (0.5 <= omega <= 1.0):
        raise ValueError(f"the VHS exponent omega must lie in [0.5, 1] (0.5 hard spheres, 1 Maxwell molecules), "
                         f"got {omega!r}")


def check_domain_and_gas(x_left: float, x_right: float, mu_ref: float, omega: float) -> None:
    """Raise unless x_left < x_right are finite, μ_ref > 0 (inf: free streaming) and ω is a VHS exponent
    (:func:`check_vhs_omega`); every 1D solver checks its construction with this."""
    if not (math.isfinite(x_left) and math.isfinite(x_right) and x_right > x_left):
        raise ValueError(f"need finite x_left < x_right, got [{x_left}, {x_right}]")
    if not (mu_ref > 0.0):
        raise ValueError(f"mu_ref must be > 0 (inf for free streaming), got {mu_ref}")
    check_vhs_omega(omega)


def mu_ref_for_knudsen(kn: float, omega: float, length: float = 1.0) -> float:
    """μ_ref such that the reference state (ρ, T) = (1, 1) has Knudsen number ε = λ_ref / L."""
    if not (kn > 0.0 and math.isfinite(kn)):
        raise ValueError(f"Knudsen number must be positive and finite, got {kn!r}")
    check_vhs_omega(omega)
    return kn * length / mfp_coefficient(omega)


def collision_frequency(rho: ArrayLike, T: ArrayLike, mu_ref: float, omega: float) -> NDArray[np.float64]:
    """BGK collision frequency ν = p / μ(T) = ρ T / (μ_ref T^ω)."""
    T = np.asarray(T, dtype=float)
    return np.asarray(rho, dtype=float) * T / viscosity(T, mu_ref, omega)


def sound_speed(T: ArrayLike) -> NDArray[np.float64]:
    """c = √(γ T)."""
    return np.sqrt(GAMMA * np.asarray(T, dtype=float))


def conservative(rho: ArrayLike, u: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """(ρ, u, T) -> U = (ρ, ρu, E); returns shape (..., 3)."""
    rho, u, T = (np.asarray(a, dtype=float) for a in (rho, u, T))
    return np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T], axis=-1)


def primitive(U: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """U = (ρ, ρu, E) of shape (..., 3) -> (ρ, u, T)."""
    U = np.asarray(U, dtype=float)
    rho = U[..., 0]
    u = U[..., 1] / rho
    T = (U[..., 2] / rho - 0.5 * u * u) / 1.5
    return rho, u, T


@dataclass(frozen=True)
class ShockStates:
    """Upstream (1) and downstream (2) states of a stationary normal shock (shock frame)."""

    mach: float
    rho1: float
    u1: float
    T1: float
    rho2: float
    u2: float
    T2: float


def rankine_hugoniot(mach: float, rho1: float = 1.0, T1: float = 1.0) -> ShockStates:
    """Stationary normal shock for γ = 5/3, upstream velocity u1 = Ma √(γ T1) > 0.

    ρ2/ρ1 = (γ+1)M² / ((γ−1)M² + 2),
    p2/p1 = (2γM² − (γ−1)) / (γ+1).
    """
    if not (math.isfinite(mach) and mach > 1.0):
        raise ValueError(f"a normal shock needs Mach > 1, got mach={mach!r}; choose mach > 1")
    check_state(rho1, 0.0, T1, where="upstream state")
    g = GAMMA
    m2 = mach * mach
    u1 = mach * math.sqrt(g * T1)
    r = (g + 1.0) * m2 / ((g - 1.0) * m2 + 2.0)
    p_ratio = (2.0 * g * m2 - (g - 1.0)) / (g + 1.0)
    rho2 = rho1 * r
    u2 = u1 / r
    T2 = T1 * p_ratio / r
    return ShockStates(mach, rho1, u1, T1, rho2, u2, T2)
