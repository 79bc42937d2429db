"""Decoder Φ: W ↦ normalized shape (ĝ, ĥ) on the ξ grid, positive, with exact invariants (torch).

The shape must satisfy, on the grid (Σ_k · Δξ), to round-off:

    ∫ ĝ dξ = 1,    ∫ ξ ĝ dξ = 0,    ∫ (ξ² ĝ + ĥ) dξ = 3.

Construction (all in the log domain, so positivity is structural):

1. Raw log-shapes around the Maxwellian shape φ(ξ) = e^{−ξ²/2}/√(2π):
   ln ĝ_r = ln φ + N_g(z) − N_g(0),  ln ĥ_r = ln 2φ + N_h(z) − N_h(0),  z = (W − W_eq)/s,
   with N an MLP. At W = W_eq (the encoder's moments of the Maxwellian) the raw shape *is* the
   Maxwellian shape, so equilibrium is reproduced by construction (the BGK source and the Euler
   limit rely on this).
2. Split of the energy: τ = ∫ ξ² ĝ dξ (the normalized parallel temperature, 1 + σ/(ρT)) is taken as
   3·Var_r/(Var_r + B_r) with Var_r the variance of the normalized ĝ_r and B_r = ∫ĥ_r/∫ĝ_r
   (τ = 1 for the Maxwellian), bounded below by ``tau_min`` (the grid cannot hold a narrower ĝ).
3. Exponential tilt ĝ ∝ ĝ_r exp(λ1 ξ + λ2 ξ²) with (λ1, λ2) minimizing the convex dual
   ln Σ ĝ_r e^{λ1 ξ + λ2 ξ²} − λ2 τ (damped Newton, batched), which gives mean 0 and ∫ξ²ĝ = τ; the
   gradient uses one differentiable Newton step at the converged point (exact implicit gradient,
   since the Newton map has zero derivative in λ at its root).
4. Exact fix-up: ĝ ← ĝ (c0 + c1 ξ) with c solving the 2×2 linear system for mass 1 and momentum 0
   (c0 = 1, c1 = 0 up to Newton's residual, so positivity is kept), then ĥ = ĥ_r (3 − ∫ξ²ĝ)/∫ĥ_r.

Shapes: W (B, M) → G, H, logG, logH (B, n_xi), float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kinclose.moments.encoders import DTYPE, HermiteEncoder, LearnedEncoder, ShapeEncoder, mlp
from kinclose.moments.shape import XiGrid, maxwellian_shape

MODEL_VERSION = 1
"""Bumped whenever the meaning of a checkpoint's weights changes (architecture, ξ grid, projection)."""

ENCODERS = ("learned", "hermite")
_LN_PI = math.log(math.pi)


def conservative_projection(
    log_gr: torch.Tensor,
    log_hr: torch.Tensor,
    xi: torch.Tensor,
    dxi: float,
    tau_min: float = 0.02,
    max_iter: int = 60,
    tol: float = 1e-13,
) -> dict[str, torch.Tensor]:
    """Positive shapes with exact mass 1, momentum 0 and energy 3 from raw log-shapes (B, n).

    Returns a dict with G, H, logG, logH (B, n), tau (B,), newton_residual (B,) and iterations.
    """
    x1 = xi
    x2 = xi * xi
    # step 2: energy split from the raw shape
    w = torch.softmax(log_gr, dim=-1)
    mean = (w * x1).sum(-1)
    var = (w * x2).sum(-1) - mean * mean
    log_B = torch.logsumexp(log_hr, -1) - torch.logsumexp(log_gr, -1)
    tau = 3.0 * var / (var + torch.exp(log_B))
    tau = torch.clamp(tau, min=tau_min)

    def stats(lam: torch.Tensor, lg: torch.Tensor, tau_: torch.Tensor):
        z = lg + lam[:, :1] * x1 + lam[:, 1:] * x2
        p = torch.softmax(z, dim=-1)
        m1 = (p * x1).sum(-1)
        m2 = (p * x2).sum(-1)
        m3 = (p * x2 * x1).sum(-1)
        m4 = (p * x2 * x2).sum(-1)
        grad = torch.stack([m1, m2 - tau_], -1)
        h11 = m2 - m1 * m1
        h12 = m3 - m1 * m2
        h22 = m4 - m2 * m2
        hess = torch.stack([torch.stack([h11, h12], -1), torch.stack([h12, h22], -1)], -2)
        return z, grad, hess

    def newton_step(grad: torch.Tensor, hess: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(2, dtype=hess.dtype, device=hess.device)
        reg = 1e-14 * hess.diagonal(dim1=-2, dim2=-1).abs().amax(-1)[:, None, None]
        return -torch.linalg.solve(hess + reg * eye, grad[..., None])[..., 0]

    # step 3: damped Newton on the convex dual, without gradients
    B = log_gr.shape[0]
    lam = torch.zeros(B, 2, dtype=log_gr.dtype, device=log_gr.device)
    ts = torch.tensor([2.0**-k for k in range(12)], dtype=log_gr.dtype, device=log_gr.device)
    it = 0
    with torch.no_grad():
        lg = log_gr.detach()
        tau_d = tau.detach()
        for it in range(1, max_iter + 1):
            z, grad, hess = stats(lam, lg, tau_d)
            res = grad.abs().amax(-1)
            if bool((res < tol).all()):
                break
            step = newton_step(grad, hess)
            f0 = torch.logsumexp(z, -1) - lam[:, 1] * tau_d
            # objective along the step for every candidate length (B, nt)
            dz = step[:, :1] * x1 + step[:, 1:] * x2  # (B, n)
            zt = z[:, None, :] + ts[None, :, None] * dz[:, None, :]
            ft = torch.logsumexp(zt, -1) - (lam[:, 1:] + ts[None, :] * step[:, 1:]) * tau_d[:, None]
            slope = (grad * step).sum(-1)  # < 0 for a descent direction
            ok = ft <= f0[:, None] + 1e-4 * ts[None, :] * slope[:, None] + 1e-15 * f0.abs()[:, None]
            # largest admissible step; if none is admissible take the smallest
            first = torch.where(ok.any(-1), ok.to(torch.int64).argmax(-1), torch.full_like(res, len(ts) - 1, dtype=torch.int64))
            t = ts[first]
            t = torch.where(res < tol, torch.zeros_like(t), t)
            lam = lam + t[:, None] * step
        _, grad, _ = stats(lam, lg, tau_d)
        residual = grad.abs().amax(-1)
    # one differentiable Newton step at the converged multipliers
    _, grad, hess = stats(lam, log_gr, tau)
    lam = lam + newton_step(grad, hess)
    logg = log_gr + lam[:, :1] * x1 + lam[:, 1:] * x2
    logg = logg - torch.logsumexp(logg, -1, keepdim=True) - math.log(dxi)
    # step 4: exact mass and momentum by a linear factor close to 1
    g = torch.exp(logg)
    m0 = g.sum(-1) * dxi
    m1 = (g * x1).sum(-1) * dxi
    m2 = (g * x2).sum(-1) * dxi
    det = m0 * m2 - m1 * m1
    c0 = m2 / det
    c1 = -m1 / det
    factor = c0[:, None] + c1[:, None] * x1
    logg = logg + torch.log(factor)
    g = g * factor
    e_par = (g * x2).sum(-1) * dxi
    logh = log_hr - torch.logsumexp(log_hr, -1, keepdim=True) - math.log(dxi) + torch.log(3.0 - e_par)[:, None]
    return {"G": g, "H": torch.exp(logh), "logG": logg, "logH": logh, "tau": tau,
            "newton_residual": residual, "iterations": torch.tensor(it)}


def shape_entropy_t(G: torch.Tensor, logG: torch.Tensor, logH: torch.Tensor, dxi: float) -> torch.Tensor:
    """η̂ = Σ ĝ [2 ln ĝ − ln ĥ − ln π − 1] Δξ from log-shapes (B, n) → (B,)."""
    return (G * (2.0 * logG - logH - _LN_PI - 1.0)).sum(-1) * dxi


class ShapeDecoder(nn.Module):
    """Φ(W) → (ĝ, ĥ) on the ξ grid; see the module docstring."""

    def __init__(self, grid: XiGrid, M: int, hidden: Sequence[int] = (64, 64), tau_min: float = 0.02) -> None:
        super().__init__()
        self.grid = grid
        self.M = int(M)
        self.hidden = [int(w) for w in hidden]
        self.tau_min = float(tau_min)
        self.net = mlp(self.M, self.hidden, 2 * grid.n)
        phi, _ = maxwellian_shape(grid)
        self.register_buffer("xi", torch.as_tensor(grid.xi, dtype=DTYPE))
        self.register_buffer("log_phi", torch.log(torch.as_tensor(phi, dtype=DTYPE)))
        self.register_buffer("w_scale", torch.ones(self.M, dtype=DTYPE))

    def raw(self, W: torch.Tensor, W_eq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (W - W_eq) / self.w_scale
        out = self.net(z) - self.net(torch.zeros_like(z[:1]))
        n = self.grid.n
        return self.log_phi + out[:, :n], math.log(2.0) + self.log_phi + out[:, n:]

    def forward(self, W: torch.Tensor, W_eq: torch.Tensor) -> dict[str, torch.Tensor]:
        lg, lh = self.raw(W, W_eq)
        out = conservative_projection(lg, lh, self.xi, self.grid.dxi, self.tau_min)
        out["eta"] = shape_entropy_t(out["G"], out["logG"], out["logH"], self.grid.dxi)
        return out


class MomentAutoencoder(nn.Module):
    """Encoder Ψ (learned or Hermite) + decoder Φ on one ξ grid.

    Parameters
    ----------
    encoder : "learned" or "hermite".
    M : number of generalized moments.
    xi_max, n_xi : the ξ grid (``shape.XiGrid``).
    encoder_hidden : hidden widths of the learned a(ξ), b(ξ) network (ignored for Hermite).
    decoder_hidden : hidden widths of the decoder MLP.
    hermite_basis : "orders" or "graded" (``shape.hermite_terms``; ignored for the learned encoder).
    tau_min : lower bound of the decoded parallel temperature ∫ ξ² ĝ dξ.
    stress_heat_moments : learned encoder only: W_0, W_1 fixed to 1 + σ/(ρT) and q/(ρT^{3/2}).
    flux_moments : learned encoder with stress_heat_moments only: also W_2 = ∫ ξ³ ĝ and
        W_3 = ½ ∫ (ξ⁴ ĝ + ξ² ĥ) fixed, the fluxes of W_0 and W_1 (``encoders.LearnedEncoder``).
    """

    def __init__(
        self,
        encoder: str = "learned",
        M: int = 3,
        xi_max: float = 6.0,
        n_xi: int = 96,
        encoder_hidden: Sequence[int] = (32, 32),
        decoder_hidden: Sequence[int] = (64, 64),
        hermite_basis: str = "orders",
        tau_min: float = 0.02,
        stress_heat_moments: bool = False,
        flux_moments: bool = False,
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; choose one of {ENCODERS}")
        self.kwargs: dict[str, Any] = {
            "encoder": str(encoder), "M": int(M), "xi_max": float(xi_max), "n_xi": int(n_xi),
            "encoder_hidden": [int(w) for w in encoder_hidden], "decoder_hidden": [int(w) for w in decoder_hidden],
            "hermite_basis": str(hermite_basis), "tau_min": float(tau_min),
            "stress_heat_moments": bool(stress_heat_moments),
        }
        if flux_moments:  # only when set: checkpoints without it keep their kwargs
            self.kwargs["flux_moments"] = True
        self.grid = XiGrid(float(xi_max), int(n_xi))
        self.M = int(M)
        self.encoder: ShapeEncoder
        if encoder == "learned":
            self.encoder = LearnedEncoder(self.grid, self.M, encoder_hidden, bool(stress_heat_moments),
                                          bool(flux_moments))
        else:
            self.encoder = HermiteEncoder(self.grid, self.M, hermite_basis)
        self.decoder = ShapeDecoder(self.grid, self.M, decoder_hidden, tau_min)

    def encode(self, G: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        """(B, n_xi) shapes → (B, M) moments W."""
        return self.encoder(G, H)

    def w_eq(self) -> torch.Tensor:
        return self.encoder.w_eq()

    def decode(self, W: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, M) → dict with G, H, logG, logH (B, n_xi), eta (B,) = η̂ of the decoded shape."""
        return self.decoder(W, self.w_eq())

    def forward(self, G: torch.Tensor, H: torch.Tensor) -> dict[str, torch.Tensor]:
        W = self.encode(G, H)
        out = self.decode(W)
        out["W"] = W
        return out

    @torch.no_grad()
    def set_input_scale(self, W: torch.Tensor) -> None:
        """Scale the decoder input by the spread of (W − W_eq) over training data (B, M)."""
        d = W - self.w_eq()
        s = torch.sqrt((d * d).mean(0)).clamp(min=1e-6)
        self.decoder.w_scale.copy_(s)


def build_model(**kwargs: Any) -> MomentAutoencoder:
    """Construct from the constructor kwargs stored in a checkpoint."""
    return MomentAutoencoder(**kwargs)
