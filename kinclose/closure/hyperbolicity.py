"""Characteristic speeds of the closed moment system and a hyperbolicity penalty (DESIGN §6; torch).

Closed system in the frame (u*, T*) frozen at the state (δ = (u − u*)/√T*, τ = √(T/T*)):

    ∂t Q + ∂x Φ(Q) = 0,   Q = (ρ, ρu, E, Z),  Z = ρ m(W; δ, τ),
    Φ = (ρu, ρu² + p + σ, (E + p + σ)u + q, ρ[u m + √T k]),  σ = p σ̂(W), q = ρT^{3/2} q̂(W).

Its Jacobian A = (∂Φ/∂P)(∂Q/∂P)⁻¹, P = (U, W), has eigenvalues λ = u + √T λ̂(W) for a Galilean and
scaling invariant closure, so hyperbolicity is a property of W alone. The system is hyperbolic at W
when every λ̂ is real; the Rusanov flux of the reduced solver is stable when |λ̂| ≤ ξ_max.

:func:`closed_flux_jacobian` builds A by autograd for any (σ̂, q̂)(W) and (m, k)(W; δ, τ) (an ensemble
mean or one member); :func:`hyperbolicity_penalty` is the training term

    h(W) = Σ_i (Im λ̂_i)² + Σ_i max(|Re λ̂_i| − s_max, 0)²,

differentiable through ``torch.linalg.eigvals`` (zero exactly when the system is hyperbolic with
speeds below s_max). Shapes: U (n, 3), W (n, M), A (n, 3 + M, 3 + M), λ (n, 3 + M).
"""

from __future__ import annotations

from typing import Callable

import torch

StressHeatFn = Callable[[torch.Tensor], torch.Tensor]
"""W (n, M) → (σ̂, q̂) (n, 2)."""
FrameFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""W (n, M), δ (n,), τ (n,) → m (n, M), k (n, M)."""


def closed_system_jacobians(stress_heat: StressHeatFn, frame: FrameFn, U: torch.Tensor, W: torch.Tensor,
                            frame_derivatives: bool = True, create_graph: bool = False
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂Φ/∂P, ∂Q/∂P), each (n, d, d), d = 3 + M, of the closed system (module docstring) at U (n, 3),
    W (n, M), P = (U, W).

    ``frame_derivatives=False`` holds δ = 0, τ = 1 fixed (Q = (U, ρW)); ``create_graph=True`` keeps them
    differentiable with respect to the networks' parameters (for training). Both come from one
    vectorized reverse-mode pass (``torch.func.vmap`` of ``jacrev`` over the states) instead of 2d
    backward passes; the frame (u*, T*) = (u, T) of each state is a constant of the differentiation.
    """
    from torch.func import jacrev, vmap

    P = torch.cat([U, W], dim=1).detach()
    rho0 = P[:, 0]
    u0 = P[:, 1] / rho0
    T0 = (2.0 * P[:, 2] / rho0 - u0 * u0) / 3.0

    def flux_and_state(p: torch.Tensor, u_ref: torch.Tensor, T_ref: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        p = p[None]  # one state (1, d): the networks take batches
        rho = p[:, 0]
        u = p[:, 1] / rho
        T = (2.0 * p[:, 2] / rho - u * u) / 3.0
        Wt = p[:, 3:]
        if frame_derivatives:
            delta = (u - u_ref) / torch.sqrt(T_ref)
            tau = torch.sqrt(T / T_ref)
        else:
            delta = torch.zeros_like(rho)
            tau = torch.ones_like(rho)
        sh = stress_heat(Wt)
        m, k = frame(Wt, delta, tau)
        pr = rho * T
        sig = pr * sh[:, 0]
        q = rho * T ** 1.5 * sh[:, 1]
        flux = torch.cat([torch.stack([rho * u, rho * u * u + pr + sig, (p[:, 2] + pr + sig) * u + q], 1),
                          rho[:, None] * (u[:, None] * m + torch.sqrt(T)[:, None] * k)], dim=1)
        Q = torch.cat([p[:, :3], rho[:, None] * m], dim=1)
        return flux[0], Q[0]

    with torch.enable_grad() if create_graph else torch.no_grad():
        return vmap(jacrev(flux_and_state, argnums=0))(P, u0, T0)  # (n, d, d): J[:, i, j] = ∂_i/∂P_j


def closed_flux_jacobian(stress_heat: StressHeatFn, frame: FrameFn, U: torch.Tensor, W: torch.Tensor,
                         frame_derivatives: bool = True, create_graph: bool = False) -> torch.Tensor:
    """A = (∂Φ/∂P)(∂Q/∂P)⁻¹ (n, d, d) of the closed system at U (n, 3), W (n, M); arguments as for
    :func:`closed_system_jacobians`."""
    JF, JQ = closed_system_jacobians(stress_heat, frame, U, W, frame_derivatives, create_graph)
    with torch.enable_grad() if create_graph else torch.no_grad():
        # A = JF JQ^{-1}  ⇔  JQᵀ Aᵀ = JFᵀ
        return torch.linalg.solve(JQ.transpose(1, 2), JF.transpose(1, 2)).transpose(1, 2)


def eigenvalues(A: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues (n, d) of A (n, d, d), computed on the CPU (differentiable; why: the batched
    non-symmetric eigensolver on CUDA took 30 ms for 64 7×7 matrices on an H200, LAPACK 0.4 ms)."""
    return torch.linalg.eigvals(A.cpu()).to(A.device)


def normalized_state(n: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """U (n, 3) of ρ = 1, u = 0, T = 1 (E = 3/2), where λ = λ̂."""
    return torch.tensor([1.0, 0.0, 1.5], dtype=dtype, device=device).expand(n, 3).clone()


def hyperbolicity_penalty(lam: torch.Tensor, s_max: float) -> torch.Tensor:
    """(n,) h = Σ (Im λ̂)² + Σ max(|Re λ̂| − s_max, 0)² of normalized eigenvalues λ̂ (n, d) complex."""
    return (lam.imag ** 2).sum(1) + (torch.relu(lam.real.abs() - float(s_max)) ** 2).sum(1)


def extrapolated_states(W: torch.Tensor, w_eq: torch.Tensor, stretch: float, generator: torch.Generator
                        ) -> torch.Tensor:
    """States W_eq + s (W − W_eq), s ~ U(0, stretch) per row (n, M): the segment from equilibrium through
    each training state and beyond it, where a solver goes when it leaves the training range."""
    s = (torch.rand(W.shape[0], 1, generator=generator, dtype=W.dtype) * float(stretch)).to(W.device)
    return w_eq[None, :] + s * (W - w_eq[None, :])


def member_penalty(member: torch.nn.Module, W: torch.Tensor, s_max: float, create_graph: bool = True) -> torch.Tensor:
    """Mean hyperbolicity penalty of one :class:`~kinclose.closure.networks.ClosureMember` at W (n, M),
    differentiable in its parameters unless ``create_graph=False`` (evaluation only); rows whose
    eigen-decomposition is not finite are dropped."""
    A = closed_flux_jacobian(member.stress_heat, member.frame, normalized_state(W.shape[0], W.dtype, W.device), W,
                             create_graph=create_graph)
    ok = torch.isfinite(A).all(2).all(1)
    if not bool(ok.any()):
        return torch.zeros((), dtype=W.dtype, device=W.device)
    h = hyperbolicity_penalty(eigenvalues(A[ok]), s_max)
    h = h[torch.isfinite(h)]
    return h.mean() if h.numel() else torch.zeros((), dtype=W.dtype, device=W.device)
