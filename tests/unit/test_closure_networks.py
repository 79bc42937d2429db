"""Closure networks and ensembles (kinclose.closure.networks): exact identity of the frame change at
(δ, τ) = (0, 1), equilibrium anchoring, ensemble shapes, training on a small smooth problem, and
ensemble variance growing off the data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.networks import Ensemble, FrameNet, StressHeatNet  # noqa: E402
from kinclose.closure.targets import ClosureTargets, FrameSampling, sample_frames  # noqa: E402
from kinclose.closure.linear_response import LinearResponseTargets  # noqa: E402
from kinclose.closure.train import _tensors, fit_member, predict, statistics  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=torch.float64)


def test_frame_net_is_the_identity_at_the_own_frame_bitwise() -> None:
    torch.manual_seed(0)
    net = FrameNet(M=4, hidden=(16, 16))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))  # arbitrary, large weights
        net.dm_std.fill_(3.0)
        W = _t(np.random.default_rng(0).normal(scale=5.0, size=(200, 4)))
        m, k = net(W, torch.zeros(200, dtype=torch.float64), torch.ones(200, dtype=torch.float64))
        assert torch.equal(m, W)  # exactly, not only to round-off
        assert torch.isfinite(k).all()
        m2, _ = net(W, torch.full((200,), 0.3, dtype=torch.float64), torch.full((200,), 1.2, dtype=torch.float64))
        assert (m2 - W).abs().max() > 1e-3  # and not trivially the identity elsewhere


def test_stress_heat_is_zero_at_equilibrium_when_anchored() -> None:
    torch.manual_seed(1)
    net = StressHeatNet(M=3, hidden=(8,), anchor=True)
    with torch.no_grad():
        net.w_eq.copy_(_t([0.1, -0.2, 0.3]))
        net.w_mean.copy_(_t([0.5, 0.0, -0.1]))
        net.w_std.copy_(_t([2.0, 0.5, 1.0]))
        y = net(net.w_eq[None].repeat(3, 1))
    np.testing.assert_allclose(y.numpy(), 0.0, rtol=0, atol=1e-15)


def test_ensemble_shapes_and_distinct_members() -> None:
    ens = Ensemble(M=3, K=4, hidden=(8, 8), seed=5)
    W = _t(np.random.default_rng(2).normal(size=(7, 3)))
    d, tau = _t(np.full(7, 0.2)), _t(np.full(7, 1.1))
    with torch.no_grad():
        assert ens.stress_heat_all(W).shape == (4, 7, 2)
        m_all, k_all = ens.frame_all(W, d, tau)
        assert m_all.shape == k_all.shape == (4, 7, 3)
        out = ens(W, d, tau)
    for key, shape in (("sh", (7, 2)), ("sh_var", (7, 2)), ("m", (7, 3)), ("k", (7, 3)), ("m_var", (7, 3)),
                       ("k_var", (7, 3))):
        assert out[key].shape == shape, key
    torch.testing.assert_close(out["m"], m_all.mean(0), rtol=0, atol=0)
    assert (out["k_var"] > 0).all() and (out["sh_var"] > 0).all()
    # same seed → same ensemble; another seed → other weights
    a, b, c = Ensemble(3, 4, (8, 8), seed=5), Ensemble(3, 4, (8, 8), seed=5), Ensemble(3, 4, (8, 8), seed=6)
    wa, wb, wc = (e.members[0].frame.net[0].weight for e in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    with pytest.raises(ValueError, match="K >= 1"):
        Ensemble(3, 0)


def _smooth_problem(n: int, seed: int) -> ClosureTargets:
    """Synthetic targets of known smooth functions of W ∈ R², frames as in training."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, 2))
    sh = np.stack([np.tanh(W[:, 0]) * 0.3 - 0.3 * np.tanh(0.0), 0.2 * W[:, 1] * W[:, 0]], 1)
    delta, tau = sample_frames(n, FrameSampling(3, 0.5, 0.7, 1.4), rng)
    # m = W + δ (1 + W²)/4 + ln τ W/2, k = sin(W) + δ
    m = W[:, None, :] + delta[..., None] * (1 + W[:, None, :] ** 2) / 4 + np.log(tau)[..., None] * W[:, None, :] / 2
    k = np.sin(W)[:, None, :] + delta[..., None]
    z = np.zeros(n)
    return ClosureTargets(W, sh, delta, tau, m, k, np.full(n, 0.1), z.astype(int), z + 1, z, z + 1)


def test_training_reduces_validation_loss_and_variance_grows_off_data() -> None:
    tr, va = _smooth_problem(400, 0), _smooth_problem(100, 1)
    ens = Ensemble(M=2, K=4, hidden=(32, 32), seed=0)
    ens.set_statistics(statistics(tr, np.zeros(2), FrameSampling(3, 0.5, 0.7, 1.4), anchor=True))
    dtr, dva = _tensors(tr, "cpu"), _tensors(va, "cpu")
    for i, mem in enumerate(ens.members):
        h = fit_member(mem, dtr, dva, epochs=80, batch_size=50, lr=1e-2, patience=20, weights=(1.0, 1.0, 1.0),
                       seed=i, progress=False)
        assert h["best_val_loss"] < 0.05 * h["val_loss"][0], (h["val_loss"][0], h["best_val_loss"])
    pred = predict(ens, va)
    assert np.sqrt(((pred["sh"] - va.sh) ** 2).mean()) < 0.1 * np.sqrt((va.sh ** 2).mean())
    # variance: positive everywhere, and much larger far outside the training data (|W| ≈ 8 vs ~1)
    with torch.no_grad():
        W_on = dva["W"]
        W_off = _t(np.random.default_rng(3).choice([-8.0, 8.0], size=(100, 2)))
        d, t = dva["delta"][:, 1], dva["tau"][:, 1]
        on, off = ens(W_on, d, t), ens(W_off, d, t)
    for key in ("sh_var", "m_var", "k_var"):
        assert (off[key] > 0).all(), key
        assert off[key].mean() > 10 * on[key].mean(), (key, float(on[key].mean()), float(off[key].mean()))


def test_linear_response_penalty_in_training_lowers_the_linear_error() -> None:
    """fit_member with stage.linear_response.weight > 0 records the error (val_linear) and lowers it."""
    from kinclose.closure.train import LinearResponse

    tr, va = _smooth_problem(200, 0), _smooth_problem(50, 1)
    lin = LinearResponse(weight=1.0, kn=(0.1, 10.0), n_kn=3, s=(0.5, 1.5))
    targets = LinearResponseTargets.compute(np.geomspace(0.1, 10.0, 3), lin.s, n=96)
    hists = []
    for weight in (0.0, 1.0):
        ens = Ensemble(M=2, K=1, hidden=(16,), seed=0)
        ens.set_statistics(statistics(tr, np.zeros(2), FrameSampling(3, 0.5, 0.7, 1.4), anchor=True))
        opts = LinearResponse(weight=weight, kn=lin.kn, n_kn=lin.n_kn, s=lin.s)
        hists.append(fit_member(ens.members[0], _tensors(tr, "cpu"), _tensors(va, "cpu"), epochs=15, batch_size=50,
                                lr=1e-2, patience=15, weights=(1.0, 1.0, 1.0), seed=0, w_eq=_t(np.zeros(2)),
                                linear_response=(opts, targets), progress=False))
    assert "val_linear" not in hists[0] and "val_linear" in hists[1]
    assert hists[1]["val_linear"][hists[1]["best_epoch"]] < 0.8 * hists[1]["val_linear"][0]
