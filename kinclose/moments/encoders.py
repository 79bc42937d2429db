"""Encoders Ψ: normalized shape (ĝ, ĥ) → generalized moments W ∈ R^M (torch; DESIGN §5).

Both encoders are linear functionals of the shape on the fixed ξ grid (kinclose.moments.shape):

    W = (1/ρ) ∫ [a(ξ) g + b(ξ) h / T] dv1 = ∫ [a(ξ) ĝ + b(ξ) ĥ] dξ ≈ Σ_k [a(ξ_k) ĝ_k + b(ξ_k) ĥ_k] Δξ,

i.e. W = (1/ρ) ∫ f w(ξ, |v⊥|²/T) dv with w = a(ξ) + b(ξ) |v⊥|²/T. Because they act on the shape,
a shift of u or a change of scale of T leaves W unchanged (Galilean and scale invariance).

* :class:`LearnedEncoder`: a, b are small MLPs ξ ↦ R^M (tanh).
* :class:`HermiteEncoder`: a, b fixed to the normalized Hermite weights (``shape.hermite_weights``),
  so W are the Hermite moments of orders 3 … 2 + M (basis "orders") or the graded Chu-reduced set
  (basis "graded"); W = 0 for a Maxwellian.

Tensors are float64: shapes (B, n_xi) in, (B, M) out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from kinclose.moments.shape import XiGrid, hermite_weights, maxwellian_shape

DTYPE = torch.float64


def mlp(n_in: int, hidden: Sequence[int], n_out: int, act: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """Fully connected network n_in → hidden… → n_out (float64), activation between layers."""
    layers: list[nn.Module] = []
    prev = n_in
    for width in hidden:
        layers += [nn.Linear(prev, int(width), dtype=DTYPE), act()]
        prev = int(width)
    layers.append(nn.Linear(prev, n_out, dtype=DTYPE))
    return nn.Sequential(*layers)


class ShapeEncoder(nn.Module):
    """Common interface: ``forward(G, H) -> W`` and ``w_eq()`` (W of the Maxwellian shape)."""

    def __init__(self, grid: XiGrid, M: int) -> None:
        super().__init__()
        self.grid = grid
        self.M = int(M)
        self.register_buffer("xi", torch.as_tensor(grid.xi, dtype=DTYPE))
        g_eq, h_eq = maxwellian_shape(grid)
        self.register_buffer("g_eq", torch.as_tensor(g_eq, dtype=DTYPE))
        self.register_buffer("h_eq", torch.as_tensor(h_eq, dtype=DTYPE))

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b), each (n_xi, M), evaluated on the ξ nodes."""
        raise NotImplementedError

    def forward(self, G: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        a, b = self.weights()
        return (G @ a + H @ b) * self.grid.dxi

    def w_eq(self) -> torch.Tensor:
        """(M,) moments of the exact Maxwellian shape (equilibrium W)."""
        return self.forward(self.g_eq[None], self.h_eq[None])[0]


FIXED_WEIGHTS = (
    (lambda x: x**2, torch.zeros_like),              # W_0 = 1 + σ̂
    (lambda x: 0.5 * x**3, lambda x: 0.5 * x),       # W_1 = q̂
    (lambda x: x**3, torch.zeros_like),              # W_2 = ∫ ξ³ ĝ, the flux of W_0
    (lambda x: 0.5 * x**4, lambda x: 0.5 * x**2),    # W_3 = ½ ∫ (ξ⁴ ĝ + ξ² ĥ), the flux of W_1
)
"""(a(ξ), b(ξ)) of the fixed moments of :class:`LearnedEncoder`, in order; the first 2 (stress_heat) or 4
(flux_moments) are used, so only those are evaluated."""


class LearnedEncoder(ShapeEncoder):
    """W = ∫ [a(ξ) ĝ + b(ξ) ĥ] dξ with a, b MLPs of ξ (outputs M each).

    With ``stress_heat=True`` the first two moments are fixed to the physical ones, a = (ξ², ξ³/2),
    b = (0, ξ/2): W_0 = 1 + σ/(ρT), W_1 = q/(ρT^{3/2}), so the flux of U is exact in W and only the
    remaining M − 2 weights are learned. ``flux_moments=True`` (with ``stress_heat``) also fixes their
    fluxes' missing parts, a = (ξ³, ξ⁴/2), b = (0, ξ²/2): W_2 = ∫ ξ³ ĝ dξ (so the flux of W_0, ∫ ξ³ ĝ,
    is W_2) and W_3 = ½ ∫ (ξ⁴ ĝ + ξ² ĥ) dξ (the flux of W_1, the contracted fourth moment); the
    remaining M − 4 weights are learned (M = 4: none, a fixed polynomial set).
    """

    def __init__(self, grid: XiGrid, M: int, hidden: Sequence[int] = (32, 32), stress_heat: bool = False,
                 flux_moments: bool = False) -> None:
        super().__init__(grid, M)
        self.hidden = [int(w) for w in hidden]
        if flux_moments and not stress_heat:
            raise ValueError("flux_moments fixes the fluxes of the stress and heat-flux moments: it needs "
                             "stress_heat_moments=true")
        self.n_fixed = 4 if flux_moments else 2 if stress_heat else 0
        if self.M < self.n_fixed or (self.n_fixed == 2 and self.M == 2):
            raise ValueError(f"stress_heat moments need M >= 3 (2 fixed + learned) and flux_moments M >= 4 "
                             f"(4 fixed + learned), got M={self.M}")
        # one network with 2(M − n_fixed) outputs = (a, b); input scaled to [-1, 1]
        self.net = mlp(1, self.hidden, 2 * (self.M - self.n_fixed)) if self.M > self.n_fixed else None

    def weights_at(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) at arbitrary points x (...), each (..., M)."""
        x1 = x[..., None]
        fixed = FIXED_WEIGHTS[: self.n_fixed]
        a = [fa(x1) for fa, _ in fixed]
        b = [fb(x1) for _, fb in fixed]
        if self.net is not None:
            ml = self.M - self.n_fixed
            out = self.net((x / self.grid.xi_max)[..., None])
            a.append(out[..., :ml])
            b.append(out[..., ml:])
        return torch.cat(a, dim=-1), torch.cat(b, dim=-1)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weights_at(self.xi)


class HermiteEncoder(ShapeEncoder):
    """W fixed to the normalized Hermite moments of the shape (no trainable parameters)."""

    def __init__(self, grid: XiGrid, M: int, basis: str = "orders") -> None:
        super().__init__(grid, M)
        self.basis = basis
        a, b = hermite_weights(grid, self.M, basis)
        self.register_buffer("a", torch.as_tensor(np.ascontiguousarray(a), dtype=DTYPE))
        self.register_buffer("b", torch.as_tensor(np.ascontiguousarray(b), dtype=DTYPE))

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a, self.b
