"""The learned closure as a plug-in of the reduced solver (DESIGN §6; ``kinclose.reduced.closure``).

:class:`LearnedClosure` implements the ``ShapeClosure`` protocol with a trained
:class:`~kinclose.closure.networks.Ensemble`: NumPy arrays in and out, one batched evaluation of all
members per call (the solver calls it once per stage on all faces), the ensemble mean as the closure
and the ensemble variance for exploration. Inference runs through the fused NumPy path of
:mod:`kinclose.closure.fused` (float32 by default, ``inference="float64"`` or ``"torch"`` for the
reference paths); torch is imported lazily and used for autograd only.

Option ``clip`` (off by default): the fluxes σ̂, q̂ and k are evaluated at W clipped to the training box
[min, max] of W, the frame map m at the true W; ``clip_counts`` reports how many states were clipped.
This is a saturation the free networks have built in (tanh); the structured Hermite closures
(:mod:`kinclose.closure.hermite`), whose exact algebra extrapolates, need it to stay positive.

Diagnostics (reported, never acted upon):

* ``check_range(W)``: states whose W leaves the box [min, max] of the training W;
* ``variance(W, δ, τ)``: ensemble variance of every output (σ̂, q̂, m, k) per state;
* ``flux_jacobian_eigenvalues(U, W)``: eigenvalues of the Jacobian of the closed flux

      Φ = (ρu, ρu² + p + σ, (E + p + σ)u + q,  ρ[u m + √T k])

  with respect to the conserved variables Q = (ρ, ρu, E, Z), Z = ρ m(W; δ, τ) the moments measured
  in a frame (u*, T*) frozen at the state (δ = (u − u*)/√T*, τ = √(T/T*), so δ = 0, τ = 1 and Z = ρW
  there). By default the derivatives of δ and τ with respect to U are included, which is the system
  the solver integrates in the frame of a cell; ``frame_derivatives=False`` holds δ = 0, τ = 1 fixed
  (Q = (U, ρW)). A = (∂Φ/∂P)(∂Q/∂P)⁻¹ with P = (U, W), by torch autograd
  (:func:`kinclose.closure.hyperbolicity.closed_flux_jacobian`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


class LearnedClosure:
    """ShapeClosure from a trained ensemble.

    Parameters
    ----------
    ensemble : a trained :class:`~kinclose.closure.networks.Ensemble` (eval mode, CPU).
    meta : checkpoint metadata (``W_range``, ``frames``, hashes …).
    xi_max : bound of |λ − u|/√T for the Rusanov flux (default 4.0; check it against
        ``flux_jacobian_eigenvalues``).
    batch_size : states per network call.
    inference : "float32" (fused NumPy, default), "float64" (fused NumPy) or "torch" (the
        float64 module calls, the reference).
    clip : evaluate the fluxes at W clipped to the training box (module docstring); needs ``W_range``.
    """

    INFERENCE = ("float32", "float64", "torch")

    def __init__(self, ensemble: Any, meta: dict | None = None, xi_max: float = 4.0, batch_size: int = 65536,
                 inference: str = "float32", clip: bool = False) -> None:
        if not (math.isfinite(xi_max) and xi_max > 0):
            raise ValueError(f"xi_max must be positive and finite, got {xi_max!r}")
        if inference not in self.INFERENCE:
            raise ValueError(f"unknown inference {inference!r}; choose one of {self.INFERENCE}")
        self.ensemble = ensemble.eval()
        self.meta = dict(meta or {})
        self.n_moments = int(ensemble.M)
        self.xi_max = float(xi_max)
        self.batch_size = int(batch_size)
        self.inference = inference
        if inference == "torch":
            self._net = None
        else:
            from kinclose.closure.fused import fused_ensemble

            self._net = fused_ensemble(ensemble, inference)
        self._w_eq = ensemble.w_eq.detach().cpu().numpy().astype(float)
        r = self.meta.get("W_range")
        self.w_min = np.asarray(r["min"], dtype=float) if r else None
        self.w_max = np.asarray(r["max"], dtype=float) if r else None
        self.w_std = np.asarray(r["std"], dtype=float) if r else None
        self.clip = bool(clip)
        if self.clip and self.w_min is None:
            raise ValueError("clip=True needs the training range of W (checkpoint metadata W_range)")
        self.clip_counts = {"evaluated": 0, "clipped": 0}

    @classmethod
    def from_checkpoint(cls, path: str | Path, xi_max: float | None = None, **kwargs: Any) -> "LearnedClosure":
        """Load ``closure.pt`` (weights_only=True) or a shipped ``pretrained:<name>``; ``xi_max`` defaults to the
        bound stored in the checkpoint (``stage.xi_max`` of its training; 4.0 if it has none)."""
        from kinclose.closure.train import load_closure_checkpoint
        from kinclose.pretrained import resolve

        ens, meta = load_closure_checkpoint(resolve(path))
        return cls(ens, meta, float(meta.get("xi_max") or 4.0) if xi_max is None else float(xi_max), **kwargs)

    # ----------------------------------------------------------------- protocol
    def equilibrium(self) -> NDArray:
        """(M,) W of the Maxwellian shape (the encoder's W_eq)."""
        return self._w_eq.copy()

    def _t(self, a: NDArray):
        import torch

        # a copy: the inputs may be read-only broadcast views, which torch cannot wrap
        return torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64)

    def _W(self, W: NDArray) -> NDArray:
        W = np.asarray(W, dtype=float)
        if W.ndim != 2 or W.shape[1] != self.n_moments:
            raise ValueError(f"W must have shape (n, {self.n_moments}), got {W.shape}")
        return W

    def _evaluate(self, W: NDArray, delta: NDArray | None, tau: NDArray | None, what: str,
                  variance: bool = False) -> list[NDArray | None]:
        """Batched ensemble outputs: ``what`` = "sh" → [mean, var] (n, 2); "frame" → [m, k, var m, var k]
        (n, M); the variances are None unless asked for."""
        n = W.shape[0]
        outs: list[list[NDArray]] = []
        for i in range(0, n, self.batch_size):
            s = slice(i, i + self.batch_size)
            if self._net is not None:
                res = (self._net.stress_heat(W[s], variance) if what == "sh" else
                       self._net.frame(W[s], delta[s], tau[s], variance))
            else:
                import torch

                with torch.no_grad():
                    res = (self.ensemble.stress_heat(self._t(W[s])) if what == "sh" else
                           self.ensemble.frame(self._t(W[s]), self._t(delta[s]), self._t(tau[s])))
                n_mean = 1 if what == "sh" else 2
                res = [r.numpy() if variance or j < n_mean else None for j, r in enumerate(res)]
            outs.append(list(res))
        if len(outs) == 1:
            return outs[0]
        return [None if outs[0][j] is None else np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]

    def _frames(self, n: int, delta: NDArray | float, tau: NDArray | float) -> tuple[NDArray, NDArray]:
        """δ, τ broadcast to (n,); τ = √(T/T*) must be > 0 (a frame with T* > 0)."""
        d, t = np.asarray(delta, dtype=float), np.asarray(tau, dtype=float)
        if d.shape not in ((), (n,)) or t.shape not in ((), (n,)):
            raise ValueError(f"delta and tau must be scalars or have shape ({n},) like W's rows, got {d.shape}, {t.shape}")
        if not (t > 0).all():
            raise ValueError(f"tau = sqrt(T/T*) must be > 0 (and not NaN), got {t.min() if t.size else t}")
        return np.broadcast_to(d, (n,)), np.broadcast_to(t, (n,))

    def _flux_states(self, W: NDArray) -> NDArray:
        """W, or W clipped to the training box when ``clip`` is set (counted in ``clip_counts``)."""
        if not self.clip:
            return W
        Wc = np.clip(W, self.w_min, self.w_max)
        self.clip_counts["evaluated"] += W.shape[0]
        self.clip_counts["clipped"] += int((Wc != W).any(1).sum())
        return Wc

    def stress_heat(self, W: NDArray, cells: NDArray | None = None) -> NDArray:
        """(n, M) → (n, 2): ensemble mean of σ̂ = σ/(ρT), q̂ = q/(ρT^{3/2}); ``cells`` is ignored."""
        return self._evaluate(self._flux_states(self._W(W)), None, None, "sh")[0]

    def frame(self, W: NDArray, delta: NDArray, tau: NDArray, cells: NDArray | None = None) -> tuple[NDArray, NDArray]:
        """(n, M), (n,), (n,) → ensemble means m, k (n, M); m(W; 0, 1) = W exactly; ``cells`` ignored."""
        W = self._W(W)
        frames = self._frames(W.shape[0], delta, tau)
        m, k, _, _ = self._evaluate(W, *frames, "frame")
        if self.clip:  # the flux k at the clipped state, m (the frame change of the moments) at W itself
            Wc = self._flux_states(W)
            rows = np.flatnonzero((Wc != W).any(1))
            if rows.size:
                k = k.copy()
                k[rows] = self._evaluate(Wc[rows], *(f[rows] for f in frames), "frame")[1]
        return m, k

    # ----------------------------------------------------------------- exploration / diagnostics
    def variance(self, W: NDArray, delta: NDArray | float = 0.0, tau: NDArray | float = 1.0) -> NDArray:
        """(n, 2 + 2M) ensemble variance of (σ̂, q̂, m_1..m_M, k_1..k_M) per state (population variance).

        At the default (δ, τ) = (0, 1) the m part is exactly 0 (m = W for every member).
        """
        W = self._W(W)
        _, shv = self._evaluate(W, None, None, "sh", variance=True)
        _, _, mv, kv = self._evaluate(W, *self._frames(W.shape[0], delta, tau), "frame", variance=True)
        return np.concatenate([shv, mv, kv], axis=1)

    def check_range(self, W: NDArray) -> dict[str, Any]:
        """States outside the training box of W (per component [min, max] of the training set).

        Returns ``fraction`` (of states), ``indices`` (array), ``n_outside``, ``per_component`` (counts)
        and ``max_excess_std`` (largest distance outside the box in units of the training std). Nothing
        is clipped; the caller decides (report, or label these states in the exploration loop).
        """
        W = self._W(W)
        if self.w_min is None:
            raise ValueError("this closure has no training range (checkpoint metadata W_range missing)")
        below = W < self.w_min
        above = W > self.w_max
        out = below | above
        bad = out.any(1)
        excess = np.maximum(self.w_min - W, 0.0) + np.maximum(W - self.w_max, 0.0)
        std = np.where(self.w_std > 0, self.w_std, 1.0)
        return {"fraction": float(bad.mean()) if W.shape[0] else 0.0, "n_outside": int(bad.sum()),
                "indices": np.flatnonzero(bad), "per_component": out.sum(0).tolist(),
                "max_excess_std": float((excess / std).max()) if W.size else 0.0}

    def flux_jacobian_eigenvalues(self, U: NDArray, W: NDArray, frame_derivatives: bool = True,
                                  rtol: float = 1e-8) -> dict[str, Any]:
        """Eigenvalues of the closed-flux Jacobian (module docstring) at states U (n, 3), W (n, M).

        An eigenvalue counts as complex when |Im λ| > rtol · max(|Re λ|, √T) (the √T floor keeps
        eigenvalues near λ = 0, e.g. at u = 0, from counting their round-off as complex).

        Returns ``eigenvalues`` (n, 3 + M) complex, ``fraction_complex`` (of eigenvalues),
        ``fraction_states_complex`` (states with any complex eigenvalue), ``max_speed`` = max over
        states of max |Re λ − u|/√T (compare with ``xi_max``: larger values break the Rusanov bound)
        and ``fraction_above_xi_max``.
        """
        from kinclose.closure.hyperbolicity import closed_flux_jacobian

        W = self._W(W)
        U = np.asarray(U, dtype=float)
        if U.shape != (W.shape[0], 3):
            raise ValueError(f"U must have shape ({W.shape[0]}, 3) like W's rows, got {U.shape}")
        ens = self.ensemble
        A = closed_flux_jacobian(ens.mean_stress_heat, ens.mean_frame,
                                 self._t(U), self._t(W), frame_derivatives).detach().numpy()
        rho = U[:, 0]
        un = U[:, 1] / rho
        sT = np.sqrt((2.0 * U[:, 2] / rho - un * un) / 3.0)
        lam = np.linalg.eigvals(A)
        cplx = np.abs(lam.imag) > rtol * np.maximum(np.abs(lam.real), sT[:, None])
        speed = np.abs(lam.real - un[:, None]) / sT[:, None]
        return {"eigenvalues": lam, "fraction_complex": float(cplx.mean()),
                "fraction_states_complex": float(cplx.any(1).mean()), "complex_mask": cplx,
                "max_speed": float(speed.max()), "fraction_above_xi_max": float((speed > self.xi_max).any(1).mean())}
