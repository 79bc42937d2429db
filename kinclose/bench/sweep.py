"""Knudsen sweep: uniform accuracy of every model against the kinetic (DVM) reference.

Held-out random initial data (``kinclose.data.initial``, seeds never used for training) on the
periodic domain [−0.5, 0.5), Maxwellian initial distributions, run to ``t_end`` at each
ε ∈ ``kns`` (ε = λ_ref/L, VHS mean free path of the state ρ = T = 1, L = 1).

Errors per field, relative L2 over the cells, against the DVM at the final time:
    ρ: ‖Δρ‖/‖ρ‖,  T: ‖ΔT‖/‖T‖,  u: ‖Δu‖/‖√T‖ (thermal speed),
    σ: ‖Δσ‖/‖p‖,  q: ‖Δq‖/‖p √T‖  (non-equilibrium quantities relative to p and p√T, since σ, q → 0
    as ε → 0 and a ratio to them would be ill-defined there).
Each entry of the table is the mean over the cases of one ε, ± its standard error
(sample standard deviation / √n, ``errors_sem`` in the JSON). The reference runs on a grid
``reference_refine`` times finer (its fields averaged back onto the model cells), so the table
measures model error plus the models' own discretization error, not the reference's.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections import Counter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.data.initial import ICRanges, evaluate, sample_initial
from kinclose.models import run_model
from kinclose.problem import Fields, Problem

log = logging.getLogger(__name__)
FIELDS = ("rho", "u", "T", "sigma", "q")
# closure diagnostics of the final states (kinclose.reduced.run.closure_diagnostics), reduced over the cases
DIAGNOSTICS = {"complex_eigenvalue_fraction": np.mean, "max_characteristic_speed": np.max,
               "fraction_speed_above_xi_max": np.mean, "W_out_of_range_fraction": np.mean}


def make_cases(kn: float, n_cases: int, seed: int, nx: int, t_end: float, kinds: list[str],
               omega: float = 0.5) -> list[dict[str, Any]]:
    """``n_cases`` held-out initial-data specs at Knudsen number ``kn`` (deterministic in ``seed``)."""
    out = []
    for i in range(n_cases):
        rng = np.random.default_rng([seed, i])
        spec = sample_initial(rng, ICRanges(), -0.5, 0.5, kind=kinds[i % len(kinds)])
        out.append({"spec": spec, "kn": kn, "t_end": t_end, "omega": omega, "seed": [seed, i]})
    return out


def problem(case: dict[str, Any], nx: int) -> Problem:
    """The case on ``nx`` cells (initial data sampled at the cell centres)."""
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    rho, u, T, _ = evaluate(case["spec"], x)
    return Problem(-0.5, 0.5, rho, u, T, kn=case["kn"], t_end=case["t_end"], omega=case["omega"],
                   meta={"seed": case["seed"], "kind": case["spec"]["kind"]})


def coarsen(f: Fields, r: int) -> Fields:
    """Average blocks of ``r`` cells."""
    def c(a: NDArray) -> NDArray:
        return a.reshape(-1, r).mean(1)

    return Fields(c(f.x), c(f.rho), c(f.u), c(f.T), c(f.sigma), c(f.q), f.t, f.stats)


def errors(f: Fields, ref: Fields) -> dict[str, float]:
    """Relative L2 errors of the module docstring."""
    def n(a: NDArray) -> float:
        return float(np.sqrt(np.mean(a**2)))

    p = ref.rho * ref.T
    return {
        "rho": n(f.rho - ref.rho) / n(ref.rho),
        "u": n(f.u - ref.u) / n(np.sqrt(ref.T)),
        "T": n(f.T - ref.T) / n(ref.T),
        "sigma": n(f.sigma - ref.sigma) / n(p),
        "q": n(f.q - ref.q) / n(p * np.sqrt(ref.T)),
    }


def check_models(models: dict[str, dict[str, Any]], reference: str) -> None:
    """Raise before any solve for an unknown model (``models`` entries may name theirs in ``model``) or a
    checkpoint in a model's options that cannot be loaded (:func:`kinclose.reduced.run.check_checkpoints`)."""
    from kinclose.models import get_model
    from kinclose.reduced.run import check_checkpoints

    get_model(reference)
    for name, opts in models.items():
        get_model(opts.get("model", name))
        check_checkpoints(opts)


def run_sweep(kns: list[float], models: dict[str, dict[str, Any]], n_cases: int, seed: int, nx: int,
              t_end: float, kinds: list[str], reference: str = "dvm",
              reference_options: dict[str, Any] | None = None, reference_refine: int = 4) -> dict[str, Any]:
    """Run every model on every case; returns per-ε mean errors, wall times and failures."""
    from tqdm.auto import tqdm

    if not kns:
        raise ValueError("kns is empty: give at least one Knudsen number, e.g. kns=[0.01]")
    if nx < 4 or n_cases < 1 or reference_refine < 1:
        raise ValueError(f"need nx >= 4, n_cases >= 1 and reference_refine >= 1; got nx={nx}, n_cases={n_cases}, "
                         f"reference_refine={reference_refine}")
    check_models(models, reference)

    table: dict[str, Any] = {"kns": list(kns), "models": {}, "failures": [], "cases": []}
    for name in models:
        table["models"][name] = {"errors": {f: [] for f in FIELDS}, "errors_sem": {f: [] for f in FIELDS},
                                 "wall_s": []}
    ref_wall = []
    total = len(kns) * n_cases
    with tqdm(total=total, disable=None, desc="sweep") as bar:
        for kn in kns:
            cases = make_cases(kn, n_cases, seed, nx, t_end, kinds)
            acc = {name: {f: [] for f in FIELDS} for name in models}
            diag = {name: {k: [] for k in DIAGNOSTICS} for name in models}
            wall = {name: 0.0 for name in models}
            rwall = 0.0
            for case in cases:
                prob = problem(case, nx)
                row: dict[str, Any] = {"kn": kn, "seed": case["seed"], "kind": case["spec"]["kind"], "errors": {}}
                t0 = time.perf_counter()
                ref = coarsen(run_model(reference, problem(case, nx * reference_refine),
                                        **(reference_options or {})), reference_refine)
                rwall += time.perf_counter() - t0
                for name, opts in models.items():
                    t0 = time.perf_counter()
                    try:
                        out = run_model(opts.get("model", name), prob,
                                        **{k: v for k, v in opts.items() if k != "model"})
                    except Exception as exc:  # a failed model is a result, reported in the table
                        table["failures"].append({"model": name, "kn": kn, "case": prob.meta,
                                                  "error": f"{type(exc).__name__}: {exc}"})
                        log.warning("%s failed at kn=%g: %s", name, kn, exc)
                        log.debug("%s", traceback.format_exc())
                        continue
                    wall[name] += time.perf_counter() - t0
                    row["errors"][name] = errors(out, ref)
                    for f, e in row["errors"][name].items():
                        acc[name][f].append(e)
                    for k in DIAGNOSTICS:
                        if k in out.stats:
                            diag[name][k].append(float(out.stats[k]))
                table["cases"].append(row)
                bar.update(1)
            ref_wall.append(rwall / len(cases))
            for name in models:
                m = table["models"][name]
                for f in FIELDS:
                    m["errors"][f].append(float(np.mean(acc[name][f])) if acc[name][f] else float("nan"))
                    m["errors_sem"][f].append(standard_error(acc[name][f]))
                m["wall_s"].append(wall[name] / len(cases))
                for k, reduce in DIAGNOSTICS.items():
                    v = diag[name][k]
                    m.setdefault("diagnostics", {}).setdefault(k, []).append(float(reduce(v)) if v else float("nan"))
            log.info("kn=%g done", kn)
    table["reference"] = {"model": reference, "wall_s": ref_wall}
    return table


def standard_error(values: list[float]) -> float:
    """Standard error of the mean, std(ddof=1)/√n; NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan")
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def failed_runs(table: dict[str, Any]) -> Counter:
    """(model, ε) → number of that model's failed runs at that ε (``table["failures"]``)."""
    return Counter((f["model"], float(f["kn"])) for f in table["failures"])


def error_cell(value: float, n_failed: int, n_cases: int, sem: float = math.nan) -> str:
    """A mean error, its standard error when finite (in percentage points) and the failed runs it leaves
    out: "12.34%", "12.34% ± 0.56", "12.34% (1 of 4 failed)" or "failed"."""
    if not np.isfinite(value):
        return "failed"
    return (f"{value:.2%}" + (f" ± {100 * sem:.2f}" if np.isfinite(sem) else "")
            + (f" ({n_failed} of {n_cases} failed)" if n_failed else ""))


def error_rows(table: dict[str, Any], names: list[str] | None = None) -> list[str]:
    """Markdown rows "| model | field | errors per ε |" of ``names`` (default: every model of the table),
    each mean error with its standard error (tables that have ``errors_sem``) and the runs it leaves out
    (:func:`error_cell`)."""
    kns = table["kns"]
    failed = failed_runs(table)
    n_cases = {float(k): sum(float(c["kn"]) == float(k) for c in table.get("cases", [])) for k in kns}
    rows = []
    for name in table["models"] if names is None else names:
        errs = table["models"][name]["errors"]
        sems = table["models"][name].get("errors_sem") or {f: [math.nan] * len(kns) for f in FIELDS}
        for f in FIELDS:
            vals = " | ".join(error_cell(e, failed[name, float(k)], n_cases[float(k)], se)
                              for k, e, se in zip(kns, errs[f], sems[f]))
            rows.append(f"| {name} | {f} | {vals} |")
    return rows


def markdown(table: dict[str, Any], first: str | None = None) -> str:
    """The tables of a sweep; ``first``: the model the paired differences are taken from (:func:`paired`)."""
    kns = table["kns"]
    lines = ["Relative L2 errors against the DVM (mean over cases ± standard error, in points); ρ, T relative to "
             "‖ρ‖, ‖T‖; u to ‖√T‖; σ, q to ‖p‖, ‖p√T‖. ε = λ_ref/L (VHS).", "",
             "| model | field | " + " | ".join(f"ε={k:g}" for k in kns) + " |",
             "|---|---|" + "---|" * len(kns)]
    lines += error_rows(table)
    lines += ["", "| model | " + " | ".join(f"wall ε={k:g} (s)" for k in kns) + " |", "|---|" + "---|" * len(kns)]
    lines.append(f"| {table['reference']['model']} (reference) | " +
                 " | ".join(f"{w:.2f}" for w in table["reference"]["wall_s"]) + " |")
    for name, m in table["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{w:.2f}" for w in m["wall_s"]) + " |")
    diag = {name: m["diagnostics"] for name, m in table["models"].items()
            if any(np.isfinite(v).any() for v in m.get("diagnostics", {}).values())}
    if diag:
        lines += ["", "Closure diagnostics of the final states (mean over cases; speed: max over cases): fraction "
                  "of complex eigenvalues of the closed-flux Jacobian / largest |λ − u|/√T / fraction of cells "
                  "above the Rusanov bound / fraction of cells outside the training range of W.", "",
                  "| model | " + " | ".join(f"ε={k:g}" for k in kns) + " |", "|---|" + "---|" * len(kns)]
        for name, d in diag.items():
            cells = []
            for i in range(len(kns)):
                v = [d[k][i] for k in DIAGNOSTICS]
                cells.append(f"{v[0]:.1%} / {v[1]:.2f} / {v[2]:.1%} / {v[3]:.1%}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += paired(table, first)
    lines += by_kind(table)
    if table["failures"]:
        lines += ["", f"{len(table['failures'])} failed runs (see JSON)."]
    return "\n".join(lines) + "\n"


def paired(table: dict[str, Any], first: str | None = None) -> list[str]:
    """Markdown lines: ``first`` (default: the table's first model) minus each other model, case by case
    (same initial data), as the mean of the per-case differences ± their standard error, in points;
    negative: ``first`` is better. Cases where either model failed are left out."""
    cases = table.get("cases") or []
    names = list(table["models"])
    first = names[0] if first is None else first
    if len(names) < 2 or not cases or first not in names:
        return []
    kns = table["kns"]
    lines = ["", (f"Paired differences, {first} minus each model (mean of the per-case differences ± standard error, "
                  f"points; negative: {first} better). The cases are shared, so this resolves differences that the "
                  "spread of the cases hides in the table above."), "",
             "| model | field | " + " | ".join(f"ε={k:g}" for k in kns) + " |", "|---|---|" + "---|" * len(kns)]
    for other in (n for n in names if n != first):
        for f in FIELDS:
            cells = []
            for kn in kns:
                d = [c["errors"][first][f] - c["errors"][other][f] for c in cases
                     if c["kn"] == kn and first in c["errors"] and other in c["errors"]]
                se = standard_error(d)
                mean = "–" if not d else f"{100 * np.mean(d):+.2f}"
                cells.append(mean + (f" ± {100 * se:.2f}" if np.isfinite(se) else ""))
            lines.append(f"| {first} − {other} | {f} | " + " | ".join(cells) + " |")
    return lines


def by_kind(table: dict[str, Any], fields: tuple[str, ...] = ("rho", "T", "q")) -> list[str]:
    """Markdown lines: errors split by initial-data kind (mean over that kind's cases; ``table["cases"]``)."""
    cases = table.get("cases") or []
    kinds = sorted({c["kind"] for c in cases})
    if len(kinds) < 2:
        return []
    kns = table["kns"]
    lines = ["", "By initial-data kind (mean over the cases of that kind): "
             + " / ".join(fields) + ".", "",
             "| model | kind | " + " | ".join(f"ε={k:g}" for k in kns) + " |", "|---|---|" + "---|" * len(kns)]
    for name in table["models"]:
        for kind in kinds:
            cells = []
            for kn in kns:
                sel = [c["errors"][name] for c in cases if c["kn"] == kn and c["kind"] == kind and name in c["errors"]]
                cells.append(" / ".join(f"{np.mean([e[f] for e in sel]):.1%}" for f in fields) if sel else "–")
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return lines


def plot(table: dict[str, Any], axes: Any = None) -> Any:
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    if axes is None:
        _, axes = plt.subplots(1, 5, figsize=(15, 3.2), sharex=True)
    for name, m in table["models"].items():
        for ax, f in zip(axes, FIELDS):
            e = np.maximum(m["errors"][f], 1e-8)
            se = np.nan_to_num(np.asarray(m.get("errors_sem", {}).get(f, np.zeros_like(e)), dtype=float))
            ax.errorbar(table["kns"], e, yerr=[np.minimum(se, 0.9 * e), se], marker="o", ms=3, capsize=2,
                        **method_style(name))
    for ax, f in zip(axes, FIELDS):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title({"rho": "ρ", "u": "u", "T": "T", "sigma": "σ", "q": "q"}[f] + " rel. L2 error")
        ax.set_xlabel("Knudsen number ε")
    axes[0].legend(loc="best")
    return axes
