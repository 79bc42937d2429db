"""How much of each closure target the moments W determine: model-free estimates (DESIGN §6).

A local closure predicts y = (σ̂, q̂, m(W; δ, τ) − W, k(W; δ, τ)) ∈ R^{2+2M} from W and the frame
(δ, τ) alone (``kinclose.closure.targets``). No closure of these moments, learned or not, has a
smaller mean-squared error than the conditional variance E[Var(y | W, δ, τ)]: what W leaves
undetermined. It is estimated without a model from held-out query cells and their nearest
neighbours in standardized W among reference cells, the neighbours' targets evaluated at the query's
own frame (the targets of any shape at any frame are exact quadratures):

* **1-NN**: E[(y_i − y_nn(i))²]/2 → E Var(y | W) as the neighbour distance → 0 (Cover & Hart,
  IEEE Trans. Inf. Theory 13, 1967); biased upward by the variation of E[y | W] over that distance.
* **local-linear k-NN regression**: ŷ_i = a with (a, B) the least-squares fit of y ≈ a + B (W − W_i)
  over the k nearest neighbours of cell i; an achievable predictor, exact for targets linear in W
  (σ̂, q̂ of stress-heat moments), whose error bounds the irreducible one from above up to the
  sampling noise of the fit.

Errors are relative RMS per target component, sqrt(mean (ŷ − y)²)/std(y) over the query cells.
A learned closure whose error is close to these estimates is limited by its moments, not by
learning: better networks or more data of the same kind cannot help, other moments can.

Shapes: G, H (n, n_xi); W (n, M); δ, τ (n,); targets (n, 2 + 2M). float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.closure.targets import WeightFunctions, frame_targets, stress_heat_targets
from kinclose.moments.shape import XiGrid


def target_names(M: int) -> list[str]:
    """Names of the 2 + 2M targets: sigma_hat, q_hat, dm_0 … dm_{M−1}, k_0 … k_{M−1}."""
    return ["sigma_hat", "q_hat"] + [f"dm_{i}" for i in range(M)] + [f"k_{i}" for i in range(M)]


def closure_targets(G: NDArray, H: NDArray, grid: XiGrid, weights: WeightFunctions, delta: NDArray,
                    tau: NDArray) -> NDArray:
    """(n, 2 + 2M) exact targets (σ̂, q̂, m(δ, τ) − m(0, 1), k(δ, τ)) of shapes G, H at frames δ, τ (n,)."""
    n = np.atleast_2d(G).shape[0]
    d = np.stack([np.zeros(n), np.asarray(delta, dtype=float)], axis=1)
    t = np.stack([np.ones(n), np.asarray(tau, dtype=float)], axis=1)
    m, k = frame_targets(G, H, grid, weights, d, t)
    return np.concatenate([stress_heat_targets(G, H, grid), m[:, 1] - m[:, 0], k[:, 1]], axis=1)


def neighbour_predictions(W_query: NDArray, W_ref: NDArray, targets_of: Any, n_neighbours: int = 40,
                          ridge: float = 1e-6) -> dict[str, NDArray]:
    """1-NN and local-linear k-NN predictions of the query targets from reference cells.

    ``targets_of(ref_index (n,), query_index (n,)) -> (n, p)`` gives the targets of reference cells at
    the frames of the given query cells. W is standardized by the reference spread; ``ridge`` regularizes
    the local fit (in squared standard deviations, so 1e-6 only guards near-collinear neighbours). Returns ``nn1``
    (n, p) the nearest neighbour's targets, ``local_linear`` (n, p) and ``distance`` (n, k) in
    standard deviations.
    """
    from scipy.spatial import cKDTree

    W_query = np.asarray(W_query, dtype=float)
    W_ref = np.asarray(W_ref, dtype=float)
    n, M = W_query.shape
    k = int(n_neighbours)
    if k < M + 2:
        raise ValueError(f"the local-linear fit needs n_neighbours >= M + 2 = {M + 2}, got {k}")
    if W_ref.shape[0] < k:
        raise ValueError(f"{W_ref.shape[0]} reference cells are fewer than n_neighbours={k}")
    std = W_ref.std(0)
    std = np.where(std > 0, std, 1.0)
    dist, nn = cKDTree(W_ref / std).query(W_query / std, k=k)
    q_idx = np.repeat(np.arange(n), k)
    Y = targets_of(nn.reshape(-1), q_idx).reshape(n, k, -1)  # (n, k, p)
    X = np.concatenate([np.ones((n, k, 1)), (W_ref[nn] - W_query[:, None, :]) / std], axis=2)  # (n, k, 1+M)
    # ridge-regularized normal equations (the neighbours can be nearly collinear in W)
    XtX = np.einsum("nki,nkj->nij", X, X) + ridge * np.eye(M + 1)
    XtY = np.einsum("nki,nkp->nip", X, Y)
    coef = np.linalg.solve(XtX, XtY)[:, 0]
    return {"nn1": Y[:, 0], "local_linear": coef, "distance": dist}


def relative_rms(pred: NDArray, truth: NDArray) -> NDArray:
    """sqrt(mean (pred − truth)²)/std(truth) per column (p,); NaN where truth is constant."""
    err = np.sqrt(((pred - truth) ** 2).mean(0))
    sd = truth.std(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, err / sd, np.nan)


def information_report(truth: NDArray, predictions: dict[str, NDArray], kn: NDArray,
                       decades: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)) -> dict[str, Any]:
    """Relative RMS errors per estimate and ε decade: {"all": {name: [p]}, "1e-01": {...}, ...}.

    ``predictions`` maps names to (n, p) predictions; "nn1" is reported as the 1-NN estimate
    sqrt(E (y − y_nn)²/2), i.e. its relative RMS divided by √2. Decades [d, 10 d) with fewer than
    20 query cells are left out.
    """
    kn = np.asarray(kn, dtype=float)
    out: dict[str, Any] = {}
    masks = {"all": np.ones(kn.size, bool)}
    for d in decades:
        masks[f"{d:.0e}"] = (kn >= d) & (kn < 10 * d)
    for key, mask in masks.items():
        if mask.sum() < 20:
            continue
        row = {"n_cells": int(mask.sum())}
        for name, pred in predictions.items():
            e = relative_rms(pred[mask], truth[mask])
            row[name] = (e / np.sqrt(2.0) if name == "nn1" else e).tolist()
        out[key] = row
    return out
