"""Differentiable, batched torch version of the reduced solver's step (for training a closure a posteriori).

The same scheme as :class:`kinclose.reduced.solver.ReducedSolver` (its module docstring states the
equations): MUSCL reconstruction of (ρ, u, T, W), Rusanov flux of W in the frame of each cell, the
Rusanov or Knudsen-weighted ``ap`` flux of U, the frame update m(W'; δ', τ') = Z/ρ' by fixed-point
iteration, and the ARS(2,2,2) IMEX step with the implicit BGK relaxation R_a W = (W + aν W_eq)/(1 + aν).
Periodic boundaries, or reservoirs (``left``/``right`` primitive states of every problem, W = W_eq in the
two ghost cells at each end: ``ReducedSolver(bc="reservoir", outflow="reservoir")``), the exact BGK source, and the closure's ensemble mean as torch functions
(``stress_heat(W) → (n, 2)``, ``frame(W, δ, τ) → (m, k)``, e.g. ``Ensemble.mean_stress_heat`` /
``Ensemble.mean_frame``), so that gradients of a loss on the solution flow into the closure's parameters.

Batched over B independent problems on the same grid: U (B, nx, 3), W (B, nx, M), per-problem Δt and
μ_ref (B,). In float64 with the torch closure it reproduces ``ReducedSolver`` with
``LearnedClosure(inference="torch")`` to round-off (tests/unit/test_reduced_differentiable.py).
Nothing here checks positivity: :meth:`TorchReducedSolver.valid` tells which problems stayed physical,
so a training loop can drop the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kinclose.physics import GAMMA

Tensor = torch.Tensor
StressHeatFn = Callable[[Tensor], Tensor]
FrameFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


def primitive_t(U: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """U = (ρ, ρu, E) (..., 3) → ρ, u, T (...)."""
    rho = U[..., 0]
    u = U[..., 1] / rho
    T = (U[..., 2] / rho - 0.5 * u * u) / 1.5
    return rho, u, T


def conservative_t(rho: Tensor, u: Tensor, T: Tensor) -> Tensor:
    """(ρ, u, T) (...) → U (..., 3)."""
    return torch.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T], dim=-1)


def limited_slope_t(a: Tensor, b: Tensor, limiter: str) -> Tensor:
    """Limited slope of backward/forward differences a, b: minmod or monotonized central (MC)."""
    same = a * b > 0
    if limiter == "minmod":
        s = torch.sign(a) * torch.minimum(a.abs(), b.abs())
    else:
        s = torch.sign(a) * torch.minimum(torch.minimum(2 * a.abs(), 2 * b.abs()), 0.5 * (a + b).abs())
    return torch.where(same, s, torch.zeros_like(s))


def euler_flux_t(rho: Tensor, u: Tensor, T: Tensor) -> Tensor:
    """Euler flux (ρu, ρu² + p, (E + p)u) (..., 3)."""
    p = rho * T
    E = 0.5 * rho * u * u + 1.5 * p
    return torch.stack([rho * u, rho * u * u + p, (E + p) * u], dim=-1)


def hllc_t(rl: Tensor, ul: Tensor, pl: Tensor, rr: Tensor, ur: Tensor, pr: Tensor, gamma: float = GAMMA) -> Tensor:
    """HLLC flux (Toro) with Einfeldt wave-speed bounds of primitive (ρ, u, p) face states (...) → (..., 3);
    the formula of ``kinclose.macro._kernels._hllc``."""
    gm1 = gamma - 1.0
    El = pl / gm1 + 0.5 * rl * ul * ul
    Er = pr / gm1 + 0.5 * rr * ur * ur
    cl = torch.sqrt(gamma * pl / rl)
    cr = torch.sqrt(gamma * pr / rr)
    sl_, sr_ = torch.sqrt(rl), torch.sqrt(rr)
    ua = (sl_ * ul + sr_ * ur) / (sl_ + sr_)
    Ha = (sl_ * (El + pl) / rl + sr_ * (Er + pr) / rr) / (sl_ + sr_)
    ca = torch.sqrt(torch.clamp(gm1 * (Ha - 0.5 * ua * ua), min=1e-300))
    SL = torch.minimum(ul - cl, ua - ca)
    SR = torch.maximum(ur + cr, ua + ca)
    FL = torch.stack([rl * ul, rl * ul * ul + pl, (El + pl) * ul], dim=-1)
    FR = torch.stack([rr * ur, rr * ur * ur + pr, (Er + pr) * ur], dim=-1)
    SM = (pr - pl + rl * ul * (SL - ul) - rr * ur * (SR - ur)) / (rl * (SL - ul) - rr * (SR - ur))

    def star(r: Tensor, u: Tensor, p: Tensor, E: Tensor, S: Tensor, F: Tensor) -> Tensor:
        fac = r * (S - u) / (S - SM)
        s = torch.stack([fac, fac * SM, fac * (E / r + (SM - u) * (SM + p / (r * (S - u))))], dim=-1)
        return F + S[..., None] * (s - torch.stack([r, r * u, E], dim=-1))

    star_l = star(rl, ul, pl, El, SL, FL)
    star_r = star(rr, ur, pr, Er, SR, FR)
    out = torch.where((SM >= 0)[..., None], star_l, star_r)
    out = torch.where((SR <= 0)[..., None], FR, out)
    return torch.where((SL >= 0)[..., None], FL, out)


class TorchReducedSolver:
    """Batched differentiable reduced solver on a grid of cells of width ``dx``, periodic or between reservoirs.

    Parameters
    ----------
    stress_heat : W (n, M) → (σ̂, q̂) (n, 2).
    frame : W (n, M), δ (n,), τ (n,) → m, k (n, M) with m(W; 0, 1) = W.
    w_eq : (M,) moments of the Maxwellian shape.
    xi_max : Rusanov wave-speed bound |λ − u|/√T.
    dx : cell width; omega : VHS exponent (ν = ρ T^{1−ω}/μ_ref).
    flux : "ap" or "rusanov" (flux of U, as ``ReducedSolver``); limiter : "mc" or "minmod".
    fixed_point_iters : iterations of the frame update.
    left, right : None (periodic) or (B, 3) primitive (ρ, u, T) reservoir states of each problem (the ghost
        cells at that end hold them with W = W_eq); a solver with reservoirs steps batches of exactly B.
    """

    def __init__(self, stress_heat: StressHeatFn, frame: FrameFn, w_eq: Tensor, xi_max: float, dx: float,
                 omega: float = 0.5, flux: str = "ap", limiter: str = "mc", fixed_point_iters: int = 2,
                 left: Tensor | None = None, right: Tensor | None = None) -> None:
        if flux not in ("ap", "rusanov"):
            raise ValueError(f"unknown flux {flux!r}; choose 'ap' or 'rusanov'")
        if limiter not in ("mc", "minmod"):
            raise ValueError(f"unknown limiter {limiter!r}; choose 'mc' or 'minmod'")
        if not (math.isfinite(xi_max) and xi_max > 0 and math.isfinite(dx) and dx > 0):
            raise ValueError(f"xi_max={xi_max!r} and dx={dx!r} must be positive and finite")
        self.stress_heat, self.frame_fn = stress_heat, frame
        self.w_eq = w_eq
        self.xi_max, self.dx, self.omega = float(xi_max), float(dx), float(omega)
        self.flux, self.limiter, self.iters = flux, limiter, int(fixed_point_iters)
        if (left is None) != (right is None):
            raise ValueError("reservoir boundaries need both left and right states")
        if left is not None:
            if left.ndim != 2 or left.shape[1] != 3 or right.shape != left.shape:
                raise ValueError(f"left/right reservoir states must both be (B, 3), got {tuple(left.shape)} and "
                                 f"{tuple(right.shape)}")
            if not bool(((left[:, 0] > 0) & (left[:, 2] > 0) & (right[:, 0] > 0) & (right[:, 2] > 0)).all()):
                raise ValueError("reservoir states need positive density and temperature")
        self.left, self.right = left, right

    # ----------------------------------------------------------------- closure calls on (B, n, ·) arrays
    def _sh(self, W: Tensor) -> Tensor:
        B, n, M = W.shape
        return self.stress_heat(W.reshape(B * n, M)).reshape(B, n, 2)

    def _frame(self, W: Tensor, delta: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
        B, n, M = W.shape
        m, k = self.frame_fn(W.reshape(B * n, M), delta.reshape(B * n), tau.reshape(B * n))
        return m.reshape(B, n, M), k.reshape(B, n, M)

    # ----------------------------------------------------------------- pieces
    def max_speed(self, U: Tensor) -> Tensor:
        """(B,) max over cells of |u| + ξ_max √T."""
        _, u, T = primitive_t(U)
        return (u.abs() + self.xi_max * torch.sqrt(T)).amax(dim=1)

    def dt_max(self, U: Tensor, cfl: float = 0.5) -> Tensor:
        """(B,) stable step cfl Δx / max(|u| + ξ_max √T) of each problem."""
        return cfl * self.dx / self.max_speed(U)

    def _nu(self, rho: Tensor, T: Tensor, mu_ref: Tensor) -> Tensor:
        return rho * T ** (1.0 - self.omega) / mu_ref[:, None]

    def _padded(self, P: Tensor) -> Tensor:
        """(B, nx, 3 + M) primitive states with two ghost cells at each end: periodic copies or reservoirs."""
        if self.left is None:
            return torch.cat([P[:, -2:], P, P[:, :2]], dim=1)
        B, M = P.shape[0], P.shape[2] - 3
        if self.left.shape[0] != B:
            raise ValueError(f"this solver's reservoirs are for {self.left.shape[0]} problems, got a batch of {B}")
        w = self.w_eq.to(P.dtype).expand(B, M)

        def ghost(s: Tensor) -> Tensor:
            return torch.cat([s.to(P.dtype), w], dim=-1)[:, None].expand(B, 2, M + 3)

        return torch.cat([ghost(self.left), P, ghost(self.right)], dim=1)

    def _rates(self, U: Tensor, W: Tensor, mu_ref: Tensor) -> tuple[Tensor, Tensor]:
        """dU (B, nx, 3) and dZ (B, nx, M) = −(flux differences)/Δx, dZ in the frame of each cell."""
        rho, u, T = primitive_t(U)
        P = torch.cat([torch.stack([rho, u, T], dim=-1), W], dim=-1)  # (B, nx, 3 + M)
        Pp = self._padded(P)  # (B, nx + 4, 3 + M)
        d = Pp[:, 1:] - Pp[:, :-1]
        slope = limited_slope_t(d[:, :-1], d[:, 1:], self.limiter)  # padded cells 1 … nx+2
        sl = Pp[:, 1:-2] + 0.5 * slope[:, :-1]  # faces f = 0 … nx, between cells f−1 and f
        sr = Pp[:, 2:-1] - 0.5 * slope[:, 1:]
        nf = sl.shape[1]
        sh = self._sh(torch.cat([sl[..., 3:], sr[..., 3:]], dim=1))

        def closed_flux(s: Tensor, shs: Tensor) -> tuple[Tensor, Tensor]:
            r, v, t = s[..., 0], s[..., 1], s[..., 2]
            p = r * t
            sig = p * shs[..., 0]
            q = r * t**1.5 * shs[..., 1]
            Us = conservative_t(r, v, t)
            F = torch.stack([r * v, r * v * v + p + sig, (Us[..., 2] + p + sig) * v + q], dim=-1)
            return F, Us

        F_l, U_l = closed_flux(sl, sh[:, :nf])
        F_r, U_r = closed_flux(sr, sh[:, nf:])
        a = torch.maximum(sl[..., 1].abs() + self.xi_max * torch.sqrt(sl[..., 2]),
                          sr[..., 1].abs() + self.xi_max * torch.sqrt(sr[..., 2]))  # (B, nf)
        Fhat = 0.5 * (F_l + F_r) - 0.5 * a[..., None] * (U_r - U_l)
        if self.flux == "ap":
            def kappa(s: Tensor) -> Tensor:
                return self.xi_max * torch.sqrt(s[..., 2]) / (self._nu(s[..., 0], s[..., 2], mu_ref) * self.dx)

            k2 = torch.maximum(kappa(sl), kappa(sr)) ** 2
            theta = (k2 / (1.0 + k2))[..., None]
            H = hllc_t(sl[..., 0], sl[..., 1], sl[..., 0] * sl[..., 2], sr[..., 0], sr[..., 1], sr[..., 0] * sr[..., 2])
            N = 0.5 * ((F_l - euler_flux_t(sl[..., 0], sl[..., 1], sl[..., 2]))
                       + (F_r - euler_flux_t(sr[..., 0], sr[..., 1], sr[..., 2])))
            Fhat = theta * Fhat + (1.0 - theta) * (H + N)
        if self.left is None:
            Fhat = torch.cat([Fhat[:, :-1], Fhat[:, :1]], dim=1)  # periodic: faces 0 and nx are one face
        dU = -(Fhat[:, 1:] - Fhat[:, :-1]) / self.dx
        # W fluxes through the right (f = j+1) and left (f = j) faces of cell j, in the frame of cell j
        states = torch.cat([sl[:, 1:], sr[:, 1:], sl[:, :-1], sr[:, :-1]], dim=1)  # (B, 4 nx, 3 + M)
        uf, Tf = u.repeat(1, 4), T.repeat(1, 4)
        r, v, t = states[..., 0], states[..., 1], states[..., 2]
        m, k = self._frame(states[..., 3:], (v - uf) / torch.sqrt(Tf), torch.sqrt(t / Tf))
        G = r[..., None] * (v[..., None] * m + torch.sqrt(t)[..., None] * k)
        Q = r[..., None] * m
        nx = U.shape[1]
        af = torch.cat([a[:, 1:], a[:, 1:], a[:, :-1], a[:, :-1]], dim=1)[..., None]

        def rusanov(i: int) -> Tensor:
            lo, hi = slice(2 * i * nx, (2 * i + 1) * nx), slice((2 * i + 1) * nx, (2 * i + 2) * nx)
            return 0.5 * (G[:, lo] + G[:, hi]) - 0.5 * af[:, lo] * (Q[:, hi] - Q[:, lo])

        return dU, -(rusanov(0) - rusanov(1)) / self.dx

    def _frame_solve(self, Z: Tensor, delta: Tensor, tau: Tensor, W0: Tensor) -> Tensor:
        W = W0
        for _ in range(self.iters):
            m, _ = self._frame(W, delta, tau)
            W = W + (Z - m)
        return W

    def _advance(self, U: Tensor, W: Tensor, dU: Tensor, dZ: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        rho, u, T = primitive_t(U)
        hb = h[:, None, None]
        Z = rho[..., None] * W + hb * dZ
        U_new = U + hb * dU
        rho_n, u_n, T_n = primitive_t(U_new)
        W_new = self._frame_solve(Z / rho_n[..., None], (u_n - u) / torch.sqrt(T), torch.sqrt(T_n / T), W)
        return U_new, W_new

    def _relax(self, U: Tensor, W: Tensor, a: Tensor, mu_ref: Tensor) -> Tensor:
        rho, _, T = primitive_t(U)
        an = (a[:, None] * self._nu(rho, T, mu_ref))[..., None]
        return (W + an * self.w_eq) / (1.0 + an)

    def _combine(self, parts: list[tuple[float, Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        U = sum(c * Uk for c, Uk, _ in parts)
        rho, u, T = primitive_t(U)
        Z = 0.0
        for c, Uk, Wk in parts:
            rk, uk, Tk = primitive_t(Uk)
            m, _ = self._frame(Wk, (uk - u) / torch.sqrt(T), torch.sqrt(Tk / T))
            Z = Z + c * rk[..., None] * m
        return U, Z / rho[..., None]

    # ----------------------------------------------------------------- stepping
    def step(self, U: Tensor, W: Tensor, dt: Tensor, mu_ref: Tensor) -> tuple[Tensor, Tensor]:
        """One ARS(2,2,2) IMEX step (``ReducedSolver.step``) of every problem with its own Δt (B,) and
        μ_ref (B,); returns the new U (B, nx, 3), W (B, nx, M)."""
        g = 1.0 - 1.0 / math.sqrt(2.0)
        d = 1.0 - 1.0 / (2.0 * g)
        c = (1.0 - g) / g
        dt, mu_ref = dt.to(U.dtype), mu_ref.to(U.dtype)
        dU0, dZ0 = self._rates(U, W, mu_ref)
        U2, W2 = self._advance(U, W, dU0, dZ0, g * dt)
        W2 = self._relax(U2, W2, g * dt, mu_ref)
        dU2, dZ2 = self._rates(U2, W2, mu_ref)
        UA, WA = self._advance(U, W, dU0, dZ0, dt)
        UB, WB = self._advance(U2, W2, dU2, dZ2, dt * (1.0 - d) / c)
        U3, W3 = self._combine([(1.0 - c, UA, WA), (c, UB, WB)])
        return U3, self._relax(U3, W3, g * dt, mu_ref)

    def fields(self, U: Tensor, W: Tensor) -> Tensor:
        """(B, nx, 5) ρ, u, T, σ = ρT σ̂, q = ρT^{3/2} q̂."""
        rho, u, T = primitive_t(U)
        sh = self._sh(W)
        return torch.stack([rho, u, T, rho * T * sh[..., 0], rho * T**1.5 * sh[..., 1]], dim=-1)

    @staticmethod
    def valid(U: Tensor, W: Tensor) -> Tensor:
        """(B,) bool: every cell finite with ρ > 0 and T > 0."""
        rho, u, T = primitive_t(U)
        ok = torch.isfinite(rho) & (rho > 0) & torch.isfinite(T) & (T > 0) & torch.isfinite(u)
        return ok.all(dim=1) & torch.isfinite(W).all(dim=2).all(dim=1)
