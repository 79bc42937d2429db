"""One problem definition shared by every model ("run model X on initial data Y with ε until t").

A :class:`Problem` is a 1D domain with cell-averaged primitive initial data; every model
(``dvm``, ``euler``, ``nsf``, later ``mlc``/``hermmlc``) takes it and returns :class:`Fields`
on the same cells, so benchmarks compare like with like.

Units: R = 1, ρ_ref = T_ref = 1, lengths in units of the domain length L unless stated;
Knudsen number ε = λ_ref / L with the VHS mean free path of ``kinclose.physics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from kinclose.physics import check_state, mu_ref_for_knudsen

PRANDTL = {"bgk": 1.0, "shakhov": 2.0 / 3.0, "boltzmann": 2.0 / 3.0}
BOUNDARIES = ("periodic", "reservoir")


@dataclass(frozen=True)
class Problem:
    """Initial-boundary value problem on x ∈ [x_left, x_right) with ``nx`` uniform cells.

    Attributes
    ----------
    rho, u, T : (nx,) float64, cell-averaged primitive initial data (Maxwellian initial
        distribution in the kinetic model).
    kn : Knudsen number ε = λ_ref / L, L = 1 length unit (x is measured in L).
    omega : VHS exponent, μ = μ_ref T^ω.
    collision : kinetic model whose transport coefficients macroscopic models must match
        ("bgk": Pr = 1, "shakhov": Pr = 2/3, "boltzmann").
    bc : "periodic" or "reservoir" (the end cells' initial states are held as reservoirs).
    """

    x_left: float
    x_right: float
    rho: NDArray[np.float64]
    u: NDArray[np.float64]
    T: NDArray[np.float64]
    kn: float
    t_end: float
    omega: float = 0.5
    collision: str = "bgk"
    bc: str = "periodic"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rho", "u", "T"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        if not (self.rho.shape == self.u.shape == self.T.shape and self.rho.ndim == 1):
            raise ValueError("rho, u, T must be 1D arrays of equal length (nx,)")
        check_state(self.rho, self.u, self.T, where="Problem initial data")
        if not self.x_right > self.x_left:
            raise ValueError(f"empty domain [{self.x_left}, {self.x_right})")
        if self.bc not in BOUNDARIES:
            raise ValueError(f"unknown boundary condition {self.bc!r}; choose one of {BOUNDARIES}")
        if self.collision not in PRANDTL:
            raise ValueError(f"unknown collision model {self.collision!r}; choose one of {tuple(PRANDTL)}")
        if not (self.t_end >= 0.0 and np.isfinite(self.t_end)):
            raise ValueError(f"t_end must be finite and >= 0, got {self.t_end!r}")
        mu_ref_for_knudsen(self.kn, self.omega)  # validates kn

    @property
    def nx(self) -> int:
        return self.rho.size

    @property
    def dx(self) -> float:
        return (self.x_right - self.x_left) / self.nx

    @property
    def x(self) -> NDArray[np.float64]:
        """(nx,) cell centres."""
        return self.x_left + (np.arange(self.nx) + 0.5) * self.dx

    @property
    def mu_ref(self) -> float:
        return mu_ref_for_knudsen(self.kn, self.omega, length=1.0)

    @property
    def prandtl(self) -> float:
        return PRANDTL[self.collision]


@dataclass
class Fields:
    """Macroscopic output of any model: (nx,) arrays at cell centres ``x`` at time ``t``.

    sigma = ∫ (c1² − |c|²/3) f dv (normal stress), q = ½ ∫ c1 |c|² f dv (heat flux).
    """

    x: NDArray[np.float64]
    rho: NDArray[np.float64]
    u: NDArray[np.float64]
    T: NDArray[np.float64]
    sigma: NDArray[np.float64]
    q: NDArray[np.float64]
    t: float
    stats: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, NDArray[np.float64]]:
        return {k: getattr(self, k) for k in ("x", "rho", "u", "T", "sigma", "q")}
