"""Linear modes: damping of small-amplitude entropy and sound waves across Knudsen numbers.

Periodic domain [−½, ½), one wavelength (k = 2π), amplitude a ≪ 1, Maxwellian initial data on the
background ρ = T = 1, u = 0:

    entropy: ρ = 1 − a cos kx,  u = 0,          T = 1 + a cos kx          (uniform pressure),
    sound:   ρ = 1 + a cos kx,  u = a c cos kx, T = 1 + (γ − 1) a cos kx  (right-running, c = √(5/3)).

At ``t_end`` the complex Fourier amplitude Â(t) = (2/n) Σ_j φ_j e^{−ikx_j} of the mode's characteristic
variable gives the damping rate Γ = −ln(|Â(t)|/|Â(0)|)/t and, for sound, the phase speed
c_φ = c − arg(Â(t) e^{ikct}/Â(0))/(k t), the branch of the phase nearest to the inviscid rotation
e^{−ikct} (unambiguous while |c_φ − c| < π/(k t)). The variables
vanish on the other modes of the linearized Euler system, so the O(μk/c) share of them that dissipation
excites from the inviscid initial eigenvector does not enter Γ at first order:

    entropy: φ = T − (γ − 1) ρ   (zero on isentropic sound),
    sound:   φ = p/c + u         (zero on the entropy mode and on left-running sound; p = ρT).

Navier–Stokes–Fourier for BGK (Pr = 1, κ = (5/2) μ): both modes damp at Γ_NS = μ k²/ρ to O(ε²)
[entropy: κ k²/(ρ c_p); sound: (k²/2ρ)((4/3)μ + κ(1/c_v − 1/c_p))], with μ = μ_ref at T = 1 and
ε = λ_ref/L (VHS mean free path of ρ = T = 1, L = 1). Free molecular flow has no exponential damping:
the modes decay by phase mixing, so at large ε Γ is an average rate over [0, t_end].
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.bench.sweep import check_models, coarsen
from kinclose.data.label import cell_centres
from kinclose.models import run_model
from kinclose.physics import GAMMA, mu_ref_for_knudsen
from kinclose.problem import Fields, Problem

log = logging.getLogger(__name__)
MODES = ("entropy", "sound")
K = 2.0 * math.pi


def initial_state(mode: str, x: NDArray, amplitude: float) -> tuple[NDArray, NDArray, NDArray]:
    """(ρ, u, T) (n,) of ``mode`` at the cell centres x."""
    c = np.cos(K * x)
    if mode == "entropy":
        return 1.0 - amplitude * c, np.zeros_like(x), 1.0 + amplitude * c
    if mode == "sound":
        return 1.0 + amplitude * c, amplitude * math.sqrt(GAMMA) * c, 1.0 + (GAMMA - 1.0) * amplitude * c
    raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")


def amplitude(x: NDArray, phi: NDArray) -> complex:
    """Â = (2/n) Σ_j φ_j e^{−ikx_j} (the constant part drops out on a whole wavelength)."""
    return complex(2.0 / x.size * np.sum(phi * np.exp(-1j * K * x)))


def observable(mode: str, rho: NDArray, u: NDArray, T: NDArray) -> NDArray:
    """The characteristic variable φ of ``mode`` (module docstring), (n,)."""
    if mode == "entropy":
        return T - (GAMMA - 1.0) * rho
    return rho * T / math.sqrt(GAMMA) + u


def problem(mode: str, kn: float, nx: int, t_end: float, a: float, omega: float = 0.5) -> Problem:
    """The periodic problem of ``mode`` with amplitude ``a`` on ``nx`` cells at Knudsen number ``kn``."""
    rho, u, T = initial_state(mode, cell_centres(-0.5, 0.5, nx), a)
    return Problem(-0.5, 0.5, rho, u, T, kn=kn, t_end=t_end, omega=omega, meta={"mode": mode})


def rates(mode: str, x: NDArray, phi0: NDArray, f: Fields) -> dict[str, float]:
    """Damping rate Γ and (sound) phase speed of the mode between the initial data phi0 and ``f``."""
    a0, a1 = amplitude(x, phi0), amplitude(x, observable(mode, f.rho, f.u, f.T))
    out = {"damping": -math.log(abs(a1) / abs(a0)) / f.t, "remaining": abs(a1) / abs(a0)}
    if mode == "sound":
        c = math.sqrt(GAMMA)
        out["phase_speed"] = c - float(np.angle(a1 / a0 * np.exp(1j * K * c * f.t))) / (K * f.t)
    return out


def navier_stokes_rate(kn: float, omega: float = 0.5) -> float:
    """Γ_NS = μ k²/ρ at ρ = T = 1 (both modes, BGK, Pr = 1)."""
    return mu_ref_for_knudsen(kn, omega) * K * K


def linear_theory(kns: list[float], t_end: float, closures: dict[str, str], omega: float = 0.5) -> dict[str, Any]:
    """Grid-free damping rates and sound phase speeds of the linearized equations at t_end
    (:mod:`kinclose.closure.linear_response`): the exact linear BGK response ("kinetic") and the closed
    moment system of each closure (name → closure.pt or ``pretrained:<name>``), same observables as
    :func:`rates`. Returns {name: {"entropy": [Γ], "sound": [Γ], "phase_speed": [c_φ]}} per ε."""
    import torch

    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.linear_response import closed_response, damping_and_speed, kinetic_response
    from kinclose.pretrained import resolve

    kn_k = [K * mu_ref_for_knudsen(k, omega) for k in kns]
    s = K * t_end
    responses = {"kinetic": [kinetic_response(k, [s], n=160)[0] for k in kn_k]}
    for name, path in closures.items():
        ens = LearnedClosure.from_checkpoint(resolve(path)).ensemble
        with torch.no_grad():
            R = closed_response(ens.mean_stress_heat, ens.mean_frame, ens.w_eq, kn_k, [s])
        responses[name] = list(R.numpy()[:, 0])
    out: dict[str, Any] = {}
    for name, Rs in responses.items():
        ent = [damping_and_speed(R, s, "entropy")[0] * K for R in Rs]
        snd = [damping_and_speed(R, s, "sound") for R in Rs]
        out[name] = {"entropy": ent, "sound": [g * K for g, _ in snd], "phase_speed": [c for _, c in snd]}
    return out


def run_linear_modes(kns: list[float], models: dict[str, dict[str, Any]], nx: int, t_end: float, a: float,
                     modes: tuple[str, ...] = MODES, reference: str = "dvm",
                     reference_options: dict[str, Any] | None = None, reference_refine: int = 4) -> dict[str, Any]:
    """Every model and the reference on every (mode, ε); returns the rates and failures."""
    from tqdm.auto import tqdm

    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; choose from {MODES}")
    if not (0.0 < a <= 0.1):
        raise ValueError(f"amplitude {a!r} must be in (0, 0.1]: the rates are those of the linearized equations")
    if not (t_end > 0.0 and nx >= 8):
        raise ValueError(f"need t_end > 0 and nx >= 8, got t_end={t_end!r}, nx={nx!r}")
    if not kns:
        raise ValueError("kns is empty: give at least one Knudsen number, e.g. kns=[0.01]")
    check_models(models, reference)
    names = [reference] + [n for n in models if n != reference]
    table: dict[str, Any] = {"kns": list(kns), "modes": list(modes), "nx": nx, "t_end": t_end, "amplitude": a,
                             "navier_stokes": [navier_stokes_rate(k) for k in kns], "reference": reference,
                             "results": {m: {n: [] for n in names} for m in modes}, "failures": []}
    with tqdm(total=len(modes) * len(kns) * len(names), disable=None, desc="linear modes") as bar:
        for mode in modes:
            for kn in kns:
                prob = problem(mode, kn, nx, t_end, a)
                phi0 = observable(mode, prob.rho, prob.u, prob.T)
                for name in names:
                    try:
                        if name == reference:
                            f = coarsen(run_model(reference, problem(mode, kn, nx * reference_refine, t_end, a),
                                                  **(reference_options or {})), reference_refine)
                        else:
                            opts = models[name]
                            kw = {k: v for k, v in opts.items() if k != "model"}
                            f = run_model(opts.get("model", name), prob, **kw)
                        row = rates(mode, prob.x, phi0, f)
                    except Exception as exc:  # a failed model is a result
                        table["failures"].append({"model": name, "mode": mode, "kn": kn,
                                                  "error": f"{type(exc).__name__}: {exc}"})
                        log.warning("%s failed (%s, kn=%g): %s", name, mode, kn, exc)
                        row = {"damping": math.nan, "remaining": math.nan}
                    table["results"][mode][name].append(row)
                    bar.update(1)
    return table


def markdown(table: dict[str, Any]) -> str:
    """Damping rates Γ (and sound phase speeds) per ε; the models' ratio to the reference."""
    kns, ref = table["kns"], table["reference"]
    head = "| model | " + " | ".join(f"ε={k:g}" for k in kns) + " |\n|---|" + "---|" * len(kns) + "\n"
    lines = [f"Linear modes on the periodic unit domain (k = 2π, amplitude {table['amplitude']:g}, "
             f"{table['nx']} cells, t = {table['t_end']:g}); reference {ref} on {table['nx']}×refined cells. ε = λ_ref/L (VHS); "
             "Γ = −ln(|Â(t)|/|Â(0)|)/t, Γ_NS = μ k²/ρ (BGK, Pr = 1; `kinclose.bench.linear`).", ""]
    theory = table.get("theory", {})
    if theory:
        lines += ["Rows marked *linear theory* are grid-free: the exact linearized BGK equation (kinetic) and the "
                  "linearized closed moment system of each closure at W_eq (`kinclose.closure.linear_response`), "
                  "same observables and time; their ratio is to the kinetic theory.", ""]
    for mode in table["modes"]:
        res = table["results"][mode]
        lines += [f"## {mode} mode: damping rate Γ (ratio to {ref})", "", head.rstrip("\n")]
        lines.append("| Navier–Stokes theory | " + " | ".join(f"{g:.4g}" for g in table["navier_stokes"]) + " |")
        for name, rows in res.items():
            cells = []
            for r, rr in zip(rows, res[ref]):
                g, g0 = r["damping"], rr["damping"]
                cells.append(f"{g:.4g}" if name == ref else f"{g:.4g} ({g / g0:.2f})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for name, th in theory.items():
            cells = [f"{g:.4g}" if name == "kinetic" else f"{g:.4g} ({g / g0:.2f})"
                     for g, g0 in zip(th[mode], theory["kinetic"][mode])]
            lines.append(f"| {name} linear theory | " + " | ".join(cells) + " |")
        lines.append("")
        if mode == "sound":
            lines += ["## sound mode: phase speed c_φ / √(5/3)", "", head.rstrip("\n")]
            for name, rows in res.items():
                lines.append(f"| {name} | " + " | ".join(f"{r.get('phase_speed', math.nan) / math.sqrt(GAMMA):.4f}"
                                                       for r in rows) + " |")
            for name, th in theory.items():
                lines.append(f"| {name} linear theory | "
                             + " | ".join(f"{c / math.sqrt(GAMMA):.4f}" for c in th["phase_speed"]) + " |")
            lines.append("")
    for fl in table["failures"]:
        lines.append(f"- failed: {fl['model']} ({fl['mode']}, ε = {fl['kn']:g}): {fl['error']}")
    return "\n".join(lines) + "\n"


def _style(reference: bool) -> dict[str, Any]:
    return {"marker": "o", "lw": 2.5, "color": "k", "alpha": 0.35} if reference else {"marker": "s"}


def plot(table: dict[str, Any]) -> Any:
    """Damping rate against ε, one panel per mode (log–log), and the sound phase speed."""
    import matplotlib.pyplot as plt

    kns = np.asarray(table["kns"])
    modes = table["modes"]
    panels = len(modes) + ("sound" in modes)
    fig, axes = plt.subplots(1, panels, figsize=(5.0 * panels, 4.0), squeeze=False)
    kin = table.get("theory", {}).get("kinetic")
    for ax, mode in zip(axes[0], modes):
        ax.loglog(kns, table["navier_stokes"], "k:", label="Navier–Stokes theory μk²/ρ")
        if kin:
            ax.loglog(kns, kin[mode], "k--", lw=1, label="kinetic linear theory (grid-free)")
        for name, rows in table["results"][mode].items():
            g = np.array([r["damping"] for r in rows])
            style = _style(name == table["reference"])
            ax.loglog(kns[g > 0], g[g > 0], label=name, **style)
        ax.set_xlabel("ε = λ_ref / L")
        ax.set_ylabel("damping rate Γ")
        ax.set_title(f"{mode} mode (k = 2π)")
        ax.grid(True, which="both", alpha=0.3)
    if "sound" in modes:
        ax = axes[0][-1]
        for name, rows in table["results"]["sound"].items():
            c = np.array([r.get("phase_speed", np.nan) for r in rows]) / math.sqrt(GAMMA)
            style = _style(name == table["reference"])
            ax.semilogx(kns, c, label=name, **style)
        if kin:
            ax.semilogx(kns, np.asarray(kin["phase_speed"]) / math.sqrt(GAMMA), "k--", lw=1,
                        label="kinetic linear theory")
        ax.set_xlabel("ε = λ_ref / L")
        ax.set_ylabel("phase speed / √(5/3)")
        ax.set_title("sound mode: phase speed")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
