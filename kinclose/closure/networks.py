"""Closure networks and ensembles (torch; DESIGN §6).

* :class:`StressHeatNet`  W ↦ (σ̂, q̂):    y = S_y ⊙ [N(z) − N(z_eq)],  z = (W − μ_W)/s_W.
  Anchored at the equilibrium moments W_eq (the Maxwellian shape has σ = q = 0), so the Euler limit
  is reproduced by construction (option ``anchor``; without it y = S_y ⊙ N(z) + μ_y).
  With ``exact=True`` (moments whose first two are the physical ones, W_0 = 1 + σ̂, W_1 = q̂: the
  learned encoder's ``stress_heat`` option) there is nothing to learn: y = (W_0 − W_eq,0, W_1 − W_eq,1),
  which is σ̂, q̂ to the truncation of the ξ grid and vanishes at W_eq; no network is built.
* :class:`FrameNet`  (W, δ, τ) ↦ (m, k):
      m = W + S_m ⊙ [δ̃ A(x) + t̃ B(x)],   k = μ_k + S_k ⊙ C(x),
      x = (z, δ̃, t̃),  δ̃ = δ/δ_s,  t̃ = ln τ / t_s,  (A, B, C) = N(x) ∈ R^{3M}.
  Since δ̃ = t̃ = 0 exactly at (δ, τ) = (0, 1), m(W; 0, 1) = W holds bitwise, whatever the weights
  (every smooth f with f(0, 0) = 0 has this form, Hadamard's lemma, so nothing is lost).
* ``skip=True``: every network N gains a linear path, N(x) = MLP(x) + L x + b with L, b zero at
  initialization, so targets that are affine in the inputs (the frame map and all but the top fluxes of
  a graded Hermite set, ``kinclose.closure.information``) need no nonlinear fit.
* ``structure="hermite"`` / ``"grad"`` (graded Hermite moments only, :mod:`kinclose.closure.hermite`):
  :class:`HermiteStressHeat` and :class:`HermiteFrame` compute σ̂, q̂, m and k exactly from W except the
  two moments one degree above the set, r = S_r ⊙ [N(z) − N(z_eq)] (``hermite``) or r = 0 (``grad``,
  Grad's closure: nothing to train).
* :class:`ClosureMember` one of each; :class:`Ensemble` K ≥ 1 members built from different seeds,
  with mean and (population) variance over members of every output.

Inputs are standardized with statistics stored as buffers (``set_statistics``), so a checkpoint is
self-contained. float64 throughout. Shapes: W (n, M), δ, τ (n,); outputs (n, 2), (n, M), (n, M);
``Ensemble.*_all`` add a leading member axis K.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

DTYPE = torch.float64
ACTIVATIONS = {"tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU, "softplus": nn.Softplus}


class SkipMLP(nn.Module):
    """body(x) + skip(x): an MLP plus a linear layer (zero at initialization) from input to output; building it
    draws nothing from the RNG, so a network with the path starts equal to the same-seed one without it."""

    def __init__(self, body: nn.Sequential, n_in: int, n_out: int) -> None:
        super().__init__()
        self.body = body
        with torch.random.fork_rng(devices=[]):  # leave the RNG stream as without the path
            self.skip = nn.Linear(n_in, n_out, dtype=DTYPE)
        with torch.no_grad():
            self.skip.weight.zero_()
            self.skip.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str = "tanh", skip: bool = False) -> nn.Module:
    """Fully connected n_in → hidden… → n_out (float64); with ``skip`` plus a linear path (:class:`SkipMLP`)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    prev = n_in
    for w in hidden:
        layers += [nn.Linear(prev, int(w), dtype=DTYPE), ACTIVATIONS[activation]()]
        prev = int(w)
    layers.append(nn.Linear(prev, n_out, dtype=DTYPE))
    body = nn.Sequential(*layers)
    return SkipMLP(body, n_in, n_out) if skip else body


class StressHeatNet(nn.Module):
    """W (n, M) → (σ̂, q̂) (n, 2); see the module docstring."""

    def __init__(self, M: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh", anchor: bool = True,
                 exact: bool = False, skip: bool = False) -> None:
        super().__init__()
        self.M = int(M)
        self.anchor = bool(anchor)
        self.exact = bool(exact)
        if self.exact and self.M < 2:
            raise ValueError(f"exact stress and heat flux need W_0 = 1 + sigma_hat, W_1 = q_hat (M >= 2), got M={M}")
        self.net = None if self.exact else mlp(self.M, hidden, 2, activation, skip)
        self.register_buffer("w_mean", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("w_std", torch.ones(self.M, dtype=DTYPE))
        self.register_buffer("w_eq", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("y_mean", torch.zeros(2, dtype=DTYPE))
        self.register_buffer("y_std", torch.ones(2, dtype=DTYPE))

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        if self.exact:
            return W[:, :2] - self.w_eq[None, :2]
        z = (W - self.w_mean) / self.w_std
        out = self.net(z)
        if self.anchor:
            z_eq = ((self.w_eq - self.w_mean) / self.w_std)[None]
            return (out - self.net(z_eq)) * self.y_std
        return out * self.y_std + self.y_mean


class FrameNet(nn.Module):
    """(W (n, M), δ (n,), τ (n,)) → m (n, M), k (n, M); m(W; 0, 1) = W exactly."""

    def __init__(self, M: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh", skip: bool = False) -> None:
        super().__init__()
        self.M = int(M)
        self.net = mlp(self.M + 2, hidden, 3 * self.M, activation, skip)
        self.register_buffer("w_mean", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("w_std", torch.ones(self.M, dtype=DTYPE))
        self.register_buffer("delta_scale", torch.ones((), dtype=DTYPE))
        self.register_buffer("logtau_scale", torch.ones((), dtype=DTYPE))
        self.register_buffer("dm_std", torch.ones(self.M, dtype=DTYPE))
        self.register_buffer("k_mean", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("k_std", torch.ones(self.M, dtype=DTYPE))

    def forward(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        M = self.M
        d = (delta / self.delta_scale)[:, None]
        t = (torch.log(tau) / self.logtau_scale)[:, None]
        z = (W - self.w_mean) / self.w_std
        out = self.net(torch.cat([z, d, t], dim=1))
        m = W + self.dm_std * (d * out[:, :M] + t * out[:, M:2 * M])
        k = self.k_mean + self.k_std * out[:, 2 * M:]
        return m, k


class HermiteStressHeat(nn.Module):
    """W (n, M) → (σ̂, q̂) (n, 2), exact in the moments of a graded Hermite set (``closure.hermite``)."""

    def __init__(self, terms: Sequence[Sequence[int]]) -> None:
        super().__init__()
        from kinclose.closure.hermite import HermiteAlgebra

        self.algebra = HermiteAlgebra(terms)
        self.M = self.algebra.M
        self.register_buffer("w_eq", torch.zeros(self.M, dtype=DTYPE))
        self.register_buffer("y_std", torch.ones(2, dtype=DTYPE))

    def forward(self, W: torch.Tensor) -> torch.Tensor:
        return self.algebra.stress_heat(W, torch)


class HermiteFrame(nn.Module):
    """(W (n, M), δ (n,), τ (n,)) → m, k (n, M) of a graded Hermite set: exact algebra with the top moments
    r(W) (n, 2) = S_r ⊙ [N(z) − N(z_eq)], z = (W − μ_W)/s_W, or r = 0 when ``learned`` is false (Grad)."""

    def __init__(self, terms: Sequence[Sequence[int]], hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 learned: bool = True, skip: bool = False) -> None:
        super().__init__()
        from kinclose.closure.hermite import HermiteAlgebra

        self.algebra = HermiteAlgebra(terms)
        self.M = self.algebra.M
        self.net = mlp(self.M, hidden, 2, activation, skip) if learned else None
        # statistics (``Ensemble.set_statistics``): input standardization, anchor, output scale S_r, and the loss
        # scales dm_std, k_std of ``closure.train.member_loss``
        for name, size in (("w_mean", self.M), ("w_eq", self.M)):
            self.register_buffer(name, torch.zeros(size, dtype=DTYPE))
        for name, size in (("w_std", self.M), ("r_std", 2), ("dm_std", self.M), ("k_std", self.M)):
            self.register_buffer(name, torch.ones(size, dtype=DTYPE))

    def top(self, W: torch.Tensor) -> torch.Tensor:
        """(n, 2) normalized moments one degree above the set (P_g[N_g + 1], P_h[N_h + 1])."""
        if self.net is None:
            return W[:, :2] * 0
        z = (W - self.w_mean) / self.w_std
        z_eq = ((self.w_eq - self.w_mean) / self.w_std)[None]
        return (self.net(z) - self.net(z_eq)) * self.r_std

    def forward(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.algebra.frame(W, self.top(W), delta, tau, torch)


class ClosureMember(nn.Module):
    """One ensemble member: σ̂, q̂ and the frame change m, k (free networks, or the structured Hermite closure)."""

    def __init__(self, M: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh", anchor: bool = True,
                 exact_stress_heat: bool = False, skip: bool = False, structure: str = "free",
                 terms: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        if structure == "free":
            self.stress_heat = StressHeatNet(M, hidden, activation, anchor, exact_stress_heat, skip)
            self.frame = FrameNet(M, hidden, activation, skip)
            return
        if terms is None or len(terms) != int(M):
            raise ValueError(f"structure={structure!r} needs the M={M} Hermite terms (n, l) of the moments, got {terms}")
        self.stress_heat = HermiteStressHeat(terms)
        self.frame = HermiteFrame(terms, hidden, activation, learned=structure == "hermite", skip=skip)


class Ensemble(nn.Module):
    """K closure members with different initial weights (seeds ``seed + i``).

    Parameters
    ----------
    M : number of generalized moments.
    K : members (K ≥ 4 for a useful variance; ≥ 1 accepted).
    hidden, activation : MLP widths and activation of every network.
    anchor : σ̂ = q̂ = 0 at W_eq by construction.
    seed : base seed of the members' initialization.
    exact_stress_heat : σ̂ = W_0 − W_eq,0, q̂ = W_1 − W_eq,1 instead of a network (see the module docstring).
    skip : every network gains a linear input-to-output path (module docstring).
    structure : "free" (networks for σ̂, q̂, m, k), "hermite" or "grad" (graded Hermite moments with the
        (n, l) ``terms``; module docstring).
    """

    def __init__(self, M: int, K: int = 4, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 anchor: bool = True, seed: int = 0, exact_stress_heat: bool = False, skip: bool = False,
                 structure: str = "free", terms: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        from kinclose.closure.hermite import STRUCTURES

        if int(K) < 1:
            raise ValueError(f"an ensemble needs K >= 1 members, got {K}")
        if structure not in STRUCTURES:
            raise ValueError(f"unknown closure structure {structure!r}; choose one of {STRUCTURES}")
        self.kwargs: dict[str, Any] = {"M": int(M), "K": int(K), "hidden": [int(w) for w in hidden],
                                       "activation": str(activation), "anchor": bool(anchor), "seed": int(seed)}
        if exact_stress_heat:  # stored only when set, so checkpoints without it keep their kwargs
            self.kwargs["exact_stress_heat"] = True
        if skip:
            self.kwargs["skip"] = True
        if structure != "free":
            self.kwargs["structure"] = structure
            self.kwargs["terms"] = [[int(n), int(l)] for n, l in (terms or [])]
        self.M, self.K = int(M), int(K)
        members = []
        for i in range(self.K):
            # distinct, reproducible initializations without touching the global torch RNG stream
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) * 1009 + i)
                members.append(ClosureMember(M, hidden, activation, anchor, exact_stress_heat, skip, structure, terms))
        self.members = nn.ModuleList(members)
        self.register_buffer("w_eq", torch.zeros(self.M, dtype=DTYPE))

    @property
    def structure(self) -> str:
        """"free", "hermite" or "grad" (stored in ``kwargs`` only when not free)."""
        return str(self.kwargs.get("structure", "free"))

    @torch.no_grad()
    def set_statistics(self, stats: dict[str, Any]) -> None:
        """Copy input/output statistics (keys = buffer names, plus ``w_eq``) into every member."""
        t = lambda a: torch.as_tensor(a, dtype=DTYPE)  # noqa: E731
        if "w_eq" in stats:
            self.w_eq.copy_(t(stats["w_eq"]))
        for mem in self.members:
            for net in (mem.stress_heat, mem.frame):
                for name, buf in net.named_buffers():
                    if name in stats:
                        buf.copy_(t(stats[name]))

    def stress_heat_all(self, W: torch.Tensor) -> torch.Tensor:
        """(K, n, 2)."""
        return torch.stack([mem.stress_heat(W) for mem in self.members])

    def frame_all(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m, k, each (K, n, M)."""
        out = [mem.frame(W, delta, tau) for mem in self.members]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def stress_heat(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean and variance of (σ̂, q̂), each (n, 2)."""
        y = self.stress_heat_all(W)
        return y.mean(0), y.var(0, unbiased=False)

    def frame(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean m, mean k, variance of m, variance of k, each (n, M)."""
        m, k = self.frame_all(W, delta, tau)
        return m.mean(0), k.mean(0), m.var(0, unbiased=False), k.var(0, unbiased=False)

    def mean_stress_heat(self, W: torch.Tensor) -> torch.Tensor:
        """Ensemble-mean (σ̂, q̂) (n, 2): the closed system's ``stress_heat`` (``closure.hyperbolicity``);
        no variance is computed."""
        return self.stress_heat_all(W).mean(0)

    def mean_frame(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble-mean m, k (n, M) each: the closed system's ``frame`` (``closure.hyperbolicity``); no variance
        is computed."""
        m, k = self.frame_all(W, delta, tau)
        return m.mean(0), k.mean(0)

    def forward(self, W: torch.Tensor, delta: torch.Tensor, tau: torch.Tensor) -> dict[str, torch.Tensor]:
        sh_m, sh_v = self.stress_heat(W)
        m, k, mv, kv = self.frame(W, delta, tau)
        return {"sh": sh_m, "sh_var": sh_v, "m": m, "k": k, "m_var": mv, "k_var": kv}


def build_ensemble(**kwargs: Any) -> Ensemble:
    """Construct from the constructor kwargs stored in a checkpoint."""
    return Ensemble(**kwargs)


def log_tau_scale(tau_min: float, tau_max: float) -> float:
    """Scale of ln τ over the sampled range (for standardizing the frame input)."""
    return max(abs(math.log(tau_min)), abs(math.log(tau_max)), 1e-3)
