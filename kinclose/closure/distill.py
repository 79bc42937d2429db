"""Distillation of a closure ensemble into one network (issue 8): ``distill(teacher, ...) -> Ensemble``.

The reduced solver uses only the ensemble mean of the K members (the variance serves exploration), so
a single student member S is trained to reproduce the teacher's mean outputs

    σ̂_S(W) ≈ (1/K) Σ_i σ̂_i(W),   q̂_S(W) ≈ (1/K) Σ_i q̂_i(W),
    m_S(W; δ, τ) ≈ (1/K) Σ_i m_i(W; δ, τ),   k_S(W; δ, τ) ≈ (1/K) Σ_i k_i(W; δ, τ),

by minimizing the standardized squared error of the closure stage (``closure.train.member_loss``)

    L = w_sh ‖(ŷ_S − ȳ)/S_y‖² + w_m ‖(m_S − m̄)/S_m‖² + w_k ‖(k_S − k̄)/S_k‖²,

with the teacher's own scales S and standardization buffers. The student is an ordinary
:class:`~kinclose.closure.networks.Ensemble` with K = 1 (optionally narrower), so checkpoints,
:class:`~kinclose.closure.learned.LearnedClosure` and the fused inference work unchanged, and the two
exact properties hold by construction of the classes: σ̂ = q̂ = 0 at W_eq (anchor) and
m(W; 0, 1) = W bitwise. A K = 1 closure has zero ensemble variance: use the teacher for exploration.

Distillation states W (n, M): the targets are free (teacher evaluations), so states are drawn where
the solver needs the teacher, from the training range stored in the teacher (``meta["W_range"]``):

* ``data``  : the teacher's training states (a labeled dataset encoded with its moments checkpoint),
  jittered by N(0, (j·std)²) per component — the states the teacher was fitted on, with their
  correlations between components (no other source has these);
* ``gauss`` : N(mean, std²) per component, clipped to [min, max] (the bulk, without correlations);
* ``box``   : uniform in [min, max] (the tails and corners of the range, where the solver can stray);
* a fraction ``segment`` of every draw is moved to W_eq + s (W − W_eq), s ~ U(0, s_max): the
  near-equilibrium region, where most cells of a flow are, and the extrapolation s > 1 that the
  hyperbolicity penalty of the closure stage also looks at.

Without data, its share goes to ``gauss`` and ``box`` in proportion. Frames (δ, τ) per state are
sampled as in the closure stage (``meta["frames"]``; frame 0 = (0, 1), where k is still learned).
Held-out states from the same mixture (another seed, data rows not used in training) give the
distillation error, per state kind, also relative to the teacher's ensemble spread.

Shapes: W (n, M); σ̂, q̂ (n, 2) together; δ, τ (n, F); m, k (n, F, M). float64 throughout.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose import __version__
from kinclose.closure.targets import FrameSampling, sample_frames
from kinclose.closure.train import (CHECKPOINT_NAME, ClosureCheckpointError, Hyperbolicity, characteristic_speeds,
                                    file_sha256, fit_member, load_closure_checkpoint, load_closure_moments,
                                    plot_learning_curves, save_closure_checkpoint, start_checkpoint_stage)
from kinclose.conf import reject_unknown_keys
from kinclose.io import atomic_write_json

log = logging.getLogger(__name__)

KINDS = ("data", "gauss", "box")
RANGE_KEYS = ("min", "max", "mean", "std", "q001", "q999")
# checkpoint keys written by save_closure_checkpoint itself (never copied from the teacher's metadata)
_OWN_KEYS = ("format", "class", "closure_version", "kwargs", "package_version", "state_dict")


class DistillError(ValueError):
    """Bad distillation input: a teacher without training range/frames, bad options or state arrays."""


@dataclasses.dataclass(frozen=True)
class StateSampling:
    """How distillation states W are drawn (module docstring).

    n_train, n_val : training and held-out states.
    mix : relative weights of the kinds ``data``, ``gauss``, ``box`` (data ignored without data states).
    segment : fraction of every kind moved to W_eq + s (W − W_eq), s ~ U(0, s_max).
    s_max : largest stretch of the segment.
    data_jitter : std of the Gaussian jitter of data states in units of the training std per component.
    """

    n_train: int = 100_000
    n_val: int = 20_000
    mix: dict = dataclasses.field(default_factory=lambda: {"data": 0.6, "gauss": 0.3, "box": 0.1})
    segment: float = 0.3
    s_max: float = 1.5
    data_jitter: float = 0.05

    @classmethod
    def from_dict(cls, d: Any) -> "StateSampling":
        d = dict(d)
        reject_unknown_keys(d, (f.name for f in dataclasses.fields(cls)), "stage.states", DistillError)
        if "mix" in d:
            d["mix"] = dict(d["mix"])
        return cls(**d)

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_val < 1:
            raise DistillError(f"stage.states.n_train={self.n_train} and n_val={self.n_val} must be >= 1")
        bad = set(self.mix) - set(KINDS)
        if bad:
            raise DistillError(f"unknown state kinds {sorted(bad)} in stage.states.mix; known: {list(KINDS)}")
        w = [float(self.mix.get(k, 0.0)) for k in KINDS]
        if not all(math.isfinite(x) and x >= 0 for x in w) or sum(w[1:]) + w[0] <= 0:
            raise DistillError(f"stage.states.mix={self.mix} needs non-negative weights with a positive sum")
        if not (0.0 <= self.segment <= 1.0):
            raise DistillError(f"stage.states.segment={self.segment} must be in [0, 1]")
        if not (math.isfinite(self.s_max) and self.s_max > 0):
            raise DistillError(f"stage.states.s_max={self.s_max} must be > 0")
        if not (math.isfinite(self.data_jitter) and self.data_jitter >= 0):
            raise DistillError(f"stage.states.data_jitter={self.data_jitter} must be >= 0")

    def weights(self, have_data: bool) -> dict[str, float]:
        """Normalized weights per kind; without data states the data share is spread over the others."""
        w = {k: float(self.mix.get(k, 0.0)) for k in KINDS}
        if not have_data:
            w["data"] = 0.0
        tot = sum(w.values())
        if tot <= 0:
            raise DistillError(f"stage.states.mix={self.mix} draws only data states, but no data states were given "
                               "(set stage.dataset, or give gauss/box a positive weight)")
        return {k: v / tot for k, v in w.items()}


def teacher_range(meta: dict, M: int) -> dict[str, NDArray]:
    """``meta["W_range"]`` as arrays (M,) each; :class:`ClosureCheckpointError` when missing or malformed."""
    r = meta.get("W_range")
    if not isinstance(r, dict) or any(k not in r for k in RANGE_KEYS):
        raise ClosureCheckpointError("the teacher checkpoint has no complete training range meta['W_range'] (keys "
                           f"{list(RANGE_KEYS)}); it was not written by `kinclose-train stage=closure`")
    out = {k: np.asarray(r[k], dtype=float) for k in RANGE_KEYS}
    for k, v in out.items():
        if v.shape != (M,) or not np.all(np.isfinite(v)):
            raise ClosureCheckpointError(f"meta['W_range'][{k!r}] must hold {M} finite values, got shape {v.shape}")
    if np.any(out["max"] < out["min"]):
        raise ClosureCheckpointError("meta['W_range'] has max < min in some component")
    return out


def teacher_frames(meta: dict, n_frames: int | None = None) -> FrameSampling:
    """Frame sampling of the teacher's training (``meta["frames"]``), optionally another frame count."""
    f = meta.get("frames")
    if not isinstance(f, dict) or any(k not in f for k in ("n_frames", "delta_max", "tau_min", "tau_max")):
        raise ClosureCheckpointError("the teacher checkpoint has no frame range meta['frames'] (n_frames, delta_max, "
                                     "tau_min, tau_max); it was not written by `kinclose-train stage=closure`")
    return FrameSampling(int(n_frames if n_frames is not None else f["n_frames"]), float(f["delta_max"]),
                         float(f["tau_min"]), float(f["tau_max"]))


def sample_states(n: int, rng_W: dict[str, NDArray], w_eq: NDArray, sampling: StateSampling,
                  rng: np.random.Generator, W_data: NDArray | None = None) -> tuple[NDArray, NDArray]:
    """Draw n distillation states (module docstring).

    Parameters
    ----------
    n : number of states.
    rng_W : training range of W, arrays (M,) ``min``, ``max``, ``mean``, ``std`` (:func:`teacher_range`).
    w_eq : (M,) equilibrium moments W_eq of the teacher.
    sampling : mixture, segment and jitter options.
    rng : random generator.
    W_data : (N, M) data states or None.

    Returns
    -------
    W : (n, M) float64 states.
    kind : (n,) int, index into :data:`KINDS`, plus 10 for states moved onto the segment.
    """
    M = w_eq.shape[0]
    have = W_data is not None and len(W_data) > 0
    w = sampling.weights(have)
    counts = rng.multinomial(n, [w[k] for k in KINDS])
    lo, hi, mu, sd = rng_W["min"], rng_W["max"], rng_W["mean"], rng_W["std"]
    parts, kinds = [], []
    for i, (k, c) in enumerate(zip(KINDS, counts)):
        if c == 0:
            continue
        if k == "data":
            X = W_data[rng.integers(0, len(W_data), c)] + rng.normal(size=(c, M)) * (sampling.data_jitter * sd)
        elif k == "gauss":
            X = np.clip(mu + sd * rng.normal(size=(c, M)), lo, hi)
        else:
            X = rng.uniform(lo, hi, size=(c, M))
        parts.append(X)
        kinds.append(np.full(c, i))
    W = np.concatenate(parts)
    kind = np.concatenate(kinds)
    seg = rng.random(n) < sampling.segment
    s = rng.uniform(0.0, sampling.s_max, size=(int(seg.sum()), 1))
    W[seg] = w_eq + s * (W[seg] - w_eq)
    kind[seg] += 10
    perm = rng.permutation(n)
    return np.ascontiguousarray(W[perm]), kind[perm]


def teacher_targets(teacher: Any, W: NDArray, delta: NDArray, tau: NDArray, batch: int = 16384) -> dict[str, NDArray]:
    """Teacher ensemble mean and variance on states W (n, M) and frames δ, τ (n, F).

    Returns ``sh``, ``sh_var`` (n, 2) and ``m``, ``k``, ``m_var``, ``k_var`` (n, F, M), evaluated with the
    fused float64 path (equal to the torch path to round-off; m(W; 0, 1) = W exactly).
    """
    from kinclose.closure.fused import FusedEnsemble

    fe = FusedEnsemble(teacher, "float64")
    n, F = delta.shape
    M = W.shape[1]
    out: dict[str, list] = {k: [] for k in ("sh", "sh_var", "m", "k", "m_var", "k_var")}
    for i in range(0, n, batch):
        Wb = W[i:i + batch]
        b = Wb.shape[0]
        sh, shv = fe.stress_heat(Wb)
        Wr = np.repeat(Wb, F, axis=0)
        m, k, mv, kv = fe.frame(Wr, delta[i:i + batch].reshape(-1), tau[i:i + batch].reshape(-1))
        for key, v in (("sh", sh), ("sh_var", shv), ("m", m.reshape(b, F, M)), ("k", k.reshape(b, F, M)),
                       ("m_var", mv.reshape(b, F, M)), ("k_var", kv.reshape(b, F, M))):
            out[key].append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def student_outputs(student: Any, W: NDArray, delta: NDArray, tau: NDArray, batch: int = 16384) -> dict[str, NDArray]:
    """Student (K = 1) outputs ``sh`` (n, 2), ``m``, ``k`` (n, F, M) by the torch float64 path."""
    import torch

    n, F = delta.shape
    M = W.shape[1]
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    out: dict[str, list] = {"sh": [], "m": [], "k": []}
    student.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            Wb = t(W[i:i + batch])
            b = Wb.shape[0]
            out["sh"].append(student.stress_heat(Wb)[0].numpy())
            Wr = Wb[:, None, :].expand(b, F, M).reshape(b * F, M)
            m, k, _, _ = student.frame(Wr, t(delta[i:i + batch].reshape(-1)), t(tau[i:i + batch].reshape(-1)))
            out["m"].append(m.numpy().reshape(b, F, M))
            out["k"].append(k.numpy().reshape(b, F, M))
    return {k: np.concatenate(v) for k, v in out.items()}


def distill_errors(pred: dict[str, NDArray], target: dict[str, NDArray], W: NDArray, delta: NDArray,
                   tau: NDArray) -> dict[str, dict]:
    """Student-vs-teacher-mean errors of σ̂, q̂, m, k.

    Per output: ``rmse``, ``rel_rmse`` = rmse / RMS of the teacher output (for m: of the increment
    m̄ − W over the non-identity frames, the part that is learned; k over all frames), ``max_abs`` and
    ``rel_to_spread`` = rmse / RMS of the teacher's ensemble standard deviation (< 1: the distillation
    error is below the teacher's own member-to-member disagreement).
    """
    off = ~((delta == 0) & (tau == 1))

    def stats(err: NDArray, ref: NDArray, var: NDArray) -> dict:
        if err.size == 0:
            return {"n": 0}
        rmse = float(np.sqrt(np.mean(err ** 2)))
        rms = float(np.sqrt(np.mean(ref ** 2)))
        spread = float(np.sqrt(np.mean(var)))
        return {"n": int(err.size), "rmse": rmse, "rel_rmse": rmse / rms if rms > 0 else math.nan,
                "max_abs": float(np.abs(err).max()), "rel_to_spread": rmse / spread if spread > 0 else math.nan}

    dm = (target["m"] - W[:, None, :])[off]
    return {
        "sigma_hat": stats(pred["sh"][:, 0] - target["sh"][:, 0], target["sh"][:, 0], target["sh_var"][:, 0]),
        "q_hat": stats(pred["sh"][:, 1] - target["sh"][:, 1], target["sh"][:, 1], target["sh_var"][:, 1]),
        "m": stats((pred["m"] - target["m"])[off], dm, target["m_var"][off]),
        "k": stats(pred["k"] - target["k"], target["k"], target["k_var"]),
    }


def _errors_by_kind(pred: dict, target: dict, W: NDArray, delta: NDArray, tau: NDArray, kind: NDArray) -> dict:
    res = {"all": distill_errors(pred, target, W, delta, tau)}
    for code in np.unique(kind):
        name = KINDS[code % 10] + ("+segment" if code >= 10 else "")
        sel = kind == code
        res[name] = distill_errors({k: v[sel] for k, v in pred.items()}, {k: v[sel] for k, v in target.items()},
                                   W[sel], delta[sel], tau[sel])
        res[name]["n_states"] = int(sel.sum())
    return res


def _copy_statistics(student: Any, teacher: Any) -> None:
    """Standardization buffers (and W_eq) of the teacher into the student; all teacher members must agree."""
    import torch

    ref = teacher.members[0]
    for mem in teacher.members[1:]:
        for net, rnet in ((mem.stress_heat, ref.stress_heat), (mem.frame, ref.frame)):
            for (name, a), (_, b) in zip(net.named_buffers(), rnet.named_buffers()):
                if not torch.equal(a, b):
                    raise DistillError(f"teacher members disagree on the standardization buffer {name!r}; "
                                       "a closure-stage ensemble shares them")
    with torch.no_grad():
        student.w_eq.copy_(teacher.w_eq)
        for s_net, t_net in ((student.members[0].stress_heat, ref.stress_heat),
                             (student.members[0].frame, ref.frame)):
            tb = dict(t_net.named_buffers())
            for name, buf in s_net.named_buffers():
                buf.copy_(tb[name])


def _tensors(W: NDArray, t: dict[str, NDArray], delta: NDArray, tau: NDArray) -> dict:
    import torch

    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    return {"W": f(W), "sh": f(t["sh"]), "delta": f(delta), "tau": f(tau), "m": f(t["m"]), "k": f(t["k"])}


def distill_with_report(teacher: Any, meta: dict, *, hidden: Sequence[int] | None = None,
                        activation: str | None = None, W_data: NDArray | None = None,
                        states: StateSampling | None = None, n_frames: int | None = None, epochs: int = 200,
                        batch_size: int = 512, lr: float | None = None, patience: int = 30,
                        lr_final_factor: float = 0.02, weight_decay: float = 0.0,
                        loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                        init: str = "auto", hyperbolicity: Hyperbolicity | None = None, seed: int = 0,
                        progress: bool | None = None) -> tuple[Any, dict]:
    """Train a K = 1 student on the teacher's ensemble mean; returns (student in eval mode, report).

    Parameters
    ----------
    teacher : trained :class:`~kinclose.closure.networks.Ensemble` (any K ≥ 1).
    meta : the teacher's checkpoint metadata; needs ``W_range`` and ``frames`` (closure stage).
    hidden : student MLP widths (None: the teacher's); activation likewise.
    W_data : (N, M) teacher training states (its dataset encoded by its moments checkpoint) or None.
    states : state sampling (:class:`StateSampling`; default: its defaults).
    n_frames : frames per state (None: the teacher's ``meta["frames"]["n_frames"]``).
    epochs, batch_size, lr, patience, lr_final_factor, weight_decay : Adam with cosine decay and early
        stopping on the held-out loss (``closure.train.fit_member``); lr None: 1e-3 when starting from a
        teacher member (a larger step first undoes its fit), 3e-3 from random weights.
    loss_weights : (w_sh, w_m, w_k) of the standardized loss.
    hyperbolicity : penalty of the closed system's spectrum, as in the closure stage
        (:class:`~kinclose.closure.train.Hyperbolicity`; None or weight 0: off).
    init : "auto" (start from teacher member 0 when the architecture matches: its error is already
        the member spread), "teacher" (require that), or "random".
    seed : base seed (states, frames, initialization, batch order).

    Returns
    -------
    student : Ensemble with K = 1, the teacher's M, anchor and standardization.
    report : ``val`` (errors on held-out states, overall and per state kind, :func:`distill_errors`),
        ``train`` (the same on up to n_val training states), ``history``, the options used, ``wall_s``.
    """
    from kinclose.closure.networks import Ensemble

    if not isinstance(teacher, Ensemble):
        raise DistillError(f"the teacher must be a kinclose closure Ensemble, got {type(teacher).__name__}")
    if init not in ("auto", "teacher", "random"):
        raise DistillError(f"init={init!r}: choose auto, teacher or random")
    if teacher.structure != "free":
        raise DistillError(f"the teacher is a structured Hermite closure (structure={teacher.structure!r}): its "
                           "sigma_hat, q_hat, m and most of k are exact algebra, and its only networks are the small "
                           "top-moment nets, so there is nothing to distill")
    t0 = time.perf_counter()
    M = int(teacher.M)
    kw = dict(teacher.kwargs)
    hidden = [int(w) for w in (kw["hidden"] if hidden is None else hidden)]
    if not hidden or any(w < 1 for w in hidden):
        raise DistillError(f"student hidden widths {hidden} must be a non-empty list of positive integers")
    activation = str(kw["activation"] if activation is None else activation)
    states = states or StateSampling()
    rng_W = teacher_range(meta, M)
    frames = teacher_frames(meta, n_frames)
    w_eq = teacher.w_eq.detach().cpu().numpy().astype(float)
    if W_data is not None:
        W_data = np.asarray(W_data, dtype=float)
        if W_data.ndim != 2 or W_data.shape[1] != M or not np.all(np.isfinite(W_data)):
            raise DistillError(f"W_data must be a finite (N, {M}) array, got shape {W_data.shape}")
    if int(teacher.K) == 1:
        log.warning("distilling a K = 1 teacher: the student only re-fits one network")

    rng = np.random.default_rng([int(seed), 8])
    data_tr = data_va = None
    if W_data is not None and len(W_data) > 0:
        # held-out data rows stay out of training, so the data error is not an in-sample error
        perm = rng.permutation(len(W_data))
        n_va = max(1, len(W_data) // 5) if len(W_data) > 1 else 0
        data_va, data_tr = W_data[perm[:n_va]], W_data[perm[n_va:]]
        if len(data_va) == 0:
            data_va = data_tr
    W_tr, kind_tr = sample_states(states.n_train, rng_W, w_eq, states, rng, data_tr)
    W_va, kind_va = sample_states(states.n_val, rng_W, w_eq, states, rng, data_va)
    d_tr, tau_tr = sample_frames(len(W_tr), frames, rng)
    d_va, tau_va = sample_frames(len(W_va), frames, rng)
    teacher = teacher.to("cpu").eval()
    T_tr = teacher_targets(teacher, W_tr, d_tr, tau_tr)
    T_va = teacher_targets(teacher, W_va, d_va, tau_va)
    log.info("distillation targets: %d train, %d held-out states x %d frames (%.1f s)", len(W_tr), len(W_va),
             frames.n_frames, time.perf_counter() - t0)

    student = Ensemble(M=M, K=1, hidden=hidden, activation=activation, anchor=bool(kw["anchor"]), seed=int(seed),
                       exact_stress_heat=bool(kw.get("exact_stress_heat", False)), skip=bool(kw.get("skip", False)))
    _copy_statistics(student, teacher)
    same_arch = hidden == list(kw["hidden"]) and activation == kw["activation"]
    if init == "teacher" and not same_arch:
        raise DistillError(f"init=teacher needs the teacher's architecture {kw['hidden']}/{kw['activation']}, "
                           f"got {hidden}/{activation}")
    initialized_from = None
    if init in ("auto", "teacher") and same_arch:
        student.members[0].load_state_dict(teacher.members[0].state_dict())
        initialized_from = "teacher member 0"
    if lr is None:
        lr = 1e-3 if initialized_from else 3e-3
    weights = tuple(float(x) for x in loss_weights)
    hist = fit_member(student.members[0], _tensors(W_tr, T_tr, d_tr, tau_tr), _tensors(W_va, T_va, d_va, tau_va),
                      epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), patience=int(patience),
                      weights=weights, seed=int(seed) * 1009 + 1, lr_final_factor=float(lr_final_factor),
                      weight_decay=float(weight_decay), hyperbolicity=hyperbolicity,
                      w_eq=student.w_eq.detach().clone(), progress=progress,
                      name="student")
    student.eval()
    n_e = min(len(W_tr), states.n_val)
    err_va = _errors_by_kind(student_outputs(student, W_va, d_va, tau_va), T_va, W_va, d_va, tau_va, kind_va)
    err_tr = _errors_by_kind(student_outputs(student, W_tr[:n_e], d_tr[:n_e], tau_tr[:n_e]),
                             {k: v[:n_e] for k, v in T_tr.items()}, W_tr[:n_e], d_tr[:n_e], tau_tr[:n_e],
                             kind_tr[:n_e])
    report = {
        "teacher_K": int(teacher.K), "teacher_kwargs": kw, "student_kwargs": dict(student.kwargs),
        "initialized_from": initialized_from, "states": dataclasses.asdict(states),
        "state_weights": states.weights(data_tr is not None), "n_data_states": 0 if W_data is None else len(W_data),
        "frames": dataclasses.asdict(frames), "loss_weights": list(weights),
        "hyperbolicity": dataclasses.asdict(hyperbolicity or Hyperbolicity()),
        "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "patience": int(patience),
        "seed": int(seed), "val": err_va, "train": err_tr, "history": hist, "wall_s": time.perf_counter() - t0,
    }
    a = err_va["all"]
    log.info("student %s: held-out rel RMSE vs teacher mean sigma_hat %.2e, q_hat %.2e, m %.2e, k %.2e "
             "(/ ensemble spread %.2f, %.2f, %.2f, %.2f)", hidden, a["sigma_hat"]["rel_rmse"], a["q_hat"]["rel_rmse"],
             a["m"]["rel_rmse"], a["k"]["rel_rmse"], a["sigma_hat"]["rel_to_spread"], a["q_hat"]["rel_to_spread"],
             a["m"]["rel_to_spread"], a["k"]["rel_to_spread"])
    return student, report


def distill(teacher: Any, meta: dict, **kwargs: Any) -> Any:
    """K = 1 student of ``teacher`` (see :func:`distill_with_report` for the options); eval mode."""
    return distill_with_report(teacher, meta, **kwargs)[0]


def student_meta(teacher_meta: dict, teacher_sha256: str, report: dict) -> dict:
    """Checkpoint metadata of a student: the teacher's provenance (training range, frames, hashes,
    ξ_max …) plus ``distilled_from`` (sha256 of the teacher file) and ``distillation`` (errors, options)."""
    meta = {k: v for k, v in teacher_meta.items() if k not in _OWN_KEYS}
    extra = dict(meta.get("extra") or {})
    a = report["val"]["all"]
    extra["teacher_extra"] = teacher_meta.get("extra")
    extra.update({f"distill_{k}_rel_rmse": a[k]["rel_rmse"] for k in ("sigma_hat", "q_hat", "m", "k")})
    meta["extra"] = extra
    meta["distilled_from"] = teacher_sha256
    meta["distillation"] = {k: v for k, v in report.items() if k not in ("history", "train")}
    meta["distillation"]["teacher_package_version"] = teacher_meta.get("package_version")
    return meta


# ====================================================================== stage
def auto_speed_bound(teacher_speed_max: float) -> float:
    """``s_max: auto`` of the distillation's hyperbolicity penalty: the teacher's largest characteristic
    speed |λ − u|/√T on the check states, rounded up to a multiple of 0.5 (a bound below the teacher's
    speeds makes the student lose the teacher's shock; README "Speed table")."""
    s = float(teacher_speed_max)
    if not (math.isfinite(s) and s > 0):
        raise DistillError(f"stage.hyperbolicity.s_max=auto: the teacher's largest speed {s} is not a positive number")
    return math.ceil(2.0 * s) / 2.0


def _data_states(cfg: Any, st: Any, teacher_path: Path, meta: dict, seed: int) -> tuple[NDArray | None, dict]:
    """W of the teacher's dataset (``stage.dataset``) encoded with its moments checkpoint, or None."""
    from kinclose.closure.targets import encode
    from kinclose.moments.train import load_dataset

    root = st.get("dataset")
    if not root:
        return None, {}
    moments, ckpt = load_closure_moments(teacher_path, meta, cfg.get("moments_ckpt"), role="teacher",
                                         missing="stage.dataset is set but no moments checkpoint to encode it: add "
                                                 "moments_ckpt=PATH/moments.pt (the teacher's)")
    data = load_dataset(str(root), moments.grid, str(st.get("interpolation", "logcubic")),
                        cfg.data.get("max_samples_per_shard"), seed, bool(cfg.data.get("verify_checksums", True)))
    if meta.get("dataset_hash") and data.info.get("dataset_hash") != meta["dataset_hash"]:
        log.warning("stage.dataset %s is not the teacher's training set (hash %s, teacher %s)", root,
                    data.info.get("dataset_hash"), meta["dataset_hash"])
    W = encode(moments.encoder, data.G, data.H)
    return W, {"dataset": str(root), "dataset_hash": data.info.get("dataset_hash"), "moments_checkpoint": str(ckpt),
               "n_states": int(len(W))}


def train_distill(cfg: Any, run_dir: str | Path | None = None) -> dict:
    """Distil ``cfg.closure_ckpt`` (conf/train.yaml with stage=distill) into ``run_dir``.

    Writes ``closure.pt`` (a normal closure checkpoint, K = 1, teacher metadata plus ``distilled_from``
    and ``distillation``), ``metrics.json`` and ``learning_curve.png``; returns the metrics.
    """
    from omegaconf import OmegaConf

    from kinclose.pretrained import resolve

    st = cfg.stage
    run_dir, spec = start_checkpoint_stage(cfg, run_dir, "the teacher")
    teacher_path = resolve(str(spec))
    teacher, meta = load_closure_checkpoint(teacher_path)
    teacher_sha = file_sha256(teacher_path)
    seed = int(cfg.seed)
    W_data, data_info = _data_states(cfg, st, teacher_path, meta, seed)
    xi_max = float(meta.get("xi_max", 4.0))
    W_sp = np.asarray(W_data if W_data is not None else
                      sample_states(2000, teacher_range(meta, int(teacher.M)), teacher.w_eq.numpy(),
                                    StateSampling(mix={"gauss": 1.0}, segment=0.0),
                                    np.random.default_rng(seed + 104729))[0])
    hyp = OmegaConf.to_container(st.hyperbolicity, resolve=True)
    auto = hyp.get("s_max") == "auto"
    n_check = int(st.spectrum_states) or (1000 if auto else 0)

    def speeds(ens: Any) -> dict | None:   # the same check states for teacher and student
        return characteristic_speeds(ens, W_sp, teacher.w_eq.numpy(), xi_max, np.random.default_rng(seed + 104730),
                                     n_check) if n_check > 0 else None

    teacher_speeds = speeds(teacher)
    if auto:
        hyp["s_max"] = auto_speed_bound(teacher_speeds["validation"]["speed_max"])
        log.info("stage.hyperbolicity.s_max=auto: the teacher's largest speed on %d states is %.2f -> s_max %.1f",
                 min(len(W_sp), n_check), teacher_speeds["validation"]["speed_max"], hyp["s_max"])
    lw = st.loss_weights
    student, report = distill_with_report(
        teacher, meta, hidden=None if st.hidden is None else list(st.hidden),
        activation=None if st.activation is None else str(st.activation), W_data=W_data,
        states=StateSampling.from_dict(OmegaConf.to_container(st.states, resolve=True)),
        n_frames=None if st.n_frames is None else int(st.n_frames), epochs=int(st.epochs),
        batch_size=int(st.batch_size), lr=None if st.lr is None else float(st.lr), patience=int(st.patience),
        lr_final_factor=float(st.lr_final_factor), weight_decay=float(st.weight_decay),
        loss_weights=(float(lw.sh), float(lw.m), float(lw.k)), init=str(st.init),
        hyperbolicity=Hyperbolicity.from_dict(hyp), seed=seed)
    report["data"] = data_info
    report["teacher_characteristic_speeds"] = teacher_speeds
    spectrum = speeds(student)
    if spectrum is not None and teacher_speeds is not None:
        s_st, s_te = spectrum["validation"]["speed_max"], teacher_speeds["validation"]["speed_max"]
        if s_st < 0.95 * s_te:
            log.warning("the student's largest characteristic speed %.2f is below the teacher's %.2f: its shocks can "
                        "lose the teacher's accuracy; raise stage.hyperbolicity.s_max (or use auto)", s_st, s_te)
    report["characteristic_speeds"] = spectrum
    smeta = student_meta(meta, teacher_sha, report)
    smeta["extra"]["characteristic_speeds"] = spectrum
    save_closure_checkpoint(run_dir / CHECKPOINT_NAME, student, smeta)
    metrics = {"stage": "distill", "teacher": str(teacher_path), "teacher_sha256": teacher_sha,
               "package_version": __version__, **report, "checkpoint": str(run_dir / CHECKPOINT_NAME),
               "config": OmegaConf.to_container(cfg, resolve=True)}
    atomic_write_json(run_dir / "metrics.json", metrics)
    plot_learning_curves([report["history"]], run_dir / "learning_curve.png",
                         f"distilled closure {report['student_kwargs']['hidden']} from K={teacher.K}")
    log.info("distilled %s -> %s (%.1f s)", teacher_path, run_dir / CHECKPOINT_NAME, report["wall_s"])
    return metrics

