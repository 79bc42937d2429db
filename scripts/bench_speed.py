"""Speed table (issue 8): wall time and cost per cell·step of DVM, NSF, Euler and the learned closure
on the same problems, measured in one run, with the share of the reduced model's time spent in
network inference, for the fused float32 inference and the torch reference path.

    python scripts/bench_speed.py [shock_models=[dvm,nsf,mlc]] [sweep_kns=[1e-3,1e-1,10]]
    python scripts/bench_speed.py distilled.mlc=PATH/closure.pt   # adds "mlc distilled (float32)" rows
    python scripts/bench_speed.py +extra_closures.mlc.exact=PATH/closure.pt   # adds "mlc exact (float32)" rows

Problems: the Mach ``mach`` BGK normal shock to the steady state (each model's ``conf/model`` options;
NSF is an ODE solve, so it has no cell·steps) and one held-out Knudsen-sweep case per ε to
``sweep_t_end`` on ``sweep_nx`` cells. Cost per cell·step = wall / Σ(cells × steps) over all grid
levels (a DVM cell carries nv velocities). The reduced models' cost per cell·step is also measured on
the first sweep case resampled on each of ``scaling_nx`` cells (``scaling_steps`` steps each). The first
sweep case is preceded by an untimed warm-up run of every model (JIT, caches, thread pools). Ratios are
against the DVM on the same problem in this run. Writes ``results/speed_table.md|.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.apps.shock import get_shock_solver
from kinclose.bench.shock import model_options
from kinclose.bench.sweep import make_cases, problem
from kinclose.io import atomic_write_json, atomic_write_text
from kinclose.models import run_model
from kinclose.physics import rankine_hugoniot

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


def _extra_closures(cfg: DictConfig, model: str) -> dict[str, str]:
    """Extra closures of ``model`` to time: its distilled student (``distilled``) and ``extra_closures``."""
    out = {}
    if (cfg.get("distilled") or {}).get(model):
        out["distilled"] = str(cfg.distilled[model])
    out.update({str(k): str(v) for k, v in ((cfg.get("extra_closures") or {}).get(model) or {}).items()})
    return out


def _row(problem_name: str, model: str, wall: float, cell_steps: int | None, closure: TimedClosure | None,
         **extra: Any) -> dict[str, Any]:
    row = {"problem": problem_name, "model": model, "wall_s": wall, "cell_steps": cell_steps,
           "us_per_cell_step": 1e6 * wall / cell_steps if cell_steps else None, **extra}
    if closure is not None:
        row["inference_s"] = closure.seconds
        row["inference_share"] = closure.seconds / wall
        row["closure_calls"] = closure.calls
    log.info("%s %s: %.2f s%s", problem_name, model, wall,
             f", {row['us_per_cell_step']:.2f} us/cell-step" if cell_steps else "")
    return row


def shock_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    states = rankine_hugoniot(float(cfg.mach))
    name = f"shock M{float(cfg.mach):g}"
    rows = []
    for model in cfg.shock_models:
        opts = model_options(cfg, model)
        for label, o, cl in _variants(model, opts, cfg.inference, _extra_closures(cfg, model)):
            t0 = time.perf_counter()
            p = get_shock_solver(model)(states, collision="bgk", omega=float(cfg.omega), **o)
            wall = time.perf_counter() - t0
            m = p.metrics
            cs = int(m["cell_steps"]) if "cell_steps" in m else None  # the NSF shock is an ODE solve
            rows.append(_row(name, label, wall, cs, cl, converged=m.get("converged"), nx=m.get("nx"),
                             nv=m.get("nv")))
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
                rows.append(_row(name, label, wall, int(steps) * prob.nx if steps else None, cl, nx=prob.nx))
    return rows


def scaling_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    """Cost per cell·step of the reduced models against the number of cells: ``scaling_steps`` steps of
    the first sweep case resampled on each of ``scaling_nx`` cells (the networks then see batches of
    that size). A flat cost means the inference is compute-bound, not call-overhead-bound."""
    from kinclose.reduced.run import problem_solver

    rows = []
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
                                 int(cfg.scaling_steps) * int(nx), cl, nx=int(nx)))
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"Speed table: {meta['cores']} CPU cores, one run ({meta['date']}). Cost = wall / (cells × steps), "
             "summed over grid levels (a DVM cell carries nv velocity nodes); ratio = model wall / DVM wall on the same problem; inference share = "
             "time inside the closure networks / wall. Shock: x in λ1, steady state to the drift-corrected "
             "residual tol; sweep: ε = λ_ref/L, one held-out case to t_end.", "",
             "| problem | model | wall (s) | cells×steps | µs per cell·step | wall / DVM | inference share |",
             "|---|---|---|---|---|---|---|"]
    dvm = {r["problem"]: r["wall_s"] for r in rows if r["model"] == "dvm"}
    for r in rows:
        cs = f"{r['cell_steps']:,}" if r["cell_steps"] else "— (ODE)" if r["model"] == "nsf" else "—"
        us = f"{r['us_per_cell_step']:.2f}" if r["us_per_cell_step"] else "—"
        ratio = f"{r['wall_s'] / dvm[r['problem']]:.2f}" if r["problem"] in dvm else "—"
        share = f"{100 * r['inference_share']:.0f} %" if "inference_share" in r else "—"
        lines.append(f"| {r['problem']} | {r['model']} | {r['wall_s']:.2f} | {cs} | {us} | {ratio} | {share} |")
    speedups, distilled = [], []
    for prob in dict.fromkeys(r["problem"] for r in rows):
        by = {r["model"]: r["wall_s"] for r in rows if r["problem"] == prob}
        for m in REDUCED:
            if f"{m} (torch)" in by and f"{m} (float32)" in by:
                speedups.append(f"{prob}: {by[f'{m} (torch)'] / by[f'{m} (float32)']:.2f}×")
            if f"{m} distilled (float32)" in by and f"{m} (float32)" in by:
                distilled.append(f"{prob} {m}: {by[f'{m} (float32)'] / by[f'{m} distilled (float32)']:.2f}×")
    if speedups:
        lines += ["", "Fused float32 inference vs the torch float64 path (wall ratio, same problem): "
                  + "; ".join(speedups) + "."]
    if distilled:
        lines += ["", "Distilled closure (K = 1, kinclose-train stage=distill) vs the K-member ensemble, both fused "
                  "float32 (wall ratio, same problem): " + "; ".join(distilled) + "."]
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="bench_speed")
def main(cfg: DictConfig) -> None:
    rows = sweep_rows(cfg) + shock_rows(cfg) + scaling_rows(cfg)  # the sweep's warm-up also loads the DVM kernels
    meta = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    out = Path(cfg.out_dir)
    atomic_write_json(out / "speed_table.json", {"rows": rows, **meta,
                                                 "config": OmegaConf.to_container(cfg, resolve=True)})
    atomic_write_text(out / "speed_table.md", markdown(rows, meta))
    log.info("wrote %s", out / "speed_table.md")


if __name__ == "__main__":
    main()
