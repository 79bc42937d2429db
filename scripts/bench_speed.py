"""Speed table (issue 8): wall time and cost per cell·step of DVM, NSF, Euler and the learned closure
on the same problems, measured in one run, with the share of the reduced model's time spent in
network inference, for the fused float32 inference and the torch reference path.

    python scripts/bench_speed.py [shock_models=[dvm,nsf,mlc]] [sweep_kns=[1e-3,1e-1,10]]
    python scripts/bench_speed.py distilled.mlc=PATH/closure.pt   # adds "mlc distilled (float32)" rows
    python scripts/bench_speed.py +extra_closures.mlc.exact=PATH/closure.pt   # adds "mlc exact (float32)" rows
    python scripts/bench_speed.py newton_options=null   # without the "mlc newton (float64)" shock rows
    python scripts/bench_speed.py shock_repeats=3       # each shock row run 3 times, the median run shown

Problems: the Mach ``mach`` BGK normal shock to the steady state (each model's ``conf/model`` options;
NSF is an ODE solve, so it has no cell·steps; the reduced models' shock is time-marched with
``march_options`` for every inference path and solved by the implicit steady solver with
``newton_options``, which has residual evaluations instead of steps; every shock
profile's errors against this run's DVM are tabled too) and one held-out Knudsen-sweep case per ε to
``sweep_t_end`` on ``sweep_nx`` cells. Cost per cell·step = wall / Σ(cells × steps) over all grid
levels (a DVM cell carries nv velocities). The reduced models' cost per cell·step is also measured on
the first sweep case resampled on each of ``scaling_nx`` cells (``scaling_steps`` steps each). The first
sweep case is preceded by an untimed warm-up run of every model (JIT, caches, thread pools). Ratios are
against the DVM on the same problem in this run, for the wall (the whole call) and for the solver's own time
(its loop, without setup and the closure diagnostics of the result). Writes ``results/speed_table.md|.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from types import SimpleNamespace
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.apps import check_ints
from kinclose.apps.shock import get_shock_solver
from kinclose.bench.shock import field_errors, model_options
from kinclose.bench.sweep import make_cases, problem
from kinclose.io import atomic_write_json, atomic_write_text, writable_dir
from kinclose.models import run_model
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import FIELDS, center

log = logging.getLogger("bench_speed")
REDUCED = ("mlc", "hermmlc")


class TimedClosure:
    """A closure whose ``stress_heat`` and ``frame`` calls are timed (everything else is forwarded)."""

    def __init__(self, inner: Any) -> None:
        self.__dict__["inner"] = inner
        self.__dict__["seconds"] = 0.0
        self.__dict__["calls"] = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)

    def reset(self) -> None:
        """Forget the time and calls counted so far (after an untimed warm-up)."""
        self.__dict__.update(seconds=0.0, calls=0)

    def _timed(self, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        self.__dict__["seconds"] += time.perf_counter() - t0
        self.__dict__["calls"] += 1
        return out

    def stress_heat(self, W, cells=None):
        return self._timed(self.inner.stress_heat, W, cells)

    def frame(self, W, delta, tau, cells=None):
        return self._timed(self.inner.frame, W, delta, tau, cells)


class TimedClosures:
    """The summed time and calls of several timed closures used by one run."""

    def __init__(self, *parts: TimedClosure) -> None:
        self.parts = parts

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.parts)

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.parts)

    def reset(self) -> None:
        for p in self.parts:
            p.reset()


def _closure(spec: str, xi_max: float | None, inference: str) -> TimedClosure:
    from kinclose.closure.learned import LearnedClosure
    from kinclose.pretrained import resolve

    return TimedClosure(LearnedClosure.from_checkpoint(resolve(spec), xi_max=xi_max, inference=inference))


def _variants(model: str, opts: dict[str, Any], inference: list[str],
              extra: dict[str, str] | None = None) -> list[tuple[str, dict, Any]]:
    """(label, options, timed closure or None): one entry per inference path for a reduced model, plus
    "<model> <label> (<first path>)" for each ``label: closure.pt`` of ``extra`` (distilled, other closures)."""
    if model not in REDUCED:
        return [(model, dict(opts), None)]
    out = []
    for inf in inference:
        o = dict(opts)
        cl = _closure(o.pop("closure"), o.pop("xi_max", None), inf)
        out.append((f"{model} ({inf})", dict(o, closure=cl), cl))
    for label, path in (extra or {}).items():
        o = dict(opts)
        o.pop("closure")
        cl = _closure(str(path), o.pop("xi_max", None), inference[0])
        out.append((f"{model} {label} ({inference[0]})", dict(o, closure=cl), cl))
    return out


def _newton_variants(model: str, opts: dict[str, Any], cfg: DictConfig,
                     extra: dict[str, str]) -> list[tuple[str, dict, Any]]:
    """The shock of a reduced model solved by the implicit steady solver (``newton_options``, e.g.
    steady=newton, limiter=vanleer; kinclose.reduced.steady), float64 inference: "<model> newton (float64)"
    and "<model> <label> newton (float64)" for each extra closure."""
    if model not in REDUCED or not cfg.get("newton_options"):
        return []
    nopts = OmegaConf.to_container(cfg.newton_options, resolve=True)
    out = []
    o = {k: v for k, v in opts.items() if k not in ("closure", "xi_max", "jacobian_closure")}  # own Jacobians
    for label, path in {"": opts["closure"], **extra}.items():
        cl = _closure(str(path), opts.get("xi_max"), "float64")
        name = f"{model} {label} newton (float64)" if label else f"{model} newton (float64)"
        out.append((name, dict(o, closure=cl, **nopts), cl))
    if "distilled" in extra:  # the ensemble's steady state with the student's (cheaper) Jacobians
        cl = _closure(str(opts["closure"]), opts.get("xi_max"), "float64")
        student = _closure(extra["distilled"], opts.get("xi_max"), "float64")
        out.append((f"{model} newton, distilled Jacobian (float64)",
                    dict(o, closure=cl, jacobian_closure=student, **nopts), TimedClosures(cl, student)))
    return out


def _extra_closures(cfg: DictConfig, model: str) -> dict[str, str]:
    """Extra closures of ``model`` to time: its distilled student (``distilled``) and ``extra_closures``."""
    out = {}
    if (cfg.get("distilled") or {}).get(model):
        out["distilled"] = str(cfg.distilled[model])
    out.update({str(k): str(v) for k, v in ((cfg.get("extra_closures") or {}).get(model) or {}).items()})
    return out


def _row(problem_name: str, model: str, wall: float, cell_steps: int | None, closure: Any,
         solve: float | None = None, **extra: Any) -> dict[str, Any]:
    """A table row; ``closure``: the run's inference time and calls (``seconds``, ``calls``) or None; ``solve``:
    the solver's own time (its loop to t_end or the steady state: no setup, no diagnostics of the result)."""
    row = {"problem": problem_name, "model": model, "wall_s": wall, "solve_s": solve, "cell_steps": cell_steps,
           "us_per_cell_step": 1e6 * wall / cell_steps if cell_steps else None, **extra}
    if closure is not None:
        row["inference_s"] = closure.seconds
        row["inference_share"] = closure.seconds / wall
        row["closure_calls"] = closure.calls
    log.info("%s %s: %.2f s%s", problem_name, model, wall,
             f", {row['us_per_cell_step']:.2f} us/cell-step" if cell_steps else "")
    return row


def _fallback(row: dict[str, Any]) -> str:
    """The time steps a Newton row marched where Newton did not finish a level, for its table cell."""
    n = row.get("fallback_cell_steps")
    return f" + {n:,} cell·steps of fallback march" if n else ""


def shock_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    """One row per model variant on the steady shock, with its relative L2 errors (ρ, u, T, σ, q; centred
    profiles) against this run's DVM profile when the DVM is among ``shock_models``. Each variant runs
    ``shock_repeats`` times in a row; the row is the median run (the lower middle one for an even count: wall,
    inference time, profile), ``walls_s`` every wall."""
    states = rankine_hugoniot(float(cfg.mach))
    name = f"shock M{float(cfg.mach):g}"
    repeats = int(cfg.shock_repeats)
    rows, profiles = [], {}
    for model in cfg.shock_models:
        opts = model_options(cfg, model)
        extra = _extra_closures(cfg, model)
        march = dict(opts, **OmegaConf.to_container(cfg.march_options, resolve=True)) if model in REDUCED else opts
        for label, o, cl in _variants(model, march, cfg.inference, extra) + _newton_variants(model, opts, cfg, extra):
            runs = []  # (wall, inference time and calls or None, profile) per repeat
            for _ in range(repeats):
                if cl is not None:
                    cl.reset()
                t0 = time.perf_counter()
                p = get_shock_solver(model)(states, collision="bgk", omega=float(cfg.omega), **o)
                wall = time.perf_counter() - t0
                runs.append((wall, None if cl is None else SimpleNamespace(seconds=cl.seconds, calls=cl.calls), p))
            wall, timing, p = sorted(runs, key=lambda r: r[0])[(repeats - 1) // 2]  # the median run
            m = p.metrics
            newton = m.get("steady_solver") == "newton"  # counted in residual evaluations (+ a fallback's steps)
            cs = int(m["cell_steps"]) if m.get("cell_steps") and not newton else None  # NSF: an ODE solve
            rows.append(_row(name, label, wall, cs, timing, m.get("solve_wall_s"), converged=m.get("converged"),
                             nx=m.get("nx"),
                             nv=m.get("nv"), cell_residual_evals=m.get("cell_residual_evals"),
                             fallback_cell_steps=m.get("cell_steps") if newton else None,
                             walls_s=[r[0] for r in runs]))
            profiles[label] = center(p)
    if "dvm" in profiles:
        for r in rows:
            e = field_errors(profiles[r["model"]], profiles["dvm"])
            r["errors_L2"] = {f: e[f"{f}_L2"] for f in FIELDS}
    return rows


def sweep_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    rows = []
    for kn in cfg.sweep_kns:
        case = make_cases(float(kn), 1, int(cfg.sweep_seed), int(cfg.sweep_nx), float(cfg.sweep_t_end),
                          [str(cfg.sweep_kind)], float(cfg.omega))[0]
        prob = problem(case, int(cfg.sweep_nx))
        name = f"sweep eps={float(kn):g}"
        for model, opts in cfg.sweep_models.items():
            opts = OmegaConf.to_container(opts, resolve=True)
            for label, o, cl in _variants(model, opts, cfg.inference, _extra_closures(cfg, model)):
                if kn == cfg.sweep_kns[0]:  # warm-up (JIT, caches, thread pools), not timed
                    run_model(model, dataclasses.replace(prob, t_end=prob.t_end / 20), **o)
                    if cl is not None:
                        cl.reset()
                t0 = time.perf_counter()
                f = run_model(model, prob, **o)
                wall = time.perf_counter() - t0
                steps = f.stats.get("steps")
                rows.append(_row(name, label, wall, int(steps) * prob.nx if steps else None, cl, f.stats.get("wall_s"),
                                 nx=prob.nx))
    return rows


def scaling_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    """Cost per cell·step of the reduced models against the number of cells: ``scaling_steps`` steps of
    the first sweep case resampled on each of ``scaling_nx`` cells (the networks then see batches of
    that size). A flat cost means the inference is compute-bound, not call-overhead-bound."""
    from kinclose.reduced.run import problem_solver

    rows = []
    if not cfg.get("scaling_nx") or not cfg.sweep_kns:
        return rows
    case = make_cases(float(cfg.sweep_kns[0]), 1, int(cfg.sweep_seed), int(cfg.sweep_nx), float(cfg.sweep_t_end),
                      [str(cfg.sweep_kind)], float(cfg.omega))[0]
    for model, opts in cfg.sweep_models.items():
        if model not in REDUCED:
            continue
        opts = OmegaConf.to_container(opts, resolve=True)
        for label, o, cl in _variants(model, opts, list(cfg.inference)[:1], _extra_closures(cfg, model)):
            for nx in cfg.get("scaling_nx") or []:
                solver = problem_solver(problem(case, int(nx)), **o)
                solver.step()  # warm-up, not timed
                cl.reset()
                t0 = time.perf_counter()
                for _ in range(int(cfg.scaling_steps)):
                    solver.step()
                wall = time.perf_counter() - t0
                rows.append(_row(f"{int(cfg.scaling_steps)} steps, {int(nx)} cells", label, wall,
                                 int(cfg.scaling_steps) * int(nx), cl, wall, nx=int(nx)))
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    repeats = meta.get("shock_repeats", 1)
    runs = "one run" if repeats == 1 else f"one run; shock rows: the median of {repeats} runs in a row"
    lines = [(f"Speed table: {meta['cores']} CPU cores, {runs} ({meta['date']}). Cost = wall / (cells × steps), "
              "summed over grid levels (a DVM cell carries nv velocity nodes); ratio = model wall / DVM wall on the "
              "same problem; inference share = time inside the closure networks / wall; solve = the solver's own "
              "time (its loop to t_end or to the steady state), without the setup and the diagnostics of the result "
              "that wall includes. Shock: x in λ1, steady state to the drift-corrected residual tol (\"newton\": the "
              "implicit steady solver, counted in residual evaluations on all cells, a Jacobian being 5 (3 + M) + 1 "
              "of them); sweep: ε = λ_ref/L, one held-out case to t_end."), "",
             ("| problem | model | wall (s) | solve (s) | cells×steps | µs per cell·step | wall / DVM | solve / DVM "
              "| inference share |"),
             "|---|---|---|---|---|---|---|---|---|"]
    dvm = {r["problem"]: r["wall_s"] for r in rows if r["model"] == "dvm"}
    dvm_solve = {r["problem"]: r.get("solve_s") for r in rows if r["model"] == "dvm"}
    for r in rows:
        cs = (f"{r['cell_steps']:,}" if r["cell_steps"] else "— (ODE)" if r["model"] == "nsf"
              else f"— ({r['cell_residual_evals']:,} cell·residuals{_fallback(r)})" if r.get("cell_residual_evals")
              else "—")
        us = f"{r['us_per_cell_step']:.2f}" if r["us_per_cell_step"] else "—"
        ratio = f"{r['wall_s'] / dvm[r['problem']]:.2f}" if r["problem"] in dvm else "—"
        solve = f"{r['solve_s']:.2f}" if r.get("solve_s") is not None else "—"
        ref = dvm_solve.get(r["problem"])
        solve_ratio = f"{r['solve_s'] / ref:.2f}" if r.get("solve_s") is not None and ref else "—"
        share = f"{100 * r['inference_share']:.0f} %" if "inference_share" in r else "—"
        lines.append(f"| {r['problem']} | {r['model']} | {r['wall_s']:.2f} | {solve} | {cs} | {us} | {ratio} | "
                     f"{solve_ratio} | {share} |")
    speedups, distilled = [], []
    for prob in dict.fromkeys(r["problem"] for r in rows):
        by = {r["model"]: r["wall_s"] for r in rows if r["problem"] == prob}
        for m in REDUCED:
            if f"{m} (torch)" in by and f"{m} (float32)" in by:
                speedups.append(f"{prob}: {by[f'{m} (torch)'] / by[f'{m} (float32)']:.2f}×")
            if f"{m} distilled (float32)" in by and f"{m} (float32)" in by:
                distilled.append(f"{prob} {m}: {by[f'{m} (float32)'] / by[f'{m} distilled (float32)']:.2f}×")
    errs = [r for r in rows if "errors_L2" in r and r["model"] != "dvm"]
    if errs:
        lines += ["", ("Shock profiles against this run's DVM (relative L2 errors, %; ρ, u, T relative to the jump; "
                       "centred profiles; the Newton rows use the smooth van Leer limiter, the others MC):"), "",
                  "| problem | model | " + " | ".join(FIELDS) + " |", "|---|---|" + "---|" * len(FIELDS)]
        lines += [f"| {r['problem']} | {r['model']} | " + " | ".join(f"{100 * r['errors_L2'][f]:.2f}" for f in FIELDS)
                  + " |" for r in errs]
    if speedups:
        lines += ["", "Fused float32 inference vs the torch float64 path (wall ratio, same problem): "
                  + "; ".join(speedups) + "."]
    if distilled:
        lines += ["", "Distilled closure (K = 1, kinclose-train stage=distill) vs the K-member ensemble, both fused "
                  "float32 (wall ratio, same problem): " + "; ".join(distilled) + "."]
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="bench_speed")
def main(cfg: DictConfig) -> None:
    if int(cfg.shock_repeats) < 1:
        raise ValueError(f"shock_repeats must be >= 1, got {cfg.shock_repeats}")
    check_ints(cfg, {"shock_repeats": 1, "sweep_nx": 4, "sweep_seed": 0, "scaling_steps": 1})
    out = writable_dir(cfg.out_dir)
    rows = sweep_rows(cfg) + shock_rows(cfg) + scaling_rows(cfg)  # the sweep's warm-up also loads the DVM kernels
    meta = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "shock_repeats": int(cfg.shock_repeats)}
    atomic_write_json(out / "speed_table.json", {"rows": rows, **meta,
                                                 "config": OmegaConf.to_container(cfg, resolve=True)})
    atomic_write_text(out / "speed_table.md", markdown(rows, meta))
    log.info("wrote %s", out / "speed_table.md")


if __name__ == "__main__":
    main()
