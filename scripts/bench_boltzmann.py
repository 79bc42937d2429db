"""Benchmark the fast spectral Boltzmann operator: collision evaluations per second vs N.

Prints a table and writes results/bench_boltzmann.json (atomically: temp file + os.replace).
The cost model is N³ log2 N × (M directions × kernel rank); the column ``ns/unit`` is the
measured time per evaluation divided by that, which should stay roughly constant if the
implementation scales as claimed.

With ``--device cuda`` (or ``cpu``) each size is also timed through the batched torch operator
(:class:`kinclose.kinetic.boltzmann_torch.TorchSpectralOperator`, the GPU solver's code path) on
``--cells`` distributions at once; ``speedup`` is the per-cell time of the SciPy operator measured in
the same run divided by the torch one.

Usage::

    python scripts/bench_boltzmann.py --sizes 8 16 24 32 --omega 0.5 --n-dirs 55
    python scripts/bench_boltzmann.py --sizes 16 32 48 64 --n-dirs 25 --device cuda --cells 64 \
        --out results/bench_boltzmann_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import kinclose
from kinclose.kinetic.boltzmann import FastSpectralBoltzmann


def bench_one(n: int, omega: float, n_dirs: int, L: float, min_time: float) -> dict:
    """Time one operator size; returns a row of the table."""
    t0 = time.perf_counter()
    op = FastSpectralBoltzmann(n, L, omega, mu_ref=1.0, n_dirs=n_dirs)
    t_build = time.perf_counter() - t0
    f = op.maxwellian(0.5, [0.8, 0.0, 0.0], 0.9) + op.maxwellian(0.5, [-0.8, 0.3, 0.0], 0.9)
    op(f)  # warm up (FFT plans, caches)
    reps, t_total = 0, 0.0
    while t_total < min_time or reps < 3:
        t1 = time.perf_counter()
        op(f)
        t_total += time.perf_counter() - t1
        reps += 1
    t_eval = t_total / reps
    units = op.cost_units
    return {
        "N": n,
        "M": int(op.dirs.shape[0]),
        "rank": op.rank,
        "terms": op.n_terms,
        "build_s": t_build,
        "eval_s": t_eval,
        "evals_per_s": 1.0 / t_eval,
        "cost_units": units,
        "ns_per_unit": 1e9 * t_eval / units,
        "cached_multipliers": op._cache is not None,
    }


def bench_torch(n: int, omega: float, n_dirs: int, L: float, min_time: float, device: str, cells: int,
                dtype: str) -> dict:
    """Per-cell time of Q⁺, ν and the conservative projection for ``cells`` distributions in one batch."""
    import torch

    from kinclose.kinetic.boltzmann_torch import TorchSpectralOperator

    op = FastSpectralBoltzmann(n, L, omega, mu_ref=1.0, n_dirs=n_dirs)
    top = TorchSpectralOperator(op, torch.device(device), getattr(torch, dtype))
    f = op.maxwellian(0.5, [0.8, 0.0, 0.0], 0.9) + op.maxwellian(0.5, [-0.8, 0.3, 0.0], 0.9)
    fb = torch.as_tensor(np.tile(f.reshape(1, -1), (cells, 1)), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def q() -> None:
        gain, nu = top.gain_loss(fb)
        top.project(gain - nu * fb)

    q()
    sync()
    reps, t_total = 0, 0.0
    while t_total < min_time or reps < 3:
        t1 = time.perf_counter()
        q()
        sync()
        t_total += time.perf_counter() - t1
        reps += 1
    return {"device": device, "cells": cells, "dtype": dtype, "batch_s": t_total / reps,
            "eval_s_per_cell": t_total / reps / cells, "evals_per_s": cells * reps / t_total}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 24, 32])
    p.add_argument("--omega", type=float, default=0.5, help="0.5 hard spheres, 1 Maxwell molecules")
    p.add_argument("--n-dirs", type=int, default=55)
    p.add_argument("--L", type=float, default=8.0)
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per size")
    p.add_argument("--out", type=Path, default=Path("results/bench_boltzmann.json"))
    p.add_argument("--device", default=None, help="also time the batched torch operator on this device")
    p.add_argument("--cells", type=int, default=64, help="batch of distributions for --device")
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"], help="torch FFT precision")
    args = p.parse_args(argv)

    rows = []
    print(f"fast spectral Boltzmann, omega={args.omega}, L={args.L}, n_dirs>={args.n_dirs}")
    print(f"{'N':>4} {'M':>4} {'rank':>4} {'build[s]':>9} {'eval[ms]':>9} {'evals/s':>9} "
          f"{'N3logN*M*r':>11} {'ns/unit':>8}")
    for n in args.sizes:
        r = bench_one(n, args.omega, args.n_dirs, args.L, args.min_time)
        rows.append(r)
        print(f"{r['N']:>4} {r['M']:>4} {r['rank']:>4} {r['build_s']:>9.2f} {1e3 * r['eval_s']:>9.2f} "
              f"{r['evals_per_s']:>9.1f} {r['cost_units']:>11.3g} {r['ns_per_unit']:>8.2f}", flush=True)
        if args.device:
            t = bench_torch(n, args.omega, args.n_dirs, args.L, args.min_time, args.device, args.cells, args.dtype)
            t["speedup"] = r["eval_s"] / t["eval_s_per_cell"]
            r["torch"] = t
            print(f"     torch {args.device} {args.dtype}, {args.cells} cells per batch: "
                  f"{1e3 * t['eval_s_per_cell']:.3f} ms per cell, {t['evals_per_s']:.1f} evals/s, "
                  f"{t['speedup']:.1f}x the SciPy operator", flush=True)

    record = {
        "benchmark": "fast_spectral_boltzmann",
        "omega": args.omega,
        "L": args.L,
        "n_dirs_requested": args.n_dirs,
        "package_version": kinclose.__version__,
        "numpy": np.__version__,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cost_model": "eval_s = ns_per_unit * N^3 log2(N) * M * rank",
        "torch_device": args.device,
        "gpu": _gpu_name(args.device),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=args.out.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2)
        os.replace(tmp, args.out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"wrote {args.out}")


def _gpu_name(device: str | None) -> str | None:
    if not device or not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(0)


if __name__ == "__main__":
    main()
