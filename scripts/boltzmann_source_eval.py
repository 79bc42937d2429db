"""Reduced models against the Boltzmann DVM on held-out initial data (issue 9, learned collision source).

Models, all on ``nx`` cells, from Maxwellian initial data, at t_end:

* ``mlc+learned_source`` : closure (σ̂, q̂, m, k) and collision source R̂(W) both learned on Boltzmann labels
  (same moments model), implicit step linearized with the source's Jacobian (``source_scheme="linearized"``);
* ``mlc+learned_source(penalized)`` : the same with the Filbet–Jin penalisation (checkpoint's β × ``--beta-safety``),
  which relaxes the source's slow modes by 1 − λ/β per stage when Δt ≫ ε (``kinclose.reduced.solver``);
* ``mlc+bgk_source``     : the same closure with the exact BGK source ν ρ (W_eq − W);
* ``nsf``                : Navier–Stokes–Fourier with the Boltzmann transport coefficients (μ = μ_ref T^ω, Pr = 2/3);
* ``mlc_small(bgk)``     : the shipped BGK-trained closure ``pretrained:mlc_small`` with the BGK source (context).

Reference: the Boltzmann DVM (``BoltzmannDVMSolver``, hard spheres, N = 16 per direction, the box and grid
tolerances of ``conf/dataset/boltzmann_small.yaml``) on ``ref_refine`` × nx cells, averaged back onto the model
cells. Held-out initial data: ``kinclose.data.initial.sample_initial`` with the ranges of boltzmann_small.yaml and
seeds ``(seed, i)`` (the dataset uses SeedSequence(909, task id)), kinds cycling waves/jumps/mixture/shock.
Errors: the relative L2 errors of ``kinclose.bench.sweep.errors`` (ρ, T relative to ‖ρ‖, ‖T‖; u to ‖√T‖;
σ, q to ‖p‖, ‖p√T‖). Writes ``<out>.json`` and ``<out>.md``.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python scripts/boltzmann_source_eval.py \\
        --closure outputs/train/bz/closure/closure.pt --source outputs/train/bz/source/source.pt \\
        --out results/boltzmann_source
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
import time
import traceback
from importlib.resources import files
from pathlib import Path

import numpy as np
import yaml

from kinclose.bench.sweep import FIELDS, coarsen, errors
from kinclose.data.initial import ICRanges, evaluate, sample_initial
from kinclose.io import atomic_write_json, atomic_write_text
from kinclose.problem import Fields, Problem

KINDS = ["waves", "jumps", "mixture", "shock"]


def dataset_yaml() -> dict:
    return yaml.safe_load((files("kinclose.conf") / "dataset" / "boltzmann_small.yaml").read_text())


def make_problem(spec: dict, nx: int, kn: float, t_end: float, omega: float) -> Problem:
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    rho, u, T, _ = evaluate(spec, x)
    return Problem(-0.5, 0.5, rho, u, T, kn=kn, t_end=t_end, omega=omega, collision="boltzmann")


def boltzmann_reference(prob: Problem, ds: dict) -> Fields:
    from kinclose.kinetic.boltzmann_dvm import run_problem_boltzmann

    bz = ds["boltzmann"]
    return run_problem_boltzmann(prob, n=int(bz["n"]), cfl=float(ds["cfl"]), limiter=str(ds["limiter"]),
                                 v_width=float(ds["v_width"]), T_margin=float(ds["T_margin"]),
                                 n_dirs=int(bz["n_dirs"]), equilibrium_preserving=bool(bz["equilibrium_preserving"]),
                                 progress=False, grid_rtol=float(bz["grid_rtol"]), tail_tol=float(bz["tail_tol"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--closure", required=True, help="closure.pt trained on the Boltzmann data")
    ap.add_argument("--source", required=True, help="source.pt trained with the same moments model")
    ap.add_argument("--kns", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--n-cases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--nx", type=int, default=32)
    ap.add_argument("--ref-refine", type=int, default=2)
    ap.add_argument("--t-end", type=float, default=0.1)
    ap.add_argument("--xi-max", type=float, default=5.0, help="Rusanov bound of the reduced models")
    ap.add_argument("--beta-safety", type=float, default=1.0, help="factor on β of the penalized row")
    ap.add_argument("--out", default="results/boltzmann_source")
    a = ap.parse_args(argv)

    from kinclose.models import run_model
    from kinclose.reduced.run import run_problem

    ds = dataset_yaml()
    ranges = ICRanges.from_dict(dict(ds["ranges"]))
    omega = float(ds["omega"])
    models = {
        "mlc+learned_source": lambda p: run_problem(p, a.closure, xi_max=a.xi_max, source=a.source),
        "mlc+learned_source(penalized)": lambda p: run_problem(p, a.closure, xi_max=a.xi_max, source=a.source,
                                                               source_scheme="penalized",
                                                               source_beta_safety=a.beta_safety),
        "mlc+bgk_source": lambda p: run_problem(dataclasses.replace(p, collision="bgk"), a.closure, xi_max=a.xi_max),
        "nsf": lambda p: run_model("nsf", p),
        "mlc_small(bgk)": lambda p: run_problem(dataclasses.replace(p, collision="bgk"), "pretrained:mlc_small",
                                                xi_max=a.xi_max),
    }
    res: dict = {"command": " ".join(shlex.quote(x) for x in ["python", *sys.argv]), "args": vars(a),
                 "kns": a.kns, "fields": list(FIELDS), "models": {m: {f: [] for f in FIELDS} for m in models},
                 "wall_s": {m: [] for m in [*models, "boltzmann_dvm"]}, "failures": [], "cases": []}
    for kn in a.kns:
        acc = {m: {f: [] for f in FIELDS} for m in models}
        wall = {m: [] for m in [*models, "boltzmann_dvm"]}
        for i in range(a.n_cases):
            spec = sample_initial(np.random.default_rng([a.seed, i]), ranges, -0.5, 0.5, kind=KINDS[i % len(KINDS)])
            prob = make_problem(spec, a.nx, kn, a.t_end, omega)
            ref = coarsen(boltzmann_reference(make_problem(spec, a.nx * a.ref_refine, kn, a.t_end, omega), ds),
                          a.ref_refine)
            wall["boltzmann_dvm"].append(ref.stats["wall_s"])
            case = {"kn": kn, "seed": [a.seed, i], "kind": spec["kind"], "errors": {}}
            for name, fn in models.items():
                t0 = time.perf_counter()
                try:
                    out = fn(prob)
                except Exception as exc:  # a failed model is a result
                    res["failures"].append({"model": name, "kn": kn, "seed": [a.seed, i],
                                            "error": f"{type(exc).__name__}: {exc}"})
                    traceback.print_exc()
                    continue
                wall[name].append(time.perf_counter() - t0)
                e = errors(out, ref)
                case["errors"][name] = e
                for f in FIELDS:
                    acc[name][f].append(e[f])
            res["cases"].append(case)
            print(f"kn={kn:g} case {i} ({spec['kind']}): " + "; ".join(
                f"{m} " + " ".join(f"{f}={case['errors'][m][f]:.2e}" for f in FIELDS) for m in case["errors"]),
                flush=True)
        for m in models:
            for f in FIELDS:
                res["models"][m][f].append(float(np.mean(acc[m][f])) if acc[m][f] else math.nan)
        for m in wall:
            res["wall_s"][m].append(float(np.mean(wall[m])) if wall[m] else math.nan)
    out = Path(a.out)
    atomic_write_json(out.with_suffix(".json"), res)
    lines = [f"# Reduced models vs the Boltzmann DVM (held-out initial data, t = {a.t_end:g})", "",
             "Mean over the cases of the relative L2 errors at the final time (ρ, T relative to ‖ρ‖, ‖T‖; u to ‖√T‖; "
             "σ, q to ‖p‖, ‖p√T‖), ε = λ_ref/L (VHS hard spheres). Reference: Boltzmann DVM, N = 16 per velocity "
             f"direction, {a.nx * a.ref_refine} cells averaged onto {a.nx}. {a.n_cases} cases per ε "
             f"(ranges of conf/dataset/boltzmann_small.yaml, seeds ({a.seed}, i)). Learned source: implicit step "
             "linearized with its Jacobian; `(penalized)`: the Filbet–Jin penalisation with the checkpoint's β "
             f"× {a.beta_safety:g} (kinclose.reduced.solver).", "",
             "Command:", "", "```", res["command"], "```", "",
             "| model | field | " + " | ".join(f"ε={k:g}" for k in a.kns) + " |",
             "|---|---|" + "---|" * len(a.kns)]
    for m in models:
        for f in FIELDS:
            lines.append(f"| {m} | {f} | " + " | ".join("failed" if not np.isfinite(v) else f"{v:.2%}"
                                                      for v in res["models"][m][f]) + " |")
    lines += ["", "| wall (s, mean per case) | " + " | ".join(f"ε={k:g}" for k in a.kns) + " |",
              "|---|" + "---|" * len(a.kns)]
    for m, w in res["wall_s"].items():
        lines.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in w) + " |")
    if res["failures"]:
        lines += ["", f"{len(res['failures'])} failed runs:", ""] + [
            f"- {f['model']} ε={f['kn']:g} seed {f['seed']}: {f['error'][:200]}" for f in res["failures"]]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
