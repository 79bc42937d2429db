"""Finite-volume solver of the closed moment system (seed eqs. 10, 13; DESIGN Appendix).

    ∂t U + ∂x F(U, W) = 0,   U = (ρ, ρu, E),  F = (ρu, ρu² + p + σ, (E + p + σ)u + q),
    ∂t (ρ W)_Gal + ∂x G_Gal(U, W; U_j) = ν ρ (W_eq − W)      (BGK source, own frame)

with σ = ρT σ̂(W), q = ρT^{3/2} q̂(W), and G measured in the frame (u_j, T_j) of the updated cell:
G = ρ [u m(W; δ, τ) + √T k(W; δ, τ)], δ = (u − u_j)/√T_j, τ = √(T/T_j).

One step is ARS(2,2,2) IMEX as in the kinetic solver (transport explicit, relaxation implicit:
R_a W = (W + aν W_eq)/(1 + aν), ν = ρ T^{1−ω}/μ_ref, exact because collisions leave U unchanged), so
Δt is independent of ε and the O(ε) Navier–Stokes deviation of W survives the stiff limit.

Learned collision source (``source=``, e.g. :class:`kinclose.closure.source.LearnedSource` trained on
Boltzmann data): the source of ρW is ν ρ R̂(W) instead of ν ρ (W_eq − W). The implicit stage
W = W* + aν R̂(W) is solved by one of two schemes (``source_scheme``):

* ``"linearized"`` (default): one Newton step from the stage input W* (linearly implicit Euler),

      W = W* + aν (I − aν J)⁻¹ R̂(W*),   J = ∂R̂/∂W (W*) − s I,

  s = max(0, largest real part of the eigenvalues of ∂R̂/∂W(W*)) (0 for a stable source; a cell
  with s > 0 is counted in ``source_shifted_cells``). Exact for a linear source, so R̂ = W_eq − W
  gives the BGK update (to round-off), and for aν → ∞ the deviation W − W_eq = O(ε) that transport
  produces is kept with the source's own rates: the Navier–Stokes limit of the learned source.
* ``"penalized"``: the penalisation of Filbet & Jin (J. Comput. Phys. 229, 2010),
  ν R̂(W) = ν [R̂(W) − β (W_eq − W)] + ν β (W_eq − W), the bracket explicit at W*,

      W = (W* + aν [R̂(W*) − β (W_eq − W*)] + aνβ W_eq) / (1 + aνβ),

  β = ``source_beta_safety`` × ``source.beta`` (the checkpoint's β*, spectral radius of −∂R̂/∂W over
  training states). Stable for real eigenvalues of −∂R̂/∂W in [0, 2β], but for aν → ∞ a mode with rate
  λ < β keeps the factor 1 − λ/β of its deviation per stage instead of relaxing: its relaxation
  time becomes ~Δt β/λ instead of ε/λ, so the O(ε) stress and heat flux are wrong whenever Δt ≫ ε
  (exact only when every rate equals β, as for BGK with β = 1). Kept for comparison
  (both rows of ``results/boltzmann_source_strong.md``).

One forward-Euler transport operator for cell j:

1. frames Fr_j = (u_j, T_j); MUSCL (MC, minmod or smooth van Leer limiter) reconstruction of ρ, u, T, W at the faces;
2. Rusanov fluxes with speed a = max(|u| + ξ_max √T) of the two face states: F̂ for U, and for W
   Ĝ^{(j)} = ½(G_L + G_R) − ½ a (ρ_R m_R − ρ_L m_L), every term in the frame of cell j.
   With ``flux="ap"`` (default) the flux of U is the Knudsen-weighted blend

       F̂ = θ F̂_Rusanov + (1 − θ) [F̂_HLLC^Euler + ½(N_L + N_R)],   θ = κ²/(1 + κ²),
       κ = max over the two face states of ξ_max √T/(ν Δx),

   N = F − F_Euler = (0, σ, σu + q) the non-equilibrium part, κ the number of cells a
   non-equilibrium signal crosses in a collision time. Rusanov's dissipation a ≈ ξ_max √T is what
   the fast moment waves need when they survive (κ ≫ 1); when collisions damp them within a cell
   (κ ≪ 1) the system is Euler plus O(ε) and its dissipation should be Euler's (sound speed
   √(5T/3), contacts kept): the Rusanov flux would add O(Δx) viscosity ~4× the Euler scheme's
   (ξ_max = 5) that swamps the physical O(ε) one (the excess numerical viscosity of upwind schemes
   for stiff relaxation systems, Jin & Levermore, J. Comput. Phys. 126, 1996; the weight is in the
   spirit of the unified gas-kinetic scheme's, Xu & Huang, J. Comput. Phys. 229, 2010). θ → 1 without collisions
   (``flux="ap"`` equals ``"rusanov"`` bit for bit there); the flux of W stays Rusanov. The square
   sharpens the switch around κ = 1: κ/(1 + κ) left 20 % Euler flux in resolved shocks (κ ≈ 4) and
   cost them accuracy (README, "Numerical flux");
3. Z_j = ρ_j W_j − h/Δx (Ĝ^{(j)}_{j+½} − Ĝ^{(j)}_{j−½}) (moments in the old frame);
   U_j ← U_j − h/Δx (F̂_{j+½} − F̂_{j−½})  (exactly conservative);
4. new frame from the new U_j; W_j solves m(W_j; δ', τ') = Z_j/ρ_j (fixed-point iteration),
   δ' = (u'_j − u_j)/√T_j, τ' = √(T'_j/T_j).
Linear combinations of stage states are formed in the frame of the combined U the same way.

Properties: U is conserved to round-off; everything depends on velocity differences only, so a
constant velocity shift shifts the solution (Galilean invariance); no velocity grid is used.
Arrays: U (nx, 3), W (nx, M).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.macro._kernels import hllc_faces
from kinclose.physics import (
    GAMMA,
    PhysicalStateError,
    check_domain_and_gas,
    check_state,
    collision_frequency,
    conservative,
    primitive,
)
from kinclose.reduced.closure import ShapeClosure

LIMITERS = ("mc", "minmod", "vanleer")
SMOOTH_EPS = 1e-3


def _limited_slope(a: NDArray, b: NDArray, limiter: str) -> NDArray:
    """Limited slope from backward/forward differences a, b: minmod, monotonized central (MC), or the smooth
    van Leer slope (a|b|_e + b|a|_e)/(|a|_e + |b|_e), |x|_e = √(x² + e), e = 1e-3 (variables of order 1:
    ρ1 = T1 = 1): van Leer's harmonic mean 2ab/(a + b) (0 at an extremum) for |a|, |b| ≫ √e, the central
    slope (a + b)/2 for |a|, |b| ≪ √e, differentiable everywhere. It is the limiter of the implicit steady
    solver (:mod:`kinclose.reduced.steady`), whose Newton iteration stalls on the switches of MC and minmod
    (and converges only linearly when the smoothing sits at round-off-sized differences, e = 1e-12)."""
    if limiter == "vanleer":
        sa, sb = np.sqrt(a * a + SMOOTH_EPS), np.sqrt(b * b + SMOOTH_EPS)
        return (a * sb + b * sa) / (sa + sb)
    same = a * b > 0
    if limiter == "minmod":
        return np.where(same, np.sign(a) * np.minimum(np.abs(a), np.abs(b)), 0.0)
    return np.where(same, np.sign(a) * np.minimum(np.minimum(2 * np.abs(a), 2 * np.abs(b)), 0.5 * np.abs(a + b)), 0.0)


def _euler_flux(s: NDArray) -> NDArray:
    """Euler flux (ρu, ρu² + p, (E + p)u) (n, 3) of states s (n, ≥3) with columns ρ, u, T."""
    rho, u, T = s[:, 0], s[:, 1], s[:, 2]
    p = rho * T
    E = 0.5 * rho * u * u + 1.5 * p
    return np.stack([rho * u, rho * u * u + p, (E + p) * u], axis=1)


class ReducedSolver:
    """Moment-system solver on x ∈ [x_left, x_right) with ``nx`` cells.

    Parameters
    ----------
    closure : a :class:`ShapeClosure`.
    mu_ref, omega : BGK collision frequency ν = ρ T^{1−ω}/μ_ref (μ_ref = inf: no collisions).
    bc : "periodic" or "reservoir" (``left``/``right`` = (ρ, u, T), equilibrium W).
    outflow : right boundary of ``bc="reservoir"``: "reservoir" (ghost cells hold the right state) or
        "characteristic" (linearized Euler characteristics about the right state: the waves leaving the
        domain take their values from the last cell, the entering ones from the right state; W from the
        last cell if u > 0 there, else W_eq). Same steady state where the flow is uniform at the boundary;
        the shock's transients leave instead of being answered by the fixed ghost state (README "Speed").
    cfl : a Δt/Δx ≤ cfl, 0 < cfl ≤ 1 (Rusanov + Heun).
    fixed_point_iters : iterations of the frame update m(W'; δ', τ') = Z/ρ'.
    limiter : slope limiter of the reconstruction of ρ, u, T, W ("mc", "minmod", or the smooth "vanleer"
        of the implicit steady solver, :func:`_limited_slope`).
    source : None (exact BGK source ν ρ (W_eq − W), default) or an object with ``rate(W)`` (n, M) → R̂ (n, M),
        a float ``beta`` > 0 and optionally ``w_eq`` (M,) (must equal the closure's W_eq).
        For ``source_scheme="linearized"`` it also needs ``rate_jacobian(W)`` → (R̂ (n, M), ∂R̂/∂W (n, M, M)).
    source_scheme : "linearized" (Newton step with the source's Jacobian, default) or "penalized"
        (Filbet–Jin with β); module docstring.
    source_beta_safety : factor > 0 on ``source.beta`` in the penalisation (module docstring).
    flux : numerical flux of U: "ap" (Knudsen-weighted Rusanov / Euler-HLLC blend, module docstring)
        or "rusanov".
    """

    def __init__(self, x_left: float, x_right: float, nx: int, closure: ShapeClosure, mu_ref: float,
                 omega: float = 0.5, bc: str = "periodic", cfl: float = 0.5,
                 left: tuple[float, float, float] | None = None, right: tuple[float, float, float] | None = None,
                 fixed_point_iters: int = 2, limiter: str = "mc", source: Any = None,
                 source_beta_safety: float = 1.0, flux: str = "ap", source_scheme: str = "linearized",
                 outflow: str = "reservoir") -> None:
        if not (0.0 < cfl <= 1.0):
            raise ValueError(f"cfl={cfl} is outside the stable range (0, 1]; lower cfl")
        if not (isinstance(nx, (int, np.integer)) and nx >= 4):
            raise ValueError(f"nx must be an integer >= 4, got {nx!r}")
        check_domain_and_gas(x_left, x_right, mu_ref, omega)
        if bc not in ("periodic", "reservoir"):
            raise ValueError(f"unknown boundary condition {bc!r}; choose 'periodic' or 'reservoir'")
        if limiter not in LIMITERS:
            raise ValueError(f"unknown limiter {limiter!r}; choose one of {LIMITERS}")
        if flux not in ("ap", "rusanov"):
            raise ValueError(f"unknown flux {flux!r}; choose 'ap' or 'rusanov'")
        self.limiter, self.flux = limiter, flux
        if bc == "reservoir" and (left is None or right is None):
            raise ValueError("reservoir boundaries need left=(rho, u, T) and right=(rho, u, T)")
        if outflow not in ("reservoir", "characteristic"):
            raise ValueError(f"unknown outflow {outflow!r}; choose 'reservoir' or 'characteristic'")
        self.outflow = outflow
        self.x_left, self.x_right, self.nx = float(x_left), float(x_right), int(nx)
        self.dx = (self.x_right - self.x_left) / self.nx
        self.closure = closure
        self.M = closure.n_moments
        self.W_eq = np.asarray(closure.equilibrium(), dtype=float)
        self.mu_ref, self.omega = float(mu_ref), float(omega)
        self.bc, self.cfl, self.iters = bc, float(cfl), int(fixed_point_iters)
        self.left, self.right = left, right
        self.source = source
        self.source_beta = math.nan
        if source_scheme not in ("linearized", "penalized"):
            raise ValueError(f"unknown source_scheme {source_scheme!r}; choose 'linearized' or 'penalized'")
        self.source_scheme = source_scheme
        self.source_shifted_cells = 0
        if source is not None:
            if not callable(getattr(source, "rate", None)):
                raise TypeError(f"source must have a rate(W) method, got {type(source).__name__}")
            if source_scheme == "linearized" and not callable(getattr(source, "rate_jacobian", None)):
                raise TypeError(f"source_scheme='linearized' needs a source with rate_jacobian(W), "
                                f"{type(source).__name__} has none; use source_scheme='penalized'")
            if getattr(source, "n_moments", self.M) != self.M:
                raise ValueError(f"the source has {source.n_moments} moments, the closure {self.M}: they must come "
                                 "from the same moments model")
            w_eq = getattr(source, "w_eq", None)
            if w_eq is not None and not np.allclose(np.asarray(w_eq, dtype=float), self.W_eq, rtol=0, atol=1e-10):
                raise ValueError(f"the source's W_eq {np.asarray(w_eq).tolist()} differs from the closure's "
                                 f"{self.W_eq.tolist()}: source and closure must be trained on the same moments model")
            if not (math.isfinite(source_beta_safety) and source_beta_safety > 0):
                raise ValueError(f"source_beta_safety={source_beta_safety!r} must be positive and finite")
            self.source_beta = float(source.beta) * float(source_beta_safety)
            if not (math.isfinite(self.source_beta) and self.source_beta > 0):
                raise ValueError(f"the source's penalisation rate beta={source.beta!r} (x safety {source_beta_safety}) "
                                 "must be positive and finite; check the checkpoint's 'beta' metadata")
        self.U = np.zeros((nx, 3))
        self.W = np.zeros((nx, self.M))
        self.t = 0.0
        self.steps = 0

    @property
    def x(self) -> NDArray:
        return self.x_left + (np.arange(self.nx) + 0.5) * self.dx

    def set_state(self, rho: NDArray, u: NDArray, T: NDArray, W: NDArray | None = None) -> None:
        """Initial data (nx,) each; W (nx, M) defaults to the equilibrium moments (Maxwellian)."""
        check_state(rho, u, T, where="reduced initial data")
        if {np.shape(a) for a in (rho, u, T)} != {(self.nx,)}:
            raise ValueError(f"rho, u, T must have shape ({self.nx},), got {[np.shape(a) for a in (rho, u, T)]}")
        if W is not None:
            W = np.array(W, dtype=float)
            if W.shape != (self.nx, self.M):
                raise ValueError(f"W must have shape ({self.nx}, {self.M}), got {W.shape}")
            if not np.isfinite(W).all():
                cell = int(np.argmin(np.isfinite(W).all(1)))
                raise PhysicalStateError(f"reduced initial data: W is not finite at cell {cell}")
        self.U = conservative(rho, u, T).reshape(self.nx, 3)
        self.W = np.tile(self.W_eq, (self.nx, 1)) if W is None else W

    # ----------------------------------------------------------------- pieces
    def _padded(self, a: NDArray, ghost_left: NDArray, ghost_right: NDArray) -> NDArray:
        if self.bc == "periodic":
            return np.concatenate([a[-2:], a, a[:2]])
        return np.concatenate([np.stack([ghost_left] * 2), a, np.stack([ghost_right] * 2)])

    def ghost_states(self, prim: NDArray) -> tuple[NDArray, NDArray]:
        """Ghost states (3 + M,) left and right, columns ρ, u, T, W; ``prim`` (nx, 3 + M) the interior."""
        if self.bc == "periodic":
            return np.zeros(3 + self.M), np.zeros(3 + self.M)
        left = np.concatenate([self.left, self.W_eq])
        if self.outflow == "reservoir":
            return left, np.concatenate([self.right, self.W_eq])
        return left, self._characteristic_ghost(prim[-1])

    def _characteristic_ghost(self, last: NDArray) -> NDArray:
        """Right ghost state from the last cell's (ρ, u, T, W): with δ = (δρ, δu, δp) its deviation from the
        right state (ρr, ur, pr), c = √(γ pr/ρr), Z = ρr c, the characteristic amplitudes
        w0 = δp − c² δρ (speed u), w± = δp ± Z δu (speeds u ± c) are kept where the speed is > 0 (leaving)
        and set to 0 (the right state) where it is ≤ 0; δp = (w+ + w−)/2, δu = (w+ − w−)/(2Z),
        δρ = (δp − w0)/c²."""
        rr, ur, Tr = (float(v) for v in self.right)
        pr = rr * Tr
        c = math.sqrt(GAMMA * Tr)
        Z = rr * c
        d_rho, d_u, d_p = last[0] - rr, last[1] - ur, last[0] * last[2] - pr
        w0 = (d_p - c * c * d_rho) if ur > 0 else 0.0
        wp = (d_p + Z * d_u) if ur + c > 0 else 0.0
        wm = (d_p - Z * d_u) if ur - c > 0 else 0.0
        p = pr + 0.5 * (wp + wm)
        rho = rr + (p - pr - w0) / (c * c)
        u = ur + (wp - wm) / (2.0 * Z)
        W = last[3:] if ur > 0 else self.W_eq
        return np.concatenate([[rho, u, p / rho], W])

    def max_speed(self, U: NDArray) -> float:
        rho, u, T = primitive(U)
        return float(np.max(np.abs(u) + self.closure.xi_max * np.sqrt(T)))

    def _frame_solve(self, Z: NDArray, delta: NDArray, tau: NDArray, cells: NDArray, W0: NDArray) -> NDArray:
        """W with m(W; δ, τ) = Z by fixed-point iteration (m ≈ identity for small frame moves)."""
        W = W0.copy()
        for _ in range(self.iters):
            m, _ = self.closure.frame(W, delta, tau, cells)
            W = W + (Z - m)
        return W

    def transport_rates(self, U: NDArray, W: NDArray) -> tuple[NDArray, NDArray]:
        """Transport rates: dU = −(F̂_{j+½} − F̂_{j−½})/Δx (nx, 3) and dZ = −(Ĝ_{j+½} − Ĝ_{j−½})/Δx
        (nx, M), the latter measured in the frame of each cell j."""
        nx = self.nx
        rho, u, T = primitive(U)
        prim = np.concatenate([np.stack([rho, u, T], axis=1), W], axis=1)  # (nx, 3 + M)
        gl, gr = self.ghost_states(prim)
        P = self._padded(prim, gl, gr)  # (nx + 4, 3 + M)
        d = np.diff(P, axis=0)
        slope = _limited_slope(d[:-1], d[1:], self.limiter)  # cells 1 … nx+2
        left_state = P[1:-2] + 0.5 * slope[:-1]  # faces between padded k and k+1, k = 1 … nx+1
        right_state = P[2:-1] - 0.5 * slope[1:]
        # face f (0 … nx) lies between interior cells f−1 and f (periodic/ghost indices outside)
        cell_l = np.arange(-1, nx) % nx
        cell_r = np.arange(0, nx + 1) % nx
        if np.any(left_state[:, 0] <= 0) or np.any(left_state[:, 2] <= 0) or np.any(right_state[:, 0] <= 0) \
                or np.any(right_state[:, 2] <= 0):
            raise PhysicalStateError(f"reconstructed face state with non-positive density or temperature at t={self.t:.6g}")
        F, Uf = self._flux_U(np.concatenate([left_state, right_state]), np.concatenate([cell_l, cell_r]))
        nf = nx + 1
        F_l, F_r, U_l, U_r = F[:nf], F[nf:], Uf[:nf], Uf[nf:]
        a = np.maximum(np.abs(left_state[:, 1]) + self.closure.xi_max * np.sqrt(left_state[:, 2]),
                       np.abs(right_state[:, 1]) + self.closure.xi_max * np.sqrt(right_state[:, 2]))
        Fhat = 0.5 * (F_l + F_r) - 0.5 * a[:, None] * (U_r - U_l)
        if self.flux == "ap" and not math.isinf(self.mu_ref):
            theta = self._kinetic_weight(left_state, right_state)[:, None]
            Fhat = theta * Fhat + (1.0 - theta) * self._equilibrium_flux(left_state, right_state, F_l, F_r)
        if self.bc == "periodic":  # faces 0 and nx are one face: one flux, whatever the closure's rounding
            Fhat[-1] = Fhat[0]
        # W fluxes through the right face (f = j+1) and the left face (f = j) of every cell j, each
        # measured in the frame of cell j: one batched closure call for all four face states
        cells = np.arange(nx)
        G_right, G_left = self._flux_W(left_state, right_state, cell_l, cell_r, u, T, a, cells)
        return -(Fhat[1:] - Fhat[:-1]) / self.dx, -(G_right - G_left) / self.dx

    def _advance(self, U: NDArray, W: NDArray, dU: NDArray, dZ: NDArray, h: float) -> tuple[NDArray, NDArray]:
        """Forward-Euler transport over h with given rates: U + h dU, and the new-frame W of ρW + h dZ."""
        nx = self.nx
        rho, u, T = primitive(U)
        Z = rho[:, None] * W + h * dZ
        U_new = U + h * dU
        rho_n, u_n, T_n = self._primitive_checked(U_new)
        delta = (u_n - u) / np.sqrt(T)
        tau = np.sqrt(T_n / T)
        W_new = self._frame_solve(Z / rho_n[:, None], delta, tau, np.arange(nx), W)
        return U_new, W_new

    def _primitive_checked(self, U: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """(ρ, u, T) of U (nx, 3); raises if a cell lost positivity or became non-finite (never clips)."""
        rho, u, T = primitive(U)
        ok = np.isfinite(rho) & (rho > 0) & np.isfinite(T) & (T > 0) & np.isfinite(u)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise PhysicalStateError(
                f"reduced solution lost positivity at t={self.t:.6g}, cell {bad} (x={self.x[bad]:.4g}): "
                f"rho={rho[bad]:.4g}, T={T[bad]:.4g}; lower cfl or check the closure's training range")
        return rho, u, T

    def _flux_U(self, state: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
        rho, u, T = state[:, 0], state[:, 1], state[:, 2]
        sh = self.closure.stress_heat(state[:, 3:], cells)
        p = rho * T
        sigma = p * sh[:, 0]
        q = rho * T**1.5 * sh[:, 1]
        U = conservative(rho, u, T)
        E = U[:, 2]
        F = np.stack([rho * u, rho * u * u + p + sigma, (E + p + sigma) * u + q], axis=1)
        return F, U

    def _kinetic_weight(self, sl: NDArray, sr: NDArray) -> NDArray:
        """θ = κ²/(1 + κ²) (nf,) of the face states sl, sr (nf, 3+M), κ = max ξ_max √T/(ν Δx)."""
        def kappa(s: NDArray) -> NDArray:
            nu = collision_frequency(s[:, 0], s[:, 2], self.mu_ref, self.omega)
            return self.closure.xi_max * np.sqrt(s[:, 2]) / (nu * self.dx)

        k2 = np.maximum(kappa(sl), kappa(sr)) ** 2
        return k2 / (1.0 + k2)

    @staticmethod
    def _equilibrium_flux(sl: NDArray, sr: NDArray, F_l: NDArray, F_r: NDArray) -> NDArray:
        """HLLC flux of the Euler part plus the central flux of N = F − F_Euler; F_l, F_r (nf, 3) the
        closed fluxes of the face states sl, sr (nf, 3+M)."""
        prim = [np.ascontiguousarray(np.stack([s[:, 0], s[:, 1], s[:, 0] * s[:, 2]], axis=1)) for s in (sl, sr)]
        H = np.empty((sl.shape[0], 3))
        hllc_faces(prim[0], prim[1], GAMMA, H)
        return H + 0.5 * ((F_l - _euler_flux(sl)) + (F_r - _euler_flux(sr)))

    def _flux_W(self, sl: NDArray, sr: NDArray, cl: NDArray, cr: NDArray, u_c: NDArray, T_c: NDArray,
                a: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
        """Rusanov fluxes of ρW through the right and left faces of every cell, in that cell's frame.

        Face states sl, sr (nx+1, 3+M) from cells cl, cr; frames (u_c, T_c) (nx,).
        """
        nx = cells.size
        faces = np.concatenate([cells + 1, cells + 1, cells, cells])  # right face L/R, left face L/R
        states = np.concatenate([sl[cells + 1], sr[cells + 1], sl[cells], sr[cells]])
        src = np.concatenate([cl[cells + 1], cr[cells + 1], cl[cells], cr[cells]])
        uf, Tf = np.tile(u_c, 4), np.tile(T_c, 4)
        rho, u, T = states[:, 0], states[:, 1], states[:, 2]
        m, k = self.closure.frame(states[:, 3:], (u - uf) / np.sqrt(Tf), np.sqrt(T / Tf), src)
        G = rho[:, None] * (u[:, None] * m + np.sqrt(T)[:, None] * k)
        Q = rho[:, None] * m
        af = a[faces][:, None]

        def rusanov(i: int) -> NDArray:  # i = 0: right face, 1: left face
            lo, hi = slice(2 * i * nx, (2 * i + 1) * nx), slice((2 * i + 1) * nx, (2 * i + 2) * nx)
            return 0.5 * (G[lo] + G[hi]) - 0.5 * af[lo] * (Q[hi] - Q[lo])

        return rusanov(0), rusanov(1)

    def _relax(self, U: NDArray, W: NDArray, a: float) -> NDArray:
        """Implicit-Euler BGK relaxation W = (W* + aν W_eq)/(1 + aν) in the cell's own frame; U (hence
        ν = ρ T^{1−ω}/μ_ref) is unchanged by collisions. Implicit Euler rather than the exact exponential:
        within the IMEX stage it keeps the O(ε) deviation produced by transport (the Navier–Stokes
        limit), which a split exact relaxation would erase. With a learned source: the scheme of
        ``source_scheme`` (module docstring)."""
        if math.isinf(self.mu_ref):
            return W
        rho, u, T = primitive(U)
        an = (a * rho * T ** (1.0 - self.omega) / self.mu_ref)[:, None]
        if self.source is None:
            return (W + an * self.W_eq) / (1.0 + an)
        if self.source_scheme == "penalized":  # Filbet–Jin: explicit [R̂(W*) − β(W_eq − W*)], implicit β(W_eq − W)
            b = self.source_beta
            R = self.source_rate(W)
            return (W + an * (R - b * (self.W_eq - W)) + an * b * self.W_eq) / (1.0 + an * b)
        # linearly implicit Euler: W = W* + aν (I − aν J)⁻¹ R̂(W*)
        R, J = self.source.rate_jacobian(W)
        R, J = np.asarray(R, dtype=float), np.array(J, dtype=float)
        self._check_source(W, R, J)
        shift = np.maximum(np.linalg.eigvals(J).real.max(axis=1), 0.0)
        self.source_shifted_cells += int(np.count_nonzero(shift))
        idx = np.arange(self.M)
        J[:, idx, idx] -= shift[:, None]
        A = np.eye(self.M)[None] - an[:, :, None] * J
        return W + an * np.linalg.solve(A, R[:, :, None])[:, :, 0]

    def source_rate(self, W: NDArray) -> NDArray:
        """R̂(W) (n, M) of the learned collision source at the moments W (n, M); non-finite values raise."""
        R = np.asarray(self.source.rate(W), dtype=float)
        self._check_source(W, R)
        return R

    def _check_source(self, W: NDArray, *values: NDArray) -> None:
        """Raise if an output of the learned source (R̂, ∂R̂/∂W) at W is not finite (never clips)."""
        for v in values:
            bad = ~np.isfinite(v.reshape(v.shape[0], -1)).all(1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise PhysicalStateError(
                    f"the learned collision source returned non-finite values at t={self.t:.6g}, cell {i} "
                    f"(x={self.x[i]:.4g}, W={np.round(W[i], 4).tolist()}); check the source checkpoint and its "
                    "training range")

    def _combine(self, parts: list[tuple[float, NDArray, NDArray]]) -> tuple[NDArray, NDArray]:
        """Σ c_k (U_k, ρ_k W_k) with the moments moved into the frame of the combined U."""
        U = sum(c * Uk for c, Uk, _ in parts)
        rho, u, T = self._primitive_checked(U)
        cells = np.arange(self.nx)
        Z = 0.0
        for c, Uk, Wk in parts:
            rk, uk, Tk = primitive(Uk)
            m, _ = self.closure.frame(Wk, (uk - u) / np.sqrt(T), np.sqrt(Tk / T), cells)
            Z = Z + c * rk[:, None] * m
        return U, Z / rho[:, None]

    # ----------------------------------------------------------------- stepping
    def dt_max(self) -> float:
        return self.cfl * self.dx / self.max_speed(self.U)

    def step(self, dt: float | None = None) -> None:
        """One ARS(2,2,2) IMEX step (transport explicit, BGK relaxation implicit), as the DVM:

        f2 = R_{γΔt}(f + γΔt T(f)),
        f3 = R_{γΔt}((1 − c) [f + Δt T(f)] + c [f2 + Δt(1−δ)/c T(f2)]),  c = (1 − γ)/γ,

        which is the ARS(2,2,2) final stage written with forward-Euler transport operators; the
        combination is formed in the frame of the combined U (see :meth:`_combine`).
        """
        dtm = self.dt_max()
        dt = dtm if dt is None else dt
        if dt > dtm * (1 + 1e-12):
            raise ValueError(f"dt={dt:.4g} exceeds the stable step {dtm:.4g} (cfl={self.cfl}); lower dt or cfl")
        g = 1.0 - 1.0 / math.sqrt(2.0)
        d = 1.0 - 1.0 / (2.0 * g)
        c = (1.0 - g) / g
        U0, W0 = self.U, self.W
        dU0, dZ0 = self.transport_rates(U0, W0)
        U2, W2 = self._advance(U0, W0, dU0, dZ0, g * dt)
        W2 = self._relax(U2, W2, g * dt)
        dU2, dZ2 = self.transport_rates(U2, W2)
        UA, WA = self._advance(U0, W0, dU0, dZ0, dt)
        UB, WB = self._advance(U2, W2, dU2, dZ2, dt * (1.0 - d) / c)
        U3, W3 = self._combine([(1.0 - c, UA, WA), (c, UB, WB)])
        self.U = U3
        self.W = self._relax(U3, W3, g * dt)
        self.t += dt
        self.steps += 1

    def fields_array(self) -> NDArray:
        """(nx, 5) ρ, u, T, σ, q (the contract of ``DVMSolver.fields_array``)."""
        rho, u, T = primitive(self.U)
        sh = self.closure.stress_heat(self.W, np.arange(self.nx))
        return np.stack([rho, u, T, rho * T * sh[:, 0], rho * T**1.5 * sh[:, 1]], axis=1)
