"""Linear response around the rest Maxwellian: the BGK equation and a closed moment system.

A perturbation e^{ikx} of the state ρ = T = 1, u = 0 (so √T = 1) relaxing with the BGK frequency ν.
By Galilean and scale invariance the response depends only on the mode's Knudsen number and time

    Kn_k = k/ν,   s = k t     (Kn_k = k μ_ref at ρ = T = 1; with ε = λ_ref/L, μ_ref = ``mu_ref_for_knudsen``),

so everything below takes k = 1, ν = 1/Kn_k, t = s. The response matrix R(s) (3, 3) complex maps a
Maxwellian initial perturbation (δρ, δu, δT)(0) to (δρ, δu, δT)(s) (Fourier amplitudes).

**Kinetic** (Chu-reduced BGK, linearized; NumPy): on velocity nodes ξ_j (midpoint rule, weight Δξ)

    d/dt (δg, δh)_j = −i ξ_j (δg, δh)_j + ν [(δM_g, δM_h)_j − (δg, δh)_j],
    δM_g = φ [δρ + ξ δu + ½(ξ² − 1) δT],   δM_h = 2φ [δρ + ξ δu + ½(ξ² + 1) δT],   φ = e^{−ξ²/2}/√(2π),

with δρ = Σ δg Δξ, δu = Σ ξ δg Δξ, δT = ⅔ δE − δρ, δE = ½ Σ (ξ² δg + δh) Δξ; R = C e^{L s} B for the
(2n, 2n) matrix L, B the Maxwellian of a unit (δρ, δu, δT), C the moments.

**Closed system** (torch, differentiable): in P = (ρ, ρu, E, W), with the Jacobians J_F = ∂Φ/∂P and
J_Q = ∂Q/∂P of :func:`kinclose.closure.hyperbolicity.closed_system_jacobians` at (1, 0, 3/2, W_eq),

    d/dt δP = L δP,   L = −i J_Q⁻¹ J_F − ν E_W,

E_W the projector on the W rows: the BGK source ν(W_eq − W) of the normalized moments in the cell's
own frame (the reduced solver's ``_relax``), which leaves U unchanged. Maxwellian initial data have
δW = 0. This is the linearization of the equations the reduced solver discretizes; its damping and
phase speed are the grid-free limit of ``kinclose.bench.linear``.

:func:`linear_response_penalty` is the closure-training term: |R_closed − R_kinetic|² over a fixed set of
(Kn_k, s), relative per Kn_k to the size of the kinetic response's departure from the inviscid (Euler)
one; the kinetic targets come from :func:`kinetic_response` (computed once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

_TO_U = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.5, 0.0, 1.5]])
"""(δρ, δu, δT) → δU = (δρ, δ(ρu), δE) at ρ = T = 1, u = 0."""
_FROM_U = np.linalg.inv(_TO_U)


def _velocity_nodes(xi_max: float, n: int) -> tuple[NDArray, float]:
    dxi = 2.0 * xi_max / n
    return -xi_max + dxi * (np.arange(n) + 0.5), dxi


def kinetic_generator(kn: float, xi_max: float = 8.0, n: int = 256) -> tuple[NDArray, NDArray, NDArray]:
    """(L (2n, 2n), B (2n, 3), C (3, 2n)) of the linearized Chu-reduced BGK equation at Kn_k = kn
    (module docstring): d/dt f = L f, f(0) = B (δρ, δu, δT), (δρ, δu, δT) = C f."""
    if not (kn > 0 and math.isfinite(kn)):
        raise ValueError(f"Kn_k must be positive and finite, got {kn!r}")
    xi, dxi = _velocity_nodes(xi_max, n)
    phi = np.exp(-0.5 * xi * xi) / math.sqrt(2.0 * math.pi)
    B = np.zeros((2 * n, 3))
    B[:n] = phi[:, None] * np.stack([np.ones_like(xi), xi, 0.5 * (xi * xi - 1.0)], 1)
    B[n:] = 2.0 * phi[:, None] * np.stack([np.ones_like(xi), xi, 0.5 * (xi * xi + 1.0)], 1)
    CU = np.zeros((3, 2 * n))  # f -> δU
    CU[0, :n] = dxi
    CU[1, :n] = xi * dxi
    CU[2, :n] = 0.5 * xi * xi * dxi
    CU[2, n:] = 0.5 * dxi
    C = _FROM_U @ CU
    nu = 1.0 / kn
    L = np.diag(np.concatenate([-1j * xi, -1j * xi])) - nu * np.eye(2 * n) + nu * (B @ C)
    return L, B, C


def kinetic_response(kn: float, s: NDArray, xi_max: float = 8.0, n: int = 256) -> NDArray:
    """R (len(s), 3, 3) complex of the linearized BGK equation at Kn_k = kn and times s = kt ≥ 0.

    The velocity grid must resolve the phase ξ s: Δξ · max(s) ≲ 1 (defaults: Δξ = 1/16)."""
    s = np.atleast_1d(np.asarray(s, dtype=float))
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"times s must be finite and >= 0, got {s}")
    L, B, C = kinetic_generator(kn, xi_max, n)
    lam, V = np.linalg.eig(L)
    VB = np.linalg.solve(V, B)
    CV = C @ V
    # e^{Ls} = V e^{Λs} V⁻¹ (L is diagonalizable: a rank-3 update of a diagonal with distinct entries)
    out = np.einsum("ik,sk,kj->sij", CV, np.exp(lam[None, :] * s[:, None]), VB)
    return out


def kinetic_response_expm(kn: float, s: float, xi_max: float = 8.0, n: int = 256) -> NDArray:
    """R (3, 3) by ``scipy.linalg.expm`` (the reference of :func:`kinetic_response` in the tests)."""
    L, B, C = kinetic_generator(kn, xi_max, n)
    return C @ scipy.linalg.expm(L * s) @ B


def closed_generator(stress_heat: Any, frame: Any, w_eq: Any, kn: Any, create_graph: bool = False) -> Any:
    """L (len(kn), 3 + M, 3 + M) complex torch tensor of the closed system (module docstring) at
    Kn_k values ``kn`` (sequence or tensor); ``stress_heat``, ``frame`` as in ``hyperbolicity``."""
    import torch

    from kinclose.closure.hyperbolicity import closed_system_jacobians, normalized_state

    w_eq = torch.as_tensor(w_eq, dtype=torch.float64)
    JF, JQ = closed_system_jacobians(stress_heat, frame, normalized_state(1, w_eq.dtype, w_eq.device), w_eq[None],
                                     create_graph=create_graph)
    Bm = torch.linalg.solve(JQ[0], JF[0])  # J_Q⁻¹ J_F (d, d)
    d = Bm.shape[0]
    EW = torch.diag(torch.tensor([0.0] * 3 + [1.0] * (d - 3), dtype=Bm.dtype, device=Bm.device))
    nu = 1.0 / torch.as_tensor(kn, dtype=Bm.dtype, device=Bm.device).reshape(-1, 1, 1)
    return -1j * Bm.to(torch.complex128)[None] - (nu * EW[None]).to(torch.complex128)


def closed_response(stress_heat: Any, frame: Any, w_eq: Any, kn: Any, s: Any, create_graph: bool = False) -> Any:
    """R (len(kn), len(s), 3, 3) complex torch tensor of the closed system at Kn_k ``kn``, times ``s``."""
    import torch

    L = closed_generator(stress_heat, frame, w_eq, kn, create_graph)
    s = torch.as_tensor(s, dtype=torch.float64, device=L.device).reshape(1, -1, 1, 1)
    E = torch.linalg.matrix_exp(L[:, None] * s)  # (nk, ns, d, d)
    to_u = torch.as_tensor(_TO_U, dtype=torch.complex128, device=L.device)
    from_u = torch.as_tensor(_FROM_U, dtype=torch.complex128, device=L.device)
    return from_u @ E[..., :3, :3] @ to_u


def euler_response(s: NDArray) -> NDArray:
    """R (len(s), 3, 3) of the linearized Euler equations (no dissipation): d/dt X = −i A X,
    X = (δρ, δu, δT), A = [[0, 1, 0], [1, 0, 1], [0, ⅔, 0]]."""
    A = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 2.0 / 3.0, 0.0]])
    return np.stack([scipy.linalg.expm(-1j * A * t) for t in np.atleast_1d(np.asarray(s, dtype=float))])


@dataclass(frozen=True)
class LinearResponseTargets:
    """Kinetic response on the grid kn × s (``R`` (len(kn), len(s), 3, 3) complex) and, per kn, the size
    of its departure from the inviscid response, ``scale`` = mean over s and entries |R − R_Euler|²."""

    kn: NDArray
    s: NDArray
    R: NDArray = field(repr=False)
    scale: NDArray = field(repr=False)

    @classmethod
    def compute(cls, kn: Any, s: Any, xi_max: float = 8.0, n: int = 256) -> "LinearResponseTargets":
        kn = np.asarray(kn, dtype=float).ravel()
        s = np.asarray(s, dtype=float).ravel()
        R = np.stack([kinetic_response(k, s, xi_max, n) for k in kn])
        scale = (np.abs(R - euler_response(s)[None]) ** 2).mean(axis=(1, 2, 3))
        return cls(kn, s, R, scale)


def linear_response_penalty(stress_heat: Any, frame: Any, w_eq: Any, targets: LinearResponseTargets,
                            create_graph: bool = True) -> Any:
    """Relative linear-response error (torch scalar)

        mean over Kn_k of  mean_{s, entries} |R_closed − R_kinetic|² / mean_{s, entries} |R_kinetic − R_Euler|²,

    i.e. the error of the non-inviscid part of the response relative to its size, so that small Kn_k
    (where that part is O(Kn_k s)) weigh as much as free flight."""
    import torch

    R = closed_response(stress_heat, frame, w_eq, targets.kn, targets.s, create_graph)
    ref = torch.as_tensor(targets.R, dtype=torch.complex128, device=R.device)
    scale = torch.as_tensor(targets.scale, dtype=torch.float64, device=R.device)
    return ((R - ref).abs().pow(2).mean(dim=(1, 2, 3)) / scale).mean()


def damping_and_speed(R: NDArray, s: float, mode: str) -> tuple[float, float]:
    """(Γ/k, c_φ) of ``mode`` (entropy | sound) from one response matrix R (3, 3) at time s = kt, with the
    observables of ``kinclose.bench.linear``: T − (γ−1)ρ for entropy, p/c + u for sound (c = √(5/3));
    c_φ is NaN for entropy."""
    g = 5.0 / 3.0
    c = math.sqrt(g)
    if mode == "entropy":
        x0, obs = np.array([-1.0, 0.0, 1.0]), np.array([-(g - 1.0), 0.0, 1.0])
    elif mode == "sound":
        x0, obs = np.array([1.0, c, g - 1.0]), np.array([1.0 / c, 1.0, 1.0 / c])  # δp = δρ + δT
    else:
        raise ValueError(f"unknown mode {mode!r}; choose entropy or sound")
    a0 = obs @ x0
    a = complex(obs @ (R @ x0))
    rate = -math.log(abs(a) / abs(a0)) / s
    if mode == "entropy":
        return rate, float("nan")
    # e^{−i c_φ s}: phase relative to the inviscid rotation, branch nearest to it
    dphi = np.angle(a / a0 * np.exp(1j * c * s))
    return rate, c - dphi / s
