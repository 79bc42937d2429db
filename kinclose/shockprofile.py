"""Normal-shock profiles: the output contract shared by every model of ``kinclose-shock``.

Units: R = 1, upstream ρ1 = T1 = 1, u1 = Ma √(5/3); x in upstream mean free paths λ1
(VHS, ``kinclose.physics.mean_free_path``), x = 0 where (ρ − ρ1)/(ρ2 − ρ1) = 1/2.

Fluxes of the 1D conservation laws, constant through a steady shock:
    mass ρu,  momentum ρu² + p + σ,  energy (E + p + σ) u + q.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text
from kinclose.physics import ShockStates

FIELDS = ("rho", "u", "T", "sigma", "q")


@dataclass
class ShockProfile:
    """A steady shock profile; arrays (nx,) on cell centres ``x`` (units of λ1)."""

    x: NDArray[np.float64]
    rho: NDArray[np.float64]
    u: NDArray[np.float64]
    T: NDArray[np.float64]
    sigma: NDArray[np.float64]
    q: NDArray[np.float64]
    states: ShockStates
    model: str
    metrics: dict[str, Any] = field(default_factory=dict)
    distribution: tuple | None = field(default=None, repr=False)
    """Kinetic models only: (v (nv,), dv, g (nx, nv), h (nx, nv)), the steady Chu-reduced distributions."""

    def fluxes(self) -> NDArray[np.float64]:
        """(nx, 3) mass, momentum and energy fluxes."""
        p = self.rho * self.T
        E = 0.5 * self.rho * self.u**2 + 1.5 * p
        return np.stack(
            [self.rho * self.u, self.rho * self.u**2 + p + self.sigma, (E + p + self.sigma) * self.u + self.q],
            axis=1,
        )

    def normalized(self, name: str) -> NDArray[np.float64]:
        """(φ − φ1)/(φ2 − φ1) for ρ, u, T; σ and q are returned as is."""
        s = self.states
        ends = {"rho": (s.rho1, s.rho2), "u": (s.u1, s.u2), "T": (s.T1, s.T2)}
        if name not in ends:
            return getattr(self, name)
        a, b = ends[name]
        return (getattr(self, name) - a) / (b - a)


def midpoint(x: NDArray[np.float64], phi_normalized: NDArray[np.float64]) -> float:
    """x where a normalized profile first crosses 1/2 (linear interpolation); NaN if it never does."""
    s = phi_normalized - 0.5
    idx = np.flatnonzero((s[:-1] < 0.0) & (s[1:] >= 0.0))
    if idx.size == 0:
        idx = np.flatnonzero((s[:-1] > 0.0) & (s[1:] <= 0.0))
    if idx.size == 0:
        return float("nan")
    i = int(idx[0])
    return float(x[i] - s[i] * (x[i + 1] - x[i]) / (s[i + 1] - s[i]))


def center(profile: ShockProfile) -> ShockProfile:
    """Shift x so that the normalized density crosses 1/2 at x = 0 (a jump is centred at its cell face)."""
    x0 = midpoint(profile.x, profile.normalized("rho"))
    if not np.isfinite(x0):
        raise ValueError("density profile never crosses the mid-value (ρ1+ρ2)/2: not a shock")
    profile.x = profile.x - x0
    return profile


def inverse_density_thickness(profile: ShockProfile) -> float:
    """λ1 max|dρ/dx| / (ρ2 − ρ1) (x already in λ1); a jump gives 1/Δx."""
    drho = np.abs(np.diff(profile.rho) / np.diff(profile.x))
    return float(drho.max() / (profile.states.rho2 - profile.states.rho1))


def separation(profile: ShockProfile) -> float:
    """Temperature–density separation x_ρ(1/2) − x_T(1/2) in λ1 (> 0: temperature rises first)."""
    return midpoint(profile.x, profile.normalized("rho")) - midpoint(profile.x, profile.normalized("T"))


def flux_mismatch(profile: ShockProfile) -> dict[str, float]:
    """Relative mismatch of mass, momentum, energy fluxes between the two ends, and the largest
    relative deviation of each flux from its upstream value anywhere in the profile."""
    F = profile.fluxes()
    scale = np.abs(F[0]) + 1e-300
    end = np.abs(F[-1] - F[0]) / scale
    interior = np.max(np.abs(F - F[0]), axis=0) / scale
    names = ("mass", "momentum", "energy")
    out = {f"{n}_flux_mismatch": float(v) for n, v in zip(names, end)}
    out.update({f"{n}_flux_max_deviation": float(v) for n, v in zip(names, interior)})
    return out


def profile_metrics(profile: ShockProfile) -> dict[str, Any]:
    """Metrics common to every model (see module docstring for units)."""
    s = profile.states
    m = {
        "mach": s.mach,
        "model": profile.model,
        "nx": int(profile.x.size),
        "inv_density_thickness": inverse_density_thickness(profile),
        "density_temperature_separation": separation(profile),
        "T_max": float(profile.T.max()),
        "rho2_rh": s.rho2,
        "u2_rh": s.u2,
        "T2_rh": s.T2,
    }
    m.update(flux_mismatch(profile))
    m.update(profile.metrics)
    return m


def write_csv(path: str | Path, profile: ShockProfile) -> Path:
    """Write ``profiles.csv`` (x, rho, u, T, sigma, q), atomically; ``profile`` is any object with arrays ``x`` and
    FIELDS (a :class:`ShockProfile`, or the :class:`~kinclose.problem.Fields` of a time-dependent run)."""
    cols = np.stack([profile.x] + [getattr(profile, k) for k in FIELDS], axis=1)
    lines = ["x,rho,u,T,sigma,q"] + [",".join(f"{v:.12e}" for v in row) for row in cols]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_csv(path: str | Path) -> dict[str, NDArray[np.float64]]:
    """Read a ``profiles.csv`` back into a dict of (nx,) arrays."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return {k: data[:, i] for i, k in enumerate(("x",) + FIELDS)}


def read_saved_profile(csv: str | Path, states: ShockStates, model: str) -> ShockProfile:
    """A steady profile saved as ``<name>.csv`` (:func:`write_csv`) with its metrics ``<name>.json`` beside it;
    the metrics' ``mach``, when present, must be the Mach number of ``states``."""
    csv = Path(csv)
    meta_path = csv.with_suffix(".json")
    if not (csv.is_file() and meta_path.is_file()):
        raise FileNotFoundError(f"saved shock profile {csv} or its metrics {meta_path.name} is missing")
    meta = json.loads(meta_path.read_text())
    if "mach" in meta and not math.isclose(float(meta["mach"]), states.mach, rel_tol=1e-9):
        raise ValueError(f"saved shock profile {csv} is for Mach {meta['mach']:g}, not {states.mach:g}")
    d = read_csv(csv)
    return ShockProfile(d["x"], d["rho"], d["u"], d["T"], d["sigma"], d["q"], states, model, meta)


def plot_profiles(profiles: dict[str, ShockProfile], axes: Any = None, xlim: tuple[float, float] | None = None) -> Any:
    """Five panels: normalized ρ, u, T, and σ, q (units p1 = ρ1T1 and ρ1 T1^{3/2}) against x/λ1."""
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    if axes is None:
        fig, axes = plt.subplots(1, 5, figsize=(15, 3.2), sharex=True)
    titles = {
        "rho": r"$(\rho-\rho_1)/(\rho_2-\rho_1)$",
        "u": r"$(u-u_1)/(u_2-u_1)$",
        "T": r"$(T-T_1)/(T_2-T_1)$",
        "sigma": r"$\sigma / (\rho_1 T_1)$",
        "q": r"$q / (\rho_1 T_1^{3/2})$",
    }
    for name, prof in profiles.items():
        style = method_style(name)
        for ax, key in zip(axes, FIELDS):
            ax.plot(prof.x, prof.normalized(key), **style)
    for ax, key in zip(axes, FIELDS):
        ax.set_title(titles[key])
        ax.set_xlabel(r"$x/\lambda_1$")
        if xlim is not None:
            ax.set_xlim(*xlim)
    axes[0].legend(loc="upper left")  # normalized ρ rises from 0 (left) to 1 (right): that corner is empty
    return axes


def write_outputs(run_dir: str | Path, profile: ShockProfile, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``profiles.csv``, ``metrics.json`` and ``profiles.png`` into ``run_dir`` (atomically)."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = profile_metrics(profile)
    if extra:
        metrics.update(extra)
    write_csv(run_dir / "profiles.csv", profile)
    atomic_write_json(run_dir / "metrics.json", metrics)
    axes = plot_profiles({profile.model: profile}, xlim=_default_xlim(profile))
    fig = axes[0].figure
    fig.suptitle(
        f"Mach {profile.states.mach:g} normal shock, model={profile.model}, "
        f"inverse density thickness {metrics['inv_density_thickness']:.4f}",
        fontsize=9,
    )
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "profiles.png")
    plt.close(fig)
    return metrics


def _default_xlim(profile: ShockProfile) -> tuple[float, float]:
    lo, hi = float(profile.x.min()), float(profile.x.max())
    return max(lo, -20.0), min(hi, 20.0)
