r"""The Boltzmann DVM on a torch device (GPU): the same scheme as :mod:`kinclose.kinetic.boltzmann_dvm`.

Equation and discretisation are those of :class:`~kinclose.kinetic.boltzmann_dvm.BoltzmannDVMSolver`
(∂t f + v1 ∂x f = Q(f), fast spectral VHS operator, MUSCL transport, ARS(2,2,2) IMEX with the BGK
penalisation P(f) = β (M[f] − f), conservative discrete Maxwellians); only the arrays live elsewhere:
f of shape (nx + 4, N³) (v1 slowest) stays on the device for the whole run, every stage is a handful
of batched tensor operations over all cells, and Q is evaluated for all cells at once by batched
real FFTs (cuFFT on a GPU).

Why a second implementation: at the Mach 5.5 shock's velocity grid (N = 64, N³ ≈ 2.6·10⁵ nodes per
cell) the CPU solver needs ≈ 7 h for a coarse shock (see
:func:`~kinclose.kinetic.boltzmann_dvm.steady_shock_boltzmann`); the operator is memory-bound FFT work,
309× faster per cell on one H100 (results/bench_boltzmann_gpu.json), and moving f to the host every
stage would cost more than the collisions (the numba transport and relaxation alone, estimated from
2-core timings, take ≈ 0.15 s per step of 60 cells on 16 cores). Torch is imported only here; the numerical core does not
need it (CONVENTIONS: torch stays out of the core), ``steady_shock_boltzmann(device=...)`` imports this
module lazily.

Agreement: on the CPU in float64 every stage equals the numba solver to round-off
(tests/unit/test_boltzmann_torch.py, 1e-12 relative); on a GPU the same tests run with
``device="cuda"`` (tests/unit/test_gpu.py). ``collision_dtype=torch.float32`` evaluates only the
spectral operator in single precision (transport, Maxwellians and conservation stay float64); the
conservative projection then still conserves (ρ, ρu, E) to double round-off.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from kinclose.kinetic._kernels import (
    BAD_DENSITY,
    BAD_TEMPERATURE,
    BAD_VALUE,
    NGHOST,
    OK,
)
from kinclose.kinetic.boltzmann import FastSpectralBoltzmann
from kinclose.kinetic.boltzmann_dvm import N_MAX_TORCH, BoltzmannDVMSolver
from kinclose.kinetic.shock import shift_rows
from kinclose.kinetic.solver import DELTA, GAM, checked_dt

__all__ = ["TorchBoltzmannDVMSolver", "TorchSpectralOperator", "conservative_maxwellians", "transport"]


def _slope(a: torch.Tensor, b: torch.Tensor, limiter: str) -> torch.Tensor:
    """Limited slope from the left difference a and the right difference b (same formulas as
    ``_kernels._slope``; the sign of ±0 counts as +, as ``math.copysign``)."""
    if limiter == "upwind":
        return torch.zeros_like(a)
    if limiter == "fromm":
        return 0.5 * (a + b)
    if limiter == "vanleer":
        ab = a * b
        return torch.where(ab > 0.0, 2.0 * ab / (a + b), torch.zeros_like(a))
    one = torch.ones((), dtype=a.dtype, device=a.device)
    sg = 0.5 * (torch.copysign(one, a) + torch.copysign(one, b))
    aa, bb = a.abs(), b.abs()
    if limiter == "minmod":
        return sg * torch.minimum(aa, bb)
    if limiter == "mc":
        return sg * torch.minimum(torch.minimum(2.0 * aa, 2.0 * bb), 0.5 * (aa + bb))
    if limiter == "superbee":
        return sg * torch.maximum(torch.minimum(2.0 * aa, bb), torch.minimum(aa, 2.0 * bb))
    raise ValueError(f"unknown limiter {limiter!r}")


def transport(f: torch.Tensor, v: torch.Tensor, j0: int, dx: float, limiter: str) -> torch.Tensor:
    r"""−v ∂x f by MUSCL upwind fluxes on the interior rows.

    Parameters
    ----------
    f : (nx + 4, nv) padded cell averages (two ghost rows per side).
    v : (nv,) non-decreasing velocities; v[j] > 0 exactly for j ≥ j0.
    dx : cell size. limiter : name in ``_kernels.LIMITERS``.

    Returns
    -------
    (nx, nv): −(F_{k+½} − F_{k−½})/Δx with F = v f_face, the face value from the upwind cell.
    """
    d = f[1:] - f[:-1]  # d[k] = f[k+1] − f[k]
    s = _slope(d[:-1], d[1:], limiter)  # s[i] is the slope of row k = i + 1, rows 1 … nx + 2
    inv = 1.0 / dx
    # v > 0: face k+½ takes f[k] + s[k]/2, k = 1 … nx + 1
    vp = v[j0:]
    fp = f[1:-2, j0:] + 0.5 * s[:-1, j0:]
    tp = (-vp * (fp[1:] - fp[:-1])) * inv
    # v ≤ 0: face k+½ takes f[k+1] − s[k+1]/2, k = 1 … nx + 1
    vn = v[:j0]
    fn = f[2:-1, :j0] - 0.5 * s[1:, :j0]
    tn = (-vn * (fn[1:] - fn[:-1])) * inv
    return torch.cat([tn, tp], dim=1)


def _moment_basis(v1d: list[torch.Tensor]) -> torch.Tensor:
    """(5, N³) collision invariants (1, v1, v2, v3, ½|v|²) on the flattened grid (v1 slowest)."""
    V1, V2, V3 = torch.meshgrid(*v1d, indexing="ij")
    return torch.stack([torch.ones_like(V1), V1, V2, V3, 0.5 * (V1 * V1 + V2 * V2 + V3 * V3)]).reshape(5, -1)


def _cell_moments(f: torch.Tensor, phi: torch.Tensor, dv: float) -> torch.Tensor:
    """(n, 5) (ρ, ρu1, ρu2, ρu3, E) of f (n, N³) with phi from :func:`_moment_basis`."""
    return (f @ phi.T) * dv


def conservative_maxwellians(
    m: torch.Tensor, v1d: list[torch.Tensor], phi: torch.Tensor, dv: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Conservative discrete Maxwellians with the moments m (``boltzmann_dvm._maxwellian_row``, batched).

    M = M_s (1 + c0 + c·ξ + c4|ξ|²), ξ = (v − u)/√T, M_s the sampled Maxwellian of (ρ, u, T); the
    five c_k solve the 5×5 system that makes the discrete moments of M equal m, followed by one pass
    of iterative refinement with the same matrix (moments then match to round-off).

    Parameters
    ----------
    m : (n, 5) (ρ, ρu1, ρu2, ρu3, E) per cell.
    v1d : three (N,) velocity node vectors. phi : (5, N³) from :func:`_moment_basis`. dv : cell volume.

    Returns
    -------
    M : (n, N³); code : (n,) int64 error codes (``_kernels.OK`` …); cmax : (n,) max |c_k| of the
    first pass (grid quality; zero for flagged cells, whose M is meaningless).
    """
    rho = m[:, 0]
    u = m[:, 1:4] / rho[:, None]
    T = (2.0 * m[:, 4] / rho - (u * u).sum(1)) / 3.0
    code = torch.full_like(rho, OK, dtype=torch.int64)
    code = torch.where(~torch.isfinite(T), BAD_VALUE, code)
    code = torch.where(torch.isfinite(T) & ~(T > 0.0), BAD_TEMPERATURE, code)
    code = torch.where(~(rho > 0.0), BAD_DENSITY, code)
    code = torch.where(~torch.isfinite(rho), BAD_VALUE, code)
    bad = code != OK
    # why: flagged cells get a harmless state so no NaN enters the batched solve; the caller raises
    rho = torch.where(bad, 1.0, rho)
    T = torch.where(bad, 1.0, T)
    u = torch.where(bad[:, None], 0.0, u)
    n_cells, N = rho.shape[0], v1d[0].shape[0]
    sT = torch.sqrt(T)
    coef = rho * (2.0 * math.pi * T) ** -1.5
    x = [(v1d[k][None, :] - u[:, k, None]) / sT[:, None] for k in range(3)]  # (n, N) each
    e = [torch.exp(-0.5 * (v1d[k][None, :] - u[:, k, None]) ** 2 / T[:, None]) for k in range(3)]
    w12 = coef[:, None, None] * e[0][:, :, None] * e[1][:, None, :]
    Ms = (w12[..., None] * e[2][:, None, None, :]).reshape(n_cells, -1)
    X1, X2, X3 = x[0][:, :, None, None], x[1][:, None, :, None], x[2][:, None, None, :]
    shape = (n_cells, N, N, N)
    psi = torch.stack([torch.ones(shape, dtype=m.dtype, device=m.device), X1.expand(shape), X2.expand(shape),
                       X3.expand(shape), (X1 * X1 + X2 * X2 + X3 * X3)], dim=1).reshape(n_cells, 5, -1)
    msphi = Ms[:, None, :] * phi[None]  # (n, 5, N³)
    A = msphi @ psi.transpose(1, 2)  # A[a, c] = Σ φ_a M_s ψ_c
    b = m / dv - msphi.sum(-1)
    lu, piv = torch.linalg.lu_factor(A)
    c = torch.linalg.lu_solve(lu, piv, b[..., None])[..., 0]
    cmax = c.abs().amax(1)
    out = Ms + Ms * (c[:, :, None] * psi).sum(1)
    b2 = (m - _cell_moments(out, phi, dv)) / dv
    c2 = torch.linalg.lu_solve(lu, piv, b2[..., None])[..., 0]
    out = out + Ms * (c2[:, :, None] * psi).sum(1)
    finite = torch.isfinite(c).all(1) & torch.isfinite(c2).all(1)
    code = torch.where(~bad & ~finite, BAD_VALUE, code)
    cmax = torch.where(code == OK, cmax, 0.0)
    return out, code, cmax


class TorchSpectralOperator:
    """Batched fast spectral Q on a torch device, built from a :class:`FastSpectralBoltzmann`.

    Parameters
    ----------
    op : the CPU operator (its Fourier multipliers, loss weights and conservative projection are
        copied to the device).
    device : torch device. dtype : float64 or float32 (the FFT work; Q is returned in float64).
    chunk : (direction, rank) terms transformed per batched FFT (bounds the memory to
        ≈ 4 · nx · chunk · N³ · itemsize bytes).
    """

    def __init__(self, op: FastSpectralBoltzmann, device: torch.device, dtype: torch.dtype = torch.float64,
                 chunk: int = 8) -> None:
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"collision dtype must be torch.float64 or torch.float32, got {dtype}")
        self.n = op.n
        self.dtype = dtype
        self.chunk = max(1, int(chunk))
        P, Qm = op._term_multipliers(0, op.n_terms)
        self.P = torch.as_tensor(P, dtype=dtype, device=device)
        self.Qm = torch.as_tensor(Qm, dtype=dtype, device=device)
        self.weight = torch.as_tensor(op._term_weight, dtype=dtype, device=device)
        self.loss = torch.as_tensor(op._loss, dtype=dtype, device=device)
        self.Cm = torch.as_tensor(op._Cm, dtype=torch.float64, device=device)  # (5, N³)
        self.proj = torch.as_tensor(op._proj, dtype=torch.float64, device=device)  # (N³, 5)

    def gain_loss(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain Q⁺ and loss frequency ν for f (n, N³) float64; both (n, N³) float64."""
        N = self.n
        n_cells = f.shape[0]
        fh = torch.fft.rfftn(f.to(self.dtype).reshape(n_cells, N, N, N), dim=(1, 2, 3))
        gain = torch.zeros((n_cells, N, N, N), dtype=self.dtype, device=f.device)
        for a in range(0, self.P.shape[0], self.chunk):
            b = min(self.P.shape[0], a + self.chunk)
            A = torch.fft.irfftn(self.P[None, a:b] * fh[:, None], s=(N, N, N), dim=(2, 3, 4))
            B = torch.fft.irfftn(self.Qm[None, a:b] * fh[:, None], s=(N, N, N), dim=(2, 3, 4))
            gain += torch.einsum("t,ntijk->nijk", self.weight[a:b], A * B)
        nu = torch.fft.irfftn(self.loss[None] * fh, s=(N, N, N), dim=(1, 2, 3))
        return gain.reshape(n_cells, -1).double(), nu.reshape(n_cells, -1).double()

    def project(self, q: torch.Tensor) -> torch.Tensor:
        """Conservative L² projection (``FastSpectralBoltzmann.project``) of q (n, N³), in place."""
        q -= (q @ self.Cm.T) @ self.proj.T
        return q


class TorchBoltzmannDVMSolver(BoltzmannDVMSolver):
    """:class:`BoltzmannDVMSolver` with f and all stages on a torch device.

    Parameters are those of :class:`BoltzmannDVMSolver` (N up to ``N_MAX_TORCH``), plus
    ``device`` (e.g. ``"cuda"``; ``"cpu"`` runs the same code with torch on the host),
    ``collision_dtype`` (``torch.float64`` or ``torch.float32`` for the FFT work only) and
    ``chunk`` (FFT batch, see :class:`TorchSpectralOperator`).

    ``f`` is a (nx + 4, N³) float64 tensor on the device; :meth:`fields_array`, :meth:`reduced`,
    :meth:`totals` return NumPy arrays. Validation (grid coverage, CFL, reservoirs) is the base
    class's, on the host.
    """

    n_max = N_MAX_TORCH

    def __init__(self, *args: Any, device: str | torch.device = "cuda", collision_dtype: torch.dtype = torch.float64,
                 chunk: int = 8, **kwargs: Any) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device='cuda' but torch sees no CUDA device; use device='cpu' or the numba solver")
        self.collision_dtype = collision_dtype
        self._chunk = chunk
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ setup
    def _allocate(self) -> None:
        t = {"dtype": torch.float64, "device": self.device}
        nx, nv = self.nx, self.nv
        self.f = torch.zeros((nx + 2 * NGHOST, nv), **t)
        self._left = torch.zeros(nv, **t)
        self._right = torch.zeros(nv, **t)
        self._tv1d = [torch.as_tensor(a, **t) for a in self.v1d]
        self._tv = torch.as_tensor(self.v1, **t)
        self._phi = _moment_basis(self._tv1d)
        self._QM: torch.Tensor | None = None
        self._flag = np.zeros(nx, dtype=np.int64)
        self._corr = np.zeros(nx)
        self.top: TorchSpectralOperator | None = None
        if self.op is not None:
            self.top = TorchSpectralOperator(self.op, self.device, self.collision_dtype, self._chunk)

    def _to_storage(self, a: NDArray[np.float64]) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=self.device)

    # ------------------------------------------------------------------ stepping
    def _fill_ghosts(self, f: torch.Tensor) -> None:
        if self.periodic:
            f[:NGHOST] = f[-2 * NGHOST:-NGHOST]
            f[-NGHOST:] = f[NGHOST:2 * NGHOST]
        else:
            f[:NGHOST] = self._left
            f[-NGHOST:] = self._right

    def _maxwellian(self, fs: torch.Tensor) -> torch.Tensor:
        """M[fs] for rows fs (nx, N³); records the error codes and correction sizes for ``_check``."""
        M, code, cmax = conservative_maxwellians(_cell_moments(fs, self._phi, self.dv), self._tv1d, self._phi,
                                                 self.dv)
        self._flag[:] = code.cpu().numpy()
        self._corr[:] = cmax.cpu().numpy()
        return M

    def _collide_all(self, f: torch.Tensor, M: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Q(f) for all rows f (nx, N³), conservative; with M given (stage 1) also β and Q(M)."""
        top = self.top
        assert top is not None
        gain, nu = top.gain_loss(f)
        q = gain - nu * f
        beta = None
        if M is not None:
            if self.equilibrium_preserving:
                gm, num = top.gain_loss(M)
                self._QM = gm - num * M
            m = _cell_moments(f, self._phi, self.dv)
            rho = m[:, 0]
            T = (2.0 * m[:, 4] / rho - (m[:, 1:4] ** 2).sum(1) / rho**2) / 3.0
            # p/μ bound too: the spectral ν(v) can undershoot on very coarse grids
            beta = torch.maximum(nu.amax(1), rho * T.clamp(min=0.0) ** (1.0 - self.omega) / self.mu_ref)
        if self.equilibrium_preserving:
            q -= self._QM
        return top.project(q), beta

    def step(self, dt: float | None = None) -> None:
        """One ARS(2,2,2) step of size ``dt`` (default and maximum: ``dt_max``)."""
        dt = checked_dt(self, dt)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        a = GAM * dt
        f = self.f
        self._fill_ghosts(f)
        fi = f[NGHOST:-NGHOST]
        t0 = time.perf_counter()
        if self.collisions:
            M1 = self._maxwellian(fi)
            self._check("stage 1")
            Q1, beta = self._collide_all(fi, M1)
        else:
            M1 = Q1 = torch.zeros_like(fi)
            beta = torch.zeros(self.nx, dtype=torch.float64, device=self.device)
        sync()
        t1 = time.perf_counter()
        b = beta[:, None]
        E1 = transport(f, self._tv, self.j0, self.dx, self.limiter) + Q1 - b * (M1 - fi)
        f2 = torch.empty_like(f)
        f2s = fi + a * E1
        M2 = self._maxwellian(f2s)
        self._check("stage 2")
        f2[NGHOST:-NGHOST] = (f2s + (a * b) * M2) * (1.0 / (1.0 + a * b))
        self._fill_ghosts(f2)
        f2i = f2[NGHOST:-NGHOST]
        sync()
        t2 = time.perf_counter()
        if self.collisions:
            Q2, _ = self._collide_all(f2i, None)
        else:
            Q2 = torch.zeros_like(fi)
            M2 = torch.zeros_like(fi)
        sync()
        t3 = time.perf_counter()
        i2 = b * (M2 - f2i)
        E2 = transport(f2, self._tv, self.j0, self.dx, self.limiter) + Q2 - i2
        f3s = fi + dt * (DELTA * E1 + (1.0 - DELTA) * E2 + (1.0 - GAM) * i2)
        M3 = self._maxwellian(f3s)
        self._check("stage 3")
        fn = torch.empty_like(f)
        fn[NGHOST:-NGHOST] = (f3s + (a * b) * M3) * (1.0 / (1.0 + a * b))
        sync()
        t4 = time.perf_counter()
        self.collision_wall_s += (t1 - t0) + (t3 - t2)
        self.transport_wall_s += (t2 - t1) + (t4 - t3)
        self.f = fn
        self.t += dt
        self.steps += 1

    def shift_cells(self, shift: int) -> None:
        shift_rows(self.f[NGHOST:-NGHOST], shift, self._left, self._right)

    # ------------------------------------------------------------------ output
    def fields_array(self) -> NDArray[np.float64]:
        """(nx, 5) array of ρ, u, T, σ, q (same definitions as the base class)."""
        fi = self.f[NGHOST:-NGHOST]
        m = _cell_moments(fi, self._phi, self.dv)
        rho = m[:, 0]
        u = m[:, 1:4] / rho[:, None]
        T = (2.0 * m[:, 4] / rho - (u * u).sum(1)) / 3.0
        N = self.n
        c = [self._tv1d[k][None, :] - u[:, k, None] for k in range(3)]
        c1, c2, c3 = c[0][:, :, None, None], c[1][:, None, :, None], c[2][:, None, None, :]
        f4 = fi.reshape(self.nx, N, N, N)
        s = (c1 * c1 * f4).sum((1, 2, 3)) * self.dv - rho * T
        q = 0.5 * (c1 * (c1 * c1 + c2 * c2 + c3 * c3) * f4).sum((1, 2, 3)) * self.dv
        return torch.stack([rho, u[:, 0], T, s, q], dim=1).cpu().numpy()

    def totals(self) -> NDArray[np.float64]:
        fi = self.f[NGHOST:-NGHOST]
        m = _cell_moments(fi, self._phi, self.dv).sum(0)
        return np.array([float(m[0]), float(m[1]), float(m[4])]) * self.dx

    @property
    def interior(self) -> torch.Tensor:
        """View (nx, N³) of f without ghost cells (a device tensor)."""
        return self.f[NGHOST:-NGHOST]

    def distribution(self) -> NDArray[np.float64]:
        """(nx, N, N, N) host copy of f without ghost cells."""
        return self.interior.reshape(self.nx, self.n, self.n, self.n).cpu().numpy()

    def reduced(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Chu-reduced (g, h), each (nx, N), as :meth:`BoltzmannDVMSolver.reduced`."""
        return self._reduce(self.interior)

    def reduced_collision_terms(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Chu-reduced (Qg, Qh), each (nx, N), as :meth:`BoltzmannDVMSolver.reduced_collision_terms`."""
        if self.top is None:
            return np.zeros((self.nx, self.n)), np.zeros((self.nx, self.n))
        fi = self.interior
        M = self._maxwellian(fi) if self.equilibrium_preserving else None
        if M is not None:
            self._check("collision term")
        q, _ = self._collide_all(fi, M)
        return self._reduce(q)

    def _reduce(self, a: torch.Tensor) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(Σ a Δv2Δv3, Σ (v2² + v3²) a Δv2Δv3) of rows a (nx, N³), each (nx, N) on the host."""
        N = self.n
        a4 = a.reshape(self.nx, N, N, N)
        v2, v3 = self._tv1d[1], self._tv1d[2]
        w = v2[:, None] ** 2 + v3[None, :] ** 2
        h2 = self.h * self.h
        return (a4.sum((2, 3)) * h2).cpu().numpy(), ((a4 * w).sum((2, 3)) * h2).cpu().numpy()
