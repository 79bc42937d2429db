"""Normal-shock benchmark: every model of ``kinclose-shock`` on one shock, overlaid, with an error table.

Relative L2 and L∞ errors of each field against the reference model on the reference's cells
(x aligned at the density mid-point): ‖φ − φ_ref‖ / ‖φ_ref − φ1‖ for ρ, u, T (the jump) and
‖φ − φ_ref‖ / ‖φ_ref‖ for σ, q; inverse density thickness λ1 max|dρ/dx|/(ρ2 − ρ1); temperature–
density separation x_ρ(½) − x_T(½) in λ1; wall time. A model that fails is reported, not hidden.
"""

from __future__ import annotations

import logging
import time
from importlib.resources import files

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.apps.shock import get_shock_solver
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir
from kinclose.physics import ShockStates, rankine_hugoniot
from kinclose.shockprofile import (
    FIELDS,
    ShockProfile,
    center,
    plot_profiles,
    profile_metrics,
    read_saved_profile,
)

log = logging.getLogger(__name__)


def _differences(p: ShockProfile, ref: ShockProfile):
    """Per field: (name, d, scale), d = p interpolated onto the reference's cells − ref, and scale = ref − its
    upstream value for ρ, u, T (the jump) or ref itself for σ, q."""
    s = ref.states
    base = {"rho": s.rho1, "u": s.u1, "T": s.T1, "sigma": 0.0, "q": 0.0}
    for name in FIELDS:
        r = getattr(ref, name)
        yield name, np.interp(ref.x, p.x, getattr(p, name)) - r, r - base[name]


def field_errors(p: ShockProfile, ref: ShockProfile) -> dict[str, float]:
    """Relative L2 and L∞ errors of ``p`` interpolated onto the reference cells."""
    out = {}
    for name, d, scale in _differences(p, ref):
        out[f"{name}_L2"] = float(np.sqrt(np.mean(d**2)) / np.sqrt(np.mean(scale**2)))
        out[f"{name}_Linf"] = float(np.abs(d).max() / np.abs(scale).max())
    return out


def precursor_split(p: ShockProfile, ref: ShockProfile, tol: float = 1e-3) -> dict[str, float]:
    """How much of the errors of ``p`` sits upstream of its front, where the reference has its precursor.

    The front x_f (λ1) is the first cell of ``p`` where |ρ − ρ1| > tol (ρ2 − ρ1): upstream of it the model is
    in the undisturbed state 1, which a hyperbolic moment system keeps wherever all its characteristic speeds
    are below the inflow speed u1, while the kinetic solution already carries the molecules that run ahead of
    the shock. Per field f (normalized as :func:`field_errors`, on the reference's cells): ``f_share_upstream``
    = Σ_{x < x_f} d² / Σ d² of the difference d = p − ref, ``f_L2_downstream`` = the relative L2 error with d
    set to 0 at x < x_f, and ``f_ref_upstream`` = max_{x < x_f} |ref − f1| / max |ref − f1|, the size of the
    precursor that the model misses. Returns those and ``x_front``; ``x_front`` is NaN (and the shares 0) when
    ρ never leaves ρ1 by tol.
    """
    s = ref.states
    off = np.abs(p.rho - s.rho1) > tol * abs(s.rho2 - s.rho1)
    x_front = float(p.x[np.argmax(off)]) if off.any() else float("nan")
    up = ref.x < x_front if off.any() else np.zeros(ref.x.shape, dtype=bool)
    out = {"x_front": x_front}
    for name, d, scale in _differences(p, ref):
        out[f"{name}_share_upstream"] = float(np.sum(d[up] ** 2) / np.sum(d**2)) if np.any(d) else 0.0
        out[f"{name}_L2_downstream"] = float(np.sqrt(np.mean(np.where(up, 0.0, d) ** 2)) / np.sqrt(np.mean(scale**2)))
        out[f"{name}_ref_upstream"] = float(np.abs(scale[up]).max() / np.abs(scale).max()) if up.any() else 0.0
    return out


def model_options(cfg: DictConfig, name: str) -> dict:
    """Defaults of ``conf/model/<name>.yaml`` updated by ``cfg.overrides[name]``."""
    path = files("kinclose.conf") / "model" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.name[:-5] for p in (files("kinclose.conf") / "model").iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(known)}")
    base = OmegaConf.load(str(path))
    opts = OmegaConf.to_container(base, resolve=True)
    extra = cfg.overrides.get(name) if "overrides" in cfg else None
    if extra:
        unknown = set(extra) - set(opts)
        if unknown:
            raise KeyError(f"unknown option(s) {sorted(unknown)} for model {name}; valid: {sorted(opts)}")
        opts.update(OmegaConf.to_container(extra, resolve=True))
    opts.pop("name", None)
    return opts


# closure diagnostics of the reduced models (kinclose.reduced.shock), copied into the table when present
DIAGNOSTIC_KEYS = ("complex_eigenvalue_fraction", "states_with_complex_eigenvalues", "max_characteristic_speed",
                   "fraction_speed_above_xi_max", "W_out_of_range_fraction", "clipped_flux_state_fraction")


def solve_model(states: ShockStates, name: str, *, collision: str, omega: float,
                options: dict) -> tuple[ShockProfile, dict]:
    """Solve one model's steady shock; returns the centred profile and its table row.

    The row holds the inverse density thickness, the temperature–density separation (λ1), the wall
    time of the solve (s), ``converged``/``residual`` and the closure diagnostics (``DIAGNOSTIC_KEYS``)
    when the model reports them. Exceptions of the solver propagate.
    """
    t0 = time.perf_counter()
    prof = get_shock_solver(name)(states, collision=collision, omega=omega, **options)
    wall = time.perf_counter() - t0
    prof = center(prof)
    return prof, profile_row(prof, wall)


def profile_row(prof: ShockProfile, wall_s: float) -> dict:
    """Table row of a centred profile: inverse density thickness, T–ρ separation (λ1), ``wall_s``, ``solve_s``
    (the solver's own wall, without loading closures and other set-up; None for models that do not report it),
    ``converged``/``residual`` and the closure diagnostics (``DIAGNOSTIC_KEYS``) it reports."""
    m = profile_metrics(prof)
    row = {"inv_density_thickness": m["inv_density_thickness"],
           "density_temperature_separation": m["density_temperature_separation"],
           "wall_s": wall_s, "solve_s": m.get("solve_wall_s"), "converged": bool(m.get("converged", True)),
           "residual": m.get("residual")}
    for key in DIAGNOSTIC_KEYS:
        if key in m:
            row[key] = m[key]
    return row


def check_config(cfg: DictConfig) -> dict[str, dict]:
    """Raise a clear error for a benchmark config no run can use (Mach ≤ 1, reference not among the models,
    unknown models or options, a closure or source checkpoint that cannot be loaded); returns each model's
    options. Called before anything is solved."""
    from kinclose.reduced.run import check_checkpoints

    rankine_hugoniot(float(cfg.mach))
    if cfg.reference not in cfg.models:
        raise ValueError(f"the reference {cfg.reference!r} must be one of models {list(cfg.models)}")
    options = {name: model_options(cfg, name) for name in cfg.models}
    for opts in options.values():
        check_checkpoints(opts)
    return options


def run(cfg: DictConfig) -> dict:
    options = check_config(cfg)
    out_dir = writable_dir(cfg.out_dir)
    states = rankine_hugoniot(float(cfg.mach))
    profiles: dict[str, ShockProfile] = {}
    rows: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for name in cfg.models:
        try:
            profiles[name], rows[name] = solve_model(states, name, collision=str(cfg.collision.name),
                                                     omega=float(cfg.omega), options=options[name])
        except Exception as exc:  # a model that fails is a result: reported in the table, not hidden
            if name == cfg.reference:
                raise
            failures[name] = f"{type(exc).__name__}: {exc}"
            log.error("%s failed: %s", name, failures[name])
            continue
        log.info("%s: inverse density thickness %.4f, %.2f s", name, rows[name]["inv_density_thickness"],
                 rows[name]["wall_s"])
    saved = _saved_profiles(cfg, states, profiles, rows, failures)
    ref = profiles[cfg.reference]
    for name, prof in profiles.items():
        rows[name].update(field_errors(prof, ref))
    stem = f"shock_M{float(cfg.mach):g}"
    result = {"mach": float(cfg.mach), "omega": float(cfg.omega), "collision": str(cfg.collision.name),
              "reference": cfg.reference, "units": "x in upstream mean free paths (VHS), R = rho1 = T1 = 1",
              "models": rows, "failures": failures, "saved_profiles": saved}
    atomic_write_json(out_dir / f"{stem}.json", result)
    atomic_write_text(out_dir / f"{stem}.md", markdown_table(result))
    axes = plot_profiles(profiles, xlim=tuple(cfg.xlim))
    fig = axes[0].figure
    fig.suptitle(f"Mach {float(cfg.mach):g} normal shock, {cfg.collision.name.upper()}, ω = {float(cfg.omega):g}"
                 f" (reference: {cfg.reference})", fontsize=9)
    for name, ax in zip(FIELDS, axes):
        txt = "\n".join(f"{m}: {rows[m][f'{name}_L2']:.1%}" for m in profiles if m != cfg.reference)
        ax.text(0.98, 0.5, "rel. L2\n" + txt, transform=ax.transAxes, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / f"{stem}.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return result


def _saved_profiles(cfg: DictConfig, states: ShockStates, profiles: dict[str, ShockProfile], rows: dict[str, dict],
                    failures: dict[str, str]) -> dict[str, str]:
    """Add the steady profiles of ``cfg.saved_profiles`` (name → {"M<mach>": csv written by another run, e.g.
    the GPU Boltzmann shock of scripts/boltzmann_shock.py}) at this Mach number as rows that were read, not
    solved; a missing file is reported under ``failures``. Returns name → path of the profiles added."""
    added = {}
    key = f"M{states.mach:g}"
    for name, by_mach in (cfg.get("saved_profiles") or {}).items():
        if name in profiles:
            raise ValueError(f"saved_profiles.{name} has the name of a solved model; choose another")
        if not hasattr(by_mach, "get"):
            raise ValueError(f"saved_profiles.{name} must map 'M<mach>' to a profile csv, got {by_mach!r}")
        path = by_mach.get(key)
        if path is None:
            continue
        try:
            p = center(read_saved_profile(path, states, str(name)))
        except FileNotFoundError as exc:
            failures[name] = f"not read: {exc}"
            log.warning("saved profile %s skipped: %s", name, exc)
            continue
        profiles[name] = p
        rows[name] = profile_row(p, float(p.metrics.get("wall_s", float("nan"))))
        added[str(name)] = str(path)
    return added


def markdown_table(result: dict) -> str:
    lines = [f"Mach {result['mach']:g} shock, {result['collision']}, ω = {result['omega']:g}; "
             f"reference {result['reference']}; {result['units']}.", "",
             "| model | 1/δ_ρ | sep. (λ1) | " + " | ".join(f"{f} L2 / L∞" for f in FIELDS)
             + " | wall (s) | solve (s) | steady |",
             "|---" * (6 + len(FIELDS)) + "|"]
    for name, r in result["models"].items():
        errs = " | ".join(f"{r[f'{f}_L2']:.2%} / {r[f'{f}_Linf']:.2%}" for f in FIELDS)
        inv = "jump" if name == "euler" else f"{r['inv_density_thickness']:.4f}"
        conv = "yes" if r.get("converged", True) else f"no (residual {r.get('residual', float('nan')):.1e})"
        solve = "—" if r.get("solve_s") is None else f"{r['solve_s']:.2f}"
        lines.append(f"| {name} | {inv} | {r['density_temperature_separation']:.3f} | {errs} | {r['wall_s']:.2f} | {solve} "
                     f"| {conv} |")
    for name, msg in result.get("failures", {}).items():
        lines.append(f"| {name} | failed: {msg[:120]} |" + " |" * (4 + len(FIELDS)))
    for name, path in result.get("saved_profiles", {}).items():
        lines += ["", (f"{name}: read from `{path}` (solved by another run; its wall times are that run's), "
                       "not solved here.")]
    lines += ["", ("wall: the whole call of the model's shock solver, loading closures (torch, checkpoints) on first "
                   "use included; solve: the solver's own time to the steady state.")]
    for name, r in result["models"].items():
        if "complex_eigenvalue_fraction" in r:
            lines.append("")
            lines.append(f"{name}: flux-Jacobian eigenvalues over the steady profile: "
                         f"{r['complex_eigenvalue_fraction']:.1%} complex ({r['states_with_complex_eigenvalues']:.1%} "
                         f"of the cells have some), largest |λ − u|/√T = {r['max_characteristic_speed']:.2f} "
                         f"({r['fraction_speed_above_xi_max']:.1%} above the Rusanov bound); states outside the "
                         f"training range of W: {r.get('W_out_of_range_fraction', float('nan')):.1%}.")
    return "\n".join(lines) + "\n"


