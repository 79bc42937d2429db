"""Oracle test of the reduced moment solver (DESIGN §6): fed with the exact closure computed from a
concurrent DVM solution, it reproduces the DVM moments to discretization error, converging under
refinement, and conserves U to round-off. Units: R = 1, L = 1, ε = λ_ref/L (VHS)."""

import numpy as np
import pytest

from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.solver import DVMSolver
from kinclose.physics import mu_ref_for_knudsen
from kinclose.reduced.closure import OracleClosure, hermite_weights
from kinclose.reduced.solver import ReducedSolver


def _oracle_run(nx, kn, t_end=0.1, nv=48):
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.3 * np.sin(2 * np.pi * x)
    u = 0.3 * np.cos(2 * np.pi * x)
    T = 1 + 0.3 * np.sin(2 * np.pi * x + 1)
    grid = VelocityGrid.for_states(u, 2 * T, nv)
    mu = mu_ref_for_knudsen(kn, 0.5)
    dvm = DVMSolver(0, 1, nx, grid, mu, 0.5, "bgk", "periodic", 0.5, "mc")
    dvm.set_maxwellian(rho, u, T)
    closure = OracleClosure(grid.v, grid.dv, *hermite_weights((3, 4, 5)), xi_max=4.0)
    red = ReducedSolver(0, 1, nx, closure, mu, 0.5, "periodic", 0.5)
    red.set_state(rho, u, T)
    total0 = red.U.sum(0)
    while dvm.t < t_end - 1e-12:
        closure.update(*dvm.interior)
        dt = min(dvm.dt_max, red.dt_max(), t_end - dvm.t)
        red.step(dt)
        dvm.step(dt)
    closure.update(*dvm.interior)
    fd, fr = dvm.fields_array(), red.fields_array()
    errs = np.array([np.abs(fr[:, i] - fd[:, i]).mean() / np.abs(fd[:, i]).max() for i in range(5)])
    w_err = np.abs(red.W - closure.moments()).mean()
    return errs, w_err, np.abs(red.U.sum(0) - total0).max()


@pytest.mark.parametrize("kn", [1e-3, 0.1])
def test_oracle_reproduces_dvm_and_converges(kn):
    e32, w32, c32 = _oracle_run(32, kn)
    e64, w64, c64 = _oracle_run(64, kn)
    assert max(c32, c64) < 1e-12  # U conserved to round-off
    assert np.all(e64 < 0.01), e64  # ρ, u, T, σ, q within 1 % of their scale at nx = 64
    assert np.all(e32 / e64 > 2.0), (e32, e64)  # and converging
    assert w64 < w32
