"""The shipped closures load (weights_only) and drive the reduced solver."""

import numpy as np
import pytest

from kinclose.physics import mu_ref_for_knudsen
from kinclose.pretrained import resolve
from kinclose.reduced.run import load_closure
from kinclose.reduced.solver import ReducedSolver


@pytest.mark.parametrize("name", ["mlc_small", "hermmlc_small"])
def test_shipped_closure_runs_and_conserves(name):
    path = resolve(f"pretrained:{name}")
    assert path.exists() and path.name == "closure.pt"
    cl = load_closure(f"pretrained:{name}", xi_max=5.0)
    assert cl.xi_max == 5.0 and cl.equilibrium().shape == (cl.n_moments,)
    nx = 32
    x = (np.arange(nx) + 0.5) / nx
    s = ReducedSolver(0, 1, nx, cl, mu_ref_for_knudsen(0.1, 0.5), 0.5, "periodic", 0.5)
    s.set_state(1 + 0.2 * np.sin(2 * np.pi * x), 0.3 * np.cos(2 * np.pi * x), 1 + 0.2 * np.sin(2 * np.pi * x + 1))
    U0 = s.U.sum(0)
    for _ in range(10):
        s.step()
    np.testing.assert_allclose(s.U.sum(0), U0, rtol=0, atol=1e-12 * np.abs(U0).max())
    f = s.fields_array()
    assert np.all(f[:, 0] > 0) and np.all(f[:, 2] > 0) and np.all(np.isfinite(f))


def test_unknown_pretrained_name():
    with pytest.raises(FileNotFoundError, match="available"):
        resolve("pretrained:nope")
