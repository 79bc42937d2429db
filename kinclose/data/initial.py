"""Random initial data for labeling: smooth waves, Riemann-like jumps and mixtures (DESIGN §4).

Domain and units
----------------
Periodic domain x ∈ [x_left, x_right) (default [−0.5, 0.5), length L = 1); R = 1, T in
velocity², ρ_ref = T_ref = 1. The Knudsen number ε = λ_ref / L uses the VHS mean free path
of ``kinclose.physics`` (λ = C(ω) μ / (ρ √T)); ε is drawn log-uniformly in [kn_min, kn_max]
(default [1e-3, 10]).

Every generator takes an explicit ``rng: np.random.Generator`` and returns a JSON-serialisable
*spec*: the sampled parameters themselves (mode amplitudes, phases, jump positions, states),
so a shard's ``config`` attribute reproduces its initial data exactly (``evaluate``).

Kinds
-----
``waves``   each of ρ, u, T is a random Fourier sum s(x) = Σ_{k=1..K} a_k sin(2πk(x−x_left)/L + φ_k),
            a_k ~ U(0, 1)/k, φ_k ~ U(0, 2π), K ~ U{1..max_modes}, rescaled on the cell centres to
            [−1, 1] and mapped onto a random band: log ρ = ½(log lo + log hi) + ½ log(hi/lo) s
            (same for T; u linearly). The band's ratio hi/lo is log-uniform in [1, R].
``jumps``   n ~ U{min_jumps..max_jumps} jump positions (periodic, uniform spacings with pieces
            ≥ MIN_GAP_JUMPS·L; the shock pair's pieces ≥ MIN_GAP_SHOCK·L), the same for all fields
            (Riemann-like piecewise-constant states); the piece values are log-uniform (ρ, T) or
            uniform (u) within the task's band, and two pieces are set to the band's ends so that
            the band ratio is attained.
``mixture`` per field a convex blend of a ``waves`` and a ``jumps`` field drawn from the same
            band, in log space for ρ and T: ρ = ρ_J^{1−w} ρ_W^{w}, w ~ U(0.2, 0.8), so the
            band (and hence the documented ranges) still hold.
``shock``   a Riemann-like pair of pieces joined by an exact Rankine–Hugoniot shock of Mach
            M = 1.2 + (max_shock_mach − 1.2) √ξ, ξ ~ U(0, 1) (density rising linearly; upstream on the left, flowing to the right, in a lab frame
            shifted at random), the periodic wrap being the return expansion; the upstream (ρ1, T1)
            is drawn so that ρ2, T2, and u1 − u2 stay inside the ranges. Random jumps rarely
            produce strong compressions (the expansion limit below applies), so this kind puts
            shock-like states (ρ2/ρ1 → 3.69, T2/T1 → 12.1, (u1 − u2)/√T1 → 5.65 at Mach 6)
            into the data.

Ranges (:class:`ICRanges`, defaults)
------------------------------------
* ρ ∈ [0.4, 2.4],  max_x ρ / min_x ρ ≤ 5     (Mach 5.5 shock: ρ2/ρ1 ≈ 3.64; Mach 6: 3.69)
* T ∈ [0.5, 7.5],  max_x T / min_x T ≤ 15    (Mach 5.5: T2/T1 ≈ 10.3; Mach 6: 12.1)
* u ∈ [−3, 3],     max_x u − min_x u ≤ 6     (Mach 6 shock: u1 − u2 ≈ 5.65 in units T1 = 1)

Expansion limit: a periodic velocity field has expansions as strong as its compressions, and an
expansion u_R − u_L ≥ 3 (c_L + c_R) (γ = 5/3, c = √(γT)) opens a vacuum, whose cold states no fixed
velocity grid resolves. Therefore every *expansive* jump (u_R > u_L, including the periodic wrap)
is limited to u_R − u_L ≤ β (c_L + c_R) by shrinking the velocity deviations of the task towards
their mean, and for waves max u − min u ≤ 2 β c(T_lo). β = ``max_expansion`` (default 1, i.e. a
third of the vacuum threshold; the star-state sound speed stays above ≈ 2/3 of the mean). Large
compressive velocity differences (the Mach 6 jump) then occur where the expansions sit in hot gas.

Non-equilibrium initial distributions
-------------------------------------
With probability ``noneq_fraction`` a task starts from a bi-Maxwellian: at each cell
T_∥ / T_⊥ = a(x), log a = log(A) s(x) with A log-uniform in [1, max_anisotropy], and
T_⊥ = 3T/(a + 2), T_∥ = a T_⊥ (so (T_∥ + 2T_⊥)/3 = T), in Chu-reduced form

    g(v) = ρ (2π T_∥)^{-1/2} exp(−(v − u)² / (2 T_∥)),     h(v) = 2 T_⊥ g(v).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.conf import reject_unknown_keys
from kinclose.physics import GAMMA, rankine_hugoniot

KINDS = ("waves", "jumps", "mixture", "shock")
MIN_GAP_JUMPS = 0.05
"""Smallest piece of the ``jumps`` kind, in units of L (3 cells at nx = 64)."""
MIN_GAP_SHOCK = 0.2
"""Smallest piece of the ``shock`` kind, in units of L (room for the shock to form a profile)."""


class InitialDataError(ValueError):
    """Non-physical or inconsistent ranges for the initial-data generators."""


@dataclass(frozen=True)
class ICRanges:
    """Documented sampling ranges of the generators (see the module docstring).

    Attributes
    ----------
    rho, T, u : (min, max) absolute ranges of density, temperature and velocity.
    max_density_ratio, max_temperature_ratio : largest max_x/min_x ratio within one domain.
    max_velocity_jump : largest max_x u − min_x u within one domain.
    max_expansion : β, expansive jumps limited to u_R − u_L ≤ β (c_L + c_R); 0 < β < 3.
    max_modes : largest Fourier mode K of the waves.
    min_jumps, max_jumps : number of jumps per periodic domain.
    weights : relative probabilities of ("waves", "jumps", "mixture", "shock").
    max_shock_mach : largest Mach number of the ``shock`` kind (> 1.2).
    noneq_fraction : probability of a bi-Maxwellian (non-equilibrium) initial distribution.
    max_anisotropy : largest T_∥/T_⊥ (and smallest 1/max_anisotropy) of the bi-Maxwellian.
    kn : (min, max) of the log-uniform Knudsen number ε = λ_ref / L.
    """

    rho: tuple[float, float] = (0.4, 2.4)
    T: tuple[float, float] = (0.5, 7.5)
    u: tuple[float, float] = (-3.0, 3.0)
    max_density_ratio: float = 5.0
    max_temperature_ratio: float = 15.0
    max_velocity_jump: float = 6.0
    max_expansion: float = 1.0
    max_modes: int = 4
    min_jumps: int = 2
    max_jumps: int = 5
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    max_shock_mach: float = 6.0
    noneq_fraction: float = 0.3
    max_anisotropy: float = 2.0
    kn: tuple[float, float] = (1e-3, 10.0)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ("rho", "T", "u", "kn", "weights"):
            object.__setattr__(self, name, tuple(float(a) for a in getattr(self, name)))
        self.validate()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ICRanges":
        reject_unknown_keys(d, (f for f in cls.__dataclass_fields__ if f != "extra"), "initial-data range",
                            InitialDataError)
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def validate(self) -> None:
        """Raise :class:`InitialDataError` naming the bad value and the fix."""

        def bad(msg: str) -> None:
            raise InitialDataError(msg)

        for name in ("rho", "T"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
                bad(f"ranges.{name}={[lo, hi]} is not physical: need 0 < min <= max (finite); "
                    f"give a positive {'density' if name == 'rho' else 'temperature'} range")
        lo, hi = self.u
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            bad(f"ranges.u={[lo, hi]} needs finite min <= max")
        for name, rng_ in (("max_density_ratio", self.rho), ("max_temperature_ratio", self.T)):
            r = getattr(self, name)
            if not (math.isfinite(r) and r >= 1.0):
                bad(f"ranges.{name}={r} must be finite and >= 1")
            if r > rng_[1] / rng_[0] * (1 + 1e-12):
                bad(f"ranges.{name}={r} exceeds the ratio {rng_[1] / rng_[0]:.4g} of its absolute range "
                    f"{list(rng_)}; widen the range or lower the ratio")
        if not (math.isfinite(self.max_velocity_jump) and 0.0 <= self.max_velocity_jump <= self.u[1] - self.u[0] + 1e-12):
            bad(f"ranges.max_velocity_jump={self.max_velocity_jump} must lie in [0, u_max - u_min = "
                f"{self.u[1] - self.u[0]:g}]; widen ranges.u or lower it")
        if not (0.0 < self.max_expansion < 3.0):
            bad(f"ranges.max_expansion={self.max_expansion} must lie in (0, 3): expansions of 3 (c_L + c_R) "
                "open a vacuum that no velocity grid resolves")
        if not (isinstance(self.max_modes, int) and self.max_modes >= 1):
            bad(f"ranges.max_modes={self.max_modes} must be an integer >= 1")
        if not (isinstance(self.min_jumps, int) and 2 <= self.min_jumps <= self.max_jumps):
            bad(f"ranges.min_jumps={self.min_jumps}, max_jumps={self.max_jumps}: need 2 <= min_jumps <= max_jumps "
                "(a periodic domain needs at least two jumps)")
        w = np.asarray(self.weights)
        if w.shape != (4,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            bad(f"ranges.weights={list(self.weights)} must be 4 non-negative numbers (waves, jumps, mixture, "
                "shock) with a positive sum")
        if not (math.isfinite(self.max_shock_mach) and self.max_shock_mach > 1.2):
            bad(f"ranges.max_shock_mach={self.max_shock_mach} must be finite and > 1.2")
        if not (0.0 <= self.noneq_fraction <= 1.0):
            bad(f"ranges.noneq_fraction={self.noneq_fraction} must lie in [0, 1]")
        if not (math.isfinite(self.max_anisotropy) and self.max_anisotropy >= 1.0):
            bad(f"ranges.max_anisotropy={self.max_anisotropy} must be finite and >= 1 (T_par/T_perp)")
        klo, khi = self.kn
        if not (math.isfinite(klo) and math.isfinite(khi) and 0.0 < klo <= khi):
            bad(f"ranges.kn={[klo, khi]} is not a valid Knudsen range: need 0 < min <= max (finite)")


def mach6_requirements() -> dict[str, float]:
    """Density ratio, temperature ratio and velocity jump of the Mach 6 shock (upstream T1 = 1)."""
    s = rankine_hugoniot(6.0)
    return {"density_ratio": s.rho2 / s.rho1, "temperature_ratio": s.T2 / s.T1, "velocity_jump": s.u1 - s.u2}


# ----------------------------------------------------------------------------- sampling helpers
def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)


def _band_positive(rng: np.random.Generator, rng_: tuple[float, float], max_ratio: float) -> tuple[float, float]:
    """(lo, hi) ⊂ rng_ with hi/lo log-uniform in [1, max_ratio]."""
    r = _log_uniform(rng, 1.0, max_ratio)
    lo = _log_uniform(rng, rng_[0], rng_[1] / r)
    return lo, min(lo * r, rng_[1])


def _band_linear(rng: np.random.Generator, rng_: tuple[float, float], max_span: float) -> tuple[float, float]:
    span = float(rng.uniform(0.0, max_span))
    lo = float(rng.uniform(rng_[0], rng_[1] - span))
    return lo, lo + span


def _wave_component(rng: np.random.Generator, ranges: ICRanges, lo: float, hi: float, log: bool) -> dict[str, Any]:
    K = int(rng.integers(1, ranges.max_modes + 1))
    k = np.arange(1, K + 1)
    amp = rng.uniform(0.0, 1.0, K) / k
    phase = rng.uniform(0.0, 2.0 * np.pi, K)
    return {"type": "wave", "k": k.tolist(), "amp": amp.tolist(), "phase": phase.tolist(),
            "lo": lo, "hi": hi, "log": log}


def _jump_values(rng: np.random.Generator, n: int, lo: float, hi: float, log: bool) -> NDArray[np.float64]:
    if log:
        vals = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    else:
        vals = rng.uniform(lo, hi, n)
    ends = rng.choice(n, size=2, replace=False)  # attain the band: one piece at each end
    vals[ends[0]], vals[ends[1]] = lo, hi
    return vals


def _limit_expansions(u: NDArray[np.float64], T: NDArray[np.float64], beta: float) -> NDArray[np.float64]:
    """Shrink velocity deviations so that every expansive periodic interface obeys
    u_{i+1} − u_i ≤ β (c_i + c_{i+1}); pieces (n,) in periodic order."""
    c = np.sqrt(GAMMA * T)
    du = np.roll(u, -1) - u
    allowed = beta * (c + np.roll(c, -1))
    expansive = du > allowed
    if not expansive.any():
        return u
    scale = float(np.min(allowed[expansive] / du[expansive]))
    mean = float(u.mean())
    return mean + (u - mean) * scale


def _jump_positions(rng: np.random.Generator, n: int, x_left: float, x_right: float,
                    min_gap: float) -> NDArray[np.float64]:
    """n sorted periodic jump positions, consecutive gaps ≥ min_gap·L (uniform spacings otherwise),
    so that every piece spans cells on any reasonable grid."""
    L = x_right - x_left
    gaps = min_gap + (1.0 - n * min_gap) * rng.dirichlet(np.ones(n))
    pos = x_left + np.mod(rng.uniform(0.0, L) + np.cumsum(gaps), L)
    return np.sort(pos)


def _jumps_spec(rng: np.random.Generator, ranges: ICRanges, x_left: float, x_right: float,
                bands: dict[str, tuple[float, float]]) -> dict[str, Any]:
    n = int(rng.integers(ranges.min_jumps, ranges.max_jumps + 1))
    pos = _jump_positions(rng, n, x_left, x_right, MIN_GAP_JUMPS)
    rho = _jump_values(rng, n, *bands["rho"], log=True)
    T = _jump_values(rng, n, *bands["T"], log=True)
    u = _jump_values(rng, n, *bands["u"], log=False)
    u = _limit_expansions(u, T, ranges.max_expansion)
    return {"type": "jumps", "x": pos.tolist(), "rho": rho.tolist(), "u": u.tolist(), "T": T.tolist()}


def _shock_spec(rng: np.random.Generator, ranges: ICRanges, x_left: float, x_right: float) -> dict[str, Any]:
    """Two pieces joined by a Rankine–Hugoniot shock (upstream left), lab frame shifted at random."""
    for _ in range(100):
        # density of M rises linearly towards max_shock_mach: strong shocks are the hard, rare case
        M = 1.2 + (ranges.max_shock_mach - 1.2) * math.sqrt(float(rng.uniform()))
        s = rankine_hugoniot(M)  # ρ1 = T1 = 1: ratios and the velocity jump per √T1
        r_rho, r_T, du1 = s.rho2, s.T2, s.u1 - s.u2
        # T1 such that T2 = r_T T1 ≤ T_max, the T ratio ≤ its cap, and u1 − u2 = du1 √T1 ≤ the velocity caps
        T_hi = min(ranges.T[1] / r_T, (min(ranges.max_velocity_jump, ranges.u[1] - ranges.u[0]) / du1) ** 2)
        if r_T > ranges.max_temperature_ratio or r_rho > ranges.max_density_ratio or T_hi < ranges.T[0]:
            continue
        T1 = _log_uniform(rng, ranges.T[0], T_hi)
        rho1 = _log_uniform(rng, ranges.rho[0], ranges.rho[1] / r_rho)
        du = du1 * math.sqrt(T1)
        ua = float(rng.uniform(ranges.u[0] + du, ranges.u[1]))  # upstream velocity; downstream ua − du
        pos = _jump_positions(rng, 2, x_left, x_right, MIN_GAP_SHOCK)
        u = _limit_expansions(np.array([ua, ua - du]), np.array([T1, r_T * T1]), ranges.max_expansion)
        return {"type": "jumps", "x": pos.tolist(), "rho": [rho1, rho1 * r_rho], "u": u.tolist(),
                "T": [T1, T1 * r_T], "mach": M}
    raise InitialDataError("ranges admit no Rankine-Hugoniot shock of Mach in [1.2, max_shock_mach]; widen "
                           "ranges.T / ranges.rho / ranges.u or lower ranges.max_shock_mach")


def _bands(rng: np.random.Generator, ranges: ICRanges) -> dict[str, tuple[float, float]]:
    rho = _band_positive(rng, ranges.rho, ranges.max_density_ratio)
    T = _band_positive(rng, ranges.T, ranges.max_temperature_ratio)
    u = _band_linear(rng, ranges.u, ranges.max_velocity_jump)
    return {"rho": rho, "T": T, "u": u}


def sample_initial(
    rng: np.random.Generator,
    ranges: ICRanges,
    x_left: float = -0.5,
    x_right: float = 0.5,
    kind: str | None = None,
) -> dict[str, Any]:
    """Draw one initial-data spec (JSON-serialisable dict; evaluate it with :func:`evaluate`).

    Parameters
    ----------
    rng : the random generator (the only source of randomness).
    ranges : sampling ranges.
    x_left, x_right : periodic domain [x_left, x_right).
    kind : "waves", "jumps" or "mixture"; None draws it with ``ranges.weights``.
    """
    if not x_right > x_left:
        raise InitialDataError(f"empty domain [{x_left}, {x_right}); need x_right > x_left")
    if kind is None:
        w = np.asarray(ranges.weights) / np.sum(ranges.weights)
        kind = KINDS[int(rng.choice(len(KINDS), p=w))]
    if kind not in KINDS:
        raise InitialDataError(f"unknown initial-data kind {kind!r}; choose one of {KINDS}")
    bands = _bands(rng, ranges)
    spec: dict[str, Any] = {"kind": kind, "x_left": float(x_left), "x_right": float(x_right)}
    if kind in ("waves", "mixture"):
        # a smooth periodic u expands as much as it compresses: cap its span by the coldest sound speed
        ulo, uhi = bands["u"]
        cap = 2.0 * ranges.max_expansion * math.sqrt(GAMMA * bands["T"][0])
        if uhi - ulo > cap:
            mid = 0.5 * (ulo + uhi)
            ulo, uhi = mid - 0.5 * cap, mid + 0.5 * cap
        waves = {
            "rho": _wave_component(rng, ranges, *bands["rho"], log=True),
            "u": _wave_component(rng, ranges, ulo, uhi, log=False),
            "T": _wave_component(rng, ranges, *bands["T"], log=True),
        }
    if kind == "waves":
        spec["fields"] = waves
    elif kind == "shock":
        spec["fields"] = _shock_spec(rng, ranges, x_left, x_right)
    elif kind == "jumps":
        spec["fields"] = _jumps_spec(rng, ranges, x_left, x_right, bands)
    else:
        spec["fields"] = {
            "type": "blend",
            "w": float(rng.uniform(0.2, 0.8)),
            "jumps": _jumps_spec(rng, ranges, x_left, x_right, bands),
            "waves": waves,
        }
    if rng.uniform() < ranges.noneq_fraction and ranges.max_anisotropy > 1.0:
        A = _log_uniform(rng, 1.0, ranges.max_anisotropy)
        lnA = math.log(A)
        spec["anisotropy"] = _wave_component(rng, ranges, math.exp(-lnA), math.exp(lnA), log=True)
    else:
        spec["anisotropy"] = None
    return spec


def sample_kn(rng: np.random.Generator, kn_min: float = 1e-3, kn_max: float = 10.0) -> float:
    """Knudsen number ε = λ_ref / L, log-uniform in [kn_min, kn_max]."""
    if not (0.0 < kn_min <= kn_max and math.isfinite(kn_max)):
        raise InitialDataError(f"Knudsen range [{kn_min}, {kn_max}] needs 0 < min <= max (finite)")
    return _log_uniform(rng, kn_min, kn_max)


# ----------------------------------------------------------------------------- evaluation
def _eval_wave(comp: dict[str, Any], xi: NDArray[np.float64]) -> NDArray[np.float64]:
    k = np.asarray(comp["k"], dtype=float)
    s = (np.asarray(comp["amp"])[:, None] * np.sin(2.0 * np.pi * k[:, None] * xi[None, :]
                                                   + np.asarray(comp["phase"])[:, None])).sum(0)
    smin, smax = float(s.min()), float(s.max())
    s = np.zeros_like(s) if smax - smin <= 1e-14 * max(1.0, abs(smax)) else 2.0 * (s - smin) / (smax - smin) - 1.0
    lo, hi = float(comp["lo"]), float(comp["hi"])
    if comp["log"]:
        a, b = math.log(lo), math.log(hi)
        return np.clip(np.exp(0.5 * (a + b) + 0.5 * (b - a) * s), lo, hi)
    return np.clip(0.5 * (lo + hi) + 0.5 * (hi - lo) * s, lo, hi)


def _eval_jumps(comp: dict[str, Any], x: NDArray[np.float64], name: str) -> NDArray[np.float64]:
    pos = np.asarray(comp["x"])
    idx = np.searchsorted(pos, x, side="right") - 1  # −1 (left of the first jump) wraps to the last piece
    return np.asarray(comp[name], dtype=float)[idx]


def evaluate(spec: dict[str, Any], x: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Point values at the cell centres ``x`` (nx,) of a spec from :func:`sample_initial`.

    Returns
    -------
    rho, u, T : (nx,) float64 primitive states (T = (T_∥ + 2T_⊥)/3).
    aniso : (nx,) float64 T_∥ / T_⊥ (ones for Maxwellian initial data).
    """
    x = np.asarray(x, dtype=float)
    L = spec["x_right"] - spec["x_left"]
    xi = (x - spec["x_left"]) / L
    f = spec["fields"]
    out = {}
    for name in ("rho", "u", "T"):
        if spec["kind"] == "waves":
            out[name] = _eval_wave(f[name], xi)
        elif spec["kind"] in ("jumps", "shock"):
            out[name] = _eval_jumps(f, x, name)
        else:
            w = f["w"]
            a = _eval_jumps(f["jumps"], x, name)
            b = _eval_wave(f["waves"][name], xi)
            out[name] = a ** (1 - w) * b**w if name != "u" else (1 - w) * a + w * b
    aniso = np.ones_like(x) if spec.get("anisotropy") is None else _eval_wave(spec["anisotropy"], xi)
    return out["rho"], out["u"], out["T"], aniso


def parallel_perpendicular(T: NDArray[np.float64], aniso: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """(T_∥, T_⊥) with T_∥/T_⊥ = aniso and (T_∥ + 2T_⊥)/3 = T; arrays (nx,)."""
    T_perp = 3.0 * T / (aniso + 2.0)
    return aniso * T_perp, T_perp


def bi_maxwellian(rho: NDArray, u: NDArray, T: NDArray, aniso: NDArray, v: NDArray) -> tuple[NDArray, NDArray]:
    """Chu-reduced bi-Maxwellian (g, h), each (nx, nv): g = ρ (2πT_∥)^{-1/2} exp(−(v−u)²/2T_∥),
    h = 2 T_⊥ g; ``v`` (nv,) velocity nodes."""
    T_par, T_perp = parallel_perpendicular(np.asarray(T, float), np.asarray(aniso, float))
    rho, u = np.asarray(rho, float)[:, None], np.asarray(u, float)[:, None]
    g = rho / np.sqrt(2.0 * np.pi * T_par[:, None]) * np.exp(-0.5 * (v[None, :] - u) ** 2 / T_par[:, None])
    return g, 2.0 * T_perp[:, None] * g
