"""Grid convergence of the default kinetic Mach 5.5 shock: default grid vs Δx/2 and Δv/2.

    python scripts/bench_shock_convergence.py [--mach 5.5] [--collision bgk]

Prints and writes ``results/shock_convergence_M<mach>.json``: inverse density thickness on both
grids and its relative change (goal < 0.5 %), the largest profile change of ρ, u, T (relative to
the jump) and σ, q (relative to their maximum) (goal < 1 %), and the wall times.
"""

from __future__ import annotations

import argparse
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from kinclose.io import atomic_write_json
from kinclose.kinetic.shock import steady_shock
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import FIELDS, center, profile_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mach", type=float, default=5.5)
    ap.add_argument("--collision", default="bgk")
    ap.add_argument("--omega", type=float, default=0.5)
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[1] / "results"))
    args = ap.parse_args()
    opts = OmegaConf.to_container(OmegaConf.load(str(files("kinclose.conf") / "model" / "dvm.yaml")))
    opts.pop("name")
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
