"""Implicit steady solver of the reduced moment model: pseudo-transient continuation with Newton steps.

Solves R(y) = 0 for y = (U, W) (nx, 3 + M) on the grid of a :class:`ReducedSolver` (``bc="reservoir"``),
R the semi-discrete rates of its time stepper:

    R_U = −(F̂_{j+½} − F̂_{j−½})/Δx,
    R_W = (dZ − W dρ)/ρ − ∂m/∂δ du/√T − ∂m/∂τ dT/(2T) + S,

dZ = −(Ĝ_{j+½} − Ĝ_{j−½})/Δx the transport rate of ρW in the frame of cell j, (dρ, du, dT) the rates of
(ρ, u, T) from R_U, m(W; δ, τ) the frame map of eq. 13 (∂m at δ = 0, τ = 1 by a one-sided difference of
1e-3: these terms vanish at the steady state), S = ν (W_eq − W) (BGK) or ν R̂(W) (learned source). The
zero set is that of the time marching (R_U = 0 freezes the frame); the frame terms make the pseudo-time
dynamics dy/dt = R(y) those of the time stepper. Without them (R_W = dZ/ρ + S) the linearization at the
Mach 5.5 steady shock has eigenvalues with real part up to +10 and the continuation stalls.

One iteration solves (diag(a_j/(c Δx)) − J) δ = R and sets y ← y + δ: implicit Euler in pseudo time with
the local step c Δx/a_j, a_j = |u_j| + ξ_max √T_j, c → ∞ being Newton's method (bordered by a phase
condition that fixes the shock's position, :func:`newton_steady`). The pseudo-CFL c grows
as ‖R_old‖/‖R_new‖ (factor 0.5 … 10, switched evolution relaxation). J = ∂R/∂y by forward differences
with the cells 5-coloured (R_j depends on cells j−2 … j+2): 5 (3 + M) residual evaluations in one batch, in
which a closure row whose inputs equal the unperturbed grid's is not evaluated again (about 40 % of the rows
are evaluated; the same J bit for bit). J is reused
while a step reduces ‖R‖ by at least the factor ``refresh``, or does what J's linear model predicts (the
ratio ‖F_new‖/‖F‖ within 0.1 of ‖D δ‖/‖F‖, D = diag(a_j/(c Δx)): slow because c is small, not because J is
stale); a step that raises ‖R‖ by more than 1.5
(or loses positivity) is rejected: with a stale J, J is recomputed, with a fresh one c is cut by 0.3.

The residual must be differentiable: the MC and minmod limiters switch between branches and make
Newton stall, so the solver needs ``limiter="vanleer"``; the finite differences need the closure in
float64 (``LearnedClosure(inference="float64")`` or the torch path). With the shipped MLC, from a Mach 3
profile time-marched to the residual 1e-5 / 1e-6, Newton moves every variable by ≤ 4e-6 / 2e-6 of its
size (the same zero set, up to the marching's tolerance); at Mach 5.5, from the converged profile perturbed
by 1e-3, ‖F‖ falls 1.3 → 3e-2 → 1e-2 → 5e-6 → 1e-10 in pure Newton steps.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from kinclose.physics import (
    PhysicalStateError,
    collision_frequency,
    conservative,
    primitive,
)
from kinclose.reduced.solver import ReducedSolver

FRAME_STEP = 1e-3
STALE_MARGIN = 0.1  # J counts as stale when a step's ‖F‖ ratio exceeds its linear prediction by more than this
CFL_MIN = 1e-3  # below this pseudo-CFL the iteration counts as stalled
N_COLOURS = 5


def check_newton_ready(solver: ReducedSolver) -> None:
    """Raise a clear error for a solver the Newton iteration cannot handle."""
    if solver.bc != "reservoir":
        raise ValueError(f"the steady solver needs bc='reservoir' (a periodic problem has no steady shock), "
                         f"got {solver.bc!r}")
    if solver.limiter != "vanleer":
        raise ValueError(f"the steady solver needs the smooth limiter 'vanleer'; {solver.limiter!r} switches "
                         "branches and makes Newton stall (use steady='march' for it)")
    _require_float64(solver.closure, "the steady solver's closure")


def _require_float64(closure: Any, what: str) -> None:
    """The finite-difference Jacobian (step 1e-7) is noise in float32 inference."""
    if getattr(closure, "inference", "float64") == "float32":
        raise ValueError(f"{what} needs float64 inference for the finite-difference Jacobian; load it with "
                         "inference='float64' (float32 inference is for time marching)")


def _check_jacobian_closure(solver: ReducedSolver, closure: Any) -> None:
    _require_float64(closure, "the Jacobian closure")
    if getattr(closure, "n_moments", None) != solver.M or not np.allclose(closure.equilibrium(), solver.W_eq,
                                                                         rtol=0, atol=1e-10):
        raise ValueError("the Jacobian closure must have the solver closure's moments (same n_moments and W_eq): "
                         "e.g. its distilled student")


def steady_residual(solver: ReducedSolver, U: NDArray, W: NDArray) -> NDArray:
    """R(U, W) (nx, 3 + M) of the module docstring; U (nx, 3), W (nx, M)."""
    return batched_residual(solver, np.concatenate([U, W], axis=1)[None])[0]


def frame_derivatives(closure: Any, W: NDArray, cells: NDArray) -> tuple[NDArray, NDArray]:
    """∂m/∂δ and ∂m/∂τ (n, M) at (W, δ = 0, τ = 1) by one-sided differences of FRAME_STEP; W (n, M) the
    moments of the grid cells ``cells`` (n,)."""
    n, e = W.shape[0], FRAME_STEP
    m, _ = closure.frame(np.concatenate([W, W]), np.concatenate([np.full(n, e), np.zeros(n)]),
                         np.concatenate([np.ones(n), np.full(n, 1.0 + e)]), np.concatenate([cells, cells]))
    return (m[:n] - W) / e, (m[n:] - W) / e


class _ReuseBaseRows:
    """The closure of a batched residual whose B grids (blocks of L cells side by side) are perturbations of
    the last one: a closure row whose inputs equal, bit for bit, those of the row L (B − 1 − b) further on
    (the same position in the last grid; b the block of the row's cell) takes that row's outputs, and only the
    other rows are evaluated. A forward-difference column changes the face states near its cells only, so most
    rows of a Jacobian's batch are reused. Which rows are reused never changes a result: equal inputs."""

    def __init__(self, closure: Any, B: int, L: int) -> None:
        self.closure, self.B, self.L = closure, B, L

    def __getattr__(self, name: str) -> Any:  # xi_max, n_moments, equilibrium, ... of the closure
        return getattr(self.closure, name)

    def _reused(self, cells: NDArray, inputs: list[NDArray]) -> tuple[NDArray, NDArray]:
        """Mask of the rows that take the outputs of their partner rows (n,), and the partners' indices."""
        n = cells.shape[0]
        shift = (self.B - 1 - cells // self.L) * self.L
        partner = np.arange(n) + shift
        reuse = (shift > 0) & (partner < n)
        partner = np.where(reuse, partner, 0)
        reuse &= cells[partner] == cells + shift
        for x in inputs:
            x = x.reshape(n, -1)
            reuse &= (x == x[partner]).all(1)
        return reuse, partner

    def _call(self, method: str, cells: NDArray | None, inputs: list[NDArray]) -> Any:
        fn = getattr(self.closure, method)
        if cells is None:
            return fn(*inputs, cells)
        inputs = [np.broadcast_to(np.asarray(x, dtype=float), (cells.shape[0],) + np.shape(x)[1:]) for x in inputs]
        reuse, partner = self._reused(cells, inputs)
        keep = ~reuse
        res = fn(*(x[keep] for x in inputs), cells[keep])
        outs = []
        for r in (res if isinstance(res, tuple) else (res,)):
            full = np.empty((cells.shape[0],) + r.shape[1:], dtype=r.dtype)
            full[keep] = r
            full[reuse] = full[partner[reuse]]
            outs.append(full)
        return tuple(outs) if isinstance(res, tuple) else outs[0]

    def stress_heat(self, W: NDArray, cells: NDArray | None = None) -> NDArray:
        return self._call("stress_heat", cells, [W])

    def frame(self, W: NDArray, delta: NDArray, tau: NDArray, cells: NDArray | None = None) -> tuple[NDArray, NDArray]:
        return self._call("frame", cells, [W, delta, tau])


def batched_residual(solver: ReducedSolver, Y: NDArray, closure: Any = None, reuse_last: bool = False) -> NDArray:
    """R of B states at once: Y (B, nx, 3 + M) = (U, W) per state → (B, nx, 3 + M); ``closure`` replaces the
    solver's (same moments; e.g. a distilled student for the Jacobian).

    The B grids are laid side by side as one reservoir grid, each with its own two ghost cells on either
    side (the ghost states of ``solver``, e.g. its characteristic outflow): a face of a real cell sees the
    same reconstruction as in ``solver`` (the slopes of the ghost cells use their neighbours ghost and real
    cell), so the rows of the real cells are those of B separate calls, and the networks run once on all.
    ``reuse_last``: the states are small perturbations of the last one (a Jacobian's columns); closure rows
    whose inputs equal those of the last grid are not evaluated again (:class:`_ReuseBaseRows`)."""
    B, nx, nvar = Y.shape
    if nx != solver.nx or nvar != 3 + solver.M:
        raise ValueError(f"states must have shape (B, {solver.nx}, {3 + solver.M}), got {Y.shape}")
    rho, u, T = primitive(Y[..., :3])
    prim = np.concatenate([np.stack([rho, u, T], axis=-1), Y[..., 3:]], axis=-1)
    blocks = []
    for b in range(B):
        gl, gr = solver.ghost_states(prim[b])
        blocks.append(np.concatenate([np.stack([gl, gl]), prim[b], np.stack([gr, gr])]))
    big_prim = np.concatenate(blocks)  # (B (nx + 4), 3 + M)
    n_big = big_prim.shape[0]
    closure = solver.closure if closure is None else closure
    net = _ReuseBaseRows(closure, B, nx + 4) if reuse_last and B > 1 else closure
    big = ReducedSolver(0.0, solver.dx * n_big, n_big, net, solver.mu_ref, solver.omega, "reservoir",
                        solver.cfl, left=solver.left, right=solver.right, limiter=solver.limiter, flux=solver.flux)
    big.t = solver.t
    dU, dZ = big.transport_rates(conservative(big_prim[:, 0], big_prim[:, 1], big_prim[:, 2]), big_prim[:, 3:])
    real = (np.arange(B)[:, None] * (nx + 4) + 2 + np.arange(nx)).ravel()
    dU, dZ = dU[real], dZ[real]
    W = Y[..., 3:].reshape(-1, solver.M)
    rho, u, T = rho.ravel(), u.ravel(), T.ravel()
    drho = dU[:, 0]
    du = (dU[:, 1] - u * drho) / rho
    dT = (dU[:, 2] - 0.5 * drho * u * u - rho * u * du - 1.5 * T * drho) / (1.5 * rho)  # E = ρu²/2 + 3ρT/2
    cells = np.tile(np.arange(nx), B)
    if reuse_last and B > 1:  # only the rows whose W differs from the last grid's
        changed = (Y[..., 3:] != Y[-1:, :, 3:]).any(2)
        changed[-1] = True
        rows = np.flatnonzero(changed.ravel())
        m_delta, m_tau = np.empty_like(W), np.empty_like(W)
        m_delta[rows], m_tau[rows] = frame_derivatives(closure, W[rows], cells[rows])
        same = np.flatnonzero(~changed.ravel())
        base = same % nx + (B - 1) * nx  # the same cell of the last grid
        m_delta[same], m_tau[same] = m_delta[base], m_tau[base]
    else:
        m_delta, m_tau = frame_derivatives(closure, W, cells)
    dW = ((dZ - W * drho[:, None]) / rho[:, None] - m_delta * (du / np.sqrt(T))[:, None]
          - m_tau * (0.5 * dT / T)[:, None])
    if not math.isinf(solver.mu_ref):
        nu = collision_frequency(rho, T, solver.mu_ref, solver.omega)[:, None]
        if solver.source is None:
            dW = dW + nu * (solver.W_eq - W)
        else:
            dW = dW + nu * solver.source_rate(W)
    return np.concatenate([dU, dW], axis=1).reshape(B, nx, nvar)


def coloured_jacobian(solver: ReducedSolver, y: NDArray, fd_step: float = 1e-7, closure: Any = None) -> sp.csc_matrix:
    """∂R/∂y ((nx (3 + M))², sparse; row and column (3 + M) j + k for variable k of cell j) by forward
    differences at y (nx, 3 + M) = (U, W): the cells j ≡ c (mod 5) are perturbed together, step
    fd_step × max(|y|, 0.01) per entry; y and its 5 (3 + M) perturbations go through one batched call, with
    ``closure`` instead of the solver's if given (:func:`batched_residual`)."""
    nx, nvar = y.shape
    h_all = fd_step * np.maximum(np.abs(y), 1e-2)
    Y = np.repeat(y[None], N_COLOURS * nvar + 1, axis=0)  # the last one unperturbed
    for c in range(N_COLOURS):
        for k in range(nvar):
            Y[c * nvar + k, c::N_COLOURS, k] += h_all[c::N_COLOURS, k]
    R_all = batched_residual(solver, Y, closure, reuse_last=True)
    dR_all = R_all[:-1] - R_all[-1]
    # entry (row i nvar + r, column j nvar + k) = dR of perturbation (j mod 5, k) at (i, r) / h_jk, |i − j| ≤ 2
    j, k, i, r = np.meshgrid(np.arange(nx), np.arange(nvar), np.arange(-2, 3), np.arange(nvar), indexing="ij")
    i = i + j
    ok = (i >= 0) & (i < nx)
    j, k, i, r = j[ok], k[ok], i[ok], r[ok]
    vals = dR_all[(j % N_COLOURS) * nvar + k, i, r] / h_all[j, k]
    n = nx * nvar
    return sp.csc_matrix((vals, (i * nvar + r, j * nvar + k)), shape=(n, n))


def newton_steady(solver: ReducedSolver, tol: float, scale: float, *, cfl0: float = 5.0, cfl_max: float = 1e8,
                  max_iter: int = 200, refresh: float = 0.9, fd_step: float = 1e-7, jacobian_closure: Any = None,
                  progress: bool | None = False) -> dict[str, Any]:
    """Drive ``solver`` (its U, W are the initial guess and are overwritten) to a steadily moving profile,
    F = R(y) + s ∂y/∂x = 0 with the shift speed s an unknown, until max_j |F_ρ,j| / ``scale`` < ``tol``. For
    the shock scale = ρ1 u1 (λ1 = 1): the time marching's drift-corrected residual max|∂tρ + s ∂xρ| λ1/(ρ1 u1).

    The shock's position is a neutral mode of R = 0 (J has a singular value ~1e-9 at Mach 5.5), so Newton
    needs the phase condition Σ_j (ρ_j − ρ_j^0) (∂xρ^0)_j Δx = 0 (position of the initial guess ρ^0) with s
    as its multiplier; each iteration solves the bordered system

        [diag(a_j/(c Δx)) − J   −∂y/∂x] [δy]   [ F]
        [(∂xρ^0 Δx, ρ rows)       0   ] [δs] = [−g],

    (∂x by np.gradient), see the module docstring for c, J and the reuse of J. ``jacobian_closure``: a
    cheaper closure of the same moments for J only (e.g. the distilled student of an ensemble; float64),
    which changes the iterations, not the solution F = 0 of the solver's closure. Returns residual,
    converged, shift_speed (s, x units per time unit), iterations (linear solves, rejected steps included),
    jacobians, residual_evals (each on nx cells) and wall_s. Stops unconverged after ``max_iter`` iterations
    or when the pseudo-CFL falls below 1e-3 (stalled); raises PhysicalStateError if even a fresh Jacobian at
    that pseudo-CFL cannot make an acceptable step (ρ, T > 0 and ‖F‖ at most 1.5× larger)."""
    from tqdm.auto import tqdm

    check_newton_ready(solver)
    if jacobian_closure is not None:
        _check_jacobian_closure(solver, jacobian_closure)
    if not (tol > 0 and scale > 0 and cfl0 > 0 and cfl_max >= cfl0 and 0 < refresh < 1):
        raise ValueError(f"need tol, scale, cfl0 > 0, cfl_max >= cfl0 and 0 < refresh < 1; got tol={tol}, "
                         f"scale={scale}, cfl0={cfl0}, cfl_max={cfl_max}, refresh={refresh}")
    t0 = time.perf_counter()
    nx, nvar, dx = solver.nx, 3 + solver.M, solver.dx
    y = np.concatenate([solver.U, solver.W], axis=1)
    rho0 = y[:, 0].copy()
    phase = np.zeros(nx * nvar)
    phase[0::nvar] = np.gradient(rho0, dx) * dx
    shift = 0.0

    def evaluate(y_: NDArray, s_: float) -> tuple[NDArray, NDArray, float]:
        """∂y/∂x, F = R + s ∂y/∂x and ‖F‖ at (y, s)."""
        Dy_ = np.gradient(y_, dx, axis=0)
        F_ = steady_residual(solver, y_[:, :3], y_[:, 3:]) + s_ * Dy_
        return Dy_, F_, float(np.linalg.norm(F_))

    Dy, F, norm = evaluate(y, shift)
    cfl, evals, jacobians = float(cfl0), 1, 0
    J = lu = None
    fresh = False
    lu_cfl = cfl
    bar = tqdm(total=max_iter, disable=None if progress is None else not progress, desc=f"newton nx={nx}",
               leave=False)
    iterations = 0  # linear solves, rejected steps included
    try:
        for it in range(max_iter):
            residual = float(np.max(np.abs(F[:, 0]))) / scale
            if not math.isfinite(residual):
                raise PhysicalStateError(f"steady residual is not finite at iteration {it}")
            bar.set_postfix(residual=f"{residual:.2e}", cfl=f"{cfl:.3g}")
            bar.update(1)
            if residual < tol:
                break
            if J is None:
                J = coloured_jacobian(solver, y, fd_step, jacobian_closure)
                jacobians += 1
                evals += N_COLOURS * nvar + 1
                lu, fresh = None, True
            if lu is None:
                _, u, T = primitive(y[:, :3])
                a = np.abs(u) + solver.closure.xi_max * np.sqrt(T)
                D = np.repeat(a / (cfl * dx), nvar)
                A = sp.bmat([[sp.diags(D) - J, -Dy.reshape(-1, 1)],
                             [sp.csr_matrix(phase), None]])
                lu = spla.splu(A.tocsc(), permc_spec="NATURAL")  # banded + border: half COLAMD's fill and time
                lu_cfl = cfl
            g = float(np.dot(phase[0::nvar], y[:, 0] - rho0))
            d = lu.solve(np.concatenate([F.ravel(), [-g]]))
            iterations += 1
            y_new, shift_new = y + d[:-1].reshape(y.shape), shift + float(d[-1])
            ratio = math.inf
            predicted = float(np.linalg.norm(D * d[:-1])) / norm  # ‖F + J δy + ∂y/∂x δs‖ / ‖F‖ = ‖D δy‖ / ‖F‖
            rho_n, _, T_n = primitive(y_new[:, :3])
            if np.all(rho_n > 0) and np.all(T_n > 0) and np.all(np.isfinite(y_new)):
                try:
                    Dy_new, F_new, norm_new = evaluate(y_new, shift_new)
                    evals += 1
                    ratio = norm_new / norm
                except PhysicalStateError:  # a reconstructed face state lost positivity
                    pass
            if not ratio <= 1.5:  # rejected (also NaN)
                if fresh:
                    cfl *= 0.3
                    lu = None
                    if cfl < CFL_MIN:
                        raise PhysicalStateError(f"the steady solver found no acceptable step (rho, T > 0 and the "
                                                 f"residual at most 1.5x larger) at iteration {it} (residual "
                                                 f"{residual:.3g}) even at pseudo-CFL {cfl:.2g}")
                else:
                    J = None
                continue
            y, shift, Dy, F, norm, fresh = y_new, shift_new, Dy_new, F_new, norm_new, False
            cfl = min(cfl_max, cfl * min(10.0, max(0.5, 1.0 / max(ratio, 1e-300))))
            if cfl < CFL_MIN:  # stalled: report it (converged False) instead of creeping on
                break
            if ratio > refresh and ratio > predicted + STALE_MARGIN:  # slow, and not because c is small
                J = None
            elif not 0.5 < cfl / lu_cfl < 2.0:
                lu = None
    finally:
        bar.close()
    residual = float(np.max(np.abs(F[:, 0]))) / scale  # of the last accepted state
    solver.U, solver.W = y[:, :3].copy(), y[:, 3:].copy()
    return {"residual": residual, "converged": bool(residual < tol), "shift_speed": shift, "iterations": iterations,
            "jacobians": jacobians, "residual_evals": evals, "wall_s": time.perf_counter() - t0}
