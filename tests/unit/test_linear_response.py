"""Linear response (kinclose.closure.linear_response): exact free flight, the Navier–Stokes limit, the
Euler spectrum of a Maxwellian closure, and the penalty in closure training."""

import math

import numpy as np
import pytest
import torch

from kinclose.closure.linear_response import (LinearResponseTargets, closed_response, damping_and_speed,
                                              euler_response, kinetic_response, kinetic_response_expm,
                                              linear_response_penalty)
from kinclose.closure.train import LinearResponse

C = math.sqrt(5.0 / 3.0)


def test_eigendecomposition_matches_expm():
    for kn in (0.05, 1.0, 30.0):
        R = kinetic_response(kn, [0.0, 1.7], n=96)
        assert np.abs(R[0] - np.eye(3)).max() < 1e-10          # R(0) = identity
        assert np.abs(R[1] - kinetic_response_expm(kn, 1.7, n=96)).max() < 1e-10


def test_free_flight_is_exact():
    """ν → 0: a density perturbation free-streams, δρ(s) = ∫ φ e^{−iξs} dξ = e^{−s²/2}; δT(s) from ½(ξ² − 1)φ."""
    s = np.array([0.5, 1.0, 2.0, 3.0])
    R = kinetic_response(1e12, s)
    np.testing.assert_allclose(R[:, 0, 0].real, np.exp(-0.5 * s * s), atol=1e-9)
    np.testing.assert_allclose(R[:, 0, 0].imag, 0.0, atol=1e-9)
    # velocity response to a density perturbation: δu = ∫ ξ φ e^{−iξs} = −i s e^{−s²/2}
    np.testing.assert_allclose(R[:, 1, 0], -1j * s * np.exp(-0.5 * s * s), atol=1e-9)


def test_small_knudsen_is_navier_stokes():
    """Kn_k → 0: both modes damp at Γ/k = μk/ρ = Kn_k (BGK, Pr = 1, units k = 1) and sound runs at √(5/3)."""
    kn, s = 1e-3, 20.0
    R = kinetic_response(kn, [s], xi_max=8.0, n=160)[0]
    for mode in ("entropy", "sound"):
        assert damping_and_speed(R, s, mode)[0] == pytest.approx(kn, rel=1e-3), mode
    assert damping_and_speed(R, s, "sound")[1] == pytest.approx(C, rel=1e-4)


def _maxwellian_closure(M: int = 2):
    """σ̂ = q̂ = 0, m = W, k = 0: the U block is Euler and W decouples."""
    sh = lambda W: torch.zeros(W.shape[0], 2, dtype=W.dtype) + 0.0 * W[:, :2]  # noqa: E731
    fr = lambda W, d, t: (W + 0.0 * d[:, None], 0.0 * W)  # noqa: E731
    return sh, fr, torch.zeros(M, dtype=torch.float64)


def test_euler_response_is_the_maxwellian_closure_and_the_penalty_scale():
    sh, fr, w_eq = _maxwellian_closure()
    s = np.array([0.7, 2.0])
    with torch.no_grad():
        R = closed_response(sh, fr, w_eq, [1.0], s).numpy()[0]
    np.testing.assert_allclose(R, euler_response(s), atol=1e-12)
    tg = LinearResponseTargets.compute([0.01, 100.0], s, n=96)
    # the kinetic departure from Euler: O(Kn s)² at small Kn_k, O(1) in free flight
    assert tg.scale[0] < 1e-3 and tg.scale[1] > 0.05


def test_maxwellian_closure_has_undamped_euler_response():
    sh, fr, w_eq = _maxwellian_closure()
    s = 2.5
    R = closed_response(sh, fr, w_eq, [0.1, 10.0], [s]).numpy()[:, 0]
    for r in R:
        assert damping_and_speed(r, s, "entropy")[0] == pytest.approx(0.0, abs=1e-12)
        rate, speed = damping_and_speed(r, s, "sound")
        assert rate == pytest.approx(0.0, abs=1e-12)
        assert speed == pytest.approx(C, rel=1e-12)


def test_penalty_is_zero_on_its_own_targets_and_differentiable():
    sh, fr, w_eq = _maxwellian_closure()
    with torch.no_grad():
        R = closed_response(sh, fr, w_eq, [0.3, 3.0], [1.0, 2.0]).numpy()
    own = LinearResponseTargets(np.array([0.3, 3.0]), np.array([1.0, 2.0]), R, np.ones(2))
    assert float(linear_response_penalty(sh, fr, w_eq, own, create_graph=False)) < 1e-28
    kin = LinearResponseTargets.compute([0.3, 3.0], [1.0, 2.0], n=96)
    assert float(linear_response_penalty(sh, fr, w_eq, kin, create_graph=False)) > 1e-3  # Euler is not kinetic

    from kinclose.closure.networks import ClosureMember
    mem = ClosureMember(3, hidden=(8,))
    p = linear_response_penalty(mem.stress_heat, mem.frame, torch.zeros(3, dtype=torch.float64), kin)
    p.backward()
    grads = [q.grad for q in mem.parameters() if q.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="weight"):
        LinearResponse(weight=-1.0)
    with pytest.raises(ValueError, match="kn"):
        LinearResponse(kn=(1.0, 0.1))
    with pytest.raises(ValueError, match="s="):
        LinearResponse(s=(0.0, 1.0))
    with pytest.raises(ValueError, match="unknown"):
        LinearResponse.from_dict({"weight": 1.0, "t": [1.0]})
    with pytest.raises(ValueError, match="times"):
        kinetic_response(1.0, [-1.0])
    with pytest.raises(ValueError, match="positive"):
        kinetic_response(0.0, [1.0])
