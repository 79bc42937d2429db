"""Exploration–labeling–training loop (seed §3.1, DESIGN §7).

All configurations come from one candidate pool: a labeling :class:`DatasetSpec` whose task ids
are split into the initial set ``[0, n_initial)`` and one block of ``n_candidates`` fresh random
initial data (waves, jumps, mixtures, shocks; ε log-uniform) per iteration. Each iteration k:

1. **explore** — run the reduced model with the current closure ensemble (mean) on the block's
   initial data; score each configuration by the largest ensemble variance of the closure outputs
   (σ̂, q̂, m, k, normalised by the outputs' training variance) over cells and sampled times, and
   flag a run that blows up or leaves the training range of W (it stops there; its score is the
   variance seen so far);
2. **select** — flagged configurations first, then the highest scores above ``threshold``, each
   group ordered by score, up to ``budget`` (``selection=variance``), or a random subset of the
   same size (``selection=random``, the baseline);
3. **label** — the kinetic solver labels the selected configurations *from their initial data*
   (the candidates are already small periodic domains, so no windowing is needed) into the one
   dataset directory, on Dask as in ``kinclose.data``;
4. **train** — retrain the moments autoencoder and the closure ensemble on all labels so far and
   evaluate on a fixed held-out set (reduced model vs the stored kinetic fields at the final time,
   relative L2 errors of ρ, u, T, σ, q as in :mod:`kinclose.bench.sweep`).

Folders: ``root/data`` (labels), ``root/heldout`` (held-out labels), ``root/iter_000`` … (models,
exploration scores, selections, metrics), ``root/elt_state.json`` (resume record: iteration and
stage, written atomically after every stage; a killed loop resumes at the stage it was in).
Stops when the held-out error has not improved for ``patience`` iterations or the label budget is
spent.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from kinclose.io import atomic_write_json, writable_dir

log = logging.getLogger(__name__)

STAGES = ("explore", "select", "label", "train")
STATE_FILE = "elt_state.json"
FIELDS = ("rho", "u", "T", "sigma", "q")


# ----------------------------------------------------------------------------- selection
def select_configurations(scores: NDArray, budget: int, threshold: float | None = None,
                          how: str = "variance", rng: np.random.Generator | None = None,
                          flagged: NDArray | None = None) -> list[int]:
    """Indices of the configurations to label.

    ``how="variance"``: the ``flagged`` configurations (blow-ups, states outside the training range)
    first, then those whose score exceeds ``threshold`` (all if None), each group in decreasing
    order of score (NaN counts as ∞), at most ``budget``; ``how="random"``: ``budget`` indices
    uniformly at random (``rng`` required).
    """
    scores = np.asarray(scores, dtype=float)
    flagged = np.zeros(scores.size, bool) if flagged is None else np.asarray(flagged, bool)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if how == "random":
        if rng is None:
            raise ValueError("random selection needs an rng")
        k = min(budget, scores.size)
        return sorted(int(i) for i in rng.choice(scores.size, size=k, replace=False))
    if how != "variance":
        raise ValueError(f"unknown selection {how!r}; choose 'variance' or 'random'")
    order = np.lexsort((-np.where(np.isnan(scores), np.inf, scores), ~flagged))
    keep = [int(i) for i in order if flagged[i] or threshold is None or not (scores[i] <= threshold)]
    return keep[:budget]


# ----------------------------------------------------------------------------- state
def load_state(root: Path) -> dict[str, Any]:
    p = root / STATE_FILE
    if not p.exists():
        return {"iteration": 0, "stage": "train", "labeled": [], "history": [], "done": False}
    try:
        state = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupted ELT resume record {p}: {exc}; delete it to restart the loop") from exc
    if state.get("stage") not in STAGES:
        raise ValueError(f"ELT resume record {p} has an unknown stage {state.get('stage')!r}")
    return state


def save_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write_json(root / STATE_FILE, state)


# ----------------------------------------------------------------------------- the loop
class Loop:
    """The loop of the module docstring; the four stage methods can be replaced for tests."""

    def __init__(self, cfg: Any, root: str | Path) -> None:
        from omegaconf import OmegaConf

        from kinclose.data.label import DatasetSpec
        from kinclose.data.runner import ClusterSpec

        check_config(cfg)
        self.cfg = cfg
        self.root = writable_dir(root)
        ds = OmegaConf.to_container(cfg.dataset, resolve=True)
        n_pool = int(cfg.n_initial) + int(cfg.max_iterations) * int(cfg.n_candidates)
        self.pool = DatasetSpec.from_dict(dict(ds, name="elt-pool", n_tasks=n_pool))
        self.heldout = DatasetSpec.from_dict(dict(ds, name="elt-heldout", n_tasks=int(cfg.n_heldout),
                                                  seed=int(cfg.heldout_seed)))
        self.cluster = ClusterSpec.from_dict(OmegaConf.to_container(cfg.cluster, resolve=True))

    # -- helpers
    def candidates(self, it: int) -> list[int]:
        start = int(self.cfg.n_initial) + it * int(self.cfg.n_candidates)
        return list(range(start, start + int(self.cfg.n_candidates)))

    def itdir(self, it: int) -> Path:
        d = self.root / f"iter_{it:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def closure_path(self, it: int) -> Path:
        return self.itdir(it) / "closure" / "closure.pt"

    # -- stages
    def label(self, task_ids: list[int], heldout: bool = False) -> dict[str, Any]:
        from kinclose.data.runner import label_dataset

        spec, out = (self.heldout, self.root / "heldout") if heldout else (self.pool, self.root / "data")
        return label_dataset(spec, out, self.cluster, progress=False, task_ids=None if heldout else task_ids)

    def train(self, it: int) -> dict[str, Any]:
        """Moments then closure on all labels so far; returns their metrics."""
        from kinclose.closure.train import train_closure
        from kinclose.conf import compose
        from kinclose.moments.train import train_moments

        d = self.itdir(it)
        data = str(self.root / "data")
        common = [f"data.root={data}", f"seed={int(self.cfg.seed) + it}", f"device={self.cfg.device}"]
        extra_m = [f"stage.{k}={v}" for k, v in (self.cfg.moments or {}).items()]
        extra_c = [f"stage.{k}={v}" for k, v in (self.cfg.closure or {}).items()]

        mcfg = compose("train", ["stage=moments", *common, *extra_m])
        mm = train_moments(mcfg, d / "moments")
        ccfg = compose("train", ["stage=closure", f"moments_ckpt={d / 'moments' / 'moments.pt'}", *common, *extra_c])
        cm = train_closure(ccfg, d / "closure")
        return {"moments": _scalars(mm), "closure": _scalars(cm)}

    def explore(self, it: int, closure_path: Path) -> tuple[NDArray, NDArray]:
        """Score (largest normalised ensemble variance) and flag (blow-up or outside the training
        range) of each candidate of iteration ``it``."""
        from kinclose.closure.learned import LearnedClosure
        from kinclose.data.label import make_tasks

        closure = LearnedClosure.from_checkpoint(closure_path)
        tasks = make_tasks(self.pool)
        res = [explore_score(tasks[tid], closure, n_samples=int(self.cfg.explore_samples))
               for tid in self.candidates(it)]
        return np.asarray([r[0] for r in res], dtype=float), np.asarray([r[1] for r in res], dtype=bool)

    def evaluate(self, closure_path: Path) -> dict[str, float]:
        return heldout_errors(self.root / "heldout", closure_path)


def explore_score(task: Any, closure: Any, n_samples: int = 4) -> tuple[float, bool]:
    """(score, flagged): the largest ensemble variance (normalised by the training variance of each
    output, if known) over the cells at ``n_samples`` times of a reduced-model run from the task's
    initial data, and whether the run blew up or left the training range of W (the run stops there;
    the score is the variance seen so far, so flagged candidates are still ranked by it)."""
    from kinclose.data.initial import evaluate
    from kinclose.data.label import cell_centres
    from kinclose.physics import PhysicalStateError
    from kinclose.problem import Problem
    from kinclose.reduced.solver import ReducedSolver

    x = cell_centres(task.x_left, task.x_right, task.nx)
    rho, u, T, _ = evaluate(task.ic, x)
    prob = Problem(task.x_left, task.x_right, rho, u, T, kn=task.kn, t_end=task.t_end, omega=task.omega)
    s = ReducedSolver(prob.x_left, prob.x_right, prob.nx, closure, prob.mu_ref, prob.omega, "periodic", 0.5)
    s.set_state(rho, u, T)
    scale = getattr(closure, "output_variance", None)
    best = 0.0
    times = np.linspace(0.0, task.t_end, n_samples + 1)[1:]
    try:
        for t_s in times:
            while s.t < t_s - 1e-14:
                s.step(min(s.dt_max(), t_s - s.t))
            var = closure.variance(s.W)
            if scale is not None:
                var = var / np.maximum(np.asarray(scale), 1e-300)
            best = max(best, float(np.nanmax(var)))
            if getattr(closure, "w_min", None) is not None and closure.check_range(s.W)["n_outside"] > 0:
                return best, True
    except (PhysicalStateError, FloatingPointError, ValueError, RuntimeError) as exc:
        log.info("exploration run of task %s failed (%s): flagged", getattr(task, "task_id", "?"), exc)
        return best, True
    return (best, False) if np.isfinite(best) else (math.inf, True)


def heldout_errors(heldout_root: Path, closure_path: Path) -> dict[str, float]:
    """Mean relative L2 errors (sweep definitions) of the reduced model against the kinetic fields
    stored at the final snapshot of every held-out shard."""
    import h5py

    from kinclose.bench.sweep import errors
    from kinclose.closure.learned import LearnedClosure
    from kinclose.data.initial import evaluate
    from kinclose.data.schema import read_manifest
    from kinclose.problem import Fields, Problem
    from kinclose.reduced.run import run_problem

    closure = LearnedClosure.from_checkpoint(closure_path)
    acc: dict[str, list[float]] = {f: [] for f in FIELDS}
    failed = 0
    for e in read_manifest(heldout_root)["shards"]:
        with h5py.File(heldout_root / e["file"], "r") as h:
            task = json.loads(h.attrs["config"])
            x = h["x"][...]
            ref_f = h["fields"][-1]
            t_end = float(h["t"][-1])
        rho, u, T, _ = evaluate(task["ic"], x)
        prob = Problem(task["x_left"], task["x_right"], rho, u, T, kn=task["kn"], t_end=t_end, omega=task["omega"])
        ref = Fields(x, *(ref_f[:, i] for i in range(5)), t_end)
        try:
            out = run_problem(prob, closure)
        except Exception as exc:  # a blow-up is an error of the model, counted and reported
            log.warning("held-out run %s failed: %s", e["file"], exc)
            failed += 1
            continue
        for k, v in errors(out, ref).items():
            acc[k].append(v)
    res = {k: float(np.mean(v)) if v else float("nan") for k, v in acc.items()}
    res["failed_runs"] = failed
    res["mean"] = float(np.nanmean([res[f] for f in FIELDS])) if not failed else float("inf")
    return res


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


def check_config(cfg: Any) -> None:
    """Raise a clear error for loop sizes no run can use (before anything is labeled or written)."""
    from kinclose.apps import check_ints
    from kinclose.apps.train import check_stage_options

    check_ints(cfg, {"n_initial": 1, "n_candidates": 1, "per_iteration_budget": 1, "label_budget": 0,
                     "max_iterations": 1, "patience": 1, "explore_samples": 1, "n_heldout": 1}, "ELT options")
    if not float(cfg.min_improvement) >= 0.0:
        raise ValueError(f"min_improvement must be >= 0, got {cfg.min_improvement}")

    for part in ("moments", "closure"):
        check_stage_options(cfg[part], f"ELT {part} options")


def run_elt(cfg: Any, root: str | Path, loop: Loop | None = None,
            after_stage: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the loop in ``root``; returns the final state (also ``elt_state.json``). The config is
    checked by the :class:`Loop` constructor, before anything is written."""
    root = Path(root)
    loop = loop or Loop(cfg, root)
    state = load_state(root)
    if not (root / "heldout" / "manifest.json").exists() or state["iteration"] == 0 and state["stage"] == "train":
        loop.label([], heldout=True)
    if state["iteration"] == 0 and state["stage"] == "train" and not state["labeled"]:
        initial = list(range(int(cfg.n_initial)))
        loop.label(initial)
        state["labeled"] = initial
        save_state(root, state)
    budget_total = int(cfg.label_budget)
    best, stale = math.inf, 0
    for h in state["history"]:
        if h.get("heldout", {}).get("mean", math.inf) < best - float(cfg.min_improvement) * abs(best if math.isfinite(best) else 1):
            best, stale = h["heldout"]["mean"], 0
        else:
            stale += 1
    while not state.get("done"):
        it = state["iteration"]
        d = loop.itdir(it)
        t0 = time.perf_counter()
        stage = state["stage"]
        if stage == "train":
            metrics = loop.train(it)
            held = loop.evaluate(loop.closure_path(it))
            rec = {"iteration": it, "labeled": len(state["labeled"]), "heldout": held, "train": metrics,
                   "wall_s": {"train+evaluate": time.perf_counter() - t0}}
            state["history"] = [h for h in state["history"] if h["iteration"] != it] + [rec]
            atomic_write_json(d / "metrics.json", rec)
            if held["mean"] < best - float(cfg.min_improvement) * (abs(best) if math.isfinite(best) else 1.0):
                best, stale = held["mean"], 0
            else:
                stale += 1
            spent = len(state["labeled"]) - int(cfg.n_initial)
            if it + 1 >= int(cfg.max_iterations) or stale >= int(cfg.patience) or spent >= budget_total:
                state["done"] = True
                state["stop_reason"] = ("max_iterations" if it + 1 >= int(cfg.max_iterations) else
                                        "no_improvement" if stale >= int(cfg.patience) else "budget")
            state["stage"] = "explore"
        elif stage == "explore":
            if str(cfg.selection) == "random":  # the baseline ignores scores: skip the exploration runs
                n = len(loop.candidates(it))
                scores, flagged = np.full(n, np.nan), np.zeros(n, bool)
            else:
                scores, flagged = loop.explore(it, loop.closure_path(it))
            atomic_write_json(d / "explore.json", {"candidates": loop.candidates(it),
                                                   "scores": [float(x) if np.isfinite(x) else None for x in scores],
                                                   "flagged": flagged.tolist()})
            _record_wall(state, it, "explore", time.perf_counter() - t0)
            state["stage"] = "select"
        elif stage == "select":
            ex = json.loads((d / "explore.json").read_text())
            spent = len(state["labeled"]) - int(cfg.n_initial)
            budget = min(int(cfg.per_iteration_budget), budget_total - spent)
            rng = np.random.default_rng([int(cfg.seed), it])
            scores = np.asarray(ex["scores"], dtype=float)
            flagged = np.asarray(ex.get("flagged", ~np.isfinite(scores)), dtype=bool)
            idx = select_configurations(scores, budget, cfg.get("threshold"), str(cfg.selection), rng, flagged)
            chosen = [ex["candidates"][i] for i in idx]
            finite = scores[np.isfinite(scores)]
            atomic_write_json(d / "select.json", {"selected": chosen, "selection": str(cfg.selection),
                                                  "max_score": float(finite.max()) if finite.size else None,
                                                  "n_flagged": int(flagged.sum()),
                                                  "fraction_selected": len(chosen) / max(1, len(ex["candidates"]))})
            state["stage"] = "label"
        elif stage == "label":
            chosen = json.loads((d / "select.json").read_text())["selected"]
            summary = loop.label(sorted(set(state["labeled"]) | set(chosen)))
            state["labeled"] = sorted(set(state["labeled"]) | set(chosen))
            _record_wall(state, it, "label", time.perf_counter() - t0, failed=summary.get("failed", 0))
            state["iteration"] = it + 1
            state["stage"] = "train"
        save_state(root, state)
        if after_stage is not None:
            after_stage(it, stage)
    write_report(root, state)
    return state


def _record_wall(state: dict[str, Any], it: int, stage: str, wall: float, **extra: Any) -> None:
    for h in state["history"]:
        if h["iteration"] == it:
            h.setdefault("wall_s", {})[stage] = wall
            h.update(extra)


def write_report(root: Path, state: dict[str, Any]) -> None:
    """``elt_history.json`` and ``elt_history.png`` (labels, held-out errors, largest variance)."""
    rows = []
    for h in sorted(state["history"], key=lambda r: r["iteration"]):
        sel = root / f"iter_{h['iteration']:03d}" / "select.json"
        s = json.loads(sel.read_text()) if sel.exists() else {}
        rows.append({"iteration": h["iteration"], "labeled": h["labeled"], "heldout": h["heldout"],
                     "max_score": s.get("max_score"), "n_flagged": s.get("n_flagged"),
                     "fraction_selected": s.get("fraction_selected"),
                     "wall_s": h.get("wall_s", {})})
    atomic_write_json(root / "elt_history.json", {"rows": rows, "stop_reason": state.get("stop_reason")})
    if not rows:
        return
    import matplotlib.pyplot as plt

    from kinclose.io import atomic_savefig
    from kinclose.plotting import use_style

    use_style()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    n = [r["labeled"] for r in rows]
    for f in FIELDS:
        axes[0].semilogy(n, [r["heldout"][f] for r in rows], marker="o", label=f)
    axes[0].set_xlabel("labeled configurations")
    axes[0].set_ylabel("held-out rel. L2 error")
    axes[0].legend()
    axes[1].plot([r["iteration"] for r in rows], [r["max_score"] or np.nan for r in rows], marker="o")
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("largest ensemble variance (normalised)")
    fig.tight_layout()
    atomic_savefig(fig, root / "elt_history.png")
    plt.close(fig)
