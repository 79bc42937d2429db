"""Test-session setup: headless matplotlib, a workspace numba cache, kernels warmed once."""

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load from cache) the DVM kernels once, so test timings are comparable."""
    from kinclose.kinetic.grid import VelocityGrid
    from kinclose.kinetic.solver import DVMSolver

    s = DVMSolver(0.0, 1.0, 8, VelocityGrid(-8.0, 8.0, 48), 1.0)
    s.set_maxwellian(np.ones(8), np.zeros(8), np.ones(8))
    s.step()
    s.fields_array()
    yield


@pytest.fixture(scope="session")
def bgk_dataset(tmp_path_factory) -> Path:
    """Two tiny synthetic BGK shards (DVM-labeled, ``kinclose.moments._synthetic``) shared by the training
    tests; tests that corrupt a dataset copy it first."""
    from kinclose.moments._synthetic import write_dataset

    root = tmp_path_factory.mktemp("bgk") / "data"
    write_dataset(root, n_shards=2, seed=1, kn_range=(0.05, 1.0), nx=16, nv=64, nt=4, t_end=0.08)
    return root


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def smooth_wave_run():
    """``run(closure, steps, u_amp=0.2)``: the reduced solver with ``closure`` for ``steps`` steps on smooth periodic
    waves (32 cells, ε = 0.1, ω = 0.5, CFL 0.5); asserts that U is conserved to round-off and returns the solver."""
    from kinclose.physics import mu_ref_for_knudsen
    from kinclose.reduced.solver import ReducedSolver

    def run(closure, steps: int, u_amp: float = 0.2) -> ReducedSolver:
        nx = 32
        x = (np.arange(nx) + 0.5) / nx
        s = ReducedSolver(0, 1, nx, closure, mu_ref_for_knudsen(0.1, 0.5), 0.5, "periodic", 0.5)
        s.set_state(1 + 0.2 * np.sin(2 * np.pi * x), u_amp * np.cos(2 * np.pi * x), 1 + 0.2 * np.sin(2 * np.pi * x + 1))
        U0 = s.U.sum(0)
        for _ in range(steps):
            s.step()
        assert s.steps == steps
        np.testing.assert_allclose(s.U.sum(0), U0, rtol=0, atol=1e-12 * np.abs(U0).max())
        return s

    return run
