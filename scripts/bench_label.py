"""Labeling throughput: serial in-process vs a dask LocalCluster, measured in one run.

Labels the same dataset (``--tasks`` tasks of ``--nx`` cells × ``--nv`` velocities to ``--t-end``)
three times into temporary directories:

* ``serial_1t``: in-process, numba 1 thread (the per-core baseline);
* ``serial_all``: in-process, numba threads = all cores (parallel kernels over cells);
* ``local``: ``LocalCluster`` with ``--workers`` spawned processes, cores // workers threads each.

Reports samples/s (one sample = one cell of one snapshot) and cell·velocity updates/s (one
update = one (cell, velocity) pair advanced by one ARS(2,2,2) step), wall time with and without
the cluster start-up, and the speed-up of ``local`` over ``serial_1t``. Writes
``results/bench_label.json`` atomically. The machine may be shared: numbers are what this run saw.

Usage: python scripts/bench_label.py [--tasks 16 --nx 128 --nv 128 --t-end 0.2 --workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from kinclose.data.label import DatasetSpec, make_tasks, run_task
from kinclose.data.runner import ClusterSpec, cpu_count, label_dataset
from kinclose.io import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=16)
    ap.add_argument("--nx", type=int, default=128)
    ap.add_argument("--nv", type=int, default=128)
    ap.add_argument("--t-end", type=float, default=1.0)
    ap.add_argument("--snapshots", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="results/bench_label.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    spec = DatasetSpec(name="bench", n_tasks=args.tasks, seed=99, nx=args.nx, nv=args.nv, t_end=args.t_end,
                       n_snapshots=args.snapshots)
    cores = cpu_count()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench_label_"))
    try:
        # load/compile the kernels in this process first (workers load them from the numba cache)
        warm = dataclasses.replace(spec, n_tasks=1, nx=8, nv=64, t_end=0.001)
        run_task(make_tasks(warm)[0], tmp / "warm", threads=1)
        runs = {}
        for name, cluster in (
            ("serial_1t", ClusterSpec(kind="serial", threads=1)),
            ("serial_all", ClusterSpec(kind="serial", threads=cores)),
            ("local", ClusterSpec(kind="local", n_workers=args.workers, threads=max(1, cores // args.workers))),
        ):
            t0 = time.perf_counter()
            s = label_dataset(spec, tmp / name, cluster, progress=False)
            wall = time.perf_counter() - t0
            if s["failed"]:
                raise RuntimeError(f"{name}: {s['failed']} tasks failed: {s['failures']}")
            startup = float(s["cluster"].get("startup_s", 0.0))
            r = {
                "cluster": s["cluster"], "wall_s": wall, "run_wall_s": s["run_wall_s"], "startup_s": startup,
                "samples": s["samples_labeled"], "updates": s["updates_labeled"],
                "samples_per_s": s["samples_labeled"] / s["run_wall_s"],
                "updates_per_s": s["updates_labeled"] / s["run_wall_s"],
                "updates_per_s_excl_startup": s["updates_labeled"] / (s["run_wall_s"] - startup),
            }
            runs[name] = r
            print(f"{name:11s} {r['run_wall_s']:7.2f} s  {r['samples_per_s']:9.0f} samples/s  "
                  f"{r['updates_per_s']:.3e} updates/s  (start-up {startup:.2f} s)")
        base = runs["serial_1t"]
        result = {
            "spec": dataclasses.asdict(spec), "cores": cores, "workers": args.workers,
            "machine": platform.platform(), "python": platform.python_version(),
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"), "runs": runs,
            "speedup_local_vs_serial_1t": runs["local"]["updates_per_s"] / base["updates_per_s"],
            "speedup_local_vs_serial_1t_excl_startup": runs["local"]["updates_per_s_excl_startup"]
            / base["updates_per_s"],
            "speedup_serial_all_vs_serial_1t": runs["serial_all"]["updates_per_s"] / base["updates_per_s"],
            "target_speedup": 1.7,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "note": "load averages above 0 mean other processes shared the cores during the run",
        }
        print(f"speed-up LocalCluster({args.workers}) / serial(1 thread): {result['speedup_local_vs_serial_1t']:.2f} "
              f"(excluding cluster start-up {result['speedup_local_vs_serial_1t_excl_startup']:.2f}); "
              f"serial({cores} threads) / serial(1 thread): {result['speedup_serial_all_vs_serial_1t']:.2f}")
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
