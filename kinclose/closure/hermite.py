"""Structured closure of a graded Hermite moment set: exact algebra, learned top moments only.

A graded Chu-reduced Hermite set (``kinclose.moments.shape.hermite_terms(M, "graded")``) holds
normalized moments of the shape (ĝ, ĥ) for (n, 0), n = 2 … N_g, and (n, 1), n = 1 … N_h; with the raw
Hermite moments

    P_g[j] = ∫ He_j(ξ) ĝ dξ,   P_h[j] = ∫ He_j(ξ) ĥ dξ         (probabilists' He_j)

and W_(n,0) = P_g[n]/√(n!), W_(n,1) = (−P_g[n] + ½ P_h[n])/√(n!) (weights He_n L(s)^l/√(n!)). The
normalization of the shape fixes P_g[0] = 1, P_g[1] = 0, P_h[0] = 2 − P_g[2]. Everything the reduced
solver asks of a closure (``kinclose.reduced.closure``) is then exact algebra in P except two numbers:

    σ̂ = P_g[2],   q̂ = ½ (P_g[3] + P_h[1])                                     (exact in W)
    He_n(τξ + δ) = Σ_j C_nj(δ, τ) He_j(ξ),
        C_nj = τ^j Σ_i n! / ((n − j − 2i)! i! j!) δ^(n−j−2i) ((τ² − 1)/2)^i                (Appell + scaling)
    m_(n,0) = Σ_j C_nj P_g[j] / √(n!),   m_(n,1) = [−Σ_j C_nj P_g[j] + ½ τ² Σ_j C_nj P_h[j]] / √(n!)
    k: the same with P[j] replaced by ∫ ξ He_j = P[j + 1] + j P[j − 1]               (ξ He_j recurrence)

so the frame map m and all fluxes k are exact, except that the flux of the top moments needs
r = (P_g[N_g + 1]/√((N_g + 1)!), P_h[N_h + 1]/√((N_h + 1)!)), the two moments one degree above the set.
``Grad`` closes them with r = 0 (the truncated Hermite expansion); the learned closure predicts r(W)
with a small network per ensemble member, anchored at r(W_eq) = 0. m(W; 0, 1) = W holds bitwise
(C = I exactly there). The encoder's l = 0 weights carry a constant of the ξ grid's truncation error
(~1e-6, ``shape.hermite_weights``); it is neglected here, so frame targets are met to that size.

Arrays work with NumPy and torch alike (``xp`` = numpy or torch; autograd passes through). Shapes:
W (n, M); δ, τ (n,); r (n, 2); outputs (n, 2) for σ̂, q̂ and (n, M) for m, k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

STRUCTURES = ("free", "hermite", "grad")
"""Closure structures: free networks for everything (any moments); ``hermite``: exact algebra of a graded
Hermite set with learned top moments; ``grad``: the same with the top moments set to 0 (Grad's closure)."""


class HermiteAlgebra:
    """Exact closure algebra of a graded Hermite moment set (module docstring).

    terms : the (n, l) of every component of W, as ``hermite_terms``; the set must be closed downward:
        (n, 0) for n = 2 … N_g and (n, 1) for n = 1 … N_h, in any order, with N_g ≥ 3 and 1 ≤ N_h < N_g.
    """

    def __init__(self, terms: Sequence[Sequence[int]]) -> None:
        terms = [(int(n), int(l)) for n, l in terms]
        g = sorted(n for n, l in terms if l == 0)
        h = sorted(n for n, l in terms if l == 1)
        self.n_g = g[-1] if g else 0
        self.n_h = h[-1] if h else 0
        if (len(set(terms)) != len(terms) or any(l not in (0, 1) for _, l in terms) or g != list(range(2, self.n_g + 1))
                or h != list(range(1, self.n_h + 1)) or self.n_g < 3 or not 1 <= self.n_h < self.n_g):
            raise ValueError(f"a structured Hermite closure needs a graded set closed downward ((n, 0), n = 2..N_g >= 3 "
                             f"and (n, 1), n = 1..N_h, 1 <= N_h < N_g; kinclose-train stage=moments "
                             f"stage.model=hermite stage.hermite_basis=graded stage.M >= 3), got terms {terms}")
        self.terms = terms
        self.M = len(terms)
        self.nmax = self.n_g
        nm = self.nmax
        self.n_idx = np.array([n for n, _ in terms])
        self.alpha = np.array([1.0 if l == 0 else -1.0 for _, l in terms])  # weight of the ĝ part
        self.beta = np.array([0.0 if l == 0 else 0.5 for _, l in terms])  # weight of the ĥ part
        self.norm = np.array([1.0 / math.sqrt(math.factorial(n)) for n, _ in terms])
        self.g_cols = {n: terms.index((n, 0)) for n in g}
        self.h_cols = {n: terms.index((n, 1)) for n in h}
        self.top_norm = np.array([math.sqrt(math.factorial(self.n_g + 1)), math.sqrt(math.factorial(self.n_h + 1))])
        # C_nj = τ^j Σ_i coef_i[n, j] δ^(idx_i[n, j]) s^i, s = (τ² − 1)/2
        self.coef, self.idx = [], []
        for i in range(nm // 2 + 1):
            c = np.zeros((nm + 1, nm + 1))
            p = np.zeros((nm + 1, nm + 1), dtype=np.int64)
            for n in range(nm + 1):
                for j in range(n - 2 * i + 1):
                    c[n, j] = math.factorial(n) / (math.factorial(n - j - 2 * i) * math.factorial(i) * math.factorial(j))
                    p[n, j] = n - j - 2 * i
            self.coef.append(c)
            self.idx.append(p)
        self.jvec = np.arange(nm + 1, dtype=float)

    @classmethod
    def from_encoder(cls, encoder: Any) -> "HermiteAlgebra":
        """The algebra of a ``HermiteEncoder`` with the graded basis (clear error for any other encoder)."""
        from kinclose.moments.shape import hermite_terms

        basis = getattr(encoder, "basis", None)
        if basis != "graded":
            raise ValueError("stage.structure=hermite|grad needs moments from the graded Hermite encoder "
                             "(kinclose-train stage=moments stage.model=hermite stage.hermite_basis=graded), got "
                             f"{type(encoder).__name__}" + (f" with basis {basis!r}" if basis else ""))
        return cls(hermite_terms(int(encoder.M), basis))

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _const(xp: Any, a: NDArray, like: Any) -> Any:
        if xp is np:
            return a
        return xp.as_tensor(a, dtype=like.dtype if a.dtype.kind == "f" else None, device=like.device)

    def moments(self, W: Any, r: Any, xp: Any = np) -> tuple[Any, Any]:
        """P_g (n, N_g + 2) and P_h (n, N_g + 2) (zero-padded above N_h + 1) of W (n, M) and the top moments r (n, 2)."""
        one = W[:, 0] * 0 + 1
        zero = W[:, 0] * 0
        Pg = [one, zero] + [math.sqrt(math.factorial(n)) * W[:, self.g_cols[n]] for n in range(2, self.n_g + 1)]
        Pg.append(self.top_norm[0] * r[:, 0])
        Ph = [2.0 - Pg[2]] + [2.0 * (math.sqrt(math.factorial(n)) * W[:, self.h_cols[n]] + Pg[n])
                              for n in range(1, self.n_h + 1)]
        Ph.append(self.top_norm[1] * r[:, 1])
        Ph += [zero] * (self.n_g + 2 - len(Ph))
        return xp.stack(Pg, 1), xp.stack(Ph, 1)

    def shift_matrix(self, delta: Any, tau: Any, xp: Any = np) -> Any:
        """C (n, N_g + 1, N_g + 1): He_k(τξ + δ) = Σ_j C_kj He_j(ξ) (module docstring)."""
        nm = self.nmax
        one = delta * 0 + 1
        dp, tp = [one], [one]
        for _ in range(nm):
            dp.append(dp[-1] * delta)
            tp.append(tp[-1] * tau)
        D, T = xp.stack(dp, 1), xp.stack(tp, 1)
        s = 0.5 * (tau * tau - 1.0)
        si = one
        C = 0
        for i, (c, p) in enumerate(zip(self.coef, self.idx)):
            if i:
                si = si * s
            C = C + self._const(xp, c, delta)[None] * D[:, self._const(xp, p, delta)] * si[:, None, None]
        return C * T[:, None, :]

    # ----------------------------------------------------------------- closure quantities
    def stress_heat(self, W: Any, xp: Any = np) -> Any:
        """(n, 2): σ̂ = P_g[2], q̂ = ½ (P_g[3] + P_h[1]), exact in W."""
        s2, s3 = math.sqrt(2.0), math.sqrt(6.0)
        sig = s2 * W[:, self.g_cols[2]]
        pg3 = s3 * W[:, self.g_cols[3]]
        ph1 = 2.0 * W[:, self.h_cols[1]]  # P_h[1] = 2 (W_(1,1) + P_g[1]), P_g[1] = 0
        return xp.stack([sig, 0.5 * (pg3 + ph1)], 1)

    def frame(self, W: Any, r: Any, delta: Any, tau: Any, xp: Any = np, C: Any = None) -> tuple[Any, Any]:
        """m, k (n, M) in the frames (δ, τ) (n,) of shapes with moments W (n, M) and top moments r (n, 2);
        ``C`` = :meth:`shift_matrix` (δ, τ) when the caller already has it (several r for the same frames)."""
        nm = self.nmax
        Pg, Ph = self.moments(W, r, xp)
        if C is None:
            C = self.shift_matrix(delta, tau, xp)
        jv = self._const(xp, self.jvec, W)

        def flux_moments(P: Any) -> Any:  # ∫ ξ He_j = P[j + 1] + j P[j − 1], j = 0 … nm
            return P[:, 1:nm + 2] + jv * xp.concatenate([P[:, :1] * 0, P[:, :nm]], 1)

        mv = lambda A, x: (A @ x[:, :, None])[:, :, 0]  # noqa: E731  (n, a, b) @ (n, b) → (n, a)
        t2 = (tau * tau)[:, None]
        dm_g = mv(C, Pg[:, :nm + 1]) - Pg[:, :nm + 1]
        dm_h = t2 * mv(C, Ph[:, :nm + 1]) - Ph[:, :nm + 1]
        k_g = mv(C, flux_moments(Pg))
        k_h = t2 * mv(C, flux_moments(Ph))
        n_idx = self._const(xp, self.n_idx, W)
        a, b, nrm = (self._const(xp, v, W) for v in (self.alpha, self.beta, self.norm))
        m = W + (a * dm_g[:, n_idx] + b * dm_h[:, n_idx]) * nrm
        k = (a * k_g[:, n_idx] + b * k_h[:, n_idx]) * nrm
        return m, k

    def top_from_flux(self, W: NDArray, k0: NDArray) -> NDArray:
        """(n, 2) top moments r of shapes with moments W (n, M) and fluxes k0 (n, M) in their own frame (δ, τ) = (0, 1):
        the inverse of the flux of the two top components (training statistics and tests)."""
        ng, nh = self.n_g, self.n_h
        Pg, Ph = self.moments(W, np.zeros((W.shape[0], 2)))
        fg, fh = math.sqrt(math.factorial(ng)), math.sqrt(math.factorial(nh))
        # k_(N_g,0) = (P_g[N_g+1] + N_g P_g[N_g−1])/√(N_g!)
        pg_top = fg * k0[:, self.g_cols[ng]] - ng * Pg[:, ng - 1]
        # k_(N_h,1) = [−(P_g[N_h+1] + N_h P_g[N_h−1]) + ½ (P_h[N_h+1] + N_h P_h[N_h−1])]/√(N_h!)
        qg = Pg[:, nh + 1] + nh * Pg[:, nh - 1]
        ph_top = 2.0 * (fh * k0[:, self.h_cols[nh]] + qg) - nh * Ph[:, nh - 1]
        return np.stack([pg_top, ph_top], 1) / self.top_norm
