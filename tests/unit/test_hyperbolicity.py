"""Hyperbolicity of the closed moment system (kinclose.closure.hyperbolicity): the autograd Jacobian
against central finite differences, the Euler spectrum of a closure without learned terms, exact
penalty values, and the penalty lowering the non-hyperbolic part of a trained member."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.hyperbolicity import (  # noqa: E402
    closed_flux_jacobian, hyperbolicity_penalty, member_penalty, normalized_state)
from kinclose.closure.networks import ClosureMember, Ensemble  # noqa: E402
from kinclose.closure.targets import ClosureTargets, FrameSampling, sample_frames  # noqa: E402
from kinclose.closure.train import Hyperbolicity, _tensors, fit_member, statistics  # noqa: E402
from kinclose.physics import conservative  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64)


def _smooth_problem(n: int, seed: int) -> ClosureTargets:
    """Synthetic targets of smooth functions of W ∈ R² (as in test_closure_networks): a closure fitted
    to them without the penalty is not hyperbolic on the stretched states."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 2))
    sh = np.stack([0.3 * np.tanh(W[:, 0]), 0.2 * W[:, 1] * W[:, 0]], 1)
    delta, tau = sample_frames(n, FrameSampling(3, 0.5, 0.7, 1.4), rng)
    m = W[:, None, :] + delta[..., None] * (1 + W[:, None, :] ** 2) / 4 + np.log(tau)[..., None] * W[:, None, :] / 2
    k = np.sin(W)[:, None, :] + delta[..., None]
    z = np.zeros(n)
    return ClosureTargets(W, sh, delta, tau, m, k, np.full(n, 0.1), z.astype(int), z + 1, z, z + 1)


def _random_member(M: int = 3, seed: int = 0) -> ClosureMember:
    torch.manual_seed(seed)
    mem = ClosureMember(M, hidden=(16, 16), anchor=False)
    with torch.no_grad():
        for p in mem.parameters():
            p.mul_(2.0)
    return mem.eval()


def _fd_jacobian(mem: ClosureMember, U: np.ndarray, W: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """A = JF JQ⁻¹ by central differences of Φ(P), Q(P), P = (U, W), the frame frozen at the state."""
    rho, u = U[0], U[1] / U[0]
    T = (2 * U[2] / rho - u * u) / 3
    u0, T0 = u, T

    def phi_q(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, uu = P[0], P[1] / P[0]
        TT = (2 * P[2] / r - uu * uu) / 3
        Wt = _t(P[3:])[None]
        with torch.no_grad():
            sh = mem.stress_heat(Wt)[0].numpy()
            m, k = mem.frame(Wt, _t([(uu - u0) / math.sqrt(T0)]), _t([math.sqrt(TT / T0)]))
        m, k = m[0].numpy(), k[0].numpy()
        p = r * TT
        F = [r * uu, r * uu * uu + p + p * sh[0], (P[2] + p + p * sh[0]) * uu + r * TT ** 1.5 * sh[1]]
        return np.concatenate([F, r * (uu * m + math.sqrt(TT) * k)]), np.concatenate([P[:3], r * m])

    P0 = np.concatenate([U, W])
    d = P0.size
    JF, JQ = np.empty((d, d)), np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        (fp, qp), (fm, qm) = phi_q(P0 + e), phi_q(P0 - e)
        JF[:, j], JQ[:, j] = (fp - fm) / (2 * h), (qp - qm) / (2 * h)
    return JF @ np.linalg.inv(JQ)


def test_autograd_jacobian_matches_finite_differences() -> None:
    mem = _random_member()
    rng = np.random.default_rng(0)
    for _ in range(3):
        U = conservative(np.array([rng.uniform(0.5, 2)]), np.array([rng.uniform(-1, 1)]),
                         np.array([rng.uniform(0.5, 3)]))[0]
        W = rng.normal(size=3)
        A = closed_flux_jacobian(mem.stress_heat, mem.frame, _t(U)[None], _t(W)[None])[0].detach().numpy()
        A_fd = _fd_jacobian(mem, U, W)
        assert np.abs(A - A_fd).max() < 1e-6 * max(1.0, np.abs(A_fd).max()), np.abs(A - A_fd).max()


@pytest.mark.parametrize("frame_derivatives", [True, False])
def test_closure_without_learned_terms_has_the_euler_spectrum(frame_derivatives: bool) -> None:
    M = 2
    rho, u, T = np.array([0.7, 1.3]), np.array([-0.4, 2.0]), np.array([0.8, 3.0])
    A = closed_flux_jacobian(lambda W: torch.zeros(W.shape[0], 2, dtype=W.dtype), lambda W, d, t: (W, 0 * W),
                             _t(conservative(rho, u, T)), _t(np.ones((2, M))), frame_derivatives)
    lam = np.sort(np.linalg.eigvals(A.detach().numpy()).real, axis=1)
    c = np.sqrt(5 * T / 3)
    want = np.sort(np.stack([u - c, u, u + c] + [u] * M, 1), axis=1)
    assert np.abs(lam - want).max() < 1e-12


def test_penalty_values_are_exact() -> None:
    lam = torch.linalg.eigvals(_t([[[0.0, -0.5], [0.5, 0.0]], [[5.0, 0.0], [0.0, -1.0]], [[1.0, 0.0], [0.0, 2.0]]]))
    h = hyperbolicity_penalty(lam, s_max=4.0).numpy()
    assert np.allclose(h, [2 * 0.25, 1.0, 0.0], atol=1e-14)


def test_member_penalty_has_finite_parameter_gradients() -> None:
    mem = _random_member(seed=1)
    W = _t(np.random.default_rng(1).normal(size=(32, 3)))
    pen = member_penalty(mem, W, s_max=1.0)
    assert float(pen.detach()) > 0
    pen.backward()
    grads = [p.grad for p in mem.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_normalized_state_is_rho1_u0_T1() -> None:
    assert normalized_state(2).tolist() == [[1.0, 0.0, 1.5]] * 2


def test_penalty_lowers_the_non_hyperbolic_part_of_a_trained_member() -> None:
    tr, va = _smooth_problem(300, 0), _smooth_problem(100, 1)
    stats = statistics(tr, np.zeros(2), FrameSampling(3, 0.5, 0.7, 1.4), anchor=True)
    dtr, dva = _tensors(tr, "cpu"), _tensors(va, "cpu")
    w_eq = torch.zeros(2, dtype=torch.float64)
    out = {}
    for weight in (0.0, 10.0):
        ens = Ensemble(M=2, K=1, hidden=(32, 32), seed=0)
        ens.set_statistics(stats)
        hyp = Hyperbolicity(weight=weight, s_max=1.5, stretch=2.0, n_states=50, n_val=200)
        fit_member(ens.members[0], dtr, dva, epochs=40, batch_size=50, lr=1e-2, patience=40, weights=(1.0, 1.0, 1.0),
                   seed=0, hyperbolicity=hyp, w_eq=w_eq, progress=False)
        W = w_eq + 2.0 * torch.rand(400, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * dva["W"][
            torch.randint(0, 100, (400,), generator=torch.Generator().manual_seed(6))]
        out[weight] = float(member_penalty(ens.members[0], W, 1.5).detach())
    assert out[0.0] > 1e-3, out
    assert out[10.0] < 0.2 * out[0.0], out


def test_bad_hyperbolicity_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stage.hyperbolicity keys"):
        Hyperbolicity.from_dict({"wieght": 1.0})
    with pytest.raises(ValueError, match="weight"):
        Hyperbolicity(weight=-1.0)
    with pytest.raises(ValueError, match="s_max"):
        Hyperbolicity(s_max=0.0)
