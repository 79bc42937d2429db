"""Grid convergence of the default Mach 5.5 shock.

    python scripts/bench_shock_convergence.py [--mach 5.5] [--collision bgk]
    python scripts/bench_shock_convergence.py --model mlc      # also hermmlc

Kinetic model (default ``--model dvm``): default grid vs Δx/2 and Δv/2; writes
``results/shock_convergence_M<mach>.json``: inverse density thickness on both grids and its relative
change (goal < 0.5 %), the largest profile change of ρ, u, T (relative to the jump) and σ, q (relative
to their maximum) (goal < 1 %), and the wall times.

Reduced model (``--model mlc|hermmlc``, its ``conf/model`` options, time-marched with MC unless
``--steady newton``): Δx = 2Δx0, Δx0, Δx0/2 (Δx0 the default); writes
``results/shock_convergence_M<mach>_<model>.json``: per grid 1/δ_ρ, steps, wall and the relative L2 errors
against the default DVM profile (``kinclose.bench.shock.field_errors``), and the change between successive grids:
the part of the model's error that is discretization.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from kinclose.bench.shock import model_options
from kinclose.io import atomic_write_json, writable_dir
from kinclose.kinetic.shock import steady_shock
from kinclose.physics import rankine_hugoniot
from kinclose.reduced.shock import TIME_MARCHED
from kinclose.shockprofile import FIELDS, center, profile_metrics


def _options(model: str) -> dict:
    """Defaults of ``conf/model/<model>.yaml``."""
    return model_options(OmegaConf.create({}), model)


def reduced_convergence(args: argparse.Namespace) -> None:
    from kinclose.apps.shock import get_shock_solver
    from kinclose.bench.shock import field_errors

    states = rankine_hugoniot(args.mach)
    dvm = _options("dvm")
    dvm["progress"] = False
    ref = center(steady_shock(states, collision=args.collision, omega=args.omega, **dvm))
    opts = _options(args.model)
    if args.steady == "march":  # the committed grid study was time-marched with MC (conf default until session 21)
        opts.update(TIME_MARCHED)
    if args.closure:
        opts["closure"] = args.closure
    grids = []
    for factor in (2.0, 1.0, 0.5):
        o = dict(opts, dx=opts["dx"] * factor, max_steps=int(opts["max_steps"] / min(factor, 1.0)))
        t0 = time.perf_counter()
        p = center(get_shock_solver(args.model)(states, collision=args.collision, omega=args.omega, **o))
        m = profile_metrics(p)
        row = {"dx": o["dx"], "inv_density_thickness": m["inv_density_thickness"], "steps": m["steps"],
               "converged": m["converged"], "wall_s": time.perf_counter() - t0,
               "errors_vs_dvm": field_errors(p, ref)}
        grids.append((p, row))
        print(f"dx={o['dx']:.4g}: 1/delta = {row['inv_density_thickness']:.4f}, steady {row['converged']}, "
              + ", ".join(f"{k} {v:.2%}" for k, v in row["errors_vs_dvm"].items() if k.endswith("L2"))
              + f" ({row['wall_s']:.0f} s)")
    changes = []
    for (a, _), (b, _) in zip(grids[:-1], grids[1:]):
        changes.append({name: float(np.sqrt(np.mean((np.interp(ref.x, a.x, getattr(a, name))
                                                      - np.interp(ref.x, b.x, getattr(b, name))) ** 2))
                                     / np.sqrt(np.mean((getattr(ref, name) - (getattr(ref, name)[0] if name in
                                                        ("rho", "u", "T") else 0.0)) ** 2)))
                        for name in FIELDS})
    result = {"mach": args.mach, "collision": args.collision, "omega": args.omega, "model": args.model,
              "closure": opts.get("closure"),
              "reference": {"model": "dvm", "dx": dvm["dx"], "nv": dvm["nv"]}, "grids": [r for _, r in grids],
              "rel_L2_change_between_grids": changes,
              "note": "errors and changes are relative L2 norms as in kinclose.bench.shock.field_errors "
                      "(rho, u, T relative to the jump; sigma, q to their own size), on the DVM cells"}
    out = Path(args.out_dir) / f"shock_convergence_M{args.mach:g}_{args.model}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mach", type=float, default=5.5)
    ap.add_argument("--collision", default="bgk")
    ap.add_argument("--omega", type=float, default=0.5)
    ap.add_argument("--model", default="dvm", choices=["dvm", "mlc", "hermmlc"])
    ap.add_argument("--closure", default=None, help="closure.pt of the reduced model (default: its config's)")
    ap.add_argument("--steady", default="march", choices=["march", "newton"],
                    help="reduced model's steady solver: march (with MC, as the committed grid study) or newton "
                         "(with the smooth van Leer limiter, the conf/model default)")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = ap.parse_args()
    writable_dir(args.out_dir)
    if args.model != "dvm":
        return reduced_convergence(args)
    opts = _options("dvm")
    opts["progress"] = False
    fine = dict(opts, dx=opts["dx"] / 2, nv=opts["nv"] * 2)
    states = rankine_hugoniot(args.mach)
    runs = {}
    for label, o in (("default", opts), ("halved", fine)):
        t0 = time.perf_counter()
        p = center(steady_shock(states, collision=args.collision, omega=args.omega, **o))
        runs[label] = (p, profile_metrics(p), time.perf_counter() - t0)
        print(f"{label:8s} dx={o['dx']:.4g} nv={o['nv']}: 1/delta = {runs[label][1]['inv_density_thickness']:.5f} "
              f"({runs[label][2]:.1f} s)")
    a, ma, _ = runs["default"]
    b, mb, _ = runs["halved"]
    change = {}
    for name in FIELDS:
        fb = np.interp(a.x, b.x, getattr(b, name))
        scale = np.ptp(getattr(b, name)) if name in ("rho", "u", "T") else np.abs(getattr(b, name)).max()
        change[name] = float(np.abs(getattr(a, name) - fb).max() / scale)
    rel = ma["inv_density_thickness"] / mb["inv_density_thickness"] - 1
    result = {"mach": args.mach, "collision": args.collision, "omega": args.omega,
              "default": {"dx": opts["dx"], "nv": opts["nv"], "inv_density_thickness": ma["inv_density_thickness"],
                          "wall_s": runs["default"][2]},
              "halved": {"dx": fine["dx"], "nv": fine["nv"], "inv_density_thickness": mb["inv_density_thickness"],
                         "wall_s": runs["halved"][2]},
              "inv_density_thickness_rel_change": rel, "profile_max_rel_change": change,
              "goals": {"inv_density_thickness": 0.005, "profiles": 0.01}}
    print(f"relative change of 1/delta: {rel:+.3%} (goal < 0.5 %)")
    print("largest profile change: " + ", ".join(f"{k} {v:.3%}" for k, v in change.items()) + " (goal < 1 %)")
    out = Path(args.out_dir) / f"shock_convergence_M{args.mach:g}.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
