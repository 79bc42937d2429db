"""Model-free estimates of the information limit of a local closure (kinclose.closure.information):
the local-linear fit is exact for targets linear in W, the 1-NN estimate recovers a known conditional
noise, and the exact targets of a Maxwellian shape are those of equilibrium."""

import numpy as np
import pytest
import torch

from kinclose.closure.information import (
    closure_targets,
    information_report,
    neighbour_predictions,
    relative_rms,
    target_names,
)
from kinclose.closure.targets import encoder_weight_functions, frame_targets
from kinclose.moments.encoders import HermiteEncoder
from kinclose.moments.shape import XiGrid, maxwellian_shape


def _synthetic(n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    W = rng.uniform(-1.0, 1.0, (n, 2))
    y = np.stack([2.0 * W[:, 0] - W[:, 1], np.sin(3.0 * W[:, 0]) * W[:, 1],
                  W[:, 0] + noise * rng.standard_normal(n)], axis=1)
    return W, y


def test_neighbour_estimates_on_known_conditional_spread() -> None:
    rng = np.random.default_rng(0)
    noise = 0.1
    W_ref, y_ref = _synthetic(40000, rng, noise)
    W_q, y_q = _synthetic(2000, rng, noise)
    pred = neighbour_predictions(W_q, W_ref, lambda r, q: y_ref[r], n_neighbours=20)
    assert pred["distance"].shape == (2000, 20) and np.all(np.diff(pred["distance"], axis=1) >= 0)
    ll = relative_rms(pred["local_linear"], y_q)
    nn = relative_rms(pred["nn1"], y_q) / np.sqrt(2.0)
    sd = y_q.std(0)
    assert ll[0] < 1e-5  # linear in W: exact up to the tiny ridge
    assert ll[1] < 0.05  # smooth: small
    # the noisy target: both estimates recover the conditional spread noise/std(y)
    assert nn[2] == pytest.approx(noise / sd[2], rel=0.15)
    assert noise / sd[2] < ll[2] < 1.15 * noise / sd[2]


def test_neighbour_predictions_rejects_too_few_neighbours() -> None:
    W = np.zeros((30, 4))
    with pytest.raises(ValueError, match="n_neighbours >= M \\+ 2"):
        neighbour_predictions(W, W, lambda r, q: W[r], n_neighbours=5)
    with pytest.raises(ValueError, match="fewer than n_neighbours"):
        neighbour_predictions(W, W[:7], lambda r, q: W[r], n_neighbours=8)


def test_closure_targets_of_the_maxwellian_shape() -> None:
    grid = XiGrid(6.0, 96)
    enc = HermiteEncoder(grid, 4, "graded")
    weights = encoder_weight_functions(enc)
    g, h = maxwellian_shape(grid)
    G, H = np.tile(g, (3, 1)), np.tile(h, (3, 1))
    delta, tau = np.array([0.0, 0.3, -0.2]), np.array([1.0, 1.2, 0.8])
    y = closure_targets(G, H, grid, weights, delta, tau)
    assert y.shape == (3, 2 + 2 * 4) and len(target_names(4)) == y.shape[1]
    assert np.abs(y[:, :2]).max() < 1e-6  # σ̂ = q̂ = 0 (up to the truncation at ±6)
    assert np.abs(y[0, 2:6]).max() < 1e-12  # no frame change: m − W = 0
    m, k = frame_targets(G, H, grid, weights, delta[:, None], tau[:, None])
    W = enc(torch.as_tensor(G), torch.as_tensor(H)).numpy()
    assert np.allclose(y[:, 2:6], m[:, 0] - W, atol=1e-12) and np.allclose(y[:, 6:], k[:, 0], atol=1e-12)


def test_information_report_decades_and_nn_scaling() -> None:
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((100, 2))
    kn = np.r_[np.full(60, 0.5), np.full(30, 2.0), np.full(10, 0.005)]
    pred = truth + 0.1
    rep = information_report(truth, {"nn1": pred, "local_linear": pred}, kn)
    assert set(rep) == {"all", "1e-01", "1e+00"}  # the 1e-03 decade has only 10 cells
    assert rep["1e-01"]["n_cells"] == 60 and rep["1e+00"]["n_cells"] == 30
    assert np.allclose(np.asarray(rep["all"]["nn1"]) * np.sqrt(2.0), rep["all"]["local_linear"])
