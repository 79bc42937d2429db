"""The torch Boltzmann DVM (kinclose.kinetic.boltzmann_torch) against the numba/NumPy solver.

Each piece (MUSCL transport, conservative discrete Maxwellians, the batched spectral operator) and
whole IMEX steps agree with the CPU solver to round-off in float64, on a tiny grid. The tests run on
the CPU with torch; on a machine with CUDA the ``device`` parameter adds ``"cuda"`` (the CPU/GPU
agreement test of issue 9; marked ``gpu``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.kinetic import _kernels as K  # noqa: E402
from kinclose.kinetic.boltzmann_dvm import (  # noqa: E402
    BoltzmannDVMSolver,
    maxwellian_states,
    steady_shock_boltzmann,
)
from kinclose.kinetic.boltzmann_torch import (  # noqa: E402
    TorchBoltzmannDVMSolver,
    TorchSpectralOperator,
    conservative_maxwellians,
    transport,
)
from kinclose.kinetic.solver import SolverDivergedError  # noqa: E402
from kinclose.physics import rankine_hugoniot  # noqa: E402

DEVICES = ["cpu"] + [pytest.param("cuda", marks=pytest.mark.gpu)] * torch.cuda.is_available()
RTOL = 1e-12


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _pair(device: str, bc: str = "periodic", collision_dtype=torch.float64, **kw):
    """The numba solver and the torch solver on the same tiny grid with the same initial data."""
    args = (-1.0, 1.0, 8, 8, 7.0, 0.3, 0.05, 0.5, bc, 0.8, kw.pop("limiter", "mc"))
    res = {"left": (1.0, 0.6, 1.0), "right": (1.4, 0.3, 1.3)} if bc == "reservoir" else {}
    ref = BoltzmannDVMSolver(*args, n_dirs=6, grid_rtol=1.0, **res, **kw)
    tor = TorchBoltzmannDVMSolver(*args, n_dirs=6, grid_rtol=1.0, device=device, collision_dtype=collision_dtype,
                                  **res, **kw)
    x = ref.x
    rho, u, T = 1.0 + 0.3 * np.sin(np.pi * x), 0.4 + 0.2 * np.cos(np.pi * x), 1.0 + 0.2 * np.sin(np.pi * x + 1)
    ref.set_maxwellian(rho, u, T)
    f = ref.interior.copy()
    rng = np.random.default_rng(3)
    f = np.abs(f) * (1.0 + 0.2 * rng.random(f.shape))  # non-equilibrium, so Q ≠ 0
    ref.set_distribution(f)
    tor.set_distribution(f)
    return ref, tor


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("limiter", sorted(K.LIMITERS))
def test_transport_equals_the_numba_row_kernel(device: str, limiter: str) -> None:
    rng = np.random.default_rng(0)
    nx, nv = 6, 10
    f = rng.random((nx + 4, nv))
    v = np.sort(rng.normal(size=nv))
    v[3] = 0.0  # v = 0 is upwinded from the right, as in the kernel
    j0 = int(np.searchsorted(v, 0.0, side="right"))
    want = np.empty((nx, nv))
    for i in range(nx):
        K._transport_row(f, i + 2, v, j0, K.LIMITERS[limiter], 1.0 / 0.3, want[i])
    got = transport(torch.as_tensor(f, device=device), torch.as_tensor(v, device=device), j0, 0.3, limiter)
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
def test_conservative_maxwellians_equal_the_numba_kernel(device: str) -> None:
    s = BoltzmannDVMSolver(-1.0, 1.0, 4, 12, 7.0, 0.5, 0.1, 0.5, "periodic", 0.5, "mc", n_dirs=6, grid_rtol=1.0)
    rho, u, T = np.array([1.0, 0.5, 2.0]), np.array([0.3, -0.2, 1.0]), np.array([1.0, 0.7, 1.6])
    want = np.empty((3, s.nv))
    flag, corr = np.zeros(3, dtype=np.int64), np.zeros(3)
    maxwellian_states(rho, u, T, *s.v1d, s.dv, want, flag, corr)
    from kinclose.kinetic.boltzmann_torch import _cell_moments, _moment_basis

    v1d = [torch.as_tensor(a, device=device) for a in s.v1d]
    phi = _moment_basis(v1d)
    m = torch.as_tensor(np.stack([rho, rho * u, 0 * u, 0 * u, 0.5 * rho * u**2 + 1.5 * rho * T], 1), device=device)
    got, code, cmax = conservative_maxwellians(m, v1d, phi, s.dv)
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-11, atol=1e-13 * want.max())
    np.testing.assert_allclose(cmax.cpu().numpy(), corr, rtol=1e-6, atol=1e-15)
    assert code.cpu().tolist() == [K.OK] * 3
    # the moments are those asked for, to round-off
    np.testing.assert_allclose(_cell_moments(got, phi, s.dv).cpu().numpy(), m.cpu().numpy(), rtol=1e-13, atol=1e-14)
    bad = torch.tensor([[1.0, 0, 0, 0, 1.0], [-1.0, 0, 0, 0, 1.0], [1.0, 0, 0, 0, -1.0], [math.nan, 0, 0, 0, 1.0]],
                       device=device, dtype=torch.float64)
    _, code, _ = conservative_maxwellians(bad, v1d, phi, s.dv)
    assert code.cpu().tolist() == [K.OK, K.BAD_DENSITY, K.BAD_TEMPERATURE, K.BAD_VALUE]


@pytest.mark.parametrize("device", DEVICES)
def test_spectral_operator_equals_the_scipy_operator(device: str) -> None:
    ref, _ = _pair("cpu")
    op = ref.op
    f = ref.interior.copy()
    top = TorchSpectralOperator(op, torch.device(device), chunk=4)
    g, nu = top.gain_loss(torch.as_tensor(f, device=device))
    N = ref.n
    for i in range(ref.nx):
        gw, nw = op.gain_loss(f[i].reshape(N, N, N))
        np.testing.assert_allclose(g[i].cpu().numpy(), gw.ravel(), rtol=0, atol=1e-12 * np.abs(gw).max())
        np.testing.assert_allclose(nu[i].cpu().numpy(), nw.ravel(), rtol=0, atol=1e-12 * np.abs(nw).max())
    g32, _ = TorchSpectralOperator(op, torch.device(device), torch.float32).gain_loss(torch.as_tensor(f, device=device))
    assert _rel(g32.cpu().numpy(), g.cpu().numpy()) < 1e-5
    q = g - nu * torch.as_tensor(f, device=device)
    top.project(q)
    Cm = torch.as_tensor(op._Cm, device=device)
    assert float((q @ Cm.T).abs().max()) < 1e-12 * float(q.abs().max()) * f.shape[1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bc,ep", [("periodic", True), ("reservoir", True), ("periodic", False)])
def test_steps_equal_the_numba_solver(device: str, bc: str, ep: bool) -> None:
    ref, tor = _pair(device, bc, equilibrium_preserving=ep)
    for _ in range(3):
        ref.step()
        tor.step()
    assert tor.steps == ref.steps == 3 and tor.t == pytest.approx(ref.t, rel=1e-15)
    assert _rel(tor.distribution(), ref.distribution()) < RTOL
    np.testing.assert_allclose(tor.fields_array(), ref.fields_array(), rtol=1e-10, atol=1e-12)
    for a, b in zip(tor.reduced(), ref.reduced()):
        assert _rel(a, b) < RTOL
    np.testing.assert_allclose(tor.totals(), ref.totals(), rtol=1e-13)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_collisions_still_conserve(device: str) -> None:
    _, tor = _pair(device, collision_dtype=torch.float32)
    ref64 = _pair(device)[1]
    before = tor.totals()
    for _ in range(3):
        tor.step()
        ref64.step()
    np.testing.assert_allclose(tor.totals(), before, rtol=1e-13, atol=1e-14)
    assert _rel(tor.distribution(), ref64.distribution()) < 1e-5  # single-precision Q, double elsewhere


@pytest.mark.parametrize("device", DEVICES)
def test_shift_cells_matches(device: str) -> None:
    ref, tor = _pair(device, "reservoir")
    for k in (2, -3):
        ref.shift_cells(k)
        tor.shift_cells(k)
        assert _rel(tor.distribution(), ref.distribution()) == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_steady_shock_on_the_torch_solver_equals_the_cpu_one(device: str) -> None:
    """Same marching (levels, recentring, residual) on both solvers: the profiles agree to round-off."""
    states = rankine_hugoniot(1.3)
    kw = {"x_min": -4.0, "x_max": 4.0, "dx": 1.0, "nv": 20, "levels": 2, "max_steps": 10, "check_every": 5,
          "n_dirs": 6, "tol": 1e-12, "initial": "tanh", "progress": False}
    cpu = steady_shock_boltzmann(states, **kw)
    tor = steady_shock_boltzmann(states, device=device, **kw)
    assert tor.metrics["steps_per_level"] == cpu.metrics["steps_per_level"]
    assert not tor.metrics["converged"] and tor.metrics["device"] == device
    for name in ("rho", "u", "T", "sigma", "q"):
        np.testing.assert_allclose(getattr(tor, name), getattr(cpu, name), rtol=1e-10, atol=1e-11)


def test_wall_budget_stops_marching() -> None:
    states = rankine_hugoniot(1.3)
    p = steady_shock_boltzmann(states, x_min=-4.0, x_max=4.0, dx=1.0, nv=20, levels=1, max_steps=10**6, check_every=2,
                               n_dirs=6, tol=1e-14, initial="tanh", progress=False, device="cpu", max_wall_s=0.0)
    assert p.metrics["steps"] == 0 and not p.metrics["converged"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="collision_dtype"):
        steady_shock_boltzmann(rankine_hugoniot(1.3), nv=8, device="cpu", collision_dtype="float16")
    from kinclose.kinetic.shock import steady_shock

    with pytest.raises(ValueError, match="applies to collision='boltzmann' only"):
        steady_shock(rankine_hugoniot(1.3), collision="bgk", device="cuda")
    with pytest.raises(ValueError, match="at most 48 on the CPU"):
        steady_shock_boltzmann(rankine_hugoniot(1.3), nv=64)
    with pytest.raises(ValueError, match="collision dtype"):
        TorchBoltzmannDVMSolver(-1.0, 1.0, 4, 8, 6.0, device="cpu", collision_dtype=torch.float16)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            TorchBoltzmannDVMSolver(-1.0, 1.0, 4, 8, 6.0, device="cuda")
    _, tor = _pair("cpu")
    tor.f[5, :] = -1.0  # a cell with negative density: the stage check names it
    with pytest.raises(SolverDivergedError, match="non-positive density in cell 3"):
        tor.step()
