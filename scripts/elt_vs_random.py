"""ELT (ensemble-variance selection) against random labeling with the same label budget, repeated
over several seeds (issue 7).

    python scripts/elt_vs_random.py [seeds=[0,1,2]] [elt.max_iterations=5] [elt.per_iteration_budget=4]

Repetition s runs two arms of :func:`kinclose.elt.run_elt` in ``<work_dir>/seed_<s>/{variance,random}``
(a killed run resumes where it stopped). Both arms of a repetition share the initial labels, the
candidate pool (dataset seed ``elt.dataset.seed + pool_seed_stride * s``), the training seeds
(``s + iteration``) and every training setting; only the selection differs. The held-out set
(``elt.heldout_seed``) is the same for all arms and repetitions. Held-out error: mean over ρ, u, T,
σ, q of the mean over the held-out configurations of the relative L2 error of the reduced model
against the kinetic fields at the final time (:func:`kinclose.bench.sweep.errors`).

Per repetition: the label ratio (labels the variance arm added to first reach the random arm's
final held-out error, divided by the labels the random arm added; < 1: ELT helps; None: not
reached) and the mean held-out error over the label counts both arms share (a threshold-free
area-under-curve measure). Aggregate: the ratios, their mean and median, the number of repetitions
in which ELT helped, a one-sided sign test, mean ± std curves. Each arm's final closure also solves
the Mach 5.5 normal shock, compared with one BGK DVM reference (:mod:`kinclose.bench.shock`).
Writes ``<out_dir>/elt_vs_random.md|.json|.png``; shock profiles are cached next to each arm.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.data.schema import sha256_file
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir

log = logging.getLogger("elt_vs_random")

ARMS = ("variance", "random")
FIELDS = ("rho", "u", "T", "sigma", "q")
Curve = tuple[list[int], list[float]]


# ----------------------------------------------------------------------------- aggregation (pure)
def curve(state: dict) -> Curve:
    """(labeled configurations, held-out mean error) per iteration of an ELT resume record."""
    rows = sorted(state["history"], key=lambda h: h["iteration"])
    return [int(r["labeled"]) for r in rows], [float(r["heldout"]["mean"]) for r in rows]


def labels_to_reach(labeled: Sequence[int], errors: Sequence[float], target: float) -> int | None:
    """Labels added beyond ``labeled[0]`` when ``errors`` first is <= ``target``; None if never
    (or if ``target`` is not finite, where "reaching" it means nothing)."""
    if not math.isfinite(target):
        return None
    for n, e in zip(labeled, errors):
        if e <= target:
            return int(n) - int(labeled[0])
    return None


def label_ratio(variance: Curve, random: Curve) -> dict[str, Any]:
    """Labels the variance arm added to first reach the random arm's final error, divided by the
    labels the random arm added. ``ratio`` is None when the variance arm never reaches it;
    ``random_improved`` is False when random's final error is not below its first point (then the
    shared first point already "reaches" it and the ratio is 0 without ELT doing anything)."""
    (nv, ev), (nr, er) = variance, random
    target = float(er[-1])
    added_random = int(nr[-1]) - int(nr[0])
    added_variance = labels_to_reach(nv, ev, target)
    ratio = added_variance / added_random if added_variance is not None and added_random > 0 else None
    return {"target": target, "variance_added": added_variance, "random_added": added_random, "ratio": ratio,
            "random_improved": bool(er[-1] < er[0])}


def mean_error_over_shared(variance: Curve, random: Curve) -> dict[str, Any]:
    """Mean held-out error of each arm over the label counts both curves have (area under the
    curve per point; a failed held-out run, error ∞, makes the mean ∞)."""
    (nv, ev), (nr, er) = variance, random
    dv, dr = dict(zip(nv, ev)), dict(zip(nr, er))
    shared = sorted(set(dv) & set(dr))
    if not shared:
        raise ValueError("the two curves share no label count")
    mv = float(np.mean([dv[n] for n in shared]))
    mr = float(np.mean([dr[n] for n in shared]))
    return {"labeled": shared, "variance": mv, "random": mr, "difference": mv - mr,
            "ratio": mv / mr if mr > 0 and math.isfinite(mr) else None}


def mean_std_curve(curves: Sequence[Curve]) -> dict[str, list]:
    """Mean and sample standard deviation (ddof 1; 0 for one curve) over curves, at the label
    counts all curves have."""
    common = sorted(set.intersection(*(set(n) for n, _ in curves)))
    vals = np.array([[dict(zip(n, e))[k] for k in common] for n, e in curves], dtype=float)
    std = vals.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(common))
    return {"labeled": common, "mean": vals.mean(axis=0).tolist(), "std": std.tolist()}


def sign_test_p(k: int, n: int) -> float:
    """One-sided sign test: P(at least k successes of n) for a fair coin."""
    return float(sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n) if n > 0 else float("nan")


def aggregate(reps: dict[int, dict[str, Curve]]) -> dict[str, Any]:
    """Per-repetition and aggregate comparison; ``reps[s] = {"variance": curve, "random": curve}``."""
    per: dict[int, dict[str, Any]] = {}
    for s, arms in reps.items():
        v, r = arms["variance"], arms["random"]
        per[s] = {"ratio": label_ratio(v, r), "auc": mean_error_over_shared(v, r),
                  "final": {"variance": float(v[1][-1]), "random": float(r[1][-1])},
                  "initial": {"variance": float(v[1][0]), "random": float(r[1][0])}}
    n = len(per)
    ratios = [p["ratio"]["ratio"] for p in per.values()]
    reached = [x for x in ratios if x is not None]
    helped = sum(1 for x in reached if x < 1.0)
    auc_v = [p["auc"]["variance"] for p in per.values()]
    auc_r = [p["auc"]["random"] for p in per.values()]
    auc_diff = [p["auc"]["difference"] for p in per.values()]
    auc_helped = sum(1 for d in auc_diff if d < 0.0)
    final_helped = sum(1 for p in per.values() if p["final"]["variance"] < p["final"]["random"])

    def ms(x: list[float]) -> dict[str, float]:
        a = np.asarray(x, dtype=float)
        return {"mean": float(a.mean()) if a.size else float("nan"),
                "std": float(a.std(ddof=1)) if a.size > 1 else 0.0 if a.size else float("nan")}

    return {
        "n_repetitions": n,
        "per_repetition": per,
        "ratio": {"values": ratios, "n_reached": len(reached), "n_not_reached": n - len(reached),
                  "n_helped": helped,
                  "mean_over_reached": float(np.mean(reached)) if reached else None,
                  # an unreached target counts as a ratio above 1 (ELT spent the same labels and missed it)
                  "median": float(np.median([math.inf if x is None else x for x in ratios])) if n else None,
                  "sign_test_p": sign_test_p(helped, n)},
        "auc": {"variance": ms(auc_v), "random": ms(auc_r), "difference": ms(auc_diff),
                "n_variance_lower": auc_helped, "sign_test_p": sign_test_p(auc_helped, n)},
        "final": {"n_variance_lower": final_helped, "sign_test_p": sign_test_p(final_helped, n)},
        "curves": {a: mean_std_curve([reps[s][a] for s in reps]) for a in ARMS} if n else {},
    }


def conclusion(agg: dict[str, Any], n_planned: int) -> str:
    """One paragraph computed from :func:`aggregate`'s numbers."""
    n = agg["n_repetitions"]
    if n == 0:
        return f"No repetition completed (of {n_planned} planned); there is nothing to conclude."
    r, a = agg["ratio"], agg["auc"]
    k, j = r["n_helped"], a["n_variance_lower"]
    parts = [f"ELT reached the random arm's final held-out error with fewer labels (ratio < 1) in {k} of "
             f"{n} repetitions" + (f" (of {n_planned} planned)" if n != n_planned else "")]
    if r["n_not_reached"]:
        parts[0] += f"; it did not reach it within the budget in {r['n_not_reached']}"
    if r["mean_over_reached"] is not None:
        med = "> 1 (not reached)" if not math.isfinite(r["median"]) else f"{r['median']:.2f}"
        parts[0] += f"; mean ratio {r['mean_over_reached']:.2f} over the repetitions where it was reached, median {med}"
    parts.append(f"averaged over the shared label counts, the held-out error was {a['variance']['mean']:.4f} ± "
                 f"{a['variance']['std']:.4f} for ELT and {a['random']['mean']:.4f} ± {a['random']['std']:.4f} "
                 f"for random labeling (ELT lower in {j} of {n}; paired difference {a['difference']['mean']:+.4f} ± "
                 f"{a['difference']['std']:.4f})")
    parts.append(f"the final error was lower for ELT in {agg['final']['n_variance_lower']} of {n}")
    best_p = sign_test_p(n, n)
    if k == n and j == n and best_p < 0.05:
        verdict = (f"All measures favour ELT and a one-sided sign test gives p = {best_p:.3g} < 0.05: the claim "
                   "that ELT needs fewer labels than random labeling is supported at this budget.")
    elif k == n and j == n:
        verdict = (f"Every repetition favours ELT, but with n = {n} a one-sided sign test cannot go below "
                   f"p = {best_p:.3g}: the claim that ELT needs fewer labels is consistent with these runs but not "
                   "established; more repetitions are needed.")
    elif 2 * k > n and 2 * j > n:
        verdict = (f"Most repetitions favour ELT (sign test p = {r['sign_test_p']:.3g} for the ratio, "
                   f"{a['sign_test_p']:.3g} for the mean error): suggestive, not established.")
    elif 2 * k > n:
        verdict = (f"The label ratio favours ELT in {k} of {n}, but the threshold-free mean error favours it in only "
                   f"{j} of {n}: the ratio hinges on single noisy points of the curves, and these runs do not support "
                   "the claim that ELT needs fewer labels than random labeling at this budget.")
    else:
        verdict = ("These runs do not support the claim that ELT needs fewer labels than random labeling at this "
                   "budget: ELT is not ahead in most repetitions.")
    return "; ".join(parts) + ". " + verdict


# ----------------------------------------------------------------------------- configuration
def arm_config(cfg: DictConfig, seed: int, selection: str) -> tuple[DictConfig, Path]:
    """The ELT config and root of one arm of repetition ``seed`` (module docstring)."""
    c = OmegaConf.create(OmegaConf.to_container(cfg.elt, resolve=True))
    c.seed = int(seed)
    c.dataset.seed = int(cfg.elt.dataset.seed) + int(cfg.pool_seed_stride) * int(seed)
    if c.dataset.seed == int(c.heldout_seed):
        raise ValueError(f"pool seed of repetition {seed} equals the held-out seed {c.heldout_seed}")
    c.selection = selection
    root = Path(cfg.work_dir) / f"seed_{int(seed)}" / selection
    c.root = str(root)
    return c, root


def heldout_fingerprint(root: Path) -> list:
    """What identifies the held-out set of an arm (seed, task ids, ε, kinds; the shard checksums
    differ between labelings because they contain the creation time)."""
    m = json.loads((root / "heldout" / "manifest.json").read_text())
    return [m["base_seed"], m["n_tasks"], [[e["task_id"], e["kn"], e["ic_kind"]] for e in m["shards"]]]


# ----------------------------------------------------------------------------- shock
def final_closure(root: Path, state: dict) -> Path:
    it = max(h["iteration"] for h in state["history"])
    return root / f"iter_{it:03d}" / "closure" / "closure.pt"


def mlc_shock_cached(shock_cfg: DictConfig, closure: Path, cache: Path) -> dict[str, Any]:
    """The centred MLC shock profile of ``closure`` (or its failure), cached in ``cache`` by the
    checkpoint's checksum and the options (a failure is not cached: a rerun tries again)."""
    from kinclose.apps.shock import get_shock_solver
    from kinclose.bench.shock import model_options
    from kinclose.physics import rankine_hugoniot
    from kinclose.shockprofile import center

    c = OmegaConf.create(OmegaConf.to_container(shock_cfg, resolve=True))
    c.overrides.mlc.closure = str(closure)
    opts = model_options(c, "mlc")
    key = {"closure_sha256": sha256_file(closure), "options": opts, "mach": float(c.mach), "omega": float(c.omega),
           "collision": str(c.collision)}
    if cache.exists():
        old = json.loads(cache.read_text())
        if old.get("key") == key:
            return old
    t0 = time.perf_counter()
    try:
        p = center(get_shock_solver("mlc")(rankine_hugoniot(float(c.mach)), collision=str(c.collision),
                                           omega=float(c.omega), **opts))
        res = {"key": key, "ok": True, "wall_s": time.perf_counter() - t0,
               "profile": {f: getattr(p, f).tolist() for f in ("x", *FIELDS)},
               "metrics": {k: v for k, v in p.metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}}
    except Exception as exc:  # a model that fails is a result: reported, never hidden (and not cached)
        res = {"key": key, "ok": False, "wall_s": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}"}
        log.error("MLC shock with %s failed: %s", closure, res["error"])
        return res
    atomic_write_json(cache, res)
    return res


def shock_errors(shock_cfg: DictConfig, closures: dict[str, Path], roots: dict[str, Path]) -> dict[str, Any]:
    """Rel. L2 errors (:func:`kinclose.bench.shock.field_errors`) of every final model's Mach shock
    against one DVM reference; keys of ``closures``/``roots`` label the models."""
    from kinclose.apps.shock import get_shock_solver
    from kinclose.bench.shock import field_errors, model_options
    from kinclose.physics import rankine_hugoniot
    from kinclose.shockprofile import ShockProfile, center

    states = rankine_hugoniot(float(shock_cfg.mach))
    stem = f"shock_M{float(shock_cfg.mach):g}.json"
    models = {}
    for name, closure in closures.items():
        log.info("Mach %g shock of %s (%s)", float(shock_cfg.mach), name, closure)
        models[name] = mlc_shock_cached(shock_cfg, closure, roots[name] / stem)
    out: dict[str, Any] = {"mach": float(shock_cfg.mach), "omega": float(shock_cfg.omega),
                           "collision": str(shock_cfg.collision), "reference": "dvm", "models": {}}
    if not any(m["ok"] for m in models.values()):
        out["models"] = {k: {"ok": False, "error": m["error"]} for k, m in models.items()}
        return out
    t0 = time.perf_counter()
    ref = center(get_shock_solver("dvm")(states, collision=str(shock_cfg.collision), omega=float(shock_cfg.omega),
                                         **model_options(shock_cfg, "dvm")))
    out["reference_wall_s"] = time.perf_counter() - t0
    log.info("DVM reference: %.1f s", out["reference_wall_s"])
    for name, m in models.items():
        if not m["ok"]:
            out["models"][name] = {"ok": False, "error": m["error"], "closure": str(closures[name])}
            continue
        pr = m["profile"]
        prof = ShockProfile(np.asarray(pr["x"]), *(np.asarray(pr[f]) for f in FIELDS), states, "mlc")
        err = field_errors(prof, ref)
        out["models"][name] = {"ok": True, "closure": str(closures[name]), "wall_s": m["wall_s"],
                               "converged": bool(m["metrics"].get("converged", True)),
                               "residual": m["metrics"].get("residual"),
                               "W_out_of_range_fraction": m["metrics"].get("W_out_of_range_fraction"),
                               **{f"{f}_L2": err[f"{f}_L2"] for f in FIELDS}}
    return out


# ----------------------------------------------------------------------------- report
def _f(x: float | None, fmt: str = ".4f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(result: dict[str, Any]) -> str:
    cfg, agg, setup = result["config"], result["aggregate"], result["setup"]
    e = cfg["elt"]
    L = ["# ELT (ensemble-variance selection) vs random labeling", "",
         "## Setup", "",
         f"- Repetitions: seeds {setup['seeds']}. Repetition s: training seed s + iteration and the random "
         f"arm's selection rng from s; candidate pool = dataset `{e['dataset']['name']}` with seed "
         f"{e['dataset']['seed']} + {cfg['pool_seed_stride']}·s (pool seeds {setup['pool_seeds']}).",
         f"- Budget: {e['n_initial']} initial labels (shared by both arms), then {e['max_iterations'] - 1} "
         f"iterations adding {e['per_iteration_budget']} of {e['n_candidates']} fresh candidates each "
         f"(label budget {e['label_budget']}); {e['max_iterations']} trainings per arm "
         f"(moments {e['moments']['epochs']} epochs, closure ensemble {e['closure']['epochs']} epochs).",
         f"- Held-out set: {e['n_heldout']} configurations, seed {e['heldout_seed']}, the same for every arm and "
         f"repetition (identical in all arms: {setup['heldout_identical']}).",
         "- Error: for each held-out configuration the reduced model runs from the initial data to the final "
         "snapshot; relative L2 errors against the kinetic fields (ρ/‖ρ‖, u/‖√T‖, T/‖T‖, σ/‖p‖, q/‖p√T‖, "
         "`kinclose.bench.sweep.errors`), averaged over the configurations and then over the five fields. "
         "A failed held-out run makes the error ∞.",
         "- Label ratio: labels the ELT arm added until its error first fell to the random arm's final error, "
         "divided by the labels the random arm added (< 1: ELT helped; — : not reached within the budget). "
         "Mean error: the mean of each curve over the label counts both arms have (a threshold-free "
         "area-under-curve measure; the first point is shared).", ""]
    if setup["incomplete"]:
        L += ["**Incomplete repetitions (left out of the aggregate):**", ""]
        L += [f"- seed {s}: {msg}" for s, msg in setup["incomplete"].items()]
        L.append("")
    for s, rep in result["repetitions"].items():
        a = agg["per_repetition"][int(s)]
        (nv, ev), (nr, er) = rep["variance"]["curve"], rep["random"]["curve"]
        L += [f"## Repetition seed {s} (pool seed {rep['pool_seed']})", "",
              "| labeled | ELT (variance) | random |", "|---|---|---|"]
        dv, dr = dict(zip(nv, ev)), dict(zip(nr, er))
        for n in sorted(set(nv) | set(nr)):
            L.append(f"| {n} | {_f(dv.get(n))} | {_f(dr.get(n))} |")
        r = a["ratio"]
        reach = (f"{r['variance_added']} of random's {r['random_added']} labels (ratio {r['ratio']:.2f})"
                 if r["ratio"] is not None else "not reached within the budget (ELT did not reach it)")
        if not r["random_improved"]:
            reach += " — random labeling ended no better than the shared initial model"
        L += ["", f"Random's final error {r['target']:.4f}; ELT reached it after {reach}. Mean error over the "
                  f"shared label counts: ELT {a['auc']['variance']:.4f}, random {a['auc']['random']:.4f}.", ""]
        notes = [f"{arm}: {msg}" for arm in ARMS for msg in rep[arm]["notes"]]
        if notes:
            L += ["Notes: " + "; ".join(notes) + ".", ""]
    if agg["n_repetitions"]:
        rt, au = agg["ratio"], agg["auc"]
        L += ["## Aggregate", "",
              "| seed | label ratio | ELT mean error | random mean error | ELT final | random final |",
              "|---|---|---|---|---|---|"]
        for s, a in agg["per_repetition"].items():
            rr = a["ratio"]["ratio"]
            L.append(f"| {s} | {'not reached' if rr is None else f'{rr:.2f}'} | {a['auc']['variance']:.4f} | "
                     f"{a['auc']['random']:.4f} | {a['final']['variance']:.4f} | {a['final']['random']:.4f} |")
        med = rt["median"]
        L += ["",
              f"- Label ratio: ELT helped (ratio < 1) in {rt['n_helped']} of {agg['n_repetitions']}; not reached in "
              f"{rt['n_not_reached']}; mean over reached {_f(rt['mean_over_reached'], '.2f')}; median "
              f"{'> 1 (not reached)' if med is not None and not math.isfinite(med) else _f(med, '.2f')} "
              f"(unreached counted as > 1); one-sided sign test p = {rt['sign_test_p']:.3g}.",
              f"- Mean error over the shared label counts: ELT {au['variance']['mean']:.4f} ± {au['variance']['std']:.4f}, "
              f"random {au['random']['mean']:.4f} ± {au['random']['std']:.4f} (± sample std over repetitions); ELT "
              f"lower in {au['n_variance_lower']} of {agg['n_repetitions']} (sign test p = {au['sign_test_p']:.3g}).",
              "", "| labeled | ELT mean ± std | random mean ± std |", "|---|---|---|"]
        cv, cr = agg["curves"]["variance"], agg["curves"]["random"]
        for i, n in enumerate(cv["labeled"]):
            j = cr["labeled"].index(n) if n in cr["labeled"] else None
            rnd = f"{cr['mean'][j]:.4f} ± {cr['std'][j]:.4f}" if j is not None else "—"
            L.append(f"| {n} | {cv['mean'][i]:.4f} ± {cv['std'][i]:.4f} | {rnd} |")
        L.append("")
    sh = result.get("shock")
    if sh:
        L += [f"## Mach {sh['mach']:g} shock of the final models", "",
              f"{sh['collision'].upper()}, ω = {sh['omega']:g}; reference: DVM (default grid, one run); relative L2 "
              "errors of `kinclose.bench.shock.field_errors` (ρ, u, T over the jump, σ, q over the reference).", "",
              "| seed | arm | " + " | ".join(f"{f} L2" for f in FIELDS) + " | steady | W outside training range | wall (s) |",
              "|---|---|" + "---|" * (len(FIELDS) + 3)]
        for name, m in sh["models"].items():
            s, arm = name.split("/")
            if not m["ok"]:
                L.append(f"| {s} | {arm} | failed: {m['error'][:160]} |" + " |" * (len(FIELDS) + 2))
                continue
            steady = "yes" if m["converged"] else f"no (residual {_f(m['residual'], '.1e')})"
            L.append(f"| {s} | {arm} | " + " | ".join(f"{m[f'{f}_L2']:.2%}" for f in FIELDS)
                     + f" | {steady} | {_f(m['W_out_of_range_fraction'], '.1%')} | {m['wall_s']:.0f} |")
        for arm in ARMS:
            ok = [m for k, m in sh["models"].items() if k.endswith("/" + arm) and m["ok"]]
            tot = sum(1 for k in sh["models"] if k.endswith("/" + arm))
            if ok:
                L.append(f"| mean ({len(ok)} of {tot}) | {arm} | "
                         + " | ".join(f"{np.mean([m[f'{f}_L2'] for m in ok]):.2%}" for f in FIELDS) + " | | | |")
        L.append("")
    L += ["## Conclusion", "", result["conclusion"], ""]
    return "\n".join(L)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    from kinclose.plotting import use_style

    use_style()
    colours = {"variance": "C0", "random": "C1"}
    labels = {"variance": "ELT (variance)", "random": "random"}
    fig, ax = plt.subplots(figsize=(5.0, 3.5))
    for rep in result["repetitions"].values():
        for arm in ARMS:
            n, e = rep[arm]["curve"]
            ax.plot(n, e, color=colours[arm], lw=0.8, alpha=0.45)
    curves = result["aggregate"].get("curves", {})
    for arm in ARMS:
        if arm in curves:
            c = curves[arm]
            ax.plot(c["labeled"], c["mean"], color=colours[arm], lw=2.5, marker="o" if arm == "variance" else "s",
                    label=f"{labels[arm]}, mean of {result['aggregate']['n_repetitions']}")
    ax.set_yscale("log")
    ax.set_xlabel("labeled configurations")
    ax.set_ylabel("held-out mean rel. L2 error")
    ax.set_title("thin lines: one repetition each; thick: mean", fontsize=8)
    ax.set_xticks(sorted({n for rep in result["repetitions"].values() for a in ARMS for n in rep[a]["curve"][0]}))
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def arm_notes(state: dict) -> list[str]:
    """Things about an arm's history that the curve alone does not show."""
    notes = []
    for h in sorted(state["history"], key=lambda r: r["iteration"]):
        if h.get("failed"):
            notes.append(f"iteration {h['iteration']}: {h['failed']} label task(s) failed (the label count "
                         "includes them)")
        if h["heldout"].get("failed_runs"):
            notes.append(f"iteration {h['iteration']}: {h['heldout']['failed_runs']} held-out run(s) failed "
                         "(error ∞)")
    return notes


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="elt_vs_random")
def main(cfg: DictConfig) -> None:
    from kinclose.elt import run_elt

    t_start = time.perf_counter()
    out = writable_dir(cfg.out_dir)
    seeds = [int(s) for s in cfg.seeds]
    reps: dict[str, dict[str, Any]] = {}
    incomplete: dict[str, str] = {}
    fingerprints: dict[str, list] = {}
    closures: dict[str, Path] = {}
    roots: dict[str, Path] = {}
    for s in seeds:
        rep: dict[str, Any] = {}
        for sel in ARMS:
            c, root = arm_config(cfg, s, sel)
            rep["pool_seed"] = int(c.dataset.seed)
            log.info("seed %d, arm %s (pool seed %d) -> %s", s, sel, c.dataset.seed, root)
            t0 = time.perf_counter()
            try:
                state = run_elt(c, root)
            except Exception as exc:  # reported in the outputs and the exit status, never skipped silently
                log.exception("seed %d, arm %s failed", s, sel)
                incomplete[str(s)] = f"{sel} arm failed: {type(exc).__name__}: {exc}"
                break
            wall = sum(sum(h.get("wall_s", {}).values()) for h in state["history"])
            rep[sel] = {"curve": curve(state), "stop_reason": state.get("stop_reason"), "notes": arm_notes(state),
                        "wall_s_recorded": wall, "wall_s_this_call": time.perf_counter() - t0,
                        "labeled": state["labeled"]}
            fingerprints[f"{s}/{sel}"] = heldout_fingerprint(root)
            closures[f"{s}/{sel}"] = final_closure(root, state)
            roots[f"{s}/{sel}"] = root
            log.info("seed %d, arm %s: held-out errors %s", s, sel, [round(x, 4) for x in rep[sel]["curve"][1]])
        if str(s) not in incomplete:
            reps[str(s)] = rep
    fps = list(fingerprints.values())
    heldout_identical = all(fp == fps[0] for fp in fps)
    if not heldout_identical:
        log.error("the held-out sets differ between arms: the comparison is not on one held-out set")
    agg = aggregate({int(s): {a: tuple(rep[a]["curve"]) for a in ARMS} for s, rep in reps.items()})
    shock = shock_errors(cfg.shock, closures, roots) if closures else None
    result = {"setup": {"seeds": seeds, "pool_seeds": [int(cfg.elt.dataset.seed) + int(cfg.pool_seed_stride) * s
                                                         for s in seeds],
                        "heldout_identical": heldout_identical, "incomplete": incomplete},
              "repetitions": reps, "aggregate": agg, "shock": shock,
              "conclusion": conclusion(agg, len(seeds)),
              "wall_s": {"this_call": time.perf_counter() - t_start},
              "config": OmegaConf.to_container(cfg, resolve=True)}
    atomic_write_json(out / "elt_vs_random.json", result)
    atomic_write_text(out / "elt_vs_random.md", markdown(result))
    plot(result, out / "elt_vs_random.png")
    log.info("%s", result["conclusion"])
    if incomplete or not heldout_identical:
        log.error("incomplete repetitions: %s", incomplete)
        sys.exit(1)


if __name__ == "__main__":
    main()
