"""Steady normal-shock structure of the BGK/Shakhov equation by pinned time marching.

Shock frame, x in upstream mean free paths λ1 (μ_ref = 1 / C(ω), so λ1 = 1), ρ1 = T1 = 1,
u1 = Ma √(5/3); the reservoirs at both ends hold the Rankine–Hugoniot Maxwellians. The profile
starts as a tanh step and is marched with the DVM until the residual

    r = max_i |ρ_i^{n+k} − ρ_i^n + Δ ∂xρ_i^n| / (k Δt) · λ1 / (ρ1 u1)

falls below ``tol``, Δ being the displacement of the density mid-point over the k steps. The shock
position is a neutral mode: truncating the domain leaves O(1e-6) flux mismatches that make the
shock drift slowly; the residual measures the change of shape, and the drift speed is reported
(``drift_speed``, in units of u1). The profile is re-centred by whole cells (no interpolation, no
added diffusion) whenever the density mid-point drifts by ≥ 1 cell.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

import numpy as np

from kinclose.kinetic.grid import DEFAULT_WIDTH, VelocityGrid
from kinclose.kinetic.solver import DVMSolver, SolverDivergedError
from kinclose.physics import ShockStates, check_vhs_omega, mfp_coefficient
from kinclose.shockprofile import ShockProfile, midpoint

log = logging.getLogger(__name__)


def steady_shock(
    states: ShockStates,
    *,
    collision: str = "bgk",
    omega: float = 0.5,
    x_min: float = -30.0,
    x_max: float = 10.0,
    dx: float = 0.0625,
    nv: int = 100,
    v_width: float = DEFAULT_WIDTH,
    T_margin: float = 1.2,
    cfl: float = 0.9,
    limiter: str = "mc",
    tol: float = 1e-5,
    levels: int = 3,
    max_steps: int = 200000,
    check_every: int = 50,
    threads: int | None = None,
    progress: bool | None = None,
    device: str | None = None,
) -> ShockProfile:
    """March the DVM to a steady shock; returns the profile with x in λ1 (not yet centred).

    Grid sequencing: the profile is first converged on grids ``2**(levels-1)`` … 2 times coarser
    than ``dx`` (to ``10 tol``), each result prolonged (piecewise-linear, conservative) onto the next
    grid, so the finest grid only removes the small remaining transients. ``device`` (e.g.
    ``"cuda"``) runs ``collision="boltzmann"`` on the torch solver; BGK and Shakhov run on the CPU.
    """
    if collision == "boltzmann":  # full Boltzmann operator on an nv³ velocity grid (issue 9 part B)
        from kinclose.kinetic.boltzmann_dvm import steady_shock_boltzmann

        return steady_shock_boltzmann(states, omega=omega, x_min=x_min, x_max=x_max, dx=dx, nv=nv,
                                      v_width=v_width, T_margin=T_margin, cfl=cfl, limiter=limiter, tol=tol,
                                      levels=levels, max_steps=max_steps, check_every=check_every,
                                      threads=threads, progress=progress, device=device)
    if device is not None:
        raise ValueError(f"device={device!r} applies to collision='boltzmann' only; the {collision} DVM runs on "
                         "the CPU (leave model.device=null)")
    check_shock_options(omega, x_min, x_max, dx, levels, tol, max_steps, check_every)
    s = states
    coarse = 2 ** (levels - 1)
    nx_coarse = max(8, int(round((x_max - x_min) / (dx * coarse))))
    # states inside the shock can be hotter than T2 (overshoot): cover T2·T_margin
    grid = VelocityGrid.for_states([s.u1, s.u2], [s.T1, s.T2 * T_margin], nv, width=v_width)
    mu_ref = 1.0 / mfp_coefficient(omega)  # λ1 = 1 for ρ1 = T1 = 1

    t0 = time.perf_counter()
    total_updates = cell_steps = 0
    level_steps = []
    solver = None
    for level in range(levels):
        nx = nx_coarse * 2**level
        new = DVMSolver(x_min, x_max, nx, grid, mu_ref, omega, collision, "reservoir", cfl, limiter,
                        left=(s.rho1, s.u1, s.T1), right=(s.rho2, s.u2, s.T2), threads=threads)
        if solver is None:
            w = 0.5 * (1.0 + np.tanh(new.x / 2.0))
            new.set_maxwellian(s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w, s.T1 + (s.T2 - s.T1) * w)
        else:
            # direct copy: the Shakhov target may leave tiny negative tails that set_distribution rejects
            gi, hi = new.interior
            gi[:] = prolong(solver.interior[0])
            hi[:] = prolong(solver.interior[1])
        solver = new
        last = level == levels - 1
        residual, drift, shifts = march_steady(solver, s, tol if last else 10.0 * tol, max_steps, check_every, progress)
        level_steps.append(solver.steps)
        total_updates += solver.steps * nx * nv
        cell_steps += solver.steps * nx
    wall = time.perf_counter() - t0
    converged = residual < tol
    if not converged:
        log.warning("DVM shock not converged after %d steps: residual %.3e > tol %.1e", solver.steps, residual, tol)
    f = solver.fields_array()
    metrics = {
        "nx": solver.nx,
        "nv": nv,
        "dx": solver.dx,
        "dv": grid.dv,
        "v_min": grid.v_min,
        "v_max": grid.v_max,
        "cfl": cfl,
        "limiter": limiter,
        "levels": levels,
        "steps": solver.steps,
        "steps_per_level": level_steps,
        "t_final": solver.t,
        "residual": residual,
        "tol": tol,
        "converged": bool(converged),
        "recentre_shifts": shifts,
        "drift_speed": drift,
        "solve_wall_s": wall,
        "updates_per_s": total_updates / wall,
        "cell_steps": cell_steps,
    }
    g, h = solver.interior
    return ShockProfile(solver.x.copy(), f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], states, "dvm", metrics,
                        distribution=(solver.v.copy(), float(solver.dv), g.copy(), h.copy()))


def check_shock_options(omega: float, x_min: float, x_max: float, dx: float, levels: int, tol: float,
                        max_steps: int, check_every: int) -> None:
    """Raise a clear error for shock-solver options no solve can use (every shock solver calls this first)."""
    check_vhs_omega(omega)
    if not (x_min < 0.0 < x_max):
        raise ValueError(f"the shock domain must contain x = 0, got [{x_min}, {x_max}]")
    if not (0.0 < dx < math.inf):
        raise ValueError(f"dx must be > 0 and finite, got {dx}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if not (0.0 < tol < math.inf):
        raise ValueError(f"tol must be > 0 and finite (the residual that counts as steady), got {tol}")
    if max_steps < 1 or check_every < 1:
        raise ValueError(f"max_steps and check_every must be >= 1, got max_steps={max_steps}, check_every={check_every}")


def march_steady(solver: Any, s: ShockStates, tol: float, max_steps: int, check_every: int,
           progress: bool | None, shift_cells: Callable[[Any, int], None] | None = None,
           max_wall_s: float = math.inf) -> tuple[float, float, int]:
    """Time-march until the drift-corrected residual is below ``tol``; returns (residual, drift, shifts).

    ``solver`` needs ``step``, ``fields_array``, ``x``, ``dx``, ``dt_max``, ``nx``, ``steps``, ``t``;
    ``dt_max`` is a number (fixed step) or a method (re-evaluated every step, e.g. the reduced model's
    state-dependent wave speed). ``shift_cells(solver, n)`` re-centres it by whole cells (default: the
    BGK (g, h) layout). Marching also stops after ``max_wall_s`` seconds (checked every
    ``check_every`` steps); the caller reads ``residual > tol`` as not converged.
    """
    from tqdm.auto import tqdm

    x = solver.x
    dt_of = solver.dt_max if callable(solver.dt_max) else (lambda: solver.dt_max)
    scale = s.rho1 * s.u1  # λ1 = 1
    residual = math.inf
    drift = math.nan
    shifts = 0
    rho_prev = solver.fields_array()[:, 0]
    x0_prev = midpoint(x, (rho_prev - s.rho1) / (s.rho2 - s.rho1))
    bar = tqdm(total=max_steps, disable=None if progress is None else not progress,
               desc=f"shock nx={solver.nx}", leave=False)
    t_start = time.perf_counter()
    try:
        while solver.steps < max_steps and time.perf_counter() - t_start < max_wall_s:
            elapsed = 0.0
            for _ in range(check_every):
                dt = dt_of()
                solver.step(dt)
                elapsed += dt
            bar.update(check_every)
            rho = solver.fields_array()[:, 0]
            x0 = midpoint(x, (rho - s.rho1) / (s.rho2 - s.rho1))
            if not math.isfinite(x0):
                raise SolverDivergedError(f"shock left the domain at step {solver.steps} (t={solver.t:.4g})")
            disp = x0 - x0_prev
            change = rho - rho_prev + disp * np.gradient(rho_prev, x)
            residual = float(np.max(np.abs(change))) / (elapsed * scale)
            drift = disp / (elapsed * s.u1)
            if not math.isfinite(residual):
                raise SolverDivergedError(f"shock residual is not finite at step {solver.steps}")
            shift = int(round(x0 / solver.dx))
            if shift != 0:
                (shift_cells or _shift_cells)(solver, shift)
                shifts += 1
                rho_prev = solver.fields_array()[:, 0]
                x0_prev = midpoint(x, (rho_prev - s.rho1) / (s.rho2 - s.rho1))
                continue
            rho_prev = rho
            x0_prev = x0
            bar.set_postfix(residual=f"{residual:.2e}")
            if residual < tol:
                break
    finally:
        bar.close()
    return residual, drift, shifts


def prolong(f: np.ndarray) -> np.ndarray:
    """(nx, nv) → (2nx, nv): piecewise-linear with minmod slopes; conserves cell sums exactly."""
    d = np.diff(f, axis=0)
    slope = np.zeros_like(f)
    a, b = d[:-1], d[1:]
    slope[1:-1] = np.where(a * b > 0, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
    out = np.empty((2 * f.shape[0], f.shape[1]))
    out[0::2] = f - 0.25 * slope
    out[1::2] = f + 0.25 * slope
    return out


def shift_rows(a: Any, shift: int, left: Any, right: Any) -> None:
    """Move the rows of ``a`` (nx, ...) by ``shift`` ≠ 0 rows towards row 0 (shift > 0: the shock sits
    at x > 0 and moves left) in place, refilling the vacated rows with ``left`` or ``right`` (broadcast
    to a row). ``a`` is a NumPy array or a torch tensor."""
    def copy(b: Any) -> Any:
        return b.clone() if hasattr(b, "clone") else b.copy()

    if shift > 0:
        a[:-shift] = copy(a[shift:])
        a[-shift:] = right
    else:
        k = -shift
        a[k:] = copy(a[:-k])
        a[:k] = left


def _shift_cells(solver: DVMSolver, shift: int) -> None:
    """Move the interior profile by ``shift`` cells towards x = 0, refilling with the reservoirs."""
    for f, left, right in ((solver.g, solver._left_g, solver._right_g), (solver.h, solver._left_h, solver._right_h)):
        shift_rows(f[2:-2], shift, left, right)
