"""A-posteriori training of a closure: fine-tuning through the reduced solver (solver in the loop).

The closure stage fits σ̂, q̂, m, k to their kinetic values state by state (a priori). Its error at
ε ≳ 1 after a reduced solve does not follow the a-priori error (README, "Moments that carry their
own fluxes"), so this stage fine-tunes a trained ensemble on what the benchmark measures: the
reduced solution itself. For DVM trajectories of random initial data (a labeled dataset from
Maxwellian initial data, ``dataset.ranges.noneq_fraction=0``), the reduced model starts from the
same initial U (W = W_eq) and runs with :class:`kinclose.reduced.differentiable.TorchReducedSolver`
(the scheme of ``ReducedSolver``) to every snapshot time t_s; the loss is the squared error of the
Knudsen sweep (``kinclose.bench.sweep.errors``) summed over fields and averaged over snapshots,

    L = (1/S) Σ_s Σ_f w_f ‖f(t_s) − f_DVM(t_s)‖² / ‖n_f‖²,
    n_ρ = ρ, n_u = √T, n_T = T, n_σ = p, n_q = p √T   (DVM values, norms over the cells),

back-propagated through every step (gradient checkpointing per step keeps the memory at one step's
graph) into the parameters of all K members of the ensemble mean. The DVM data may be finer than
the model grid: its fields are averaged in blocks of ``nx_data / nx`` cells (as the sweep coarsens
its refined reference) and its initial U likewise. ``hyperbolicity`` adds the closure stage's penalty
(per member) on the rollouts' final states. A problem whose rollout loses positivity is left out of
its batch (counted in the report). Adam with a cosine decay and early stopping on held-out trajectories
(``closure.train.fit_early_stopping``).

**Steady shocks** (``stage.shock.weight`` > 0, off by default): the loss gains weight × the mean over the
shocks of stage.shock.machs (never a benchmark Mach number, ``kinclose.physics.BENCHMARK_MACHS``) of the
shock benchmark's squared errors (``shock_error_terms``), averaged over the snapshots t_s of a rollout that
starts *on* the steady DVM-BGK profile (the kinetic shock of ``conf/model/dvm.yaml``, its distribution
averaged in blocks onto the reduced model's cells, U and W = the encoder's moments of that average) between
RH reservoirs. The DVM profile does not move; the closure's does, towards its own steady profile (at Mach 5.5
it carries the steady profile's u, T, σ, q errors by t ≈ 3 λ1/√T1), so this term trains the DVM profile to
be a steady state of the reduced model. The shocks enter every batch and the validation loss alike.

The result is a normal closure checkpoint (same kwargs, the source metadata plus ``rollout``). The
members are trained through their mean only, so their spread no longer estimates the closure's
error: use the source checkpoint for exploration.

Shapes: trajectories U0 (N, nx, 3), fields (N, S, nx, 5) at times (S,); rollouts (B, nx, ·).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose import __version__
from kinclose.closure.train import (
    CHECKPOINT_NAME,
    Hyperbolicity,
    LinearResponse,
    file_sha256,
    fit_early_stopping,
    load_closure_checkpoint,
    load_closure_moments,
    plot_learning_curves,
    save_closure_checkpoint,
    start_checkpoint_stage,
)
from kinclose.io import atomic_write_json

log = logging.getLogger(__name__)
FIELDS = ("rho", "u", "T", "sigma", "q")


class RolloutDataError(ValueError):
    """A dataset that cannot give reduced-model trajectories (not periodic BGK, grids that do not fit)."""


@dataclasses.dataclass
class Trajectories:
    """DVM trajectories on the model grid: U0 (N, nx, 3) at t = 0, fields (N, S, nx, 5) = ρ, u, T, σ, q at
    ``times`` (S,) > 0, μ_ref and ε (N,), VHS ω, cell width ``dx`` and the source shard ids (N,)."""

    U0: NDArray
    fields: NDArray
    times: NDArray
    mu_ref: NDArray
    kn: NDArray
    omega: float
    dx: float
    shard: NDArray

    def __len__(self) -> int:
        return int(self.U0.shape[0])

    def subset(self, idx: NDArray) -> Trajectories:
        return dataclasses.replace(self, U0=self.U0[idx], fields=self.fields[idx], mu_ref=self.mu_ref[idx],
                                   kn=self.kn[idx], shard=self.shard[idx])


def _blocks(a: NDArray, r: int) -> NDArray:
    """Average blocks of r cells along axis −2: (..., nx r, c) → (..., nx, c)."""
    return a.reshape(*a.shape[:-2], a.shape[-2] // r, r, a.shape[-1]).mean(-2)


def load_trajectories(root: str | Path, nx: int, kn_range: tuple[float, float] = (0.0, math.inf),
                      verify: bool = True) -> Trajectories:
    """Trajectories of the shards of ``root`` with ε in ``kn_range``, averaged onto ``nx`` cells.

    Every shard must be periodic BGK on the same domain and snapshot times (t_0 = 0), with nx_data a
    multiple of ``nx``, one VHS ω, and Maxwellian initial data (a bi-Maxwellian start has W ≠ W_eq,
    which the reduced model's initial data cannot hold)."""
    from kinclose.data.dataset import load_dataset

    shards = load_dataset(root, verify=verify)
    U0, F, mu, kn, ids = [], [], [], [], []
    times = omega = length = None
    for d in shards:
        a = d["attrs"]
        where = f"shard {a.get('task_id')} of {root}"
        if a.get("bc") != "periodic" or a.get("collision") != "bgk":
            raise RolloutDataError(f"{where}: bc={a.get('bc')!r}, collision={a.get('collision')!r}; rollouts need "
                                   "periodic BGK data")
        if a.get("noneq"):
            raise RolloutDataError(f"{where} starts from a bi-Maxwellian; label with dataset.ranges.noneq_fraction=0")
        nx_d = d["U"].shape[1]
        if nx_d % nx:
            raise RolloutDataError(f"{where} has {nx_d} cells, not a multiple of the model's nx={nx}")
        t = np.asarray(d["t"], dtype=float)
        if times is None:
            times, omega, length = t, float(a["omega"]), float(a["x_right"]) - float(a["x_left"])
        if t.shape != times.shape or not np.allclose(t, times, rtol=0, atol=1e-12) or abs(t[0]) > 1e-14:
            raise RolloutDataError(f"{where}: snapshot times {t.tolist()} differ from the first shard's "
                                   f"{times.tolist()} (or do not start at 0)")
        if float(a["omega"]) != omega or abs(float(a["x_right"]) - float(a["x_left"]) - length) > 1e-12:
            raise RolloutDataError(f"{where}: omega or domain length differ from the first shard's")
        if not (kn_range[0] <= float(a["kn"]) <= kn_range[1]):
            continue
        r = nx_d // nx
        U0.append(_blocks(d["U"][0], r))
        F.append(_blocks(d["fields"][1:], r))
        mu.append(float(a["mu_ref"]))
        kn.append(float(a["kn"]))
        ids.append(int(a["task_id"]))
    if not U0:
        raise RolloutDataError(f"no shard of {root} has a Knudsen number in {list(kn_range)}")
    return Trajectories(np.stack(U0), np.stack(F), times[1:], np.asarray(mu), np.asarray(kn), omega, length / nx,
                        np.asarray(ids))


@dataclasses.dataclass
class ShockTargets:
    """Steady DVM shocks on the reduced model's grid: U0 (N, nx, 3), W0 (N, nx, M) the moments of the
    block-averaged distributions, fields (N, nx, 5) = ρ, u, T, σ, q of the same averages, the RH states
    ``ends`` (N, 2, 3) = upstream and downstream (ρ, u, T), Mach numbers (N,), cell width, μ_ref, VHS ω."""

    U0: NDArray
    W0: NDArray
    fields: NDArray
    ends: NDArray
    machs: NDArray
    dx: float
    mu_ref: float
    omega: float


def shock_targets(machs: list[float], weights: Any, *, dx: float = 0.25, x_min: float = -30.0,
                  x_max: float = 10.0, dvm: dict | None = None) -> ShockTargets:
    """Solve the steady BGK shock with the DVM at every Mach number of ``machs`` (x in λ1, ρ1 = T1 = 1;
    ``dvm``: options of ``kinclose.kinetic.shock.steady_shock`` on the same domain, whose cell ``dvm["dx"]``
    must divide ``dx``) and average it onto cells of width ``dx``; W from the encoder's weight functions
    ``weights`` (``kinclose.closure.targets.encoder_weight_functions``). Refuses benchmark Mach numbers."""
    from kinclose.kinetic.shock import steady_shock
    from kinclose.physics import (
        BENCHMARK_MACHS,
        benchmark_machs_in,
        conservative,
        mfp_coefficient,
        rankine_hugoniot,
    )
    from kinclose.reduced.closure import shape_quadrature

    clash = benchmark_machs_in(machs)
    if clash:
        raise RolloutDataError(f"shock Mach numbers {clash} are benchmark Mach numbers {BENCHMARK_MACHS}; the Mach "
                               "sweep promises closures that never saw those shocks")
    if not machs:
        raise RolloutDataError("stage.shock.machs is empty; give at least one Mach number or set stage.shock.weight=0")
    opts = {"omega": 0.5, "dx": 0.0625, **dict(dvm or {})}
    r = dx / float(opts["dx"])
    if abs(r - round(r)) > 1e-9 or round(r) < 1:
        raise RolloutDataError(f"the model cell dx={dx} is not a multiple of the DVM cell {opts['dx']}")
    r = round(r)
    U0, W0, F, ends = [], [], [], []
    for mach in machs:
        s = rankine_hugoniot(float(mach))
        t0 = time.perf_counter()
        prof = steady_shock(s, collision="bgk", x_min=x_min, x_max=x_max, progress=False, **opts)
        v, dv, g, h = prof.distribution
        if g.shape[0] % r:
            raise RolloutDataError(f"the DVM shock has {g.shape[0]} cells, not a multiple of {r}")
        q = shape_quadrature(_blocks(g, r), _blocks(h, r), v, dv, weights.a_np, weights.b_np)
        rho, u, T = q["rho"], q["u"], q["T"]
        U0.append(conservative(rho, u, T))
        W0.append(q["m"])
        F.append(np.stack([rho, u, T, rho * T * q["sigma_hat"], rho * T**1.5 * q["q_hat"]], axis=1))
        ends.append([[s.rho1, s.u1, s.T1], [s.rho2, s.u2, s.T2]])
        log.info("shock target Mach %g: DVM steady in %.1f s, %d cells -> %d", mach, time.perf_counter() - t0,
                 g.shape[0], g.shape[0] // r)
    omega = float(opts["omega"])
    return ShockTargets(np.stack(U0), np.stack(W0), np.stack(F), np.asarray(ends, dtype=float),
                        np.asarray(machs, dtype=float), float(dx), 1.0 / mfp_coefficient(omega), omega)


def shock_error_terms(pred: Any, ref: Any, upstream: Any) -> Any:
    """(B, 5) squared relative L2 errors of the shock benchmark (``kinclose.bench.shock.field_errors``) of
    fields pred, ref (B, nx, 5) on the same cells: mean (pred − ref)² / mean (ref − base)², base the upstream
    (ρ1, u1, T1) (B, 3) for ρ, u, T and 0 for σ, q (the benchmark also centres both profiles first)."""
    import torch

    base = torch.cat([upstream, torch.zeros_like(upstream[:, :2])], dim=1)[:, None]  # (B, 1, 5)
    return ((pred - ref) ** 2).mean(1) / ((ref - base) ** 2).mean(1)


def rollout(solver: Any, U0: Any, W0: Any, times: NDArray, mu_ref: Any, cfl: float = 0.5,
            checkpoint: bool = True, max_steps: int = 100_000) -> tuple[list[Any], Any, Any]:
    """Advance every problem of the batch to each time of ``times`` with its own stable step (Δt =
    min(cfl Δx / max(|u| + ξ_max √T), time left), a problem that has arrived steps with Δt = 0, which
    leaves it unchanged); returns the fields (B, nx, 5) at every time, the final W (B, nx, M) and a
    (B,) mask of the problems that stayed physical. Steps are checkpointed for the backward pass."""
    import torch
    from torch.utils.checkpoint import checkpoint as ckpt

    U, W = U0, W0
    t = torch.zeros(U0.shape[0], dtype=U0.dtype)
    ok = torch.ones(U0.shape[0], dtype=torch.bool)
    out, steps = [], 0
    for tk in times:
        tk = float(tk)
        while bool(((t < tk - 1e-12 * max(1.0, tk)) & ok).any()):
            with torch.no_grad():
                dt = torch.minimum(solver.dt_max(U.detach(), cfl), tk - t)
                dt = torch.where(ok & torch.isfinite(dt), dt.clamp(min=0.0), torch.zeros_like(dt))
            if checkpoint and torch.is_grad_enabled():
                U, W = ckpt(solver.step, U, W, dt, mu_ref, use_reentrant=False)
            else:
                U, W = solver.step(U, W, dt, mu_ref)
            t = t + dt
            with torch.no_grad():
                ok = ok & solver.valid(U, W)
            steps += 1
            if steps > max_steps:
                raise RuntimeError(f"rollout needed more than max_steps={max_steps} steps")
        out.append(solver.fields(U, W))
    return out, W, ok


def sweep_error_terms(pred: Any, ref: Any) -> Any:
    """(B, 5) squared relative L2 errors of the Knudsen sweep (``kinclose.bench.sweep.errors``) of
    fields pred, ref (B, nx, 5), ref the DVM."""
    import torch

    rho, T = ref[..., 0], ref[..., 2]
    p = rho * T
    norms = torch.stack([rho ** 2, T, T ** 2, p ** 2, p ** 2 * T], dim=-1).mean(1)
    return ((pred - ref) ** 2).mean(1) / norms


def _linear_response_term(ens: Any, lin: LinearResponse, dtype: Any) -> Any:
    """() -> the ensemble mean's relative linear-response error (``linear_response_penalty``, float64 torch
    scalar with gradients to the members in ``dtype``): the closure stage's penalty, on the mean that the
    rollouts use. The response algebra needs float64, so the closure is called through casts."""
    import torch

    from kinclose.closure.linear_response import linear_response_penalty

    targets = lin.targets()
    w_eq = ens.w_eq.detach().to(torch.float64)

    def stress_heat(W: Any) -> Any:
        return ens.mean_stress_heat(W.to(dtype)).to(torch.float64)

    def frame(W: Any, delta: Any, tau: Any) -> Any:
        m, k = ens.mean_frame(W.to(dtype), delta.to(dtype), tau.to(dtype))
        return m.to(torch.float64), k.to(torch.float64)

    return lambda: linear_response_penalty(stress_heat, frame, w_eq, targets, create_graph=True)


class _ShockTerm:
    """The steady-shock term of the loss: ``loss()`` = mean over the shocks of Σ_f w_f (the shock benchmark's
    squared relative errors, averaged over the snapshots) of rollouts from the steady DVM profiles; if a
    rollout loses positivity the term is 0 for that loss (its shocks counted in ``failed``)."""

    def __init__(self, targets: ShockTargets, solver: Any, times: list[float], cfl: float, weight: float,
                 fw: Any, dtype: Any) -> None:
        import torch

        self.targets, self.solver, self.times, self.cfl, self.weight, self.fw = targets, solver, times, cfl, weight, fw
        self.U0 = torch.as_tensor(targets.U0, dtype=dtype)
        self.W0 = torch.as_tensor(targets.W0, dtype=dtype)
        self.F = torch.as_tensor(targets.fields, dtype=dtype)
        self.up = torch.as_tensor(targets.ends[:, 0], dtype=dtype)
        self.mu = torch.full((len(targets.machs),), targets.mu_ref, dtype=dtype)
        self.failed = 0

    def terms(self) -> tuple[Any, Any]:
        """(N, S, 5) squared error terms and the (N,) mask of shocks that stayed physical."""
        import torch

        preds, _, ok = rollout(self.solver, self.U0, self.W0, self.times, self.mu, self.cfl)
        return torch.stack([shock_error_terms(p, self.F, self.up) for p in preds], dim=1), ok

    def loss(self) -> Any:
        terms, ok = self.terms()
        if not bool(ok.all()):  # a non-finite shock would put 0 * NaN into the others' gradients: skip them all
            self.failed += int((~ok).sum())
            log.warning("%d of %d shock rollouts lost positivity; the shock term is left out of this loss",
                        int((~ok).sum()), ok.numel())
            return self.U0.sum() * 0.0
        return (terms.mean(1) * self.fw).sum(-1).mean()

    def errors(self) -> dict[str, dict[str, float]]:
        """{Mach: {field: relative L2 error at the last snapshot}} (the benchmark's, without centring)."""
        import torch

        with torch.no_grad():
            terms, ok = self.terms()
        return {f"{m:g}": ({f: float(v) for f, v in zip(FIELDS, terms[i, -1].sqrt())} if bool(ok[i]) else None)
                for i, m in enumerate(self.targets.machs)}

    def describe(self) -> dict[str, Any]:
        return {"machs": self.targets.machs.tolist(), "weight": self.weight, "times": list(self.times),
                "cfl": self.cfl, "dx": self.targets.dx, "nx": int(self.targets.U0.shape[1]),
                "failed_rollouts": self.failed}


def _shock_term(opt: Any, spec: str, src_path: Path, meta: dict, ens: Any, xi_max: float, flux: str, limiter: str,
                fw: Any, dtype: Any) -> _ShockTerm | None:
    """The steady-shock term of ``stage.shock`` (None with weight 0). The encoder is the closure's moments
    model: ``opt.moments_ckpt``, by default the ``moments.pt`` beside the closure checkpoint, checked against
    the closure's ``moments_checkpoint_sha256``."""
    import torch

    from kinclose.closure.targets import encoder_weight_functions
    from kinclose.reduced.differentiable import TorchReducedSolver

    weight = float(opt.weight)
    if weight < 0 or not math.isfinite(weight):
        raise ValueError(f"stage.shock.weight={opt.weight!r} must be a finite number >= 0")
    if weight == 0:
        return None
    times = [float(t) for t in opt.times]
    if not times or any(b <= a for a, b in zip([0.0, *times], times)):
        raise ValueError(f"stage.shock.times={times} must be increasing and positive")
    model, _ = load_closure_moments(src_path, meta, opt.moments_ckpt,
                                    missing=f"stage.shock needs the moments model of the closure {spec}: set "
                                            "stage.shock.moments_ckpt")
    targets = shock_targets([float(m) for m in opt.machs], encoder_weight_functions(model.encoder), dx=float(opt.dx),
                            x_min=float(opt.x_min), x_max=float(opt.x_max), dvm=dict(opt.dvm))
    solver = TorchReducedSolver(ens.mean_stress_heat, ens.mean_frame, ens.w_eq, xi_max, targets.dx, targets.omega,
                                flux=flux, limiter=limiter, left=torch.as_tensor(targets.ends[:, 0], dtype=dtype),
                                right=torch.as_tensor(targets.ends[:, 1], dtype=dtype))
    return _ShockTerm(targets, solver, times, float(opt.cfl), weight, fw, dtype)


def train_rollout(cfg: Any, run_dir: str | Path | None = None) -> dict:
    """Fine-tune ``cfg.closure_ckpt`` through reduced-solver rollouts of the trajectories in ``cfg.data.root``
    (conf/train.yaml with stage=rollout) into ``run_dir``; returns the metrics (also ``metrics.json``)."""
    import torch
    from omegaconf import OmegaConf

    from kinclose.closure.hyperbolicity import member_penalty
    from kinclose.closure.train import _penalty_states
    from kinclose.pretrained import resolve
    from kinclose.reduced.differentiable import TorchReducedSolver

    st = cfg.stage
    run_dir, spec = start_checkpoint_stage(cfg, run_dir, "the closure to fine-tune")
    t_start = time.perf_counter()
    src_path = resolve(str(spec))
    ens, meta = load_closure_checkpoint(src_path)
    dtype = {"float32": torch.float32, "float64": torch.float64}[str(st.dtype)]
    ens = ens.to(dtype)
    xi_max = float(st.xi_max if st.xi_max is not None else meta.get("xi_max") or 4.0)
    traj = load_trajectories(cfg.data.root, int(st.nx), (float(st.kn[0]), float(st.kn[1])),
                             bool(cfg.data.get("verify_checksums", True)))
    seed = int(cfg.seed)
    perm = np.random.default_rng(seed).permutation(len(traj))
    n_val = max(1, round(float(cfg.data.val_fraction) * len(traj)))
    if len(traj) - n_val < 1:
        raise RolloutDataError(f"{len(traj)} trajectories leave none for training with val_fraction="
                               f"{cfg.data.val_fraction}")
    tr, va = traj.subset(np.sort(perm[n_val:])), traj.subset(np.sort(perm[:n_val]))
    log.info("rollout trajectories: %d train, %d validation, %d cells, snapshots %s, eps in [%.3g, %.3g]",
             len(tr), len(va), int(st.nx), np.round(traj.times, 4).tolist(), traj.kn.min(), traj.kn.max())
    solver = TorchReducedSolver(ens.mean_stress_heat, ens.mean_frame, ens.w_eq, xi_max, traj.dx, traj.omega,
                                flux=str(st.flux), limiter=str(st.limiter))
    fw = torch.tensor([float(st.field_weights[f]) for f in FIELDS], dtype=dtype)
    shock = _shock_term(st.shock, spec, src_path, meta, ens, xi_max, str(st.flux), str(st.limiter), fw, dtype)
    hyp = Hyperbolicity.from_dict(OmegaConf.to_container(st.hyperbolicity, resolve=True))
    lin = LinearResponse.from_dict(OmegaConf.to_container(st.linear_response, resolve=True))
    lin_penalty = _linear_response_term(ens, lin, dtype) if lin.weight > 0 else None
    cfl = float(st.cfl)

    def tensors(tj: Trajectories, idx: NDArray) -> tuple[Any, ...]:
        U0 = torch.as_tensor(tj.U0[idx], dtype=dtype)
        W0 = ens.w_eq.detach().to(dtype).expand(U0.shape[0], U0.shape[1], -1).clone()
        return U0, W0, torch.as_tensor(tj.fields[idx], dtype=dtype), torch.as_tensor(tj.mu_ref[idx], dtype=dtype)

    def batch_terms(tj: Trajectories, idx: NDArray) -> tuple[Any, Any, Any]:
        """(B, S, 5) squared error terms, the final W and the mask of problems that stayed physical."""
        U0, W0, F, mu = tensors(tj, idx)
        preds, W, ok = rollout(solver, U0, W0, tj.times, mu, cfl)
        return torch.stack([sweep_error_terms(p, F[:, s]) for s, p in enumerate(preds)], dim=1), W, ok

    failed = {"train": 0}

    def batch_loss(idx: Any, gen: Any) -> Any:
        idx = idx.numpy()
        terms, W, ok = batch_terms(tr, idx)
        if not bool(ok.all()):
            # rerun without them: a non-finite problem would put 0 * NaN into the gradient of the others
            failed["train"] += int((~ok).sum())
            log.warning("%d of %d rollouts lost positivity; left out of this batch", int((~ok).sum()), ok.numel())
            if not bool(ok.any()):
                return sum(p.sum() for p in ens.parameters()) * 0.0
            terms, W, ok = batch_terms(tr, idx[ok.numpy()])
        loss = (terms * fw).sum(-1).mean()
        if hyp.weight > 0:
            Wp = _penalty_states(W[ok].detach().reshape(-1, W.shape[-1]).to(torch.float64),
                                 ens.w_eq.detach().to(torch.float64), hyp, hyp.n_states, gen).to(dtype)
            loss = loss + hyp.weight * sum(member_penalty(m, Wp, hyp.s_max) for m in ens.members) / ens.K
        if lin_penalty is not None:
            loss = loss + lin.weight * lin_penalty().to(dtype)
        if shock is not None:
            loss = loss + shock.weight * shock.loss()
        return loss

    val_keys = [f"val_{f}" for f in FIELDS] + ["val_failed"] + (["val_linear_response"] if lin_penalty else []) \
        + (["val_shock"] if shock is not None else [])

    def evaluate(tj: Trajectories) -> tuple[float, dict[str, float]]:
        """Mean loss over ``tj`` and the sweep errors (relative L2, mean over problems) at the final time."""
        losses, finals, n_bad = [], [], 0
        with torch.no_grad():
            for i in range(0, len(tj), int(st.batch_size)):
                idx = np.arange(i, min(i + int(st.batch_size), len(tj)))
                terms, _, ok = batch_terms(tj, idx)
                n_bad += int((~ok).sum())
                losses.append((terms[ok] * fw).sum(-1).mean(-1))
                finals.append(terms[ok][:, -1].sqrt())
        loss = torch.cat(losses)
        fin = torch.cat(finals).mean(0)
        extras = dict(zip(val_keys, [*(float(v) for v in fin), float(n_bad)]))
        total = float(loss.mean()) if loss.numel() else math.inf
        if lin_penalty is not None:  # early stopping judges the objective that is trained
            extras["val_linear_response"] = float(lin_penalty().detach())
            total += lin.weight * extras["val_linear_response"]
        if shock is not None:  # the training shocks (no benchmark Mach number is held out for this)
            with torch.no_grad():
                extras["val_shock"] = float(shock.loss())
            total += shock.weight * extras["val_shock"]
        return total, extras

    shock_before = shock.errors() if shock is not None else None

    hist = fit_early_stopping(ens, len(tr), batch_loss, lambda: evaluate(va), epochs=int(st.epochs),
                              batch_size=int(st.batch_size), lr=float(st.lr), patience=int(st.patience), seed=seed,
                              lr_final_factor=float(st.lr_final_factor), progress=None, log_every_s=0.0,
                              name="rollout")
    ens = ens.to(torch.float64).eval()
    best = int(hist["best_epoch"])
    before = {"loss": hist["val_loss"][0], **{k: hist[k][0] for k in val_keys}}  # epoch 0: the source closure
    report = {"source": str(spec), "source_sha256": file_sha256(src_path), "dataset": str(cfg.data.root),
              "n_train": len(tr), "n_val": len(va), "nx": int(st.nx), "times": traj.times.tolist(),
              "kn": [float(traj.kn.min()), float(traj.kn.max())], "xi_max": xi_max, "flux": str(st.flux),
              "dtype": str(st.dtype), "val_before": before,
              "linear_response": {"weight": lin.weight,
                                  "error_after": hist["val_linear_response"][best] if lin_penalty else None},
              "val_best": {"loss": hist["best_val_loss"], **{k: hist[k][best] for k in val_keys}}, "best_epoch": best,
              "failed_train_rollouts": failed["train"],
              "shock": None if shock is None else {**shock.describe(), "errors_before": shock_before,
                                                   "errors_after": shock.errors()},
              "wall_s": time.perf_counter() - t_start}
    new_meta = dict(meta)
    new_meta["xi_max"] = xi_max
    new_meta["extra"] = {**dict(meta.get("extra") or {}), "rollout": report}
    save_closure_checkpoint(run_dir / CHECKPOINT_NAME, ens, new_meta)
    metrics = {"stage": "rollout", "package_version": __version__, **report, "history": hist,
               "checkpoint": str(run_dir / CHECKPOINT_NAME), "config": OmegaConf.to_container(cfg, resolve=True)}
    atomic_write_json(run_dir / "metrics.json", metrics)
    plot_learning_curves([hist], run_dir / "learning_curve.png", f"rollout fine-tuning of {spec}",
                         ylabel="rollout loss (dashed: train, solid: validation)")
    log.info("rollout fine-tuning: validation loss %.4e -> %.4e (epoch %d) -> %s", before["loss"], hist["best_val_loss"],
             hist["best_epoch"], run_dir / CHECKPOINT_NAME)
    return metrics
