"""Training targets of the closure networks from normalized shapes (DESIGN §6, Appendix).

A cell with density ρ, velocity u, temperature T has the normalized shape (``kinclose.moments.shape``)

    ĝ(ξ) = √T g(u + √T ξ)/ρ,   ĥ(ξ) = √T h(u + √T ξ)/(ρT),   ξ = (v1 − u)/√T,

tabulated on the midpoint ξ grid (weight Δξ). With the encoder weights a(ξ), b(ξ) (learned MLPs of
ξ/ξ_max, or Hermite polynomials) the targets are, all by the midpoint rule on that grid,

    W        = ∫ [a(ξ) ĝ + b(ξ) ĥ] dξ                                   (the encoder's moments)
    σ̂        = ∫ ξ² ĝ dξ − 1                                          = σ/(ρT)
    q̂        = ½ ∫ ξ (ξ² ĝ + ĥ) dξ                                    = q/(ρT^{3/2})
    m(δ, τ)  = ∫ [a(τξ + δ) ĝ + b(τξ + δ) τ² ĥ] dξ                     (moments in the frame (u*, T*))
    k(δ, τ)  = ∫ ξ [a(τξ + δ) ĝ + b(τξ + δ) τ² ĥ] dξ                   (their flux: ρ[u m + √T k])

with δ = (u − u*)/√T*, τ = √(T/T*): since (v1 − u*)/√T* = τξ + δ and h/T* = τ² h/T, these are
(1/ρ) ∫ [a(ξ*) g + b(ξ*) h/T*] dv1 and its ξ-weighted version (``kinclose.reduced.closure``), i.e.
exactly what ``shape_quadrature`` computes on the stored velocity grid, up to interpolation onto
the ξ grid and truncation at ±ξ_max. m(W; 0, 1) = W.

``quadrature="velocity"`` computes the same quantities by quadrature on each shard's stored velocity
grid instead (``kinclose.reduced.closure.shape_quadrature``: a, b evaluated at (v − u*)/√T* on the
stored nodes): W, σ̂ and q̂ are then the moments of the stored distribution itself, with no
interpolation and no truncation at ±ξ_max. That matters where a cell's shape reaches beyond the ξ
grid: a cold cell that hot particles stream into (ε ≳ 0.1), whose q̂ the ξ grid can miss by more
than 100 %. The learned weights a, b are then evaluated beyond ±ξ_max as well (their MLP is defined
everywhere); W is what the weights give on the full distribution, which is the moment the reduced
solver transports.

Frames are sampled per sample: the first is always (δ, τ) = (0, 1); the others have δ uniform in
[−δ_max, δ_max] and ln τ uniform in [ln τ_min, ln τ_max]. Since the targets are recomputed from the
shapes, the data can be augmented with any number of frames.

Shapes: G, H (N, n_xi); W (N, M); σ̂, q̂ (N,); δ, τ (N, F); m, k (N, F, M). float64 throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from kinclose.moments.shape import XiGrid, hermite_terms


@dataclass(frozen=True)
class FrameSampling:
    """How frames (δ, τ) are drawn per sample; frame 0 is always (0, 1).

    n_frames : frames per sample (≥ 1, including the identity frame).
    delta_max : |δ| ≤ delta_max, δ = (u − u*)/√T*.
    tau_min, tau_max : τ = √(T/T*) range (log-uniform), 0 < tau_min ≤ 1 ≤ tau_max.
    """

    n_frames: int = 4
    delta_max: float = 0.5
    tau_min: float = 0.7
    tau_max: float = 1.4

    def __post_init__(self) -> None:
        if int(self.n_frames) < 1:
            raise ValueError(f"n_frames must be >= 1 (frame 0 is the identity), got {self.n_frames}")
        if not (self.delta_max >= 0 and math.isfinite(self.delta_max)):
            raise ValueError(f"delta_max must be finite and >= 0, got {self.delta_max}")
        if not (0 < self.tau_min <= 1.0 <= self.tau_max < math.inf):
            raise ValueError(f"need 0 < tau_min <= 1 <= tau_max, got [{self.tau_min}, {self.tau_max}]")


def sample_frames(n: int, sampling: FrameSampling, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """δ, τ, each (n, n_frames): column 0 is (0, 1), the others random (see :class:`FrameSampling`)."""
    F = int(sampling.n_frames)
    delta = np.zeros((n, F))
    tau = np.ones((n, F))
    if F > 1:
        delta[:, 1:] = rng.uniform(-sampling.delta_max, sampling.delta_max, size=(n, F - 1))
        tau[:, 1:] = np.exp(rng.uniform(math.log(sampling.tau_min), math.log(sampling.tau_max), size=(n, F - 1)))
    return delta, tau


# ---------------------------------------------------------------------- encoder weight functions
class WeightFunctions:
    """a(x), b(x) of an encoder at arbitrary points x (torch and NumPy).

    ``torch(x)`` : tensor (...) → (a, b), each (..., M); ``numpy(x)``: the same for arrays, used with
    ``kinclose.reduced.closure.shape_quadrature`` (``a_np``, ``b_np``). On the encoder's ξ nodes they
    equal the encoder's own weights (to round-off).
    """

    def __init__(self, fn: Callable, M: int) -> None:
        self._fn = fn
        self.M = int(M)

    def torch(self, x):
        return self._fn(x)

    def _np(self, x: NDArray, which: int) -> NDArray:
        import torch

        with torch.no_grad():
            out = self._fn(torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64))[which]
        return out.numpy()

    def a_np(self, x: NDArray) -> NDArray:
        return self._np(x, 0)

    def b_np(self, x: NDArray) -> NDArray:
        return self._np(x, 1)


def encoder_weight_functions(encoder: Any) -> WeightFunctions:
    """Weight functions of a ``kinclose.moments.encoders`` encoder (learned or Hermite).

    Learned: a, b = the MLP ``net`` at x/ξ_max (the encoder evaluates it at the ξ nodes).
    Hermite: the polynomials He_n(x) L(s)^l/√(n!) of ``shape.hermite_weights`` with the same
    constants (read from the encoder's tabulated weights), so the two agree on the nodes.
    """
    import torch

    from kinclose.moments.encoders import HermiteEncoder, LearnedEncoder

    M = int(encoder.M)
    if isinstance(encoder, LearnedEncoder):
        return WeightFunctions(encoder.weights_at, M)
    if isinstance(encoder, HermiteEncoder):
        terms = hermite_terms(M, encoder.basis)
        nmax = max(n for n, _ in terms)
        xi = encoder.xi
        He = _hermite_t(xi, nmax)
        a_tab = encoder.a
        # l = 0 weights carry a constant offset (shape.hermite_weights); recover it from the table
        const = []
        for k, (n, l) in enumerate(terms):
            p = He[n] / math.sqrt(math.factorial(n))
            const.append(float((p - a_tab[:, k]).mean()) if l == 0 else 0.0)
        const_t = torch.tensor(const, dtype=torch.float64)

        def fn(x):
            He_x = _hermite_t(x, nmax)
            a_cols, b_cols = [], []
            for k, (n, l) in enumerate(terms):
                p = He_x[n] / math.sqrt(math.factorial(n))
                if l == 0:
                    a_cols.append(p - const_t[k])
                    b_cols.append(torch.zeros_like(p))
                else:
                    a_cols.append(-p)
                    b_cols.append(0.5 * p)
            return torch.stack(a_cols, -1), torch.stack(b_cols, -1)

        return WeightFunctions(fn, M)
    raise TypeError(f"no weight functions for encoder type {type(encoder).__name__}; expected LearnedEncoder or "
                    "HermiteEncoder")


def _hermite_t(x, nmax: int) -> list:
    """[He_0(x), …, He_nmax(x)] (probabilists'), three-term recurrence on tensors."""
    import torch

    He = [torch.ones_like(x), x]
    for n in range(1, nmax):
        He.append(x * He[n] - n * He[n - 1])
    return He[: nmax + 1]


# ---------------------------------------------------------------------- targets
def stress_heat_targets(G: NDArray, H: NDArray, grid: XiGrid) -> NDArray:
    """(N, 2): σ̂ = ∫ ξ² ĝ dξ − 1 and q̂ = ½ ∫ ξ (ξ² ĝ + ĥ) dξ of shapes G, H (N, n_xi)."""
    xi = grid.xi
    sig = (xi * xi * G).sum(-1) * grid.dxi - 1.0
    q = 0.5 * (xi * (xi * xi * G + H)).sum(-1) * grid.dxi
    return np.stack([sig, q], axis=-1)


def frame_targets(G: NDArray, H: NDArray, grid: XiGrid, weights: WeightFunctions, delta: NDArray, tau: NDArray,
                  batch_size: int = 256) -> tuple[NDArray, NDArray]:
    """m, k (N, F, M) of shapes G, H (N, n_xi) in the frames δ, τ (N, F) (module docstring)."""
    import torch

    G = np.atleast_2d(G)
    H = np.atleast_2d(H)
    delta = np.asarray(delta, dtype=float).reshape(G.shape[0], -1)
    tau = np.asarray(tau, dtype=float).reshape(G.shape[0], -1)
    N, F = delta.shape
    M = weights.M
    m = np.empty((N, F, M))
    k = np.empty((N, F, M))
    xi = torch.as_tensor(grid.xi, dtype=torch.float64)
    dxi = grid.dxi
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        for i in range(0, N, batch_size):
            g, h = t(G[i:i + batch_size]), t(H[i:i + batch_size])
            d, s = t(delta[i:i + batch_size]), t(tau[i:i + batch_size])
            x = s[..., None] * xi + d[..., None]  # (B, F, n)
            a, b = weights.torch(x)  # (B, F, n, M)
            dens = a * g[:, None, :, None] + b * ((s * s)[..., None, None] * h[:, None, :, None])
            m[i:i + batch_size] = (dens.sum(2) * dxi).numpy()
            k[i:i + batch_size] = ((xi[:, None] * dens).sum(2) * dxi).numpy()
    return m, k


@dataclass
class ClosureTargets:
    """Targets of N samples with F frames each (module docstring).

    W (N, M); sh (N, 2) = (σ̂, q̂); delta, tau (N, F); m, k (N, F, M); kn (N,) Knudsen number of the
    sample's shard; shard (N,) its index; rho, u, T (N,) the cell's own state (for diagnostics).
    """

    W: NDArray
    sh: NDArray
    delta: NDArray
    tau: NDArray
    m: NDArray
    k: NDArray
    kn: NDArray
    shard: NDArray
    rho: NDArray
    u: NDArray
    T: NDArray

    def __len__(self) -> int:
        return int(self.W.shape[0])

    def subset(self, idx: NDArray) -> "ClosureTargets":
        return ClosureTargets(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def encode(encoder: Any, G: NDArray, H: NDArray, batch_size: int = 4096) -> NDArray:
    """(N, M) W of shapes G, H (N, n_xi) with a torch encoder (no gradients)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, G.shape[0], batch_size):
            out.append(encoder(torch.as_tensor(np.ascontiguousarray(G[i:i + batch_size]), dtype=torch.float64),
                               torch.as_tensor(np.ascontiguousarray(H[i:i + batch_size]), dtype=torch.float64)))
    return torch.cat(out).numpy() if out else np.zeros((0, int(encoder.M)))


def velocity_targets(raw: list, weights: WeightFunctions, delta: NDArray, tau: NDArray,
                     batch_size: int = 256) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """W (N, M), (σ̂, q̂) (N, 2), m and k (N, F, M) by quadrature on the stored velocity grids.

    ``raw``: per shard (v (nv,), dv, g (n_s, nv), h (n_s, nv)), N = Σ n_s cells in that order;
    frames δ, τ (N, F) as in :func:`frame_targets`, i.e. T* = T/τ², u* = u − δ √T*. Frame (0, 1) gives
    m = W bitwise.
    """
    from kinclose.reduced.closure import shape_quadrature

    N, F = delta.shape
    M = weights.M
    W, sh = np.empty((N, M)), np.empty((N, 2))
    m, k = np.empty((N, F, M)), np.empty((N, F, M))
    i = 0
    for v, dv, g, h in raw:
        for j in range(0, g.shape[0], batch_size):
            gb, hb = g[j:j + batch_size], h[j:j + batch_size]
            s = slice(i, i + gb.shape[0])
            own = shape_quadrature(gb, hb, v, dv, weights.a_np, weights.b_np)
            W[s], sh[s] = own["m"], np.stack([own["sigma_hat"], own["q_hat"]], -1)
            for f in range(F):
                if not (delta[s, f].any() or (tau[s, f] != 1).any()):  # identity frame: the quadrature above
                    m[s, f], k[s, f] = own["m"], own["k"]
                    continue
                T_star = own["T"] / tau[s, f] ** 2
                u_star = own["u"] - delta[s, f] * np.sqrt(T_star)
                q = shape_quadrature(gb, hb, v, dv, weights.a_np, weights.b_np, u_star, T_star)
                m[s, f], k[s, f] = q["m"], q["k"]
            i += gb.shape[0]
    if i != N:
        raise ValueError(f"the stored distributions hold {i} cells, the frames {N}")
    return W, sh, m, k


QUADRATURES = ("xi", "velocity")


def build_targets(data: Any, encoder: Any, sampling: FrameSampling, rng: np.random.Generator,
                  batch_size: int = 256, quadrature: str = "xi") -> ClosureTargets:
    """Targets of every sample of ``data`` (a ``kinclose.moments.train.ShapeData``) with ``encoder``.

    quadrature "xi": on the shapes of the encoder's ξ grid, W the encoder's own output; "velocity":
    on the stored velocity grids (``data.raw``, :func:`velocity_targets`). Frame 0 of each sample is
    (0, 1), where m equals W (checked by the caller via :func:`identity_defect`).
    """
    if quadrature not in QUADRATURES:
        raise ValueError(f"unknown closure-target quadrature {quadrature!r}; choose one of {QUADRATURES}")
    delta, tau = sample_frames(len(data), sampling, rng)
    weights = encoder_weight_functions(encoder)
    if quadrature == "velocity":
        if sum(r[2].shape[0] for r in data.raw) != len(data):
            raise ValueError("quadrature='velocity' needs the stored distributions of every cell: load the dataset "
                             "with load_dataset(..., keep_raw=True)")
        W, sh, m, k = velocity_targets(data.raw, weights, delta, tau, batch_size)
    else:
        grid = encoder.grid
        W = encode(encoder, data.G, data.H)
        sh = stress_heat_targets(data.G, data.H, grid)
        m, k = frame_targets(data.G, data.H, grid, weights, delta, tau, batch_size)
    return ClosureTargets(W, sh, delta, tau, m, k, np.asarray(data.kn, dtype=float), np.asarray(data.shard),
                          np.asarray(data.rho, dtype=float), np.asarray(data.u, dtype=float),
                          np.asarray(data.T, dtype=float))


def identity_defect(t: ClosureTargets) -> float:
    """max |m(δ=0, τ=1) − W| over samples: the weight functions reproduce the encoder (round-off)."""
    is_id = (t.delta == 0) & (t.tau == 1)
    if not is_id.any():
        return 0.0
    return float(np.abs(t.m[is_id] - np.repeat(t.W[:, None, :], t.m.shape[1], 1)[is_id]).max())
