"""1D-3V BGK/Shakhov discrete-velocity solver (Chu reduction), asymptotic preserving.

Solves ∂t f + v1 ∂x f = ν (M[f] − f) (BGK, Pr = 1) or the Shakhov model (Pr = 2/3) for the
Chu-reduced pair (g, h) on a uniform velocity grid (see ``_kernels`` for the equations):

* transport: second-order upwind MUSCL with a selectable limiter, periodic or reservoir
  (fixed Maxwellian ghost cells) boundaries;
* time: ARS(2,2,2) IMEX Runge–Kutta, collision implicit, Δt = CFL Δx / max|v| independent of ε,
  second order for smooth problems, and Euler-consistent (asymptotic preserving) as ε → 0;
* collision: ν = p/μ(T) = ρ T^{1−ω}/μ_ref; conservative discrete target (round-off conservation).

Units: R = 1; x in the length unit of the problem; μ_ref from the Knudsen number (physics.py).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.kinetic import _kernels as K
from kinclose.kinetic.grid import DEFAULT_WIDTH, GRID_RTOL, VelocityGrid, VelocityGridError
from kinclose.physics import check_domain_and_gas, check_state
from kinclose.problem import PRANDTL, Fields, Problem

log = logging.getLogger(__name__)

CFL_MAX = 1.0
"""Stable bound of max|v| Δt / Δx for MUSCL + the explicit part of ARS(2,2,2)."""

GAM = 1.0 - 1.0 / math.sqrt(2.0)
DELTA = 1.0 - 1.0 / (2.0 * GAM)
COLLISIONS = ("bgk", "shakhov")


class SolverDivergedError(RuntimeError):
    """The kinetic solution left the physical state space (ρ ≤ 0, T ≤ 0 or non-finite)."""


def check_stage(solver: Any, where: str, name: str, grid_text: str, fix: str) -> None:
    """Raise if the last relaxation stage flagged a cell (``solver._flag``) or needed a Maxwellian
    correction above ``solver.grid_rtol`` (``solver._corr``); shared by the BGK and Boltzmann DVMs.

    ``name`` names the solver in the message, ``grid_text`` describes its velocity grid and ``fix``
    says how to widen or refine it.
    """
    bad = np.flatnonzero(solver._flag)
    if bad.size:
        i = int(bad[0])
        what = {K.BAD_DENSITY: "non-positive density", K.BAD_TEMPERATURE: "non-positive temperature",
                K.BAD_VALUE: "a non-finite value"}[int(solver._flag[i])]
        raise SolverDivergedError(
            f"{name} solution diverged at t={solver.t:.6g} (step {solver.steps}, {where}): {what} in cell {i} "
            f"(x={solver.x[i]:.6g}); lower the CFL number or check the initial data"
        )
    cmax = float(solver._corr.max())
    if cmax > solver.grid_rtol:
        i = int(np.argmax(solver._corr))
        raise VelocityGridError(
            f"at t={solver.t:.6g} the local Maxwellian of cell {i} (x={solver.x[i]:.6g}) needs a relative "
            f"moment correction {cmax:.2e} > {solver.grid_rtol:g} on {grid_text}: the {fix}"
        )


def checked_dt(solver: Any, dt: float | None) -> float:
    """``dt`` (None: ``solver.dt_max``); raises if it exceeds the stable step ``solver.dt_max``."""
    dtm = solver.dt_max
    if dt is None:
        return dtm
    if dt > dtm * (1.0 + 1e-12):
        raise ValueError(f"dt={dt:.4g} exceeds the stable step {dtm:.4g} (cfl={solver.cfl}); lower dt or cfl")
    return dt


def advance_to(solver: Any, t_end: float, progress: bool | None, log_every_s: float, desc: str) -> None:
    """Step ``solver`` to ``t_end`` with its maximal step (the last one shortened to land on it)."""
    if not (t_end >= solver.t and math.isfinite(t_end)):
        raise ValueError(f"t_end={t_end} must be finite and >= current time {solver.t}")
    from tqdm.auto import tqdm

    dtm = solver.dt_max
    nsteps = int(math.ceil((t_end - solver.t) / dtm - 1e-9))
    last_log = time.perf_counter()
    with tqdm(total=nsteps, disable=None if progress is None else not progress, desc=desc, leave=False) as bar:
        while solver.t < t_end - 1e-14 * max(1.0, abs(t_end)):
            solver.step(min(dtm, t_end - solver.t))
            bar.update(1)
            now = time.perf_counter()
            if now - last_log > log_every_s:
                log.info("%s t=%.4g / %.4g (step %d)", desc, solver.t, t_end, solver.steps)
                last_log = now


class DVMSolver:
    """Discrete-velocity solver on x ∈ [x_left, x_right) with ``nx`` cells.

    Parameters
    ----------
    grid : velocity grid (nv nodes).
    mu_ref : viscosity coefficient, μ = μ_ref T^ω; ``math.inf`` gives free streaming (ν = 0).
    collision : "bgk" or "shakhov".
    bc : "periodic" or "reservoir"; reservoirs ``left``/``right`` are (ρ, u, T) tuples.
    cfl : max|v| Δt/Δx, 0 < cfl ≤ 1.
    limiter : one of ``_kernels.LIMITERS``.
    grid_rtol : largest accepted relative moment error of a local Maxwellian on the grid.
    """

    def __init__(
        self,
        x_left: float,
        x_right: float,
        nx: int,
        grid: VelocityGrid,
        mu_ref: float,
        omega: float = 0.5,
        collision: str = "bgk",
        bc: str = "periodic",
        cfl: float = 0.5,
        limiter: str = "mc",
        left: tuple[float, float, float] | None = None,
        right: tuple[float, float, float] | None = None,
        grid_rtol: float = GRID_RTOL,
        threads: int | None = None,
    ) -> None:
        if not (0.0 < cfl <= CFL_MAX):
            raise ValueError(f"cfl={cfl} is outside the stable range (0, {CFL_MAX}]; lower cfl")
        if limiter not in K.LIMITERS:
            raise ValueError(f"unknown limiter {limiter!r}; choose one of {sorted(K.LIMITERS)}")
        if collision not in COLLISIONS:
            raise ValueError(f"unknown collision model {collision!r}; the DVM solver supports {COLLISIONS}")
        if bc not in ("periodic", "reservoir"):
            raise ValueError(f"unknown boundary condition {bc!r}; choose 'periodic' or 'reservoir'")
        if nx < 4:
            raise ValueError(f"nx must be >= 4, got {nx}")
        check_domain_and_gas(x_left, x_right, mu_ref, omega)
        if threads is not None:
            import numba

            numba.set_num_threads(int(threads))
        self.x_left, self.x_right, self.nx = float(x_left), float(x_right), int(nx)
        self.dx = (self.x_right - self.x_left) / self.nx
        self.grid = grid
        self.v = np.ascontiguousarray(grid.v)
        self.dv = grid.dv
        self.mu_ref = float(mu_ref)
        self.omega = float(omega)
        self.collision = collision
        self.pr = PRANDTL[collision]
        self.shakhov = collision == "shakhov"
        self.periodic = bc == "periodic"
        self.cfl = float(cfl)
        self.limiter = limiter
        self.grid_rtol = float(grid_rtol)
        self.t = 0.0
        self.steps = 0
        nv = grid.nv
        self.g = K.empty_padded(nx, nv)
        self.h = K.empty_padded(nx, nv)
        self._g2 = K.empty_padded(nx, nv)
        self._h2 = K.empty_padded(nx, nv)
        self._gn = K.empty_padded(nx, nv)
        self._hn = K.empty_padded(nx, nv)
        self._work = np.zeros((nx, 4, nv))
        self._flag = np.zeros(nx, dtype=np.int64)
        self._corr = np.zeros(nx)
        self._left_g = np.zeros(nv)
        self._left_h = np.zeros(nv)
        self._right_g = np.zeros(nv)
        self._right_h = np.zeros(nv)
        if not self.periodic:
            if left is None or right is None:
                raise ValueError("reservoir boundaries need left=(rho, u, T) and right=(rho, u, T)")
            self.set_reservoirs(left, right)

    # ------------------------------------------------------------------ setup
    @property
    def x(self) -> NDArray[np.float64]:
        return self.x_left + (np.arange(self.nx) + 0.5) * self.dx

    @property
    def dt_max(self) -> float:
        """Δt = CFL Δx / max|v| (independent of the Knudsen number)."""
        return self.cfl * self.dx / float(np.max(np.abs(self.v)))

    def set_reservoirs(self, left: tuple[float, float, float], right: tuple[float, float, float]) -> None:
        for name, st in (("left", left), ("right", right)):
            check_state(st[0], st[1], st[2], where=f"{name} reservoir")
        self.grid.check_covers([left[0], right[0]], [left[1], right[1]], [left[2], right[2]], self.grid_rtol)
        for st, rg, rh in ((left, self._left_g, self._left_h), (right, self._right_g, self._right_h)):
            g, h = discrete_maxwellian(np.array([st[0]]), np.array([st[1]]), np.array([st[2]]), self.grid)
            rg[:] = g[0]
            rh[:] = h[0]

    def set_maxwellian(self, rho: NDArray, u: NDArray, T: NDArray) -> None:
        """Initialise with the local Maxwellian of (ρ, u, T), each (nx,)."""
        rho, u, T = (np.ascontiguousarray(np.broadcast_to(a, (self.nx,)), dtype=np.float64) for a in (rho, u, T))
        check_state(rho, u, T, where="initial data")
        self.grid.check_covers(rho, u, T, self.grid_rtol)
        self.g[K.NGHOST:-K.NGHOST], self.h[K.NGHOST:-K.NGHOST] = discrete_maxwellian(rho, u, T, self.grid)

    def set_distribution(self, g: NDArray, h: NDArray) -> None:
        """Initialise with arbitrary (g, h), each (nx, nv), g > 0, h > 0."""
        g = np.asarray(g, dtype=float)
        h = np.asarray(h, dtype=float)
        shape = (self.nx, self.grid.nv)
        if g.shape != shape or h.shape != shape:
            raise ValueError(f"g and h must have shape {shape}, got {g.shape} and {h.shape}")
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            raise ValueError("g and h must be finite")
        if np.any(g < 0) or np.any(h < 0):
            raise ValueError("g and h must be non-negative")
        self.g[K.NGHOST:-K.NGHOST] = g
        self.h[K.NGHOST:-K.NGHOST] = h

    # ------------------------------------------------------------------ stepping
    def step(self, dt: float | None = None) -> None:
        """One ARS(2,2,2) step of size ``dt`` (default and maximum: ``dt_max``)."""
        dt = checked_dt(self, dt)
        lim = K.LIMITERS[self.limiter]
        K.fill_ghosts(self.g, self.periodic, self._left_g, self._right_g)
        K.fill_ghosts(self.h, self.periodic, self._left_h, self._right_h)
        K.ars_stage2(self.g, self.h, self.v, self.dv, self.dx, dt, GAM, lim, self.mu_ref, self.omega,
                     self.pr, self.shakhov, self._g2, self._h2, self._work, self._flag, self._corr)
        self._check("stage 2")
        K.fill_ghosts(self._g2, self.periodic, self._left_g, self._right_g)
        K.fill_ghosts(self._h2, self.periodic, self._left_h, self._right_h)
        K.ars_stage3(self.g, self.h, self._g2, self._h2, self.v, self.dv, self.dx, dt, GAM, DELTA, lim,
                     self.mu_ref, self.omega, self.pr, self.shakhov, self._gn, self._hn, self._work,
                     self._flag, self._corr)
        self._check("stage 3")
        self.g, self._gn = self._gn, self.g
        self.h, self._hn = self._hn, self.h
        self.t += dt
        self.steps += 1

    def _check(self, where: str) -> None:
        check_stage(self, where, "DVM",
                    f"the velocity grid [{self.grid.v_min:.4g}, {self.grid.v_max:.4g}] (nv={self.grid.nv})",
                    "grid is too narrow or too coarse for this state; widen v_min/v_max or raise nv")

    def run(self, t_end: float, progress: bool | None = None, log_every_s: float = 30.0) -> None:
        """Advance to ``t_end`` (the last step is shortened to land on it)."""
        advance_to(self, t_end, progress, log_every_s, "DVM")

    # ------------------------------------------------------------------ output
    def fields_array(self) -> NDArray[np.float64]:
        """(nx, 5) array of ρ, u, T, σ, q."""
        out = np.empty((self.nx, 5))
        K.macro_fields(self.g, self.h, self.v, self.dv, out)
        return out

    def fields(self) -> Fields:
        a = self.fields_array()
        return Fields(self.x, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], self.t,
                      stats={"steps": self.steps, "nv": self.grid.nv, "v_min": self.grid.v_min,
                             "v_max": self.grid.v_max})

    def totals(self) -> NDArray[np.float64]:
        """(3,) total mass, momentum, energy Σ_i U_i Δx (plain sums, no fastmath)."""
        g = self.g[K.NGHOST:-K.NGHOST]
        h = self.h[K.NGHOST:-K.NGHOST]
        v = self.v
        return np.array([g.sum(), (g * v).sum(), 0.5 * (g * v * v + h).sum()]) * self.dv * self.dx

    @property
    def interior(self) -> tuple[NDArray, NDArray]:
        """Views (nx, nv) of g and h without ghost cells."""
        return self.g[K.NGHOST:-K.NGHOST], self.h[K.NGHOST:-K.NGHOST]


def discrete_maxwellian(rho: NDArray, u: NDArray, T: NDArray, grid: VelocityGrid) -> tuple[NDArray, NDArray]:
    """Conservative discrete Maxwellians (g, h), each (n, nv), whose discrete moments equal
    (ρ, ρu, E) to round-off; states (n,) must be covered by the grid."""
    rho, u, T = (np.ascontiguousarray(a, dtype=np.float64) for a in (rho, u, T))
    check_state(rho, u, T, where="Maxwellian")
    grid.check_covers(rho, u, T)
    g = np.empty((rho.size, grid.nv))
    h = np.empty_like(g)
    K.maxwellian_rows(rho, u, T, np.ascontiguousarray(grid.v), grid.dv, g, h, np.empty((rho.size, grid.nv)), np.empty(rho.size))
    return g, h


def run_problem(
    problem: Problem,
    nv: int = 96,
    cfl: float = 0.5,
    limiter: str = "mc",
    v_width: float = DEFAULT_WIDTH,
    T_margin: float = 1.5,
    threads: int | None = None,
    progress: bool | None = None,
    grid_retries: int = 1,
) -> Fields:
    """Run the DVM on a :class:`Problem` (Maxwellian initial data) until ``problem.t_end``.

    The velocity grid covers u ± v_width √(T_margin T) of every initial state. If a later state is
    not represented (:class:`VelocityGridError`), the run restarts up to ``grid_retries`` times on a
    grid with twice the temperature margin and 1.5× the nodes (logged, and recorded in
    ``stats["grid_attempts"]``); then the error is raised.
    """
    if problem.collision == "boltzmann":  # nv = points per velocity direction (nv³ nodes per cell)
        from kinclose.kinetic.boltzmann_dvm import run_problem_boltzmann

        return run_problem_boltzmann(problem, n=nv, cfl=cfl, limiter=limiter, v_width=v_width, T_margin=T_margin,
                                     threads=threads, progress=progress)
    for attempt in range(grid_retries + 1):
        try:
            out = _run_problem_once(problem, nv, cfl, limiter, v_width, T_margin, threads, progress)
        except VelocityGridError as exc:
            if attempt == grid_retries:
                raise
            log.warning("velocity grid too narrow (%s); retrying with T_margin=%g, nv=%d", exc, 2 * T_margin,
                        int(1.5 * nv))
            T_margin, nv = 2.0 * T_margin, int(1.5 * nv)
            continue
        out.stats["grid_attempts"] = attempt + 1
        return out
    raise AssertionError("unreachable")


def _run_problem_once(problem: Problem, nv: int, cfl: float, limiter: str, v_width: float, T_margin: float,
                      threads: int | None, progress: bool | None) -> Fields:
    if problem.collision not in COLLISIONS:
        raise ValueError(f"run_problem(dvm) supports collision in {COLLISIONS}, got {problem.collision!r}")
    grid = VelocityGrid.for_states(problem.u, problem.T * T_margin, nv, width=v_width)
    left = right = None
    if problem.bc == "reservoir":
        left = (problem.rho[0], problem.u[0], problem.T[0])
        right = (problem.rho[-1], problem.u[-1], problem.T[-1])
    solver = DVMSolver(problem.x_left, problem.x_right, problem.nx, grid, problem.mu_ref, problem.omega,
                       problem.collision, problem.bc, cfl, limiter, left, right, threads=threads)
    solver.set_maxwellian(problem.rho, problem.u, problem.T)
    t0 = time.perf_counter()
    solver.run(problem.t_end, progress=progress)
    out = solver.fields()
    out.stats["wall_s"] = time.perf_counter() - t0
    return out


def updates_per_second(steps: int, nx: int, nv: int, wall_s: float) -> float:
    """Cell·velocity updates per second (one update = one (cell, velocity) pair per time step)."""
    return steps * nx * nv / max(wall_s, 1e-300)


def info() -> dict[str, Any]:
    import numba

    return {"numba_threads": numba.get_num_threads(), "threading_layer": numba.config.THREADING_LAYER}
