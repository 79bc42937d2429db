"""Every shock solver (BGK DVM, Boltzmann DVM, reduced models) refuses options no solve can use, before solving."""

import math

import pytest

from kinclose.kinetic.shock import steady_shock
from kinclose.physics import rankine_hugoniot
from kinclose.reduced.shock import reduced_shock

SOLVERS = {
    "dvm": lambda s, **kw: steady_shock(s, **kw),
    "dvm-boltzmann": lambda s, **kw: steady_shock(s, collision="boltzmann", nv=16, **kw),
    "mlc": lambda s, **kw: reduced_shock(s, closure="pretrained:mlc_small_shock2", steady="newton",
                                         limiter="vanleer", **kw),
}
BAD = [({"dx": -1.0}, "dx must be > 0"), ({"dx": 0.0}, "dx must be > 0"), ({"dx": math.nan}, "dx must be > 0"),
       ({"x_min": 1.0}, "contain x = 0"), ({"levels": 0}, "levels"), ({"tol": -1e-5}, "tol must be > 0"),
       ({"tol": 0.0}, "tol must be > 0"), ({"max_steps": 0}, "max_steps"), ({"check_every": 0}, "check_every"),
       ({"omega": 3.0}, "omega must lie in"), ({"omega": 0.2}, "omega must lie in")]


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("options, message", BAD)
def test_shock_solvers_refuse_unusable_options(solver, options, message):
    with pytest.raises(ValueError, match=message):
        SOLVERS[solver](rankine_hugoniot(2.0), **options)


def test_problem_refuses_omega_outside_the_vhs_range():
    import numpy as np

    from kinclose.problem import Problem

    one = np.ones(8)
    with pytest.raises(ValueError, match="omega must lie in"):
        Problem(0.0, 1.0, one, 0 * one, one, kn=0.1, t_end=0.1, omega=2.6)
    assert Problem(0.0, 1.0, one, 0 * one, one, kn=0.1, t_end=0.1, omega=1.0).omega == 1.0


def test_reduced_shock_refuses_zero_newton_iterations():
    with pytest.raises(ValueError, match="newton_max_iter"):
        SOLVERS["mlc"](rankine_hugoniot(2.0), newton_max_iter=0)
