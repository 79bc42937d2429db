"""Speed of the BGK DVM kernels, measured against a STREAM triad in the same run.

Prints and writes ``results/bench_kinetic.json``:

* STREAM triad bandwidth a = b + s c (24 bytes per element) at 1 and 2 threads;
* DVM step throughput (cell·velocity updates per second, one update = one (cell, velocity) pair
  advanced by one full ARS(2,2,2) step of both g and h) at 1 and 2 threads, and the effective
  memory bandwidth of the step under a minimal-traffic model: stage 2 reads g, h and writes g2, h2;
  stage 3 reads g, h, g2, h2 and writes g', h' → 10 arrays × 8 bytes per update;
* wall time of the steady Mach 5.5 BGK shock at the default grid of ``conf/model/dvm.yaml``.

Usage: python scripts/bench_kinetic.py [--nx 2000 --nv 128 --steps 40] [--no-shock]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

from kinclose.io import atomic_write_json
from kinclose.kinetic import _kernels as K
from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.solver import DVMSolver
from kinclose.physics import mu_ref_for_knudsen

BYTES_PER_UPDATE = 10 * 8


def triad_bandwidth(n: int, repeats: int) -> float:
    a = np.zeros(n)
    b = np.random.default_rng(0).random(n)
    c = np.random.default_rng(1).random(n)
    K.stream_triad(a, b, c, 3.0)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        K.stream_triad(a, b, c, 3.0)
        best = min(best, time.perf_counter() - t0)
    return 24.0 * n / best


def step_throughput(nx: int, nv: int, steps: int, kn: float) -> float:
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.3 * np.sin(2 * np.pi * x)
    u = 0.5 * np.cos(2 * np.pi * x)
    T = 1 + 0.3 * np.sin(4 * np.pi * x)
    grid = VelocityGrid.for_states(u, 2 * T, nv)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(kn, 0.5), 0.5, "bgk", "periodic", 0.9, "mc")
    s.set_maxwellian(rho, u, T)
    s.step()
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            s.step()
        best = min(best, time.perf_counter() - t0)
    return steps * nx * nv / best


def shock_wall_time() -> dict:
    from hydra import compose, initialize_config_module

    from kinclose.kinetic.shock import steady_shock
    from kinclose.physics import rankine_hugoniot

    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="shock")
    opts = dict(cfg.model)
    opts.pop("name")
    opts["progress"] = False
    t0 = time.perf_counter()
    prof = steady_shock(rankine_hugoniot(5.5), collision="bgk", omega=0.5, **opts)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, **{k: prof.metrics[k] for k in ("nx", "nv", "steps", "residual", "updates_per_s")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nx", type=int, default=2000)
    ap.add_argument("--nv", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--triad-n", type=int, default=20_000_000)
    ap.add_argument("--no-shock", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bench_kinetic.json"))
    args = ap.parse_args()

    ncores = os.cpu_count() or 1
    rows = []
    for threads in sorted({1, min(2, ncores)}):
        numba.set_num_threads(threads)
        bw = triad_bandwidth(args.triad_n, 10)
        ups = step_throughput(args.nx, args.nv, args.steps, 1e-2)
        ebw = ups * BYTES_PER_UPDATE
        rows.append({"threads": threads, "triad_GBps": bw / 1e9, "updates_per_s": ups,
                     "step_effective_GBps": ebw / 1e9, "fraction_of_triad": ebw / bw})
    numba.set_num_threads(min(2, ncores))
    print(f"DVM step, nx={args.nx}, nv={args.nv} (BGK, MUSCL-mc, ARS(2,2,2)); {platform.processor() or platform.machine()}")
    print(f"{'threads':>7} {'triad GB/s':>11} {'updates/s':>11} {'step GB/s':>10} {'of triad':>9}")
    for r in rows:
        print(f"{r['threads']:>7} {r['triad_GBps']:>11.2f} {r['updates_per_s']:>11.3e} "
              f"{r['step_effective_GBps']:>10.2f} {r['fraction_of_triad']:>9.1%}")
    if len(rows) == 2:
        print(f"thread scaling 2/1: {rows[1]['updates_per_s'] / rows[0]['updates_per_s']:.2f}x")
    result = {"nx": args.nx, "nv": args.nv, "bytes_per_update_model": BYTES_PER_UPDATE, "rows": rows,
              "cpu_count": ncores, "machine": platform.machine()}
    if not args.no_shock:
        shock = shock_wall_time()
        result["mach5.5_shock"] = shock
        print(f"steady Mach 5.5 BGK shock (default grid nx={shock['nx']}, nv={shock['nv']}): "
              f"{shock['wall_s']:.2f} s wall, {shock['steps']} steps, residual {shock['residual']:.2e}")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
