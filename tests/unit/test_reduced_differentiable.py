"""The differentiable torch step (kinclose.reduced.differentiable) is the NumPy ReducedSolver's step: same
numbers to round-off for both U fluxes, U conserved, a Δt = 0 step is the identity, the HLLC flux equals
the numba kernel, and the gradient through checkpointed steps equals finite differences."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.learned import LearnedClosure  # noqa: E402
from kinclose.closure.rollout import rollout  # noqa: E402
from kinclose.macro._kernels import hllc_faces  # noqa: E402
from kinclose.physics import GAMMA, conservative, mu_ref_for_knudsen  # noqa: E402
from kinclose.pretrained import resolve  # noqa: E402
from kinclose.reduced.differentiable import TorchReducedSolver, hllc_t  # noqa: E402
from kinclose.reduced.solver import ReducedSolver  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module")
def closure() -> LearnedClosure:
    torch.set_num_threads(1)
    return LearnedClosure.from_checkpoint(resolve("pretrained:mlc_small"), xi_max=5.0, inference="torch")


def _states(nx: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    return (1 + 0.3 * np.sin(2 * np.pi * x + b), 0.4 * np.cos(2 * np.pi * x) + 0.2 * b,
            1 + 0.25 * np.sin(4 * np.pi * x + b) + 0.1 * (x > 0.1))


@pytest.mark.parametrize("flux,kn", [("rusanov", 0.5), ("ap", 0.5), ("ap", 2e-3)])
def test_torch_step_equals_numpy_solver(closure, flux, kn) -> None:
    nx, B = 24, 2
    mus = [mu_ref_for_knudsen(kn * (1 + b), 0.5) for b in range(B)]
    sols = []
    for b in range(B):
        s = ReducedSolver(-0.5, 0.5, nx, closure, mus[b], flux=flux)
        s.set_state(*_states(nx, b))
        sols.append(s)
    sh, fr = closure.ensemble.mean_stress_heat, closure.ensemble.mean_frame
    ts = TorchReducedSolver(sh, fr, closure.ensemble.w_eq, 5.0, 1.0 / nx, flux=flux)
    U = torch.tensor(np.stack([s.U for s in sols]))
    W = torch.tensor(np.stack([s.W for s in sols]))
    mu = torch.tensor(mus, dtype=F64)
    U_sum = U.sum(1)
    for _ in range(4):
        dt = np.array([s.dt_max() for s in sols])
        np.testing.assert_allclose(ts.dt_max(U).numpy(), dt, rtol=1e-12)
        for s, d in zip(sols, dt):
            s.step(d)
        with torch.no_grad():
            U, W = ts.step(U, W, torch.tensor(dt, dtype=F64), mu)
    np.testing.assert_allclose(U.numpy(), np.stack([s.U for s in sols]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(W.numpy(), np.stack([s.W for s in sols]), rtol=0, atol=1e-11)
    np.testing.assert_allclose(U.sum(1).numpy(), U_sum.numpy(), rtol=0, atol=1e-12)  # conservative
    with torch.no_grad():
        f = ts.fields(U, W).numpy()
    np.testing.assert_allclose(f, np.stack([s.fields_array() for s in sols]), rtol=0, atol=1e-12)
    assert ts.valid(U, W).all()


def test_zero_step_is_identity_and_valid_flags_bad_cells(closure) -> None:
    sh, fr = closure.ensemble.mean_stress_heat, closure.ensemble.mean_frame
    ts = TorchReducedSolver(sh, fr, closure.ensemble.w_eq, 5.0, 1.0 / 16)
    U = torch.tensor(conservative(*_states(16, 0)))[None]
    W = closure.ensemble.w_eq.expand(1, 16, -1) + 0.01
    with torch.no_grad():
        U1, W1 = ts.step(U, W, torch.zeros(1, dtype=F64), torch.tensor([0.1], dtype=F64))
    np.testing.assert_allclose(U1.numpy(), U.numpy(), rtol=0, atol=1e-14)
    np.testing.assert_allclose(W1.numpy(), W.numpy(), rtol=0, atol=1e-14)
    bad = U.clone()
    bad[0, 3, 0] = -1.0
    assert ts.valid(torch.cat([U, bad]), torch.cat([W, W])).tolist() == [True, False]


def test_hllc_equals_numba_kernel(rng) -> None:
    n = 200
    WL = np.stack([rng.uniform(0.2, 3, n), rng.normal(0, 2, n), rng.uniform(0.1, 5, n)], axis=1)
    WR = np.stack([rng.uniform(0.2, 3, n), rng.normal(0, 2, n), rng.uniform(0.1, 5, n)], axis=1)
    F = np.empty((n, 3))
    hllc_faces(WL, WR, GAMMA, F)
    Ft = hllc_t(*(torch.tensor(WL[:, i]) for i in range(3)), *(torch.tensor(WR[:, i]) for i in range(3)))
    np.testing.assert_allclose(Ft.numpy(), F, rtol=1e-13, atol=1e-13)


def test_gradient_through_checkpointed_rollout_equals_finite_differences(closure) -> None:
    ens = closure.ensemble
    sh, fr = ens.mean_stress_heat, ens.mean_frame
    nx = 12
    ts = TorchReducedSolver(sh, fr, ens.w_eq, 5.0, 1.0 / nx)
    U0 = torch.tensor(np.stack([conservative(*_states(nx, b)) for b in range(2)]))
    W0 = ens.w_eq.expand(2, nx, -1).clone()
    mu = torch.tensor([mu_ref_for_knudsen(1.0, 0.5), mu_ref_for_knudsen(0.3, 0.5)], dtype=F64)
    times = np.array([0.01, 0.02])
    p = list(ens.members[0].stress_heat.parameters())[-2]  # the last layer's weight (its bias cancels in the anchor)

    def loss(checkpoint: bool) -> torch.Tensor:
        out, _, ok = rollout(ts, U0, W0, times, mu, checkpoint=checkpoint)
        assert ok.all()
        return sum((f[..., 3:] ** 2).sum() for f in out)

    g_ck = torch.autograd.grad(loss(True), p)[0]
    g_plain = torch.autograd.grad(loss(False), p)[0]
    np.testing.assert_allclose(g_ck.numpy(), g_plain.numpy(), rtol=1e-10, atol=1e-14)
    assert g_ck.abs().max() > 0
    i = int(g_ck.reshape(-1).abs().argmax())
    h = 1e-6
    with torch.no_grad():
        flat = p.view(-1)
        flat[i] += h
        lp = float(loss(False))
        flat[i] -= 2 * h
        lm = float(loss(False))
        flat[i] += h
    np.testing.assert_allclose((lp - lm) / (2 * h), float(g_ck.reshape(-1)[i]), rtol=1e-5)


@pytest.mark.parametrize("flux", ["rusanov", "ap"])
def test_torch_step_with_reservoirs_equals_numpy_solver(closure, flux) -> None:
    """Reservoir ends (the shock's boundaries): the ghost cells hold each problem's own left/right state."""
    nx, B = 20, 2
    ends = [((1.0, 2.0, 1.0), (2.0, 1.0, 1.6)), ((1.2, 1.5, 0.9), (1.8, 0.8, 1.4))]
    mus = [mu_ref_for_knudsen(0.3 * (1 + b), 0.5) for b in range(B)]
    sols = []
    for b in range(B):
        s = ReducedSolver(-0.5, 0.5, nx, closure, mus[b], bc="reservoir", left=ends[b][0], right=ends[b][1],
                          flux=flux, outflow="reservoir")
        w = 0.5 * (1 + np.tanh(s.x / 0.2))
        (r1, u1, t1), (r2, u2, t2) = ends[b]
        s.set_state(r1 + (r2 - r1) * w, u1 + (u2 - u1) * w, t1 + (t2 - t1) * w, closure.equilibrium() + 0.02 * w[:, None])
        sols.append(s)
    ts = TorchReducedSolver(closure.ensemble.mean_stress_heat, closure.ensemble.mean_frame, closure.ensemble.w_eq,
                            5.0, 1.0 / nx, flux=flux, left=torch.tensor([e[0] for e in ends], dtype=F64),
                            right=torch.tensor([e[1] for e in ends], dtype=F64))
    U = torch.tensor(np.stack([s.U for s in sols]))
    W = torch.tensor(np.stack([s.W for s in sols]))
    for _ in range(4):
        dt = np.array([s.dt_max() for s in sols])
        for s, d in zip(sols, dt):
            s.step(d)
        with torch.no_grad():
            U, W = ts.step(U, W, torch.tensor(dt, dtype=F64), torch.tensor(mus, dtype=F64))
    np.testing.assert_allclose(U.numpy(), np.stack([s.U for s in sols]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(W.numpy(), np.stack([s.W for s in sols]), rtol=0, atol=1e-11)
    with pytest.raises(ValueError, match="batch of 1"):
        ts.step(U[:1], W[:1], torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64))
    with pytest.raises(ValueError, match="both left and right"):
        TorchReducedSolver(closure.ensemble.mean_stress_heat, closure.ensemble.mean_frame, closure.ensemble.w_eq,
                           5.0, 0.1, left=torch.ones(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="positive density"):
        TorchReducedSolver(closure.ensemble.mean_stress_heat, closure.ensemble.mean_frame, closure.ensemble.w_eq,
                           5.0, 0.1, left=torch.ones(1, 3, dtype=F64), right=-torch.ones(1, 3, dtype=F64))
