"""Training of the closure ensemble (DESIGN §6): ``train_closure(cfg, run_dir) -> metrics``.

Inputs: a trained moments checkpoint (``moments.pt`` of ``kinclose-train stage=moments``; learned
encoder → MLC, Hermite encoder → HermMLC, same pipeline) and a labeled dataset (HDF5 shards). Each
cell (snapshot, x) is one sample; its shape on the moments model's ξ grid gives the targets of
``kinclose.closure.targets``: W, (σ̂, q̂), and m, k in ``stage.frames.n_frames`` frames (δ, τ) per
sample (frame 0 = (0, 1)).

Every member of the :class:`~kinclose.closure.networks.Ensemble` is trained on its own (own seed for
initialization and batch order) with Adam on the standardized squared errors

    L = w_sh ‖(ŷ − y)/S_y‖² + w_m ‖(m̂ − m)/S_m‖² + w_k ‖(k̂ − k)/S_k‖²

(S: training-set scales of σ̂/q̂, of the increments m − W and of k), optionally plus the hyperbolicity
penalty w_h · mean h(W) of :mod:`kinclose.closure.hyperbolicity` on batch states moved along
W_eq + s (W − W_eq) (``stage.hyperbolicity``), a cosine learning-rate decay and
early stopping on the validation loss (the parameters of the best epoch are kept). Train and
validation sets are split as in the moments stage (held-out shards when there are ≥ 5).

Artefacts in ``run_dir``: ``closure.pt`` (checkpoint: state_dict, constructor kwargs, class name,
closure version, package version, data schema version, dataset hash, sha256 of the moments
checkpoint, training range of W; written atomically, loaded with ``weights_only=True``),
``metrics.json`` (validation errors of σ̂, q̂, m, k overall and per ε decade; training range of W)
and ``learning_curve.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose import __version__
from kinclose.closure.checkpoint import load_ensemble_checkpoint, save_ensemble_checkpoint
from kinclose.closure.targets import QUADRATURES, ClosureTargets, FrameSampling, build_targets, identity_defect
from kinclose.conf import reject_unknown_keys
from kinclose.data.schema import sha256_file
from kinclose.io import atomic_savefig, atomic_write, atomic_write_json
from kinclose.moments.train import CheckpointError

log = logging.getLogger(__name__)

CLOSURE_VERSION = 1
"""Bumped whenever the meaning of a closure checkpoint's weights changes (architecture, targets)."""
CHECKPOINT_FORMAT = "kinclose.closure.ensemble"
CHECKPOINT_NAME = "closure.pt"


class ClosureCheckpointError(CheckpointError):
    """A closure checkpoint cannot be used: missing, corrupted, not ours, another version."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (checkpoint provenance)."""
    return sha256_file(path)


# ====================================================================== statistics
def w_range(W: NDArray) -> dict[str, list[float]]:
    """Training range of W (M,) per component: min, max, mean, std, 0.1 % and 99.9 % quantiles."""
    return {"min": W.min(0).tolist(), "max": W.max(0).tolist(), "mean": W.mean(0).tolist(), "std": W.std(0).tolist(),
            "q001": np.quantile(W, 0.001, axis=0).tolist(), "q999": np.quantile(W, 0.999, axis=0).tolist()}


def statistics(t: ClosureTargets, w_eq: NDArray, sampling: FrameSampling, anchor: bool) -> dict[str, Any]:
    """Standardization statistics (buffer names of the networks) from the training targets."""
    from kinclose.closure.networks import log_tau_scale

    W = t.W
    off = ~((t.delta == 0) & (t.tau == 1))
    dm = (t.m - t.W[:, None, :])[off]
    k = t.k.reshape(-1, t.k.shape[-1])
    floor = 1e-8
    y_scale = np.sqrt((t.sh ** 2).mean(0)) if anchor else t.sh.std(0)
    return {
        "w_mean": W.mean(0), "w_std": np.maximum(W.std(0), floor), "w_eq": np.asarray(w_eq, dtype=float),
        "y_mean": t.sh.mean(0), "y_std": np.maximum(y_scale, floor),
        "delta_scale": max(float(sampling.delta_max), 1e-3),
        "logtau_scale": log_tau_scale(sampling.tau_min, sampling.tau_max),
        "dm_std": np.maximum(np.sqrt((dm ** 2).mean(0)) if dm.size else np.ones(W.shape[1]), floor),
        "k_mean": k.mean(0), "k_std": np.maximum(k.std(0), floor),
    }


# ====================================================================== losses and fitting
def _tensors(t: ClosureTargets, device: str) -> dict:
    import torch

    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=device)  # noqa: E731
    return {"W": f(t.W), "sh": f(t.sh), "delta": f(t.delta), "tau": f(t.tau), "m": f(t.m), "k": f(t.k)}


def member_loss(member: Any, b: dict, weights: tuple[float, float, float]):
    """(total, (sh, m, k)) standardized mean squared errors of one member on a batch dict."""
    W = b["W"]
    n, F = b["delta"].shape
    sh_net, fr_net = member.stress_heat, member.frame
    l_sh = (((sh_net(W) - b["sh"]) / sh_net.y_std) ** 2).mean()
    Wr = W[:, None, :].expand(n, F, W.shape[1]).reshape(n * F, -1)
    m, k = fr_net(Wr, b["delta"].reshape(-1), b["tau"].reshape(-1))
    l_m = (((m - b["m"].reshape(n * F, -1)) / fr_net.dm_std) ** 2).mean()
    l_k = (((k - b["k"].reshape(n * F, -1)) / fr_net.k_std) ** 2).mean()
    return weights[0] * l_sh + weights[1] * l_m + weights[2] * l_k, (l_sh, l_m, l_k)


def _batched_loss(member: Any, data: dict, weights, batch: int = 8192) -> float:
    import torch

    n = data["W"].shape[0]
    tot = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            b = {k: v[i:i + batch] for k, v in data.items()}
            tot += float(member_loss(member, b, weights)[0]) * b["W"].shape[0]
    return tot / max(n, 1)


@dataclasses.dataclass(frozen=True)
class Hyperbolicity:
    """Hyperbolicity penalty of the closure loss (:mod:`kinclose.closure.hyperbolicity`).

    weight : w_h of L + w_h mean h(W) (0 disables the term).
    s_max : speed bound of h (the Rusanov bound ξ_max of the reduced solver).
    stretch : penalised states W_eq + s (W − W_eq), s ~ U(0, stretch), W from the batch.
    n_states : penalised states per batch (a random subset of the batch).
    n_val : fixed validation states of the penalty (added to the early-stopping loss).
    """

    weight: float = 0.0
    s_max: float = 4.0
    stretch: float = 1.5
    n_states: int = 64
    n_val: int = 512

    @classmethod
    def from_dict(cls, d: Any) -> "Hyperbolicity":
        d = dict(d)
        reject_unknown_keys(d, (f.name for f in dataclasses.fields(cls)), "stage.hyperbolicity")
        return cls(**d)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"stage.hyperbolicity.weight={self.weight} must be >= 0")
        if not (isinstance(self.s_max, (int, float)) and math.isfinite(self.s_max) and self.s_max > 0):
            raise ValueError(f"stage.hyperbolicity.s_max={self.s_max!r} must be a number > 0 (auto: stage=distill only)")
        if not (math.isfinite(self.stretch) and self.stretch > 0):
            raise ValueError(f"stage.hyperbolicity.stretch={self.stretch} must be > 0")
        if self.n_states < 1 or self.n_val < 1:
            raise ValueError("stage.hyperbolicity.n_states and n_val must be >= 1")


@dataclasses.dataclass(frozen=True)
class LinearResponse:
    """Linear-response penalty of the closure loss (:mod:`kinclose.closure.linear_response`).

    weight : w_l of L + w_l e, e the relative linear-response error of ``linear_response_penalty``
        (0 disables the term; e is reported anyway).
    kn : [min, max] of the mode Knudsen numbers Kn_k = k/ν (n_kn log-spaced values).
    s : times s = k t (units √T = 1) at which the 3 × 3 responses are compared.
    """

    weight: float = 0.0
    kn: tuple[float, float] = (0.01, 100.0)
    n_kn: int = 9
    s: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0)

    @classmethod
    def from_dict(cls, d: Any) -> "LinearResponse":
        d = dict(d)
        reject_unknown_keys(d, (f.name for f in dataclasses.fields(cls)), "stage.linear_response")
        for key in ("kn", "s"):
            if key in d:
                d[key] = tuple(float(x) for x in d[key])
        return cls(**d)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"stage.linear_response.weight={self.weight} must be >= 0")
        if len(self.kn) != 2 or not (0 < self.kn[0] <= self.kn[1] < math.inf):
            raise ValueError(f"stage.linear_response.kn={list(self.kn)} must be [min, max] with 0 < min <= max")
        if self.n_kn < 1:
            raise ValueError(f"stage.linear_response.n_kn={self.n_kn} must be >= 1")
        if not self.s or not all(math.isfinite(x) and x > 0 for x in self.s):
            raise ValueError(f"stage.linear_response.s={list(self.s)} must be a non-empty list of times > 0")

    def targets(self) -> Any:
        """Kinetic responses on the (Kn_k, s) grid (``LinearResponseTargets``)."""
        from kinclose.closure.linear_response import LinearResponseTargets

        kn = np.geomspace(self.kn[0], self.kn[1], int(self.n_kn))
        return LinearResponseTargets.compute(kn, self.s, n=160)


def _penalty_states(W: Any, w_eq: Any, hyp: Hyperbolicity, n: int, gen: Any) -> Any:
    """n states for the penalty: a random subset of the rows of W moved along W_eq + s (W − W_eq)."""
    import torch

    from kinclose.closure.hyperbolicity import extrapolated_states

    idx = torch.randperm(W.shape[0], generator=gen)[:n].to(W.device)
    return extrapolated_states(W[idx], w_eq, hyp.stretch, gen)


def fit_early_stopping(module: Any, n_train: int, batch_loss: Callable[[Any, Any], Any],
                       val_loss: Callable[[], tuple[float, dict[str, float]]], *, epochs: int, batch_size: int,
                       lr: float, patience: int, seed: int, lr_final_factor: float = 0.05, weight_decay: float = 0.0,
                       device: Any = "cpu", progress: bool | None = False, log_every_s: float = 30.0,
                       name: str = "member") -> dict:
    """Adam with a cosine decay to ``lr * lr_final_factor`` and early stopping after ``patience`` epochs
    without a lower validation loss; the parameters of the best validation loss are restored.

    ``batch_loss(idx, gen)`` is the scalar training loss of the rows ``idx`` (a (b,) index tensor on
    ``device``; ``gen`` is the loop's CPU generator, for any extra sampling); ``val_loss()`` returns
    (validation loss, extras), each extra (a float) recorded per epoch in the history under its key.
    Returns the history: epoch, train_loss, val_loss, the extras' keys, best_epoch, best_val_loss, wall_s.
    """
    import torch
    from tqdm.auto import tqdm

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * lr_final_factor)
    v0, x0 = val_loss()
    hist: dict[str, Any] = {"epoch": [0], "train_loss": [math.nan], "val_loss": [v0], **{k: [v] for k, v in x0.items()}}
    best = (v0, {k: v.detach().clone() for k, v in module.state_dict().items()}, 0)
    t0 = last = time.perf_counter()
    for ep in tqdm(range(1, epochs + 1), disable=None if progress is None else not progress, desc=name, leave=False):
        module.train()
        perm = torch.randperm(n_train, generator=gen).to(device)
        tot = 0.0
        for i in range(0, n_train, batch_size):
            idx = perm[i:i + batch_size]
            loss = batch_loss(idx, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: non-finite training loss at epoch {ep}; lower stage.lr={lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * idx.numel()
        sched.step()
        module.eval()
        vl, extras = val_loss()
        hist["epoch"].append(ep)
        hist["train_loss"].append(tot / n_train)
        hist["val_loss"].append(vl)
        for k, v in extras.items():
            hist[k].append(v)
        if vl < best[0]:
            best = (vl, {k: v.detach().clone() for k, v in module.state_dict().items()}, ep)
        now = time.perf_counter()
        if now - last > log_every_s or ep == epochs:
            more = "".join(f"{k.removeprefix('val_')} {v:.3e}; " for k, v in extras.items())
            log.info("%s epoch %d/%d: train %.4e, val %.4e (%sbest %.4e at %d)", name, ep, epochs, tot / n_train, vl,
                     more, best[0], best[2])
            last = now
        if ep - best[2] >= patience:
            log.info("%s: early stop at epoch %d (best validation loss %.4e at epoch %d)", name, ep, best[0], best[2])
            break
    module.load_state_dict(best[1])
    hist.update(best_epoch=best[2], best_val_loss=best[0], wall_s=time.perf_counter() - t0)
    return hist


def fit_member(member: Any, train: dict, val: dict, *, epochs: int, batch_size: int, lr: float, patience: int,
               weights: tuple[float, float, float], seed: int, lr_final_factor: float = 0.05,
               weight_decay: float = 0.0, hyperbolicity: Hyperbolicity | None = None, w_eq: Any = None,
               linear_response: tuple[LinearResponse, Any] | None = None,
               progress: bool | None = None, log_every_s: float = 30.0, name: str = "member") -> dict:
    """Fit one closure member (``member_loss``) with :func:`fit_early_stopping`; returns the history.

    With ``hyperbolicity.weight > 0`` (and ``w_eq``, (M,) tensor) the loss gains w_h · mean h over
    penalised states of every batch; the validation loss adds the same term on fixed validation states
    (``val_penalty`` in the history is the unweighted mean h there). ``linear_response`` = (options,
    kinetic targets) with weight > 0 adds w_l times the linear-response error at W_eq to both losses
    (``val_linear`` in the history, unweighted).
    """
    import torch

    from kinclose.closure.hyperbolicity import member_penalty
    from kinclose.closure.linear_response import linear_response_penalty

    hyp = hyperbolicity if hyperbolicity is not None and hyperbolicity.weight > 0 else None
    lin = linear_response if linear_response is not None and linear_response[0].weight > 0 else None
    if (hyp is not None or lin is not None) and w_eq is None:
        raise ValueError("the hyperbolicity and linear-response penalties need w_eq")

    def linear_error(create_graph: bool) -> Any:
        return linear_response_penalty(member.stress_heat, member.frame, w_eq, lin[1], create_graph)

    W_pen = None if hyp is None else _penalty_states(val["W"], w_eq, hyp, hyp.n_val,
                                                      torch.Generator().manual_seed(int(seed) + 7919))

    def batch_loss(idx: Any, gen: Any) -> Any:
        b = {k: v[idx] for k, v in train.items()}
        loss, _ = member_loss(member, b, weights)
        if hyp is not None:
            loss = loss + hyp.weight * member_penalty(member, _penalty_states(b["W"], w_eq, hyp, hyp.n_states, gen),
                                                      hyp.s_max)
        if lin is not None:
            loss = loss + lin[0].weight * linear_error(True)
        return loss

    def val_loss() -> tuple[float, dict[str, float]]:
        total = _batched_loss(member, val, weights)
        extras = {"val_penalty": 0.0}
        if hyp is not None:
            extras["val_penalty"] = float(member_penalty(member, W_pen, hyp.s_max, create_graph=False).detach())
            total += hyp.weight * extras["val_penalty"]
        if lin is not None:
            extras["val_linear"] = float(linear_error(False).detach())
            total += lin[0].weight * extras["val_linear"]
        return total, extras

    return fit_early_stopping(member, train["W"].shape[0], batch_loss, val_loss, epochs=epochs, batch_size=batch_size,
                              lr=lr, patience=patience, seed=seed, lr_final_factor=lr_final_factor,
                              weight_decay=weight_decay, device=train["W"].device, progress=progress,
                              log_every_s=log_every_s, name=name)


def member_workers(setting: Any, K: int, threads: int | None) -> int:
    """Processes that fit the K members side by side: ``setting`` an int, or "auto" = as many as the CPU cores allow
    at ``threads`` torch threads each (1 thread when unset), at most K, on the CPU and on a GPU alike (there each
    process drives the GPU with its own CUDA context: the small networks leave it idle between launches)."""
    import os

    if str(setting) == "auto":
        return max(1, min(K, (os.cpu_count() or 1) // max(1, int(threads or 1))))
    n = int(setting)
    if n < 1:
        raise ValueError(f"stage.workers must be >= 1 or 'auto', got {setting!r}")
    return min(n, K)


def _to(obj: Any, device: Any) -> Any:
    """``obj`` with every torch tensor in it (nested dicts, lists, tuples) moved to ``device``."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _fit_member_in_process(fit: Callable, member: Any, train: Any, val: Any, threads: int, kwargs: dict,
                           device: str) -> tuple[dict, dict]:
    """Worker of :func:`fit_members`: fit one member (sent on the CPU) on ``device`` in a spawned process; its state
    (on the CPU) and history."""
    import torch

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    torch.set_num_threads(threads)
    member.to(device)
    hist = fit(member, _to(train, device), _to(val, device), **_to(kwargs, device))
    return _to(member.state_dict(), "cpu"), hist


def _feed(h: Any, obj: Any) -> None:
    """Feed ``obj`` (tensors, arrays, dataclasses, mappings, sequences, scalars) into the hash ``h``."""
    import torch

    if isinstance(obj, torch.Tensor | np.ndarray):
        a = obj.detach().cpu().contiguous().numpy() if isinstance(obj, torch.Tensor) else np.ascontiguousarray(obj)
        h.update(f"array {a.dtype} {a.shape}:".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        _feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for x in obj:
            _feed(h, x)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())


def inputs_hash(train: Any, val: Any, fit: Callable) -> Any:
    """SHA-256 state of what every member's fit shares: the package's code, the fit function and the training and
    validation data (hashed once per stage; :func:`member_key` completes it per member)."""
    import hashlib

    from kinclose.io import source_digest

    h = hashlib.sha256(source_digest().encode())
    h.update(f"{fit.__module__}.{fit.__qualname__}".encode())
    _feed(h, [train, val])
    return h


def member_key(shared: Any, member: Any, job: dict) -> str:
    """SHA-256 of everything a member's fit depends on: ``shared`` (:func:`inputs_hash`), the member's initial
    weights and device and the fit's options."""
    h = shared.copy()
    h.update(f"on {next(member.parameters()).device}".encode())
    _feed(h, [member.state_dict(), job])
    return h.hexdigest()


def _load_fitted(path: Path, key: str) -> dict | None:
    """The cached fit (``state``, ``hist``) of a member at ``path`` if it was made with ``key``; None otherwise
    (missing, unreadable or made for other inputs: that member is fitted again)."""
    import torch

    if not path.exists():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — a damaged cache only costs a refit
        log.warning("ignoring the unreadable fitted-member file %s (%s: %s)", path, type(exc).__name__, exc)
        return None
    return obj if isinstance(obj, dict) and obj.get("key") == key else None


def _save_fitted(path: Path, key: str, member: Any, hist: dict) -> None:
    import torch

    state = {k: v.detach().cpu() for k, v in member.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"key": key, "state": state, "hist": hist}, tmp))


def fit_members(members: list, train: Any, val: Any, jobs: list[dict], workers: int = 1,
                threads: int | None = None, fit: Callable | None = None,
                resume_dir: str | Path | None = None) -> list[dict]:
    """Fit every member (``fit(member, train, val, **jobs[i])``, by default :func:`fit_member`; another stage
    passes its own module-level fit, e.g. ``source.fit_source_member``) and return their histories; with
    ``workers`` > 1 that many spawned processes (``threads`` torch threads each, default 1) fit them side by side on
    the device of the members, and the fitted weights are loaded back into ``members``. A member's fit depends only
    on its seed, so the result is that of ``workers=1`` with the same thread count (on a GPU up to the order of
    its floating-point reductions).

    ``resume_dir``: each fitted member is written there (``member_<i>.pt``, atomically, with :func:`member_key` of
    its inputs), and a member whose file holds the key of the same inputs is loaded instead of fitted, so a rerun
    of a killed stage fits only the members it had not finished."""
    fit = fit_member if fit is None else fit
    resume = None if resume_dir is None else Path(resume_dir)
    shared = inputs_hash(train, val, fit) if resume else None
    keys = [member_key(shared, m, kw) if resume else None for m, kw in zip(members, jobs, strict=True)]
    hists: list[dict | None] = [None] * len(members)
    for i, (m, kw, key) in enumerate(zip(members, jobs, keys, strict=True)):
        done = _load_fitted(resume / f"member_{i}.pt", key) if resume else None
        if done is not None:
            m.load_state_dict(done["state"])
            hists[i] = done["hist"]
            log.info("%s: fitted by an earlier run, loaded from %s", kw.get("name", "member"), resume)
    todo = [i for i, h in enumerate(hists) if h is None]

    def finish(i: int, hist: dict) -> None:
        hists[i] = hist
        if resume:
            _save_fitted(resume / f"member_{i}.pt", keys[i], members[i], hist)

    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            finish(i, fit(members[i], train, val, **jobs[i]))
        return hists
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    device = next(members[0].parameters()).device
    train_cpu, val_cpu = _to(train, "cpu"), _to(val, "cpu")
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {i: pool.submit(_fit_member_in_process, fit, members[i].to("cpu"), train_cpu, val_cpu,
                                  int(threads or 1), _to(jobs[i], "cpu"), str(device)) for i in todo}
        for i, fut in futures.items():
            state, hist = fut.result()
            members[i].load_state_dict(state)
            members[i].to(device)
            finish(i, hist)
            log.info("%s: best validation loss %.4e at epoch %d", jobs[i].get("name", "member"),
                     hist["best_val_loss"], hist["best_epoch"])
    return hists


# ====================================================================== evaluation
def predict(ens: Any, t: ClosureTargets, device: str = "cpu", batch: int = 8192) -> dict[str, NDArray]:
    """Ensemble mean and variance of every output on the samples and frames of ``t``."""
    import torch

    d = _tensors(t, device)
    n, F = t.delta.shape
    M = t.W.shape[1]
    out: dict[str, list] = {"sh": [], "sh_var": [], "m": [], "k": [], "m_var": [], "k_var": []}
    ens.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            W = d["W"][i:i + batch]
            b = W.shape[0]
            sh, shv = ens.stress_heat(W)
            Wr = W[:, None, :].expand(b, F, M).reshape(b * F, M)
            m, k, mv, kv = ens.frame(Wr, d["delta"][i:i + batch].reshape(-1), d["tau"][i:i + batch].reshape(-1))
            for key, val in (("sh", sh), ("sh_var", shv), ("m", m.reshape(b, F, M)), ("k", k.reshape(b, F, M)),
                             ("m_var", mv.reshape(b, F, M)), ("k_var", kv.reshape(b, F, M))):
                out[key].append(val.cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def errors(pred: dict, t: ClosureTargets) -> dict[str, dict]:
    """Errors of the ensemble mean overall and per ε decade [10^d, 10^{d+1}).

    σ̂, q̂: RMSE, RMSE relative to the RMS of the target, max |error|. m: over the non-identity
    frames, relative to the RMS of the increment m − W (the part that is learned). k: over all
    frames, relative to the RMS of k. ``std_mean``: mean ensemble standard deviation.
    """
    off = ~((t.delta == 0) & (t.tau == 1))

    def stats(err: NDArray, ref: NDArray, var: NDArray) -> dict:
        if err.size == 0:
            return {"n": 0}
        rmse = float(np.sqrt((err ** 2).mean()))
        rms = float(np.sqrt((ref ** 2).mean()))
        return {"n": int(err.size), "rmse": rmse, "rel_rmse": rmse / rms if rms > 0 else math.nan,
                "max_abs": float(np.abs(err).max()), "target_rms": rms, "std_mean": float(np.sqrt(var).mean())}

    def agg(mask: NDArray) -> dict:
        o = off[mask]
        dm_ref = (t.m - t.W[:, None, :])[mask][o]
        return {
            "n_samples": int(mask.sum()),
            "sigma_hat": stats(pred["sh"][mask, 0] - t.sh[mask, 0], t.sh[mask, 0], pred["sh_var"][mask, 0]),
            "q_hat": stats(pred["sh"][mask, 1] - t.sh[mask, 1], t.sh[mask, 1], pred["sh_var"][mask, 1]),
            "m": stats((pred["m"][mask] - t.m[mask])[o], dm_ref, pred["m_var"][mask][o]),
            "k": stats(pred["k"][mask] - t.k[mask], t.k[mask], pred["k_var"][mask]),
        }

    res = {"all": agg(np.ones(len(t), dtype=bool)), "per_decade": {}}
    dec = np.floor(np.log10(t.kn) + 1e-12).astype(int)
    for d in np.unique(dec):
        res["per_decade"][f"1e{d:+d}"] = agg(dec == d)
    return res


# ====================================================================== checkpoints
def characteristic_speeds(ens: Any, W: NDArray, w_eq: NDArray, xi_max: float, rng: np.random.Generator,
                          n: int = 1000) -> dict[str, Any]:
    """Spectrum of the ensemble-mean closed system (:mod:`kinclose.closure.hyperbolicity`) on up to n
    validation states W and on the same states stretched to W_eq + 1.5 (W − W_eq): fraction of states
    with complex eigenvalues, 50/99 % quantiles and maximum of max |Re λ̂|, fraction above ``xi_max``,
    and the sorted λ̂ at W_eq."""
    from kinclose.closure.learned import LearnedClosure

    cl = LearnedClosure(ens, {}, xi_max, inference="torch")
    Ws = W[rng.choice(W.shape[0], min(n, W.shape[0]), replace=False)]
    out: dict[str, Any] = {}
    for name, X in (("validation", Ws), ("stretched_1.5", w_eq + 1.5 * (Ws - w_eq))):
        d = cl.flux_jacobian_eigenvalues(np.tile([1.0, 0.0, 1.5], (X.shape[0], 1)), X)
        sp = np.abs(d["eigenvalues"].real).max(1)
        out[name] = {"states_complex": d["fraction_states_complex"], "speed_q50": float(np.quantile(sp, 0.5)),
                     "speed_q99": float(np.quantile(sp, 0.99)), "speed_max": d["max_speed"],
                     "fraction_above_xi_max": d["fraction_above_xi_max"]}
    lam = cl.flux_jacobian_eigenvalues(np.array([[1.0, 0.0, 1.5]]), np.asarray(w_eq)[None])["eigenvalues"][0]
    out["equilibrium"] = np.sort(lam.real).tolist()
    out["equilibrium_max_imag"] = float(np.abs(lam.imag).max())
    return out


def linear_response_report(ens: Any, w_eq: NDArray, options: LinearResponse, targets: Any) -> dict[str, Any]:
    """Options and relative linear-response error (``linear_response_penalty``) of the ensemble-mean
    closed system and of each member, at W_eq."""
    import torch

    from kinclose.closure.linear_response import linear_response_penalty

    with torch.no_grad():
        mean = linear_response_penalty(ens.mean_stress_heat, ens.mean_frame,
                                       w_eq, targets, create_graph=False)
        members = [linear_response_penalty(m.stress_heat, m.frame, w_eq, targets, create_graph=False)
                   for m in ens.members]
    return {**dataclasses.asdict(options), "error_mean": float(mean), "error_members": [float(x) for x in members]}


def save_closure_checkpoint(path: str | Path, ens: Any, meta: dict) -> Path:
    """Atomically write ``closure.pt``; ``meta`` holds JSON-like provenance (hashes, ranges, config)."""
    return save_ensemble_checkpoint(path, ens, meta, fmt=CHECKPOINT_FORMAT, kind="closure", version=CLOSURE_VERSION,
                                    class_name=type(ens).__name__)


def load_closure_checkpoint(path: str | Path, map_location: str = "cpu"):
    """(ensemble in eval mode, metadata) from ``closure.pt``, read with ``weights_only=True``.

    Raises :class:`ClosureCheckpointError` for a missing, unreadable or foreign file, another closure
    version or data schema version, and weights that do not fit the stored constructor kwargs.
    """
    from kinclose.closure.networks import Ensemble

    return load_ensemble_checkpoint(path, fmt=CHECKPOINT_FORMAT, kind="closure", version=CLOSURE_VERSION,
                                    build=Ensemble, class_name=Ensemble.__name__, error=ClosureCheckpointError,
                                    stage="kinclose-train stage=closure", map_location=map_location)


def load_closure_moments(closure_path: str | Path, meta: dict, moments_ckpt: str | Path | None, *, missing: str,
                         role: str = "closure") -> tuple[Any, Path]:
    """(moments model, its path) that a closure was trained with: ``moments_ckpt`` (a path or
    ``pretrained:<name>``), by default the ``moments.pt`` beside the closure checkpoint ``closure_path``.

    Raises :class:`ClosureCheckpointError` when it is missing (message ``missing``), when its sha256 differs
    from the closure's ``meta["moments_checkpoint_sha256"]`` (where recorded), or when its M differs from the
    closure's: W of another moments model would mean something else.
    """
    from kinclose.moments.train import load_checkpoint
    from kinclose.pretrained import resolve_moments

    path = resolve_moments(moments_ckpt) if moments_ckpt else Path(closure_path).parent / "moments.pt"
    if not path.is_file():
        raise ClosureCheckpointError(f"{missing} ({path} does not exist)")
    sha = file_sha256(path)
    want = meta.get("moments_checkpoint_sha256")
    if want and sha != want:
        raise ClosureCheckpointError(f"{path} is not the moments checkpoint the {role} was trained with (sha256 "
                                     f"{sha[:12]}…, {role} expects {str(want)[:12]}…): its W would mean something "
                                     "else")
    moments, _ = load_checkpoint(path)
    if int(moments.M) != int(meta["kwargs"]["M"]):
        raise ClosureCheckpointError(f"{path} has M={moments.M}, the {role} M={meta['kwargs']['M']}")
    return moments, path


def start_checkpoint_stage(cfg: Any, run_dir: str | Path | None, needs: str) -> tuple[Path, str]:
    """Common start of the CPU stages that read a closure checkpoint ``cfg.closure_ckpt`` (distill, rollout):
    the run folder (``run_dir``, else ``cfg.run_dir``, else outputs/train/<stage>; created), the checkpoint
    spec (a clear error naming what the stage ``needs`` when it is missing), torch's CPU threads
    (``cfg.threads``) and a warning when another device is asked for."""
    import torch

    name = str(cfg.stage.name)
    run_dir = Path(run_dir if run_dir is not None else cfg.get("run_dir", f"outputs/train/{name}"))
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = cfg.get("closure_ckpt")
    if not spec:
        raise ClosureCheckpointError(f"stage={name} needs {needs}: add closure_ckpt=PATH/closure.pt (written by "
                                     "`kinclose-train stage=closure`) or closure_ckpt=pretrained:<name>")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if str(cfg.device) not in ("auto", "cpu"):
        log.warning("stage=%s trains on the CPU (device=%s ignored)", name, cfg.device)
    return run_dir, str(spec)


# ====================================================================== plots
def plot_learning_curves(hists: list[dict], path: Path, title: str = "",
                         ylabel: str = "standardized loss (dashed: train, solid: validation)") -> None:
    """Train (dashed) and validation (solid) loss per member, best epoch marked; hists from fit_member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kinclose.plotting import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, h in enumerate(hists):
        c = f"C{i % 10}"
        ep = np.asarray(h["epoch"])
        ax.semilogy(ep[1:], np.asarray(h["train_loss"])[1:], color=c, lw=0.8, ls="--")
        ax.semilogy(ep, h["val_loss"], color=c, lw=1.2, label=f"member {i} (best {h['best_epoch']})")
        ax.plot([h["best_epoch"]], [h["best_val_loss"]], "o", color=c, ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


# ====================================================================== stage
def _sampling(st: Any) -> FrameSampling:
    fr = st.frames
    return FrameSampling(int(fr.n_frames), float(fr.delta_max), float(fr.tau_min), float(fr.tau_max))


def exact_stress_heat(option: Any, encoder: Any) -> bool:
    """Whether σ̂, q̂ are read from W (``stage.exact_stress_heat``: auto | true | false).

    ``auto`` is true exactly when the encoder fixes W_0 = 1 + σ̂, W_1 = q̂ (learned encoder with
    ``stress_heat_moments``); ``true`` with any other encoder is an error, since σ̂, q̂ are not in W.
    """
    fixed = int(getattr(encoder, "n_fixed", 0)) == 2
    opt = str(option).lower()
    if opt not in ("auto", "true", "false"):
        raise ValueError(f"stage.exact_stress_heat={option!r}: choose auto, true or false")
    if opt == "true" and not fixed:
        raise ValueError("stage.exact_stress_heat=true needs moments with W_0 = 1 + sigma_hat, W_1 = q_hat "
                         "(kinclose-train stage=moments stage.stress_heat_moments=true)")
    return fixed if opt == "auto" else opt == "true"


def structured_terms(structure: str, encoder: Any) -> list[tuple[int, int]]:
    """The (n, l) terms of a graded Hermite encoder for ``stage.structure`` hermite | grad (clear error otherwise)."""
    from kinclose.closure.hermite import STRUCTURES, HermiteAlgebra

    if structure not in STRUCTURES:
        raise ValueError(f"stage.structure={structure!r}: choose one of {STRUCTURES}")
    return HermiteAlgebra.from_encoder(encoder).terms


def top_scale(terms: list[tuple[int, int]], t: ClosureTargets) -> NDArray:
    """(2,) RMS of the top moments r of a graded Hermite set over the samples of ``t`` (from the fluxes in the
    identity frame, frame 0), floored: the output scale S_r of ``networks.HermiteFrame``."""
    from kinclose.closure.hermite import HermiteAlgebra

    r = HermiteAlgebra(terms).top_from_flux(t.W, t.k[:, 0, :])
    return np.maximum(np.sqrt((r ** 2).mean(0)), 1e-8)


def train_closure(cfg: Any, run_dir: str | Path | None = None) -> dict:
    """Train the closure ensemble of ``cfg`` (conf/train.yaml with stage=closure) into ``run_dir``.

    ``cfg.moments_ckpt`` names the moments checkpoint; ``cfg.data`` the dataset (as for stage=moments).
    Returns the metrics dict (also written to ``metrics.json``).
    """
    import torch
    from omegaconf import OmegaConf

    from kinclose.closure.networks import Ensemble
    from kinclose.moments.shape import XiGrid
    from kinclose.moments.train import load_checkpoint, load_dataset, resolve_device, split

    st = cfg.stage
    run_dir = Path(run_dir if run_dir is not None else cfg.get("run_dir", "outputs/train/closure"))
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = cfg.get("moments_ckpt")
    if not ckpt:
        raise ClosureCheckpointError("stage=closure needs the moments checkpoint: add moments_ckpt=PATH/moments.pt "
                                     "(written by `kinclose-train stage=moments`)")
    seed = int(cfg.seed)
    device = resolve_device(str(cfg.device))
    if device == "cpu" and cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    moments, mmeta = load_checkpoint(ckpt)
    moments_hash = file_sha256(ckpt)
    grid: XiGrid = moments.grid
    quadrature = str(st.get("quadrature", "xi"))
    if quadrature not in QUADRATURES:
        raise ValueError(f"unknown stage.quadrature={quadrature!r}; choose one of {QUADRATURES}")
    data = load_dataset(cfg.data.root, grid, str(st.interpolation), cfg.data.get("max_samples_per_shard"), seed,
                        bool(cfg.data.get("verify_checksums", True)), keep_raw=quadrature == "velocity")
    if mmeta.get("dataset_hash") != data.info["dataset_hash"]:
        log.warning("the moments checkpoint was trained on dataset %s, the closure is trained on %s",
                    mmeta.get("dataset_hash"), data.info["dataset_hash"])
    sampling = _sampling(st)
    rng = np.random.default_rng(seed + 104729)
    targets = build_targets(data, moments.encoder, sampling, rng, quadrature=quadrature)
    id_defect = identity_defect(targets)
    itr, iva, how = split(data, float(cfg.data.val_fraction), seed, str(cfg.data.get("split", "auto")))
    tr, va = targets.subset(itr), targets.subset(iva)
    w_eq = moments.w_eq().detach().cpu().numpy()
    log.info("closure targets: %d samples x %d frames (%d train, %d validation, split by %s), %.1f s",
             len(targets), sampling.n_frames, len(tr), len(va), how, time.perf_counter() - t0)

    structure = str(st.get("structure", "free"))
    terms = None
    if structure == "free":
        exact_sh = exact_stress_heat(st.get("exact_stress_heat", "auto"), moments.encoder)
    else:
        exact_sh = False
        terms = structured_terms(structure, moments.encoder)
    ens = Ensemble(M=int(moments.M), K=int(st.K), hidden=list(st.hidden), activation=str(st.activation),
                   anchor=bool(st.anchor), seed=seed, exact_stress_heat=exact_sh, skip=bool(st.get("skip", False)),
                   structure=structure, terms=terms)
    stats = statistics(tr, w_eq, sampling, bool(st.anchor))
    if terms is not None:
        stats["r_std"] = top_scale(terms, tr)
    ens.set_statistics(stats)
    ens.to(device)
    dtr, dva = _tensors(tr, device), _tensors(va, device)
    weights = (float(st.loss_weights.sh), float(st.loss_weights.m), float(st.loss_weights.k))
    hyp = Hyperbolicity.from_dict(st.get("hyperbolicity") or {})
    lin = LinearResponse.from_dict(st.get("linear_response") or {})
    lin_targets = lin.targets()
    w_eq_t = torch.as_tensor(w_eq, dtype=torch.float64, device=device)
    members = list(ens.members) if structure != "grad" else []  # Grad's closure has nothing to fit
    jobs = [{"epochs": int(st.epochs), "batch_size": int(st.batch_size), "lr": float(st.lr),
             "patience": int(st.patience), "weights": weights, "seed": seed * 1009 + i + 1,
             "lr_final_factor": float(st.get("lr_final_factor", 0.05)),
             "weight_decay": float(st.get("weight_decay", 0.0)), "hyperbolicity": hyp, "w_eq": w_eq_t,
             "linear_response": (lin, lin_targets), "name": f"member {i}"} for i in range(len(members))]
    workers = member_workers(st.get("workers", 1), len(members), cfg.get("threads"))
    if workers > 1:
        log.info("fitting %d members in %d processes", len(members), workers)
    hists = fit_members(members, dtr, dva, jobs, workers, cfg.get("threads"), resume_dir=run_dir / "members")
    ens.to("cpu").eval()
    pred_va, pred_tr = predict(ens, va), predict(ens, tr)
    err_va, err_tr = errors(pred_va, va), errors(pred_tr, tr)
    spectrum = characteristic_speeds(ens, va.W, w_eq, float(st.xi_max), rng)
    linear = linear_response_report(ens, w_eq, lin, lin_targets)
    rng_W = w_range(tr.W)
    title = f"closure on {mmeta['kwargs']['encoder']} moments M={moments.M}, K={ens.K}"
    metrics = {
        "stage": "closure", "encoder": mmeta["kwargs"]["encoder"], "M": int(moments.M), "K": ens.K,
        "device": device, "seed": seed, "package_version": __version__, "data": data.info,
        "moments_checkpoint": str(ckpt), "moments_checkpoint_sha256": moments_hash,
        "moments_dataset_hash": mmeta.get("dataset_hash"),
        "n_train": len(tr), "n_val": len(va), "split": how, "quadrature": quadrature,
        "frames": dataclasses.asdict(sampling),
        "identity_defect": id_defect, "W_eq": w_eq.tolist(), "W_range": rng_W,
        "hyperbolicity": dataclasses.asdict(hyp), "characteristic_speeds": spectrum, "linear_response": linear,
        "first_val_loss": [h["val_loss"][0] for h in hists], "best_val_loss": [h["best_val_loss"] for h in hists],
        "best_epoch": [h["best_epoch"] for h in hists],
        "val": err_va, "train": err_tr, "history": hists, "wall_s": time.perf_counter() - t0,
        "model_kwargs": ens.kwargs, "config": OmegaConf.to_container(cfg, resolve=True),
    }
    meta = {
        "data_schema_version": data.info["schema_version"], "dataset_hash": data.info["dataset_hash"],
        "moments_checkpoint_sha256": moments_hash, "moments_kwargs": mmeta["kwargs"],
        "moments_dataset_hash": mmeta.get("dataset_hash"), "W_range": rng_W,
        "frames": {"n_frames": sampling.n_frames, "delta_max": sampling.delta_max, "tau_min": sampling.tau_min,
                   "tau_max": sampling.tau_max},
        "xi_max": float(st.xi_max), "quadrature": quadrature,
        "extra": {"val_sigma_hat_rel_rmse": err_va["all"]["sigma_hat"]["rel_rmse"],
                  "val_q_hat_rel_rmse": err_va["all"]["q_hat"]["rel_rmse"],
                  "hyperbolicity": dataclasses.asdict(hyp), "characteristic_speeds": spectrum,
                  "linear_response": linear},
    }
    save_closure_checkpoint(run_dir / CHECKPOINT_NAME, ens, meta)
    metrics["checkpoint"] = str(run_dir / CHECKPOINT_NAME)
    atomic_write_json(run_dir / "metrics.json", metrics)
    if hists:
        plot_learning_curves(hists, run_dir / "learning_curve.png", title)
    a = err_va["all"]
    log.info("closure %s: validation rel RMSE sigma_hat %.3e, q_hat %.3e, m %.3e, k %.3e -> %s", title,
             a["sigma_hat"]["rel_rmse"], a["q_hat"]["rel_rmse"], a["m"]["rel_rmse"], a["k"]["rel_rmse"], run_dir)
    return metrics
