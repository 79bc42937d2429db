"""Label tasks: an initial-data spec, ε, seed, velocity grid, t_end and snapshot times → one
HDF5 shard holding the DVM solution (DESIGN §4).

The kinetic model is the Chu-reduced BGK/Shakhov equation of ``kinclose.kinetic.solver``,

    ∂t g + v ∂x g = ν (G⁺ − g),   ∂t h + v ∂x h = ν (H⁺ − h),   ν = ρ T^{1−ω} / μ_ref,

on the periodic domain [x_left, x_right), μ_ref from ε = λ_ref / L (VHS mean free path,
``kinclose.physics.mu_ref_for_knudsen`` with L = x_right − x_left).

Task seeds derive from the dataset's base seed and the task id,
``np.random.SeedSequence(base_seed, spawn_key=(task_id,))``, so a task's initial data do not depend
on how many tasks there are or in which order they run; the seed is stored in the shard.

Velocity grid: ``VelocityGrid.for_states`` over the task's initial states with the temperature
margin ``T_margin`` (covers u ± v_width √(T_margin max(T, T_∥))). If the grid turns out too narrow
or too coarse (``VelocityGridError`` at the start or during the run), the task is retried once on
a grid widened by ``retry_widen`` about its centre and refined to ``retry_refine`` × Δv (so nv grows
by retry_widen / retry_refine); a second failure raises :class:`LabelError`.

Boltzmann labels (``collision="boltzmann"``)
--------------------------------------------
The 1D-3V DVM with the full VHS operator (``kinclose.kinetic.boltzmann_dvm.BoltzmannDVMSolver``,
fast spectral method), ∂t f + v1 ∂x f = Q(f), on the cubic box [c − L, c + L]³ with N nodes per
direction; (L, c1) from ``box_for_states`` over u ± v_width √(T_margin max(T, T_∥)) of the initial
states. Options in ``DatasetSpec.boltzmann`` (:class:`BoltzmannOptions`). The shard stores the
Chu-reduced g, h (nt, nx, N) on the v1 nodes and the reduced collision terms

    Qg = Σ_{v2,v3} Q(f) Δv2Δv3,    Qh = Σ_{v2,v3} (v2² + v3²) Q(f) Δv2Δv3          (nt, nx, N)

of the solver's own (conservative, projected, and with ``equilibrium_preserving`` the
Q(f) − Q(M[f])) operator at every snapshot, so ∫Qg, ∫v1 Qg and ∫(v1² Qg + Qh) vanish to round-off.
Retry grid: L × retry_widen and N × retry_widen / retry_refine (rounded up to even, at most 48).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.conf import reject_unknown_keys
from kinclose.data import initial as ic
from kinclose.data.schema import shard_name, write_shard
from kinclose.kinetic._kernels import LIMITERS
from kinclose.kinetic.grid import DEFAULT_WIDTH, VelocityGrid, VelocityGridError
from kinclose.physics import mu_ref_for_knudsen

log = logging.getLogger(__name__)


class LabelError(RuntimeError):
    """A label task failed for a reason that retrying on the same grid does not fix."""


class LabelConfigError(ValueError):
    """Non-physical or inconsistent dataset settings."""


COLLISIONS = ("bgk", "shakhov", "boltzmann")


@dataclass(frozen=True)
class BoltzmannOptions:
    """Velocity grid and operator settings of the Boltzmann labeler (``dataset.boltzmann``).

    Attributes
    ----------
    n : velocity points per direction N (even, 4 ≤ N ≤ 48; N³ nodes per cell).
    n_dirs : directions on the half sphere of the fast spectral operator (rounded up to a Lebedev rule).
    equilibrium_preserving : use Q(f) − Q(M[f]) (discrete Maxwellians are exact fixed points, 1.5× cost).
    grid_rtol : largest accepted relative Maxwellian moment correction (grid quality; the BGK labeler
        uses 1e-8, which an N = 16 box spanning a temperature ratio > 1 cannot meet).
    tail_tol : largest relative Maxwellian mass outside the box.

    N > 48 needs the torch solver on a device (``cluster.device``, e.g. ``cuda``; N ≤ 96).
    """

    n: int = 16
    n_dirs: int = 25
    equilibrium_preserving: bool = True
    grid_rtol: float = 1e-3
    tail_tol: float = 1e-6

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "BoltzmannOptions":
        d = dict(d or {})
        reject_unknown_keys(d, cls.__dataclass_fields__, "dataset.boltzmann", LabelConfigError)
        o = cls(**d)
        o.validate()
        return o

    def validate(self) -> None:
        from kinclose.kinetic.boltzmann_dvm import N_MAX_TORCH

        if not (isinstance(self.n, int) and not isinstance(self.n, bool) and 4 <= self.n <= N_MAX_TORCH
                and self.n % 2 == 0):
            raise LabelConfigError(f"dataset.boltzmann.n={self.n!r} must be an even integer in [4, {N_MAX_TORCH}] "
                                   "(velocity points per direction; 16 labels in minutes, 32 is 8x slower per cell; "
                                   "above 48 only with cluster.device=cuda)")
        if not (isinstance(self.n_dirs, int) and not isinstance(self.n_dirs, bool) and self.n_dirs >= 1):
            raise LabelConfigError(f"dataset.boltzmann.n_dirs={self.n_dirs!r} must be an integer >= 1 "
                                   "(quadrature directions on the half sphere, e.g. 25)")
        if not isinstance(self.equilibrium_preserving, bool):
            raise LabelConfigError(f"dataset.boltzmann.equilibrium_preserving={self.equilibrium_preserving!r} "
                                   "must be true or false")
        for name in ("grid_rtol", "tail_tol"):
            val = getattr(self, name)
            if not (isinstance(val, (int, float)) and 0.0 < float(val) < 1.0):
                raise LabelConfigError(f"dataset.boltzmann.{name}={val!r} must lie in (0, 1)")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that defines a dataset (besides the code version); see ``conf/dataset/*.yaml``.

    Attributes
    ----------
    name : label of the dataset.
    n_tasks : number of label tasks (= shards).
    seed : base seed; task seeds derive from it and the task id.
    nx : cells on [x_left, x_right); nv : velocity nodes (before a retry).
    t_end : final time; n_snapshots : snapshots at linspace(0, t_end, n_snapshots).
    collision : "bgk", "shakhov" or "boltzmann"; omega : VHS exponent (μ = μ_ref T^ω).
    boltzmann : :class:`BoltzmannOptions` as a dict (used when collision = "boltzmann"; then ``nv``
        is ignored and the grid has ``boltzmann.n`` nodes per direction).
    cfl, limiter : DVM transport settings.
    v_width, T_margin : grid covers u ± v_width √(T_margin T) of every initial state.
    retry_widen, retry_refine : retry grid (widen bounds, multiply Δv).
    compression : None, "gzip" or "lzf" for /g and /h.
    ranges : :class:`kinclose.data.initial.ICRanges` as a dict.
    """

    name: str = "small"
    n_tasks: int = 48
    seed: int = 2024
    nx: int = 64
    nv: int = 128
    t_end: float = 0.15
    n_snapshots: int = 7
    x_left: float = -0.5
    x_right: float = 0.5
    collision: str = "bgk"
    omega: float = 0.5
    cfl: float = 0.5
    limiter: str = "mc"
    v_width: float = DEFAULT_WIDTH
    T_margin: float = 1.5
    retry_widen: float = 1.5
    retry_refine: float = 0.5
    compression: str | None = None
    ranges: dict[str, Any] = field(default_factory=dict)
    boltzmann: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetSpec":
        reject_unknown_keys(d, cls.__dataclass_fields__, "dataset", LabelConfigError)
        spec = cls(**d)
        spec.validate()
        return spec

    def boltzmann_options(self) -> BoltzmannOptions:
        return BoltzmannOptions.from_dict(self.boltzmann)

    def ic_ranges(self) -> ic.ICRanges:
        return ic.ICRanges.from_dict(dict(self.ranges))

    def validate(self) -> None:
        """Raise :class:`LabelConfigError` naming the bad value and the fix."""

        def bad(msg: str) -> None:
            raise LabelConfigError(msg)

        if not (isinstance(self.n_tasks, int) and self.n_tasks >= 1):
            bad(f"dataset.n_tasks={self.n_tasks} must be an integer >= 1")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            bad(f"dataset.seed={self.seed} must be a non-negative integer")
        if not (isinstance(self.nx, int) and self.nx >= 4):
            bad(f"dataset.nx={self.nx} must be an integer >= 4")
        if not (isinstance(self.nv, int) and self.nv >= 8):
            bad(f"dataset.nv={self.nv} must be an integer >= 8")
        if not (math.isfinite(self.t_end) and self.t_end > 0):
            bad(f"dataset.t_end={self.t_end} must be finite and > 0")
        if not (isinstance(self.n_snapshots, int) and self.n_snapshots >= 2):
            bad(f"dataset.n_snapshots={self.n_snapshots} must be an integer >= 2 (t = 0 and t_end at least)")
        if not self.x_right > self.x_left:
            bad(f"dataset.x_left={self.x_left}, x_right={self.x_right}: need x_right > x_left")
        if self.collision not in COLLISIONS:
            bad(f"dataset.collision={self.collision!r}: the DVM labeler supports "
                f"{', '.join(repr(c) for c in COLLISIONS)}")
        if not (0.5 <= self.omega <= 1.0):
            bad(f"dataset.omega={self.omega} must lie in [0.5, 1] (VHS exponent: 0.5 hard spheres, 0.81 argon)")
        if not (0.0 < self.cfl <= 1.0):
            bad(f"dataset.cfl={self.cfl} must lie in (0, 1]")
        if self.limiter not in LIMITERS:
            bad(f"dataset.limiter={self.limiter!r}: choose one of {', '.join(sorted(LIMITERS))}")
        if not (self.v_width >= 4.0):
            bad(f"dataset.v_width={self.v_width} is too narrow: use >= 4 thermal speeds (default {DEFAULT_WIDTH})")
        if not (self.T_margin >= 1.0):
            bad(f"dataset.T_margin={self.T_margin} must be >= 1 (the grid covers T_margin * T_max)")
        if not (self.retry_widen >= 1.0 and 0.0 < self.retry_refine <= 1.0):
            bad(f"dataset.retry_widen={self.retry_widen} must be >= 1 and retry_refine={self.retry_refine} in (0, 1]")
        if self.compression not in (None, "gzip", "lzf"):
            bad(f"dataset.compression={self.compression!r}: choose null, 'gzip' or 'lzf'")
        self.ic_ranges()  # validates the ranges (InitialDataError names the value)
        self.boltzmann_options()  # validated whatever the collision, so a typo never waits for a switch

    def snapshot_times(self) -> list[float]:
        return np.linspace(0.0, self.t_end, self.n_snapshots).tolist()


@dataclass(frozen=True)
class LabelTask:
    """One label task, JSON-serialisable; its JSON is the shard's ``config`` attribute."""

    task_id: int
    seed: int
    ic: dict[str, Any]
    kn: float
    omega: float
    collision: str
    x_left: float
    x_right: float
    nx: int
    nv: int
    t_end: float
    snapshots: list[float]
    cfl: float
    limiter: str
    v_width: float
    T_margin: float
    retry_widen: float
    retry_refine: float
    compression: str | None = None
    bc: str = "periodic"
    boltzmann: dict[str, Any] | None = None

    def to_json(self) -> str:
        d = asdict(self)
        if d["boltzmann"] is None:  # BGK/Shakhov task specs (and their shards' config) stay as before
            d.pop("boltzmann")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "LabelTask":
        return cls(**json.loads(s))


def task_seed(base_seed: int, task_id: int) -> int:
    """32-bit seed of task ``task_id`` from ``SeedSequence(base_seed, spawn_key=(task_id,))``."""
    return int(np.random.SeedSequence(int(base_seed), spawn_key=(int(task_id),)).generate_state(1, np.uint32)[0])


def make_tasks(spec: DatasetSpec) -> list[LabelTask]:
    """The dataset's tasks; task i depends only on (spec, i)."""
    spec.validate()
    ranges = spec.ic_ranges()
    tasks = []
    for i in range(spec.n_tasks):
        seed = task_seed(spec.seed, i)
        rng = np.random.default_rng(seed)
        kn = ic.sample_kn(rng, *ranges.kn)
        ic_spec = ic.sample_initial(rng, ranges, spec.x_left, spec.x_right)
        tasks.append(LabelTask(
            task_id=i, seed=seed, ic=ic_spec, kn=kn, omega=float(spec.omega), collision=spec.collision,
            x_left=float(spec.x_left), x_right=float(spec.x_right), nx=spec.nx, nv=spec.nv,
            t_end=float(spec.t_end), snapshots=spec.snapshot_times(), cfl=float(spec.cfl), limiter=spec.limiter,
            v_width=float(spec.v_width), T_margin=float(spec.T_margin), retry_widen=float(spec.retry_widen),
            retry_refine=float(spec.retry_refine), compression=spec.compression,
            boltzmann=asdict(spec.boltzmann_options()) if spec.collision == "boltzmann" else None,
        ))
    return tasks


def cell_centres(x_left: float, x_right: float, nx: int) -> NDArray[np.float64]:
    """(nx,) cell centres of the uniform grid on [x_left, x_right) (same as ``DVMSolver.x``)."""
    dx = (x_right - x_left) / nx
    return x_left + (np.arange(nx) + 0.5) * dx


def task_grid(task: LabelTask, attempt: int = 0) -> VelocityGrid:
    """Velocity grid of the task; ``attempt`` 1 is the widened and refined retry grid."""
    x = cell_centres(task.x_left, task.x_right, task.nx)
    _, u, T, aniso = ic.evaluate(task.ic, x)
    T_par, _ = ic.parallel_perpendicular(T, aniso)
    base = VelocityGrid.for_states(u, np.maximum(T, T_par) * task.T_margin, task.nv, width=task.v_width)
    if attempt == 0:
        return base
    c = 0.5 * (base.v_min + base.v_max)
    half = 0.5 * (base.v_max - base.v_min) * task.retry_widen
    nv = int(math.ceil(task.nv * task.retry_widen / task.retry_refine - 1e-9))
    return VelocityGrid(c - half, c + half, nv)


@dataclass(frozen=True)
class BoltzmannBox:
    """Cubic velocity box [c − L, c + L]³ (c = (c1, 0, 0)) with ``n`` nodes per direction."""

    L: float
    c1: float
    n: int

    @property
    def nv(self) -> int:
        """Velocity nodes per cell (N³), for the update counts."""
        return self.n ** 3

    @property
    def dv(self) -> float:
        """Node spacing per direction (= Δv1 of the stored Chu-reduced g, h)."""
        return 2.0 * self.L / self.n

    @property
    def v_min(self) -> float:
        return self.c1 - self.L

    @property
    def v_max(self) -> float:
        return self.c1 + self.L


def task_box(task: LabelTask, attempt: int = 0, device: str | None = None) -> BoltzmannBox:
    """Boltzmann velocity box of the task; ``attempt`` 1 widens L by retry_widen and raises N by
    retry_widen / retry_refine (even, at most the solver's limit: 48 on the CPU, 96 on a ``device``)."""
    from kinclose.kinetic.boltzmann_dvm import box_for_states, max_n

    opts = BoltzmannOptions.from_dict(task.boltzmann)
    x = cell_centres(task.x_left, task.x_right, task.nx)
    _, u, T, aniso = ic.evaluate(task.ic, x)
    T_par, _ = ic.parallel_perpendicular(T, aniso)
    L, c1 = box_for_states(u, np.maximum(T, T_par) * task.T_margin, task.v_width)
    if attempt == 0:
        return BoltzmannBox(float(L), float(c1), opts.n)
    n = min(max_n(device), 2 * int(math.ceil(0.5 * opts.n * task.retry_widen / task.retry_refine - 1e-9)))
    return BoltzmannBox(float(L) * task.retry_widen, float(c1), n)


def solve_task_boltzmann(task: LabelTask, box: BoltzmannBox,
                         device: str | None = None) -> tuple[dict[str, NDArray], dict[str, Any]]:
    """Run the Boltzmann DVM for one task in ``box``; return the shard arrays (with Qg, Qh) and stats.

    ``device`` (e.g. ``"cuda"``) runs the torch solver
    (:class:`~kinclose.kinetic.boltzmann_torch.TorchBoltzmannDVMSolver`; same scheme, labels equal to
    round-off), None the numba one.

    Raises ``VelocityGridError`` when the box cannot represent a state, ``SolverDivergedError``
    when the solution leaves the physical state space.
    """
    from kinclose.kinetic.boltzmann_dvm import make_solver
    from kinclose.kinetic.moments import conserved

    opts = BoltzmannOptions.from_dict(task.boltzmann)
    mu_ref = mu_ref_for_knudsen(task.kn, task.omega, length=task.x_right - task.x_left)
    solver = make_solver(task.x_left, task.x_right, task.nx, box.n, box.L, box.c1, mu_ref, task.omega, task.bc,
                         task.cfl, task.limiter, n_dirs=opts.n_dirs, equilibrium_preserving=opts.equilibrium_preserving,
                         grid_rtol=opts.grid_rtol, tail_tol=opts.tail_tol, device=device)
    rho, u, T, aniso = ic.evaluate(task.ic, solver.x)
    noneq = task.ic.get("anisotropy") is not None
    if noneq:
        T_par, T_perp = ic.parallel_perpendicular(T, aniso)
        solver.check_covers(rho, u, np.maximum(T_par, T_perp), where="initial data")
        v1, v2, v3 = solver.v1d
        e1 = np.exp(-0.5 * (v1[None, :] - u[:, None]) ** 2 / T_par[:, None])
        e23 = np.exp(-0.5 * (v2[None, :, None] ** 2 + v3[None, None, :] ** 2) / T_perp[:, None, None])
        coef = rho / (np.sqrt(2.0 * np.pi * T_par) * 2.0 * np.pi * T_perp)
        solver.set_distribution(coef[:, None, None, None] * e1[:, :, None, None] * e23[:, None, :, :])
    else:
        solver.set_maxwellian(rho, u, T)
    times = np.asarray(task.snapshots, dtype=float)
    nt, nx, N = times.size, task.nx, box.n
    g, h, Qg, Qh = (np.empty((nt, nx, N)) for _ in range(4))
    flds = np.empty((nt, nx, 5))
    for k, tk in enumerate(times):
        if tk > solver.t:
            solver.run(float(tk), progress=False)
        g[k], h[k] = solver.reduced()
        Qg[k], Qh[k] = solver.reduced_collision_terms()
        flds[k] = solver.fields_array()
    v = np.ascontiguousarray(solver.v1d[0])
    arrays = {"x": solver.x, "v": v, "t": times, "g": g, "h": h, "U": conserved(g, h, v, solver.h), "fields": flds,
              "Qg": Qg, "Qh": Qh}
    stats = {"steps": solver.steps, "v_min": box.v_min, "v_max": box.v_max, "dv": solver.h, "mu_ref": mu_ref,
             "noneq": noneq, "collision_wall_s": solver.collision_wall_s}
    return arrays, stats


def solve_task(task: LabelTask, grid: VelocityGrid) -> tuple[dict[str, NDArray], dict[str, Any]]:
    """Run the DVM for one task on ``grid``; return the shard arrays and solver statistics.

    Raises ``VelocityGridError`` when the grid cannot represent a state, ``SolverDivergedError``
    when the solution leaves the physical state space.
    """
    from kinclose.kinetic.moments import conserved
    from kinclose.kinetic.solver import DVMSolver

    mu_ref = mu_ref_for_knudsen(task.kn, task.omega, length=task.x_right - task.x_left)
    solver = DVMSolver(task.x_left, task.x_right, task.nx, grid, mu_ref, task.omega, task.collision, task.bc,
                       task.cfl, task.limiter)
    rho, u, T, aniso = ic.evaluate(task.ic, solver.x)
    noneq = task.ic.get("anisotropy") is not None
    if noneq:
        T_par, _ = ic.parallel_perpendicular(T, aniso)
        grid.check_covers(rho, u, T_par, solver.grid_rtol)
        solver.set_distribution(*ic.bi_maxwellian(rho, u, T, aniso, solver.v))
    else:
        solver.set_maxwellian(rho, u, T)
    times = np.asarray(task.snapshots, dtype=float)
    nt, nx, nv = times.size, task.nx, grid.nv
    g = np.empty((nt, nx, nv))
    h = np.empty((nt, nx, nv))
    flds = np.empty((nt, nx, 5))
    for k, tk in enumerate(times):
        if tk > solver.t:
            solver.run(float(tk), progress=False)
        gi, hi = solver.interior
        g[k], h[k] = gi, hi
        flds[k] = solver.fields_array()
    v = np.ascontiguousarray(solver.v)
    arrays = {"x": solver.x, "v": v, "t": times, "g": g, "h": h, "U": conserved(g, h, v, grid.dv), "fields": flds}
    stats = {"steps": solver.steps, "v_min": grid.v_min, "v_max": grid.v_max, "dv": grid.dv, "mu_ref": mu_ref,
             "noneq": noneq}
    return arrays, stats


def run_task(task: LabelTask | dict[str, Any], out_dir: str | Path, threads: int | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Label one task and write ``out_dir/shard_<task_id:05d>.h5`` atomically.

    Parameters
    ----------
    task : the task (or its ``asdict``).
    out_dir : dataset root (shared file system when run on a cluster).
    threads : numba threads for this process (``numba.set_num_threads``); None keeps the setting.
    device : torch device of the Boltzmann solver (``collision="boltzmann"`` only); None: the CPU solver.

    Returns
    -------
    dict: the manifest entry fields (file, task_id, samples, sha256, kn, ic_kind) plus
    ``updates`` (cell·velocity updates), ``wall_s``, ``grid_attempts``, ``nv``.
    """
    if isinstance(task, dict):
        task = LabelTask(**task)
    if threads is not None:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    t0 = time.perf_counter()
    errors = []
    boltz = task.collision == "boltzmann"
    for attempt in (0, 1):
        grid = task_box(task, attempt, device) if boltz else task_grid(task, attempt)
        try:
            arrays, stats = solve_task_boltzmann(task, grid, device) if boltz else solve_task(task, grid)
            break
        except VelocityGridError as exc:
            errors.append(str(exc))
            log.warning("task %d: velocity grid [%.4g, %.4g] nv=%d failed (%s)%s", task.task_id, grid.v_min,
                        grid.v_max, grid.nv, exc, "; retrying on a wider, finer grid" if attempt == 0 else "")
    else:
        raise LabelError(f"task {task.task_id}: the velocity grid is too narrow or too coarse even after widening "
                         f"by {task.retry_widen} and refining by {task.retry_refine}: {errors[-1]}")
    wall = time.perf_counter() - t0
    attrs = {
        "seed": int(task.seed), "config": task.to_json(), "kn": float(task.kn), "omega": float(task.omega),
        "collision": task.collision, "mu_ref": float(stats["mu_ref"]), "bc": task.bc,
        "x_left": float(task.x_left), "x_right": float(task.x_right), "t_end": float(task.t_end),
        "ic_kind": str(task.ic["kind"]), "task_id": int(task.task_id), "noneq": bool(stats["noneq"]),
        "grid_attempts": len(errors) + 1, "steps": int(stats["steps"]), "v_min": float(stats["v_min"]),
        "v_max": float(stats["v_max"]), "cfl": float(task.cfl), "limiter": task.limiter, "wall_s": float(wall),
    }
    if boltz:
        attrs.update(n_per_dim=int(grid.n), box_L=float(grid.L), box_c1=float(grid.c1),
                     n_dirs=int(BoltzmannOptions.from_dict(task.boltzmann).n_dirs))
    out = Path(out_dir) / shard_name(task.task_id)
    info = write_shard(out, arrays, stats["dv"], attrs, compression=task.compression)
    return {
        "file": out.name, "task_id": task.task_id, "samples": info["samples"], "sha256": info["sha256"],
        "kn": float(task.kn), "ic_kind": str(task.ic["kind"]), "updates": int(stats["steps"]) * task.nx * grid.nv,
        "wall_s": wall, "grid_attempts": len(errors) + 1, "nv": grid.nv, "data_sha256": info["data_sha256"],
    }
