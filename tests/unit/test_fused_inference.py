"""Fused NumPy inference of the closure ensemble against the torch modules (the reference)."""

import numpy as np
import pytest
import torch

from kinclose.closure.fused import FusedEnsemble
from kinclose.closure.learned import LearnedClosure
from kinclose.closure.networks import Ensemble


def _ensemble(activation: str, anchor: bool) -> Ensemble:
    M = 3
    ens = Ensemble(M, K=3, hidden=[16, 12], activation=activation, anchor=anchor, seed=5)
    rng = np.random.default_rng(1)
    ens.set_statistics({"w_mean": rng.normal(size=M), "w_std": 0.5 + rng.random(M), "w_eq": rng.normal(size=M),
                        "y_mean": rng.normal(size=2), "y_std": 0.5 + rng.random(2), "delta_scale": 0.4,
                        "logtau_scale": 0.3, "dm_std": 0.5 + rng.random(M), "k_mean": rng.normal(size=M),
                        "k_std": 0.5 + rng.random(M)})
    return ens.eval()


def _inputs(n: int = 50):
    rng = np.random.default_rng(2)
    return rng.normal(size=(n, 3)), 0.3 * rng.normal(size=n), np.exp(0.2 * rng.normal(size=n))


@pytest.mark.parametrize("activation", ["tanh", "silu", "gelu", "softplus"])
@pytest.mark.parametrize("anchor", [True, False])
def test_fused_matches_torch(activation, anchor):
    ens = _ensemble(activation, anchor)
    W, d, tau = _inputs()
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        ref_sh = ens.stress_heat_all(t(W)).numpy()
        ref_m, ref_k = (a.numpy() for a in ens.frame_all(t(W), t(d), t(tau)))
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        f = FusedEnsemble(ens, dtype)
        sh = f.stress_heat_all(W)
        m, k = f.frame_all(W, d, tau)
        for got, ref in ((sh, ref_sh), (m, ref_m), (k, ref_k)):
            assert got.shape == ref.shape and got.dtype == np.float64
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())


def test_fused_frame_identity_is_exact_in_float32():
    f = FusedEnsemble(_ensemble("tanh", True), "float32")
    W, _, _ = _inputs()
    m, _ = f.frame_all(W, np.zeros(len(W)), np.ones(len(W)))
    assert np.array_equal(m, np.broadcast_to(W, m.shape))


@pytest.mark.parametrize("inference", ["float32", "float64", "torch"])
def test_learned_closure_inference_paths_agree(inference):
    ens = _ensemble("tanh", True)
    W, d, tau = _inputs(40)
    ref = LearnedClosure(ens, inference="torch")
    cl = LearnedClosure(ens, inference=inference, batch_size=7)  # several batches
    tol = 1e-5 if inference == "float32" else 1e-12
    for got, want in ((cl.stress_heat(W), ref.stress_heat(W)), (cl.frame(W, d, tau)[0], ref.frame(W, d, tau)[0]),
                      (cl.frame(W, d, tau)[1], ref.frame(W, d, tau)[1])):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max())
    v, vr = cl.variance(W, d, tau), ref.variance(W, d, tau)
    assert v.shape == (40, 2 + 2 * 3)
    np.testing.assert_allclose(v, vr, rtol=0, atol=1e-4 * np.abs(vr).max())


def test_learned_closure_refuses_frames_and_states_that_do_not_fit():
    cl = LearnedClosure(_ensemble("tanh", True))
    W, d, tau = _inputs(6)
    with pytest.raises(ValueError, match=r"shape \(6,\) like W's rows"):
        cl.frame(W, d[:3], tau[:3])
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="tau = sqrt"):
            cl.frame(W, d, np.where(np.arange(6) == 2, bad, tau))
    with pytest.raises(ValueError, match=r"U must have shape \(6, 3\)"):
        cl.flux_jacobian_eigenvalues(np.ones((2, 3)), W)
    assert cl.frame(W, 0.0, 1.0)[0].shape == W.shape  # scalars broadcast


def test_unknown_inference_is_rejected():
    with pytest.raises(ValueError, match="unknown inference"):
        LearnedClosure(_ensemble("tanh", True), inference="float16")
    with pytest.raises(ValueError, match="float32"):
        FusedEnsemble(_ensemble("tanh", True), "bfloat16")


def test_exact_stress_heat_reads_W_in_every_inference_path(tmp_path):
    """exact_stress_heat: σ̂ = W_0 − W_eq,0, q̂ = W_1 − W_eq,1, no network, zero variance; kept by checkpoints."""
    from kinclose.closure.train import load_closure_checkpoint, save_closure_checkpoint
    from kinclose.moments.train import DATA_SCHEMA_VERSION

    ens = Ensemble(3, K=2, hidden=[8], seed=1, exact_stress_heat=True)
    w_eq = np.array([1.0, 0.0, 0.3])
    ens.set_statistics({"w_eq": w_eq})
    ens.eval()
    assert ens.members[0].stress_heat.net is None
    assert not list(ens.members[0].stress_heat.parameters())
    W, d, tau = _inputs(20)
    want = W[:, :2] - w_eq[:2]
    with torch.no_grad():
        mean, var = ens.stress_heat(torch.tensor(W))
    np.testing.assert_array_equal(mean.numpy(), want)
    assert float(var.abs().max()) == 0.0
    for inference in ("float32", "float64", "torch"):
        np.testing.assert_allclose(LearnedClosure(ens, inference=inference).stress_heat(W), want, rtol=0, atol=1e-15)
    save_closure_checkpoint(tmp_path / "c.pt", ens, {"data_schema_version": DATA_SCHEMA_VERSION})
    back, _ = load_closure_checkpoint(tmp_path / "c.pt")
    assert back.kwargs["exact_stress_heat"] is True
    with torch.no_grad():
        np.testing.assert_array_equal(back.stress_heat(torch.tensor(W))[0].numpy(), want)
    assert "exact_stress_heat" not in Ensemble(3, K=1).kwargs  # older checkpoints keep their kwargs


def test_exact_stress_heat_option_follows_the_encoder():
    from kinclose.closure.train import exact_stress_heat
    from kinclose.moments.encoders import HermiteEncoder, LearnedEncoder
    from kinclose.moments.shape import XiGrid

    grid = XiGrid(6.0, 48)
    fixed, herm = LearnedEncoder(grid, 4, stress_heat=True), HermiteEncoder(grid, 3)
    assert exact_stress_heat("auto", fixed) and not exact_stress_heat("auto", herm)
    assert not exact_stress_heat("false", fixed) and exact_stress_heat(True, fixed)
    with pytest.raises(ValueError, match="stress_heat_moments"):
        exact_stress_heat("true", herm)
    with pytest.raises(ValueError, match="choose"):
        exact_stress_heat("maybe", fixed)


def test_skip_networks_start_as_the_plain_ones_and_agree_in_every_path(tmp_path):
    """skip=True: a zero-initialized linear path, so at initialization the ensemble equals skip=False with the
    same seed; once the path is non-zero the fused paths still match torch, and checkpoints keep the option."""
    from kinclose.closure.train import load_closure_checkpoint, save_closure_checkpoint
    from kinclose.moments.train import DATA_SCHEMA_VERSION

    W, d, tau = _inputs(30)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    plain, skip = Ensemble(3, K=2, hidden=[16], seed=4), Ensemble(3, K=2, hidden=[16], seed=4, skip=True)
    with torch.no_grad():
        np.testing.assert_array_equal(skip.frame_all(t(W), t(d), t(tau))[1].numpy(),
                                      plain.frame_all(t(W), t(d), t(tau))[1].numpy())
        for mem in skip.members:
            for net in (mem.stress_heat.net, mem.frame.net):
                net.skip.weight.normal_(0.0, 0.3)
                net.skip.bias.normal_(0.0, 0.3)
        ref_sh = skip.stress_heat_all(t(W)).numpy()
        ref_m, ref_k = (a.numpy() for a in skip.frame_all(t(W), t(d), t(tau)))
        assert np.abs(ref_k - plain.frame_all(t(W), t(d), t(tau))[1].numpy()).max() > 1e-3
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        f = FusedEnsemble(skip, dtype)
        m, k = f.frame_all(W, d, tau)
        for got, ref in ((f.stress_heat_all(W), ref_sh), (m, ref_m), (k, ref_k)):
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
    save_closure_checkpoint(tmp_path / "s.pt", skip, {"data_schema_version": DATA_SCHEMA_VERSION})
    back, _ = load_closure_checkpoint(tmp_path / "s.pt")
    assert back.kwargs["skip"] is True and "skip" not in plain.kwargs
    with torch.no_grad():
        np.testing.assert_array_equal(back.frame_all(t(W), t(d), t(tau))[1].numpy(), ref_k)
