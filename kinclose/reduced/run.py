"""Run the reduced (closed moment) model on a :class:`kinclose.problem.Problem`.

Maxwellian initial data: W = W_eq. No velocity grid is used at run time.

Collision source: the exact BGK source ν ρ (W_eq − W) by default; ``source=<path of source.pt>``
(``kinclose-train stage=source``, learned on Boltzmann data) uses the learned R̂(W) with the
Filbet–Jin penalisation of :class:`~kinclose.reduced.solver.ReducedSolver` (β = checkpoint β* ×
``source_beta_safety``); then the problem's collision model may be "boltzmann".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from kinclose.problem import Fields, Problem
from kinclose.reduced.closure import ShapeClosure
from kinclose.reduced.solver import ReducedSolver


def load_closure(closure: ShapeClosure | str | Path, xi_max: float | None = None, clip: bool = False,
                 inference: str = "float32") -> ShapeClosure:
    """A closure object, the path of a ``closure.pt`` checkpoint (learned / Hermite), or
    ``pretrained:<name>`` for a closure shipped in :mod:`kinclose.pretrained`. ``xi_max`` overrides
    the wave-speed bound |λ − u|/√T of the Rusanov flux; ``clip`` evaluates a checkpoint's fluxes at W
    clipped to its training box; ``inference`` the network path of a checkpoint (``LearnedClosure``)."""
    if isinstance(closure, (str, Path)):
        from kinclose.closure.learned import LearnedClosure  # torch only here
        from kinclose.pretrained import resolve

        return LearnedClosure.from_checkpoint(resolve(closure), xi_max=xi_max, clip=clip, inference=inference)
    if clip:
        raise ValueError("clip=True applies to closures loaded from a checkpoint (LearnedClosure)")
    if xi_max is not None:
        closure.xi_max = float(xi_max)
    return closure


def load_source(source: Any) -> Any:
    """None (exact BGK source), a source object (``rate(W)``, ``beta``), or the path of a ``source.pt``
    checkpoint or ``pretrained:<name>`` (→ :class:`kinclose.closure.source.LearnedSource`)."""
    if source is None or not isinstance(source, (str, Path)):
        return source
    from kinclose.closure.source import LearnedSource  # torch only here
    from kinclose.pretrained import resolve_source

    return LearnedSource.from_checkpoint(resolve_source(source))


CHECKPOINT_OPTIONS = ("closure", "jacobian_closure", "source")
"""The options of a reduced model that can name a checkpoint."""


def check_checkpoints(options: dict[str, Any]) -> None:
    """Load once every checkpoint that a reduced model's ``options`` name (:data:`CHECKPOINT_OPTIONS`): a missing,
    corrupt or mismatched file then stops a benchmark or sweep before its first solve, instead of being recorded
    as a failure of the model. Objects, None and "auto" pass unchecked."""
    closure, jacobian, source = (options.get(k) for k in CHECKPOINT_OPTIONS)
    for value in (closure, jacobian):
        if isinstance(value, (str, Path)) and value != "auto":
            load_closure(value)
    load_source(source)


def closure_diagnostics(cl: ShapeClosure, U: np.ndarray, W: np.ndarray) -> dict[str, Any]:
    """Reported, never acted upon, for closures that provide them (learned / Hermite): the fraction of
    states outside the training range of W, the fraction of complex eigenvalues of the closed-flux
    Jacobian (and of states with any), the largest characteristic speed |λ − u|/√T and the fraction of
    states whose speed exceeds the Rusanov bound ``xi_max``. U (n, 3), W (n, M)."""
    out: dict[str, Any] = {}
    counts = getattr(cl, "clip_counts", None)
    if getattr(cl, "clip", False) and counts["evaluated"]:
        out["clipped_flux_state_fraction"] = counts["clipped"] / counts["evaluated"]
    check = getattr(cl, "check_range", None)
    if check is not None and getattr(cl, "w_min", None) is not None:
        out["W_out_of_range_fraction"] = float(check(W)["fraction"])
    eig = getattr(cl, "flux_jacobian_eigenvalues", None)
    if eig is not None:
        d = eig(U, W)
        out.update({"complex_eigenvalue_fraction": float(d["fraction_complex"]),
                    "states_with_complex_eigenvalues": float(d["fraction_states_complex"]),
                    "max_characteristic_speed": float(d["max_speed"]),
                    "fraction_speed_above_xi_max": float(d["fraction_above_xi_max"])})
    return out


def require_source(collision: str, source: Any) -> None:
    """Any collision model but BGK needs a learned collision source (the built-in one is BGK's)."""
    if source is None and collision != "bgk":
        raise ValueError(f"the reduced model has the exact BGK source only; got collision={collision!r}. "
                         "Pass source=<path of source.pt> (kinclose-train stage=source) for a learned collision source")


def source_name(source: Any) -> str:
    """How a ``source`` argument is reported: "bgk" (None), the checkpoint path, or the object's type."""
    if source is None:
        return "bgk"
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def problem_solver(problem: Problem, closure: ShapeClosure | str | Path, cfl: float = 0.5,
                   xi_max: float | None = None, source: Any = None, source_beta_safety: float = 1.0,
                   flux: str = "ap", clip: bool = False, source_scheme: str = "linearized") -> ReducedSolver:
    """The :class:`ReducedSolver` of ``problem`` with its initial data set (options as :func:`run_problem`)."""
    require_source(problem.collision, source)
    src = load_source(source)
    cl = load_closure(closure, xi_max, clip)
    left = right = None
    if problem.bc == "reservoir":
        left = (problem.rho[0], problem.u[0], problem.T[0])
        right = (problem.rho[-1], problem.u[-1], problem.T[-1])
    s = ReducedSolver(problem.x_left, problem.x_right, problem.nx, cl, problem.mu_ref, problem.omega,
                      problem.bc, cfl, left, right, source=src, source_beta_safety=source_beta_safety, flux=flux,
                      source_scheme=source_scheme)
    s.set_state(problem.rho, problem.u, problem.T)
    return s


def run_problem(problem: Problem, closure: ShapeClosure | str | Path, cfl: float = 0.5,
                max_steps: int = 1_000_000, xi_max: float | None = None, source: Any = None,
                source_beta_safety: float = 1.0, flux: str = "ap", clip: bool = False,
                source_scheme: str = "linearized") -> Fields:
    """Advance the closed moment system from Maxwellian initial data to ``problem.t_end``; the stats
    hold the steps, wall time, range of W and :func:`closure_diagnostics` of the final state.

    ``source`` : None (exact BGK source; the problem must be BGK), a source object or the path of a
    ``source.pt`` (learned collision source, any collision model); ``source_scheme`` its implicit
    scheme ("linearized" or "penalized", :class:`ReducedSolver`); ``source_beta_safety`` multiplies
    its penalisation rate β; ``flux`` the numerical flux of U ("ap" or "rusanov", :class:`ReducedSolver`);
    ``clip``: fluxes at W clipped to the closure's training box (:func:`load_closure`)."""
    s = problem_solver(problem, closure, cfl, xi_max, source, source_beta_safety, flux, clip, source_scheme)
    src, cl = s.source, s.closure
    t0 = time.perf_counter()
    while s.t < problem.t_end - 1e-14 * max(1.0, problem.t_end):
        if s.steps >= max_steps:
            raise RuntimeError(f"reduced model needed more than max_steps={max_steps} steps")
        s.step(min(s.dt_max(), problem.t_end - s.t))
    wall = time.perf_counter() - t0
    f = s.fields_array()
    return Fields(problem.x, f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], s.t,
                  stats={"steps": s.steps, "wall_s": wall, "W_min": s.W.min(0).tolist(),
                         "W_max": s.W.max(0).tolist(), **closure_diagnostics(cl, s.U, s.W),
                         "source": source_name(source),
                         "source_beta": None if src is None else s.source_beta,
                         "source_scheme": None if src is None else s.source_scheme,
                         "source_shifted_cells": s.source_shifted_cells})
