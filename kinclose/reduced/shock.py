"""Steady normal shock of the reduced moment model (``kinclose-shock model=mlc|hermmlc``).

Same setting and output contract as the kinetic shock (``kinclose.kinetic.shock``): x in upstream
mean free paths λ1 (μ_ref = 1/C(ω)), RH reservoirs at both ends with W = W_eq (downstream by default a
characteristic outflow about the RH state, as the kinetic reservoir lets leaving particles pass), tanh
initial profile, whole-cell re-centring, drift-corrected residual max|∂tρ| λ1/(ρ1 u1) < tol.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from kinclose.kinetic.shock import (
    check_shock_options,
    march_steady,
    prolong,
    shift_rows,
)
from kinclose.physics import (
    PhysicalStateError,
    ShockStates,
    conservative,
    mfp_coefficient,
)
from kinclose.pretrained import distilled_student
from kinclose.reduced.closure import ShapeClosure
from kinclose.reduced.run import (
    closure_diagnostics,
    load_closure,
    load_source,
    require_source,
    source_name,
)
from kinclose.reduced.solver import ReducedSolver
from kinclose.reduced.steady import newton_steady
from kinclose.shockprofile import ShockProfile

log = logging.getLogger(__name__)

TIME_MARCHED = {"steady": "march", "limiter": "mc"}
"""Options of the time-marched shock with the MC limiter: the configuration of every table made before the
implicit steady solver became the default (twenty-first session); the closure studies keep it."""


def reduced_shock(states: ShockStates, *, collision: str = "bgk", omega: float = 0.5,
                  closure: ShapeClosure | str, model: str = "mlc", x_min: float = -30.0, x_max: float = 10.0,
                  dx: float = 0.125, cfl: float = 0.5, tol: float = 1e-5, max_steps: int = 200000,
                  check_every: int = 50, xi_max: float | None = None, levels: int = 3,
                  flux: str = "ap", clip: bool = False, source: Any = None, source_beta_safety: float = 1.0,
                  source_scheme: str = "linearized", outflow: str = "characteristic", steady: str = "march",
                  limiter: str = "mc", jacobian_closure: ShapeClosure | str | None = None,
                  newton_max_iter: int = 200, newton_fallback: bool = True,
                  progress: bool | None = False) -> ShockProfile:
    """March the reduced model to a steady shock; returns the profile with x in λ1 (not centred).

    Grid sequencing as the kinetic shock: converged (to 10 tol) on grids 2^(levels−1) … 2 times
    coarser than ``dx``, each result prolonged (piecewise-linear, conservative in U) onto the next;
    ``max_steps`` bounds the steps of each level; ``flux`` is the numerical flux of U ("ap" or
    "rusanov", :class:`ReducedSolver`); ``clip``: fluxes at W clipped to the closure's training box
    (``kinclose.reduced.run.load_closure``). ``source``: None (the exact BGK source ν ρ (W_eq − W)), or a
    learned collision source (object or path of a ``source.pt``, ``kinclose-train stage=source``), which any
    ``collision`` (e.g. "boltzmann") needs; ``source_scheme``, ``source_beta_safety`` as :class:`ReducedSolver`.
    ``outflow``: the downstream boundary of the finest grid, "characteristic" (default: leaving waves pass,
    the entering one comes from the RH state) or "reservoir" (ghost cells hold the RH state: ~1.7× the
    finest grid's steps to the same steady state at Mach 5.5), :class:`ReducedSolver`. The coarser grids
    keep "reservoir": with the characteristic outflow they sometimes stall above their tolerance (HermMLC
    at Mach 2, MLC at Mach 8 ran into ``max_steps``), and they only provide the starting profile.
    ``steady``: "march" (time marching, default) or "newton" (pseudo-transient continuation with Newton steps
    on every level, :mod:`kinclose.reduced.steady`; ``newton_max_iter`` bounds its iterations per level; it
    needs ``limiter="vanleer"`` and loads a checkpoint with float64 inference). ``limiter``: the MUSCL limiter
    ("mc", "minmod", "vanleer"; :class:`ReducedSolver`). ``jacobian_closure``: steady="newton" only, a cheaper
    closure of the same moments (object, path or pretrained name; e.g. the distilled student of the ensemble)
    for the Newton Jacobians: fewer network evaluations, the same steady state of ``closure``; "auto": the
    shipped student ``pretrained:<name>_distilled`` of a ``closure="pretrained:<name>"`` when there is one, else
    the closure's own Jacobians (with steady="march", "auto" does nothing). ``newton_fallback``: a level whose
    Newton solve fails (no acceptable step) or ends unconverged is time-marched from Newton's last state (its
    index is listed in the metrics' ``newton_fallback_levels``, with a warning); False reports it unconverged.
    """
    if steady not in ("march", "newton"):
        raise ValueError(f"unknown steady solver {steady!r}; choose 'march' or 'newton'")
    if steady == "newton" and limiter != "vanleer":
        raise ValueError(f"steady='newton' needs limiter='vanleer' (got {limiter!r}): MC and minmod switch "
                         "branches and make Newton stall")
    require_source(collision, source)
    check_shock_options(omega, x_min, x_max, dx, levels, tol, max_steps, check_every)
    if newton_max_iter < 1:
        raise ValueError(f"newton_max_iter must be >= 1, got {newton_max_iter}")
    s = states
    if jacobian_closure == "auto":
        jacobian_closure = distilled_student(closure) if steady == "newton" and isinstance(closure, str) else None
    if jacobian_closure is not None and steady != "newton":
        raise ValueError("jacobian_closure is used by steady='newton' only")
    cl = load_closure(closure, xi_max, clip, inference="float64" if steady == "newton" else "float32")
    jac_cl = None if jacobian_closure is None else load_closure(jacobian_closure, xi_max, clip, inference="float64")
    src = load_source(source)
    mu_ref = 1.0 / mfp_coefficient(omega)
    nx_coarse = max(8, int(round((x_max - x_min) / (dx * 2 ** (levels - 1)))))
    t0 = time.perf_counter()
    solver, level_steps, newton_info, fallback_levels = None, [], [], []
    for level in range(levels):
        new = ReducedSolver(x_min, x_max, nx_coarse * 2**level, cl, mu_ref, omega, "reservoir", cfl,
                            left=(s.rho1, s.u1, s.T1), right=(s.rho2, s.u2, s.T2), flux=flux,
                            source=src, source_beta_safety=source_beta_safety, source_scheme=source_scheme,
                            outflow=outflow if level == levels - 1 else "reservoir", limiter=limiter)
        if solver is None:
            w = 0.5 * (1.0 + np.tanh(new.x / 2.0))
            new.set_state(s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w, s.T1 + (s.T2 - s.T1) * w)
        else:
            new.U, new.W = prolong(solver.U), prolong(solver.W)
        solver = new
        last = level == levels - 1
        level_tol = tol if last else 10.0 * tol
        march = steady == "march"
        if not march:
            try:
                info = newton_steady(solver, level_tol, s.rho1 * s.u1, max_iter=newton_max_iter,
                                     jacobian_closure=jac_cl, progress=progress)
            except PhysicalStateError as err:
                if not newton_fallback:
                    raise
                info = {"residual": float("inf"), "converged": False, "shift_speed": 0.0, "iterations": 0,
                        "jacobians": 0, "residual_evals": 0, "error": str(err)}
            residual, drift, shifts = info["residual"], info["shift_speed"] / s.u1, 0
            newton_info.append({k: info[k] for k in ("iterations", "jacobians", "residual_evals")})
            if not info["converged"] and newton_fallback:
                log.warning("Newton did not reach the residual %.1e on level %d (%s); time-marching from its last "
                            "state", level_tol, level, info.get("error", f"residual {info['residual']:.2e}"))
                fallback_levels.append(level)
                march = True
        if march:
            residual, drift, shifts = march_steady(solver, s, level_tol, max_steps, check_every, progress,
                                                   shift_cells=_shift)
            if newton_info:
                newton_info[-1]["march_steps"] = solver.steps
        level_steps.append(solver.steps)
    wall = time.perf_counter() - t0
    x = solver.x
    f = solver.fields_array()
    marched = steady == "march" or bool(fallback_levels)  # time steps taken: their counts, else None
    metrics = {"nx": solver.nx, "dx": solver.dx, "cfl": cfl, "flux": flux, "outflow": outflow, "levels": levels,
               "steps": solver.steps if marched else None,  # on the finest grid
               "steps_per_level": level_steps,  # time steps (with Newton: those of fallback marches, else 0)
               "residual": residual, "tol": tol,
               "converged": bool(residual < tol), "recentre_shifts": shifts, "drift_speed": drift,
               "solve_wall_s": wall, "steady_solver": steady, "limiter": limiter,
               "jacobian_closure": None if jacobian_closure is None else (
                   jacobian_closure if isinstance(jacobian_closure, str) else type(jacobian_closure).__name__),
               "cell_steps": int(sum(nx_coarse * 2**i * n for i, n in enumerate(level_steps))) if marched else None,
               "n_moments": cl.n_moments, "source": source_name(source),
               "source_scheme": None if src is None else source_scheme,
               "source_shifted_cells": solver.source_shifted_cells,
               **({"newton_per_level": newton_info, "newton_fallback_levels": fallback_levels,
                   "cell_residual_evals": int(sum(nx_coarse * 2**i * d["residual_evals"]
                                                  for i, d in enumerate(newton_info)))} if newton_info else {}),
               **closure_diagnostics(cl, solver.U, solver.W)}
    return ShockProfile(x.copy(), f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], states, model, metrics)


def _shift(solver: ReducedSolver, shift: int) -> None:
    """Move the profile by ``shift`` whole cells towards x = 0, refilling from the reservoirs."""
    shift_rows(solver.U, shift, conservative(*solver.left), conservative(*solver.right))
    shift_rows(solver.W, shift, solver.W_eq, solver.W_eq)


def mlc_shock(states: ShockStates, **kw) -> ShockProfile:
    return reduced_shock(states, model="mlc", **kw)


def hermmlc_shock(states: ShockStates, **kw) -> ShockProfile:
    return reduced_shock(states, model="hermmlc", **kw)
