r"""Learned collision source of the generalized moments (DESIGN §6; issue 9, Boltzmann data).

Targets
-------
For a cell with density ρ, velocity u, temperature T and reduced collision terms
Qg(v1) = ∫ Q(f) dv2 dv3, Qh(v1) = ∫ (v2² + v3²) Q(f) dv2 dv3 (stored by ``kinclose-label`` for
``collision=boltzmann``), the collision source of the moments W = (1/ρ) ∫ [a(ξ) g + b(ξ) h/T] dv1 is

    R = (1/ρ) ∫ [a(ξ) Qg + b(ξ) Qh / T] dv1 = ∫ [a(ξ) Q̂g + b(ξ) Q̂h] dξ,   ξ = (v1 − u)/√T,
    Q̂g(ξ) = √T Qg(u + √T ξ)/ρ,   Q̂h(ξ) = √T Qh(u + √T ξ)/(ρT)

(the shape normalization of g, h, ``kinclose.moments.shape``), i.e. the encoder applied to the
normalized collision terms (encoders are linear in the shape). The learned target is

    R̂ = R / ν,   ν = ρ T^{1−ω} / μ_ref                                 (the BGK reduced solver's ν)

which depends on the shape only (Q scales as ρ² T^{(γ−3)/2} with γ = 2(1 − ω) for VHS molecules). For
the BGK term Q = ν (M − f) this is exactly R̂ = W_eq − W up to quadrature and interpolation, so the
reduced solver's BGK source ν ρ (W_eq − W) is the special case R̂ = W_eq − W. Qg, Qh are interpolated
from the stored v1 nodes to u + √T ξ_k by a not-a-knot cubic spline in the index coordinate (they
change sign, so not in ln), or linearly (``method="linear"``).

Network and ensemble
--------------------
:class:`SourceNet` W (n, M) ↦ R̂ (n, M):  R̂ = S_R ⊙ [N(z) − N(z_eq)],  z = (W − μ_W)/s_W, with
standardization buffers as :class:`~kinclose.closure.networks.StressHeatNet`; R̂(W_eq) = 0 exactly
(rows equal to W_eq bitwise return 0, whatever the BLAS rounding of the two evaluations).
:class:`SourceEnsemble` holds K ≥ 1 members (seeds ``seed·1009 + i``); mean and population variance.

Linearization rate: β* = spectral radius of −∂R̂/∂W at W_eq (1 for BGK), and its 99th percentile
over training states; stored in the checkpoint for the Filbet–Jin penalisation of
:class:`kinclose.reduced.solver.ReducedSolver` (``source_scheme="penalized"``; its default
linearized scheme uses the Jacobian of :meth:`LearnedSource.rate_jacobian` instead).

Stage ``kinclose-train stage=source moments_ckpt=... data.root=...`` writes ``source.pt``
(atomically; loads with ``torch.load(weights_only=True)``), ``metrics.json`` and
``learning_curve.png``. Shapes: W, R̂ (n, M); G, H, Q̂g, Q̂h (n, n_xi); ρ, u, T, ν (n,). float64.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from kinclose import __version__
from kinclose.closure.networks import DTYPE, mlp
from kinclose.closure.checkpoint import load_ensemble_checkpoint, save_ensemble_checkpoint
from kinclose.io import atomic_write_json
from kinclose.moments.train import CheckpointError, DatasetError

log = logging.getLogger(__name__)

SOURCE_VERSION = 1
"""Bumped whenever the meaning of a source checkpoint's weights changes (architecture, targets)."""
CHECKPOINT_FORMAT = "kinclose.closure.source"
CHECKPOINT_NAME = "source.pt"
BETA_QUANTILE = 0.99


class SourceCheckpointError(CheckpointError):
    """A source checkpoint cannot be used: missing, corrupted, not ours, another version."""


# ====================================================================== data and targets
def _interp_signed(y: NDArray, x0: float, dx: float, xq: NDArray, method: str) -> NDArray:
    """Interpolate rows of ``y`` (n, m) tabulated at x0 + j dx at points ``xq`` (n, k) (inside the
    nodes): not-a-knot cubic spline in the index coordinate ("logcubic", "cubic") or linear."""
    from kinclose.moments.shape import _interp_rows

    if method == "linear":
        return _interp_rows(y, x0, dx, xq, "linear")
    if method not in ("logcubic", "cubic"):
        raise ValueError(f"unknown interpolation method {method!r}; choose logcubic (cubic for Q), cubic or linear")
    from scipy.interpolate import CubicSpline

    n, m = y.shape
    pos = (xq - x0) / dx
    k = np.clip(np.floor(pos).astype(np.int64), 0, m - 2)
    t = pos - k
    cs = CubicSpline(np.arange(m, dtype=float), y, axis=1, bc_type="not-a-knot")
    c = np.transpose(cs.c, (2, 1, 0))  # (n, m-1, 4)
    cc = c[np.arange(n)[:, None], k]
    return ((cc[..., 0] * t + cc[..., 1]) * t + cc[..., 2]) * t + cc[..., 3]


def collision_shapes(Qg: NDArray, Qh: NDArray, v: NDArray, dv: float, rho: NDArray, u: NDArray, T: NDArray,
                     grid: Any, method: str = "logcubic") -> tuple[NDArray, NDArray]:
    """Normalized collision terms Q̂g = √T Qg(u + √T ξ)/ρ, Q̂h = √T Qh(u + √T ξ)/(ρT), each (n, n_xi).

    Parameters
    ----------
    Qg, Qh : (n, nv) reduced collision terms on the uniform nodes ``v`` (nv,), spacing dv.
    rho, u, T : (n,) the cells' own state; grid : the encoder's ξ grid (``XiGrid``).
    """
    Qg = np.atleast_2d(np.asarray(Qg, dtype=float))
    Qh = np.atleast_2d(np.asarray(Qh, dtype=float))
    sT = np.sqrt(np.asarray(T, dtype=float))
    rho = np.asarray(rho, dtype=float)
    xq = np.asarray(u, dtype=float)[:, None] + sT[:, None] * grid.xi[None, :]
    x0 = float(v[0])
    return (_interp_signed(Qg, x0, dv, xq, method) * (sT / rho)[:, None],
            _interp_signed(Qh, x0, dv, xq, method) / (rho * sT)[:, None])


def collision_rate(rho: NDArray, T: NDArray, mu_ref: NDArray | float, omega: NDArray | float) -> NDArray:
    """ν = ρ T^{1−ω}/μ_ref (n,), the BGK collision frequency of the reduced solver."""
    return np.asarray(rho, dtype=float) * np.asarray(T, dtype=float) ** (1.0 - np.asarray(omega, dtype=float)) \
        / np.asarray(mu_ref, dtype=float)


def source_targets(encoder: Any, G: NDArray, H: NDArray, QG: NDArray, QH: NDArray, nu: NDArray
                   ) -> tuple[NDArray, NDArray]:
    """W = Ψ(G, H) and R̂ = Ψ(Q̂g, Q̂h)/ν, each (n, M), with the (linear) encoder Ψ of a moments model."""
    from kinclose.closure.targets import encode

    W = encode(encoder, G, H)
    R = encode(encoder, QG, QH)
    return W, R / np.asarray(nu, dtype=float)[:, None]


@dataclass
class SourceData:
    """Samples (cells) of a Boltzmann-labeled dataset as shapes and normalized collision terms.

    G, H, QG, QH : (N, n_xi); rho, u, T, nu, kn : (N,); shard : (N,) index in the manifest.
    """

    G: NDArray
    H: NDArray
    QG: NDArray
    QH: NDArray
    rho: NDArray
    u: NDArray
    T: NDArray
    nu: NDArray
    kn: NDArray
    shard: NDArray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.G.shape[0])

    def subset(self, idx: NDArray) -> "SourceData":
        return SourceData(*(getattr(self, f)[idx] for f in ("G", "H", "QG", "QH", "rho", "u", "T", "nu", "kn",
                                                            "shard")), dict(self.info))


def load_source_dataset(root: str | Path, grid: Any, method: str = "logcubic", max_samples_per_shard: int | None = None,
                        seed: int = 0, verify_checksums: bool = True) -> SourceData:
    """Every cell of every shard of the manifest with its shape and normalized collision terms.

    Raises :class:`DatasetError` for a shard without /Qg, /Qh (labels with ``dataset.collision=boltzmann``
    store them), a checksum mismatch or an unreadable file, and ``VelocityCoverageError`` if the ξ grid
    leaves a cell's stored velocity nodes.
    """
    from kinclose.moments.shape import check_coverage, to_shape
    from kinclose.moments.train import open_shard, read_manifest

    root = Path(root)
    man, dhash = read_manifest(root)
    rng = np.random.default_rng(seed)
    parts = []
    for si, entry in enumerate(man["shards"]):
        path = root / entry["file"]
        with open_shard(root, entry, verify_checksums) as f:
            missing = [k for k in ("v", "g", "h", "Qg", "Qh") if k not in f]
            if missing:
                raise DatasetError(f"shard {path} has no {', '.join('/' + k for k in missing)}: the source stage "
                                   "needs the reduced collision terms of Boltzmann labels (kinclose-label "
                                   "dataset=boltzmann_small, or dataset.collision=boltzmann)")
            v = f["v"][:]
            dv = float(f["v"].attrs.get("dv", v[1] - v[0]))
            nv = v.size
            g, h = f["g"][:].reshape(-1, nv), f["h"][:].reshape(-1, nv)
            Qg, Qh = f["Qg"][:].reshape(-1, nv), f["Qh"][:].reshape(-1, nv)
            kn = float(f.attrs.get("kn", entry.get("kn", math.nan)))
            mu_ref = float(f.attrs["mu_ref"])
            omega = float(f.attrs["omega"])
        if max_samples_per_shard and g.shape[0] > max_samples_per_shard:
            idx = np.sort(rng.choice(g.shape[0], size=int(max_samples_per_shard), replace=False))
            g, h, Qg, Qh = g[idx], h[idx], Qg[idx], Qh[idx]
        G, H, rho, u, T = to_shape(g, h, v, dv, grid, method, check=False)
        check_coverage(u, T, v, grid, where=f"shard {path}")
        QG, QH = collision_shapes(Qg, Qh, v, dv, rho, u, T, grid, method)
        nu = collision_rate(rho, T, mu_ref, omega)
        parts.append((G, H, QG, QH, rho, u, T, nu, np.full(rho.size, kn), np.full(rho.size, si)))
    cat = [np.concatenate(p) for p in zip(*parts)]
    data = SourceData(*cat)
    data.info = {"root": str(root), "dataset_hash": dhash, "n_shards": len(man["shards"]), "n_samples": len(data),
                 "interpolation": method}
    return data


# ====================================================================== networks
class SourceNet(nn.Module):
    """W (n, M) → R̂ (n, M) = S_R ⊙ [N(z) − N(z_eq)], z = (W − μ_W)/s_W; R̂(W_eq) = 0 exactly."""

    def __init__(self, M: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> None:
        super().__init__()
        self.M = int(M)
        self.net = mlp(self.M, hidden, self.M, activation)
        self.register_buffer("w_mean", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("w_std", torch.ones(self.M, dtype=DTYPE))
        self.register_buffer("w_eq", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("y_std", torch.ones(self.M, dtype=DTYPE))

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        z = (W - self.w_mean) / self.w_std
        z_eq = ((self.w_eq - self.w_mean) / self.w_std)[None]
        out = (self.net(z) - self.net(z_eq)) * self.y_std
        # rows equal to W_eq give exactly 0 (x − x = 0 in floating point; the two network calls may round
        # differently in a batch) while the derivative there stays that of the network (straight through)
        at_eq = (W == self.w_eq).all(dim=-1, keepdim=True).to(out.dtype)
        return out - at_eq * out.detach()


class SourceEnsemble(nn.Module):
    """K source networks with different initial weights (seeds ``seed·1009 + i``).

    Parameters
    ----------
    M : number of generalized moments; K : members (≥ 4 for a useful variance; ≥ 1 accepted).
    hidden, activation : MLP widths and activation; seed : base seed of the initialization.
    """

    def __init__(self, M: int, K: int = 4, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 seed: int = 0) -> None:
        super().__init__()
        if int(K) < 1:
            raise ValueError(f"a source ensemble needs K >= 1 members, got {K}")
        self.kwargs: dict[str, Any] = {"M": int(M), "K": int(K), "hidden": [int(w) for w in hidden],
                                       "activation": str(activation), "seed": int(seed)}
        self.M, self.K = int(M), int(K)
        members = []
        for i in range(self.K):
            with torch.random.fork_rng(devices=[]):  # reproducible, global RNG untouched
                torch.manual_seed(int(seed) * 1009 + i)
                members.append(SourceNet(M, hidden, activation))
        self.members = nn.ModuleList(members)
        self.register_buffer("w_eq", torch.zeros(self.M, dtype=DTYPE))

    @torch.no_grad()
    def set_statistics(self, stats: dict[str, Any]) -> None:
        """Copy w_mean, w_std, w_eq, y_std (M,) into every member (and w_eq into the ensemble)."""
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=float), dtype=DTYPE)  # noqa: E731
        self.w_eq.copy_(t(stats["w_eq"]))
        for mem in self.members:
            for name, buf in mem.named_buffers():
                if name in stats:
                    buf.copy_(t(stats[name]))

    def all(self, W: torch.Tensor) -> torch.Tensor:
        """(K, n, M) every member's R̂."""
        return torch.stack([m(W) for m in self.members])

    def mean_var(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean and population variance of R̂, each (n, M)."""
        y = self.all(W)
        return y.mean(0), y.var(0, unbiased=False)

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        """(n, M) ensemble mean R̂."""
        return self.all(W).mean(0)


def source_statistics(W: NDArray, R: NDArray, w_eq: NDArray) -> dict[str, NDArray]:
    """Standardization buffers from training W, R̂ (n, M): w_mean, w_std, w_eq and y_std = RMS(R̂)."""
    floor = 1e-8
    return {"w_mean": W.mean(0), "w_std": np.maximum(W.std(0), floor), "w_eq": np.asarray(w_eq, dtype=float),
            "y_std": np.maximum(np.sqrt((R ** 2).mean(0)), floor)}


# ====================================================================== linearization rate
def rate_and_jacobians(model: Any, W: NDArray, batch: int = 1024) -> tuple[NDArray, NDArray]:
    """R̂ (n, M) and ∂R̂/∂W (n, M, M) of ``model`` (W (n, M) → (n, M), rows independent) by M backward passes."""
    W = np.atleast_2d(np.asarray(W, dtype=float))
    n, M = W.shape
    R = np.empty((n, M))
    out = np.empty((n, M, M))
    for i in range(0, n, batch):
        x = torch.as_tensor(W[i:i + batch], dtype=torch.float64).clone().requires_grad_(True)
        y = model(x)
        R[i:i + batch] = y.detach().numpy()
        for j in range(M):
            (gr,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=j < M - 1)
            out[i:i + batch, j, :] = gr.detach().numpy()
    return R, out


def jacobians(model: Any, W: NDArray, batch: int = 1024) -> NDArray:
    """∂R̂/∂W (n, M, M) of ``model`` (W (n, M) → (n, M), rows independent)."""
    return rate_and_jacobians(model, W, batch)[1]


def spectral_radii(J: NDArray) -> NDArray:
    """max |λ(−J)| per state, J (n, M, M) → (n,)."""
    return np.abs(np.linalg.eigvals(-J)).max(-1)


def linearization_rates(model: Any, w_eq: NDArray, W_train: NDArray, max_states: int = 2000,
                        rng: np.random.Generator | None = None) -> dict[str, float]:
    """β* at W_eq and the BETA_QUANTILE quantile / max of the spectral radius of −∂R̂/∂W over training states.

    Also the largest real part of the eigenvalues of ∂R̂/∂W at W_eq (negative: the equilibrium is stable).
    """
    rng = rng or np.random.default_rng(0)
    J_eq = jacobians(model, np.asarray(w_eq, dtype=float)[None])[0]
    W = np.asarray(W_train, dtype=float)
    if W.shape[0] > max_states:
        W = W[rng.choice(W.shape[0], size=max_states, replace=False)]
    rad = spectral_radii(jacobians(model, W)) if W.shape[0] else np.zeros(0)
    ev = np.linalg.eigvals(J_eq)
    return {"beta_eq": float(spectral_radii(J_eq[None])[0]),
            "beta_q99": float(np.quantile(rad, BETA_QUANTILE)) if rad.size else math.nan,
            "beta_max": float(rad.max()) if rad.size else math.nan,
            "max_real_eig_eq": float(ev.real.max()), "n_states": int(W.shape[0])}


# ====================================================================== training
def _loss(member: Any, W: Any, R: Any):
    return (((member(W) - R) / member.y_std) ** 2).mean()


def fit_source_member(member: Any, train: tuple, val: tuple, *, epochs: int, batch_size: int, lr: float,
                      patience: int, seed: int, lr_final_factor: float = 0.05, weight_decay: float = 0.0,
                      log_every_s: float = 30.0, name: str = "member") -> dict:
    """Fit one source member on the standardized MSE with ``closure.train.fit_early_stopping``.

    ``train``, ``val`` : (W, R̂) tensors, each (n, M). Returns the history (epoch, train_loss, val_loss,
    best_epoch, best_val_loss, wall_s).
    """
    from kinclose.closure.train import fit_early_stopping

    W, R = train

    def val_loss() -> tuple[float, dict[str, float]]:
        with torch.no_grad():
            return float(_loss(member, *val)), {}

    return fit_early_stopping(member, W.shape[0], lambda idx, gen: _loss(member, W[idx], R[idx]), val_loss,
                              epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed,
                              lr_final_factor=lr_final_factor, weight_decay=weight_decay, device=W.device,
                              log_every_s=log_every_s, name=name)


def source_errors(pred: NDArray, var: NDArray, R: NDArray, kn: NDArray) -> dict[str, Any]:
    """RMSE of the ensemble mean R̂ per component and overall, relative to the target RMS, overall and
    per ε decade; ``std_mean`` the mean ensemble standard deviation."""

    def agg(mask: NDArray) -> dict:
        if not mask.any():
            return {"n": 0}
        e, r = pred[mask] - R[mask], R[mask]
        rms = np.sqrt((r ** 2).mean(0))
        rmse = np.sqrt((e ** 2).mean(0))
        return {"n": int(mask.sum()), "rmse": rmse.tolist(), "target_rms": rms.tolist(),
                "rel_rmse": (rmse / np.maximum(rms, 1e-300)).tolist(),
                "rel_rmse_all": float(np.sqrt((e ** 2).sum() / max((r ** 2).sum(), 1e-300))),
                "std_mean": float(np.sqrt(var[mask]).mean())}

    res = {"all": agg(np.ones(R.shape[0], dtype=bool)), "per_decade": {}}
    dec = np.floor(np.log10(kn) + 1e-12).astype(int)
    for d in np.unique(dec):
        res["per_decade"][f"1e{d:+d}"] = agg(dec == d)
    return res


def predict_source(ens: Any, W: NDArray, batch: int = 65536) -> tuple[NDArray, NDArray]:
    """Ensemble mean and variance of R̂, each (n, M)."""
    import torch

    ms, vs = [], []
    with torch.no_grad():
        for i in range(0, W.shape[0], batch):
            m, v = ens.mean_var(torch.as_tensor(np.ascontiguousarray(W[i:i + batch]), dtype=torch.float64))
            ms.append(m.numpy())
            vs.append(v.numpy())
    M = int(ens.M)
    return (np.concatenate(ms) if ms else np.zeros((0, M)), np.concatenate(vs) if vs else np.zeros((0, M)))


# ====================================================================== checkpoints
def save_source_checkpoint(path: str | Path, ens: Any, meta: dict) -> Path:
    """Atomically write ``source.pt``: format, class, source version, constructor kwargs, state_dict,
    package version and the JSON-like ``meta`` (β*, hashes, W range, data schema version)."""
    return save_ensemble_checkpoint(path, ens, meta, fmt=CHECKPOINT_FORMAT, kind="source", version=SOURCE_VERSION,
                                    class_name="SourceEnsemble")


def load_source_checkpoint(path: str | Path, map_location: str = "cpu"):
    """(ensemble in eval mode, metadata) from ``source.pt``, read with ``weights_only=True``.

    Raises :class:`SourceCheckpointError` for a missing, unreadable or foreign file, another source
    version or data schema version, a missing β*, and weights that do not fit the stored constructor kwargs.
    """
    return load_ensemble_checkpoint(path, fmt=CHECKPOINT_FORMAT, kind="source", version=SOURCE_VERSION,
                                    build=SourceEnsemble, class_name="SourceEnsemble", error=SourceCheckpointError,
                                    stage="kinclose-train stage=source", required=(("beta", "linearization rate"),),
                                    map_location=map_location)


# ====================================================================== runtime plug-in
class LearnedSource:
    """Collision source of the reduced solver from a trained :class:`SourceEnsemble` (NumPy in/out).

    ``rate(W)`` : (n, M) → R̂(W) (n, M), the ensemble mean (float64 torch, no gradients);
    ``rate_jacobian(W)`` : (R̂ (n, M), ∂R̂/∂W (n, M, M)) for the linearized implicit scheme;
    ``beta`` : the penalisation rate β of the Filbet–Jin splitting (metadata ``beta.beta_q99``, or
    ``beta_eq`` if that is missing); ``w_eq`` : (M,) the anchor W_eq.
    """

    def __init__(self, ensemble: Any, meta: dict | None = None) -> None:
        self.ensemble = ensemble.eval()
        self.meta = dict(meta or {})
        self.n_moments = int(ensemble.M)
        self.w_eq = ensemble.w_eq.detach().cpu().numpy().astype(float)
        b = self.meta.get("beta", {})
        beta = b.get("beta_q99", math.nan) if isinstance(b, dict) else math.nan
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
            beta = b.get("beta_eq", 1.0) if isinstance(b, dict) else 1.0
        self.beta = float(beta)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "LearnedSource":
        """Load ``source.pt`` (weights_only=True) or the one shipped beside ``pretrained:<name>``."""
        from kinclose.pretrained import resolve_source

        ens, meta = load_source_checkpoint(resolve_source(path))
        return cls(ens, meta)

    def rate(self, W: NDArray) -> NDArray:
        import torch

        with torch.no_grad():
            return self.ensemble(torch.as_tensor(np.ascontiguousarray(W, dtype=float))).numpy()

    def rate_jacobian(self, W: NDArray) -> tuple[NDArray, NDArray]:
        """R̂(W) (n, M) and ∂R̂/∂W (n, M, M) of the ensemble mean (autograd, float64)."""
        return rate_and_jacobians(self.ensemble, W)


class BGKSource:
    """R̂ = W_eq − W with β = 1: the exact BGK source as a source object (tests, reference runs)."""

    def __init__(self, w_eq: NDArray, beta: float = 1.0) -> None:
        self.w_eq = np.asarray(w_eq, dtype=float)
        self.n_moments = self.w_eq.size
        self.beta = float(beta)

    def rate(self, W: NDArray) -> NDArray:
        return self.w_eq[None, :] - W

    def rate_jacobian(self, W: NDArray) -> tuple[NDArray, NDArray]:
        """W_eq − W (n, M) and ∂R̂/∂W = −I (n, M, M)."""
        W = np.atleast_2d(np.asarray(W, dtype=float))
        return self.w_eq[None, :] - W, np.broadcast_to(-np.eye(self.n_moments), (W.shape[0],) + (self.n_moments,) * 2)


# ====================================================================== stage
def train_source(cfg: Any, run_dir: str | Path | None = None) -> dict:
    """Train the source ensemble of ``cfg`` (conf/train.yaml with stage=source) into ``run_dir``.

    ``cfg.moments_ckpt`` names the moments checkpoint (its encoder defines W); ``cfg.data`` a
    Boltzmann-labeled dataset (with /Qg, /Qh). Returns the metrics dict (also ``metrics.json``).
    """
    import torch
    from omegaconf import OmegaConf

    from kinclose.closure.train import file_sha256, fit_members, member_workers, plot_learning_curves, w_range
    from kinclose.moments.train import DATA_SCHEMA_VERSION, load_checkpoint, resolve_device, split

    st = cfg.stage
    run_dir = Path(run_dir if run_dir is not None else cfg.get("run_dir", "outputs/train/source"))
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = cfg.get("moments_ckpt")
    if not ckpt:
        raise SourceCheckpointError("stage=source needs the moments checkpoint: add moments_ckpt=PATH/moments.pt "
                                    "(written by `kinclose-train stage=moments`)")
    if int(st.K) < 1:
        raise ValueError(f"stage.K={st.K} must be >= 1 (>= 4 for a useful ensemble variance)")
    seed = int(cfg.seed)
    device = resolve_device(str(cfg.device))
    if device == "cpu" and cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    moments, mmeta = load_checkpoint(ckpt)
    moments_hash = file_sha256(ckpt)
    encoder = moments.encoder
    data = load_source_dataset(cfg.data.root, moments.grid, str(st.interpolation), cfg.data.get("max_samples_per_shard"),
                               seed, bool(cfg.data.get("verify_checksums", True)))
    W, R = source_targets(encoder, data.G, data.H, data.QG, data.QH, data.nu)
    w_eq = moments.w_eq().detach().cpu().numpy()
    itr, iva, how = split(data, float(cfg.data.val_fraction), seed, str(cfg.data.get("split", "auto")))
    log.info("source targets: %d samples (%d train, %d validation, split by %s), %.1f s", len(data), itr.size,
             iva.size, how, time.perf_counter() - t0)
    ens = SourceEnsemble(M=int(moments.M), K=int(st.K), hidden=list(st.hidden), activation=str(st.activation),
                         seed=seed)
    ens.set_statistics(source_statistics(W[itr], R[itr], w_eq))
    tt = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    tr, va = (tt(W[itr]), tt(R[itr])), (tt(W[iva]), tt(R[iva]))
    jobs = [{"epochs": int(st.epochs), "batch_size": int(st.batch_size), "lr": float(st.lr),
             "patience": int(st.patience), "seed": seed * 1009 + i + 1,
             "lr_final_factor": float(st.get("lr_final_factor", 0.05)),
             "weight_decay": float(st.get("weight_decay", 0.0)), "name": f"source member {i}"}
            for i in range(ens.K)]
    workers = member_workers(st.get("workers", 1), ens.K, cfg.get("threads"))
    if workers > 1:
        log.info("fitting %d source members in %d processes", ens.K, workers)
    hists = fit_members(list(ens.members), tr, va, jobs, workers, cfg.get("threads"), fit=fit_source_member,
                        resume_dir=run_dir / "members")
    ens.eval()
    p_va, v_va = predict_source(ens, W[iva])
    p_tr, v_tr = predict_source(ens, W[itr])
    err_va = source_errors(p_va, v_va, R[iva], data.kn[iva])
    err_tr = source_errors(p_tr, v_tr, R[itr], data.kn[itr])
    # the BGK source W_eq − W as a baseline model of the Boltzmann R̂ (how much is learned beyond BGK)
    bgk_va = source_errors(w_eq[None, :] - W[iva], np.zeros_like(v_va), R[iva], data.kn[iva])
    beta = linearization_rates(ens, w_eq, W[itr], int(st.get("beta_states", 2000)), np.random.default_rng(seed))
    rng_W = w_range(W[itr])
    metrics = {
        "stage": "source", "encoder": mmeta["kwargs"]["encoder"], "M": int(moments.M), "K": ens.K,
        "device": device, "seed": seed, "package_version": __version__, "data": data.info,
        "moments_checkpoint": str(ckpt), "moments_checkpoint_sha256": moments_hash,
        "n_train": int(itr.size), "n_val": int(iva.size), "split": how, "W_eq": w_eq.tolist(), "W_range": rng_W,
        "anchor_defect": float(np.abs(predict_source(ens, w_eq[None])[0]).max()),
        "first_val_loss": [h["val_loss"][0] for h in hists], "best_val_loss": [h["best_val_loss"] for h in hists],
        "best_epoch": [h["best_epoch"] for h in hists], "beta": beta,
        "val": err_va, "train": err_tr, "val_bgk_baseline": bgk_va, "history": hists,
        "wall_s": time.perf_counter() - t0, "model_kwargs": ens.kwargs,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    meta = {
        "data_schema_version": DATA_SCHEMA_VERSION, "dataset_hash": data.info["dataset_hash"],
        "moments_checkpoint_sha256": moments_hash, "moments_kwargs": mmeta["kwargs"], "W_range": rng_W,
        "beta": beta, "omega_convention": "nu = rho T^(1-omega) / mu_ref",
        "extra": {"val_rel_rmse": err_va["all"]["rel_rmse_all"],
                  "val_bgk_baseline_rel_rmse": bgk_va["all"]["rel_rmse_all"]},
    }
    save_source_checkpoint(run_dir / CHECKPOINT_NAME, ens, meta)
    metrics["checkpoint"] = str(run_dir / CHECKPOINT_NAME)
    atomic_write_json(run_dir / "metrics.json", metrics)
    plot_learning_curves(hists, run_dir / "learning_curve.png",
                         f"source on {mmeta['kwargs']['encoder']} moments M={moments.M}, K={ens.K}",
                         ylabel="standardized MSE of R̂ (dashed: train)")
    log.info("source: validation rel RMSE %.3e (BGK source W_eq - W: %.3e), beta_eq %.3g, beta_q99 %.3g -> %s",
             err_va["all"]["rel_rmse_all"], bgk_va["all"]["rel_rmse_all"], beta["beta_eq"], beta["beta_q99"], run_dir)
    return metrics
