"""Bad input to the kinetic solver stops with a message naming the value and the fix."""

import math

import numpy as np
import pytest

from kinclose.kinetic.grid import VelocityGrid, VelocityGridError
from kinclose.kinetic.solver import DVMSolver, SolverDivergedError, run_problem
from kinclose.physics import PhysicalStateError
from kinclose.problem import Problem


def _solver(**kw):
    opts = dict(x_left=0.0, x_right=1.0, nx=8, grid=VelocityGrid(-8.0, 8.0, 48), mu_ref=0.1)
    opts.update(kw)
    return DVMSolver(**opts)


@pytest.mark.parametrize("rho, T, match", [(-1.0, 1.0, "rho must be > 0"), (1.0, 0.0, "T must be > 0"),
                                           (np.nan, 1.0, "rho is not finite"), (1.0, np.inf, "T is not finite")])
def test_non_physical_initial_data(rho, T, match):
    s = _solver()
    with pytest.raises(PhysicalStateError, match=match):
        s.set_maxwellian(np.full(8, rho), np.zeros(8), np.full(8, T))


def test_grid_too_narrow_names_the_state_and_the_fix():
    s = _solver()
    with pytest.raises(VelocityGridError, match=r"widen the grid to at least"):
        s.set_maxwellian(np.ones(8), np.full(8, 3.0), np.ones(8))  # u + 6.5 sqrt(T) = 9.5 > 8


def test_grid_too_coarse_names_the_fix():
    s = _solver(grid=VelocityGrid(-8.0, 8.0, 8))
    with pytest.raises(VelocityGridError, match="raise nv"):
        s.set_maxwellian(np.ones(8), np.zeros(8), np.full(8, 0.2))


@pytest.mark.parametrize("nv", [7, 64.5, True])
def test_velocity_grid_needs_an_integer_number_of_nodes(nv):
    with pytest.raises(ValueError, match="integer nv >= 8"):
        VelocityGrid(-8.0, 8.0, nv)
    assert VelocityGrid(-8.0, 8.0, np.int64(16)).nv == 16
    with pytest.raises(ValueError, match="integer nv >= 8, got 64.5"):  # the solvers' path, not truncated
        VelocityGrid.for_states([0.0], [1.0], 64.5)


def test_grid_check_during_run():
    """Data that heat up beyond the grid are caught while running, not silently clipped."""
    nx = 16
    x = (np.arange(nx) + 0.5) / nx
    T = np.where(np.abs(x - 0.5) < 0.2, 3.0, 0.5)
    u = np.where(x < 0.5, 2.0, -2.0)  # colliding streams heat the gas
    prob = Problem(0.0, 1.0, np.ones(nx), u, T, kn=1e-3, t_end=0.5)
    with pytest.raises(VelocityGridError, match="too narrow or too coarse"):
        run_problem(prob, nv=48, T_margin=1.0, grid_retries=0)


@pytest.mark.parametrize("cfl", [0.0, 1.01, 5.0])
def test_cfl_above_stable_bound(cfl):
    with pytest.raises(ValueError, match=r"cfl=.* outside the stable range"):
        _solver(cfl=cfl)


def test_dt_above_stable_step():
    s = _solver()
    s.set_maxwellian(np.ones(8), np.zeros(8), np.ones(8))
    with pytest.raises(ValueError, match="exceeds the stable step"):
        s.step(2 * s.dt_max)


def test_unknown_options():
    with pytest.raises(ValueError, match="unknown limiter"):
        _solver(limiter="vanalbada")
    with pytest.raises(ValueError, match="unknown collision"):
        _solver(collision="boltzman")
    with pytest.raises(ValueError, match="reservoir boundaries need"):
        _solver(bc="reservoir")
    with pytest.raises(ValueError, match="omega must lie in"):
        _solver(omega=2.6)
    with pytest.raises(ValueError, match="x_left < x_right"):
        _solver(x_left=1.0, x_right=0.0)
    with pytest.raises(TypeError):
        run_problem(Problem(0, 1, np.ones(8), np.zeros(8), np.ones(8), kn=1.0, t_end=0.1), nvv=3)


def test_divergence_is_reported_with_place_and_time():
    s = _solver()
    s.set_maxwellian(np.ones(8), np.zeros(8), np.ones(8))
    s.step()
    s.g[2 + 5, :] = np.nan  # corrupt cell 5
    with pytest.raises(SolverDivergedError, match=r"t=0\.00\d+ \(step 1, stage 2\): a non-finite value in cell [3-7] \(x=0\.\d+\)"):
        s.step()


def test_free_streaming_needs_no_collision_frequency():
    s = _solver(mu_ref=math.inf)
    s.set_maxwellian(np.ones(8), np.zeros(8), np.ones(8))
    s.step()
    assert np.all(np.isfinite(s.fields_array()))


def test_grid_retry_widens_the_grid():
    nx = 16
    x = (np.arange(nx) + 0.5) / nx
    T = np.where(np.abs(x - 0.5) < 0.2, 3.0, 0.5)
    u = np.where(x < 0.5, 2.0, -2.0)
    prob = Problem(0.0, 1.0, np.ones(nx), u, T, kn=1e-3, t_end=0.5)
    out = run_problem(prob, nv=48, T_margin=1.0, grid_retries=2)
    assert out.stats["grid_attempts"] >= 2
    assert np.all(np.isfinite(out.T)) and np.all(out.T > 0)
