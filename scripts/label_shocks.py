"""Steady BGK shock profiles as training shards, merged with an existing dataset into one manifest.

    python scripts/label_shocks.py --base outputs/label/small-seed2024/dataset \
        --out outputs/label/small+shocks/dataset [--machs 2.5 3.5 4.5 6.5] [--stride 2]

For every Mach number the DVM marches the BGK normal shock to its steady state
(:func:`kinclose.kinetic.shock.steady_shock`, ω = 0.5, the benchmark's grid and settings; x in
upstream mean free paths λ1, ρ1 = T1 = 1) and its cells are dealt into ``stride`` interleaved shards
(cells i, i + stride, …: neighbouring shards of one profile, so that a validation split that takes
one of them leaves the others for training); each shard holds one snapshot at t = 0 (the marching
time in ``t_end``, ``ic_kind = "shock"``, attribute ``mach``). Its ``kn`` is the shock's own
Knudsen number λ1/δ_ρ (δ_ρ the density thickness), since the domain length means nothing for a
steady shock. The base dataset's shards are linked into ``--out`` (``b_`` prefix, same bytes and
checksums) and one manifest lists both. Keep the benchmark's Mach numbers (1.5, 2, 3, 4, 5.5, 7,
8; issue 8) out of ``--machs``: the Mach sweep promises closures that never saw those shocks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from kinclose.data.schema import manifest_entry, write_manifest, write_shard
from kinclose.kinetic.moments import conserved
from kinclose.kinetic.shock import steady_shock
from kinclose.physics import (
    BENCHMARK_MACHS,
    benchmark_machs_in,
    mfp_coefficient,
    rankine_hugoniot,
)
from kinclose.shockprofile import center, inverse_density_thickness

log = logging.getLogger("label_shocks")

SHOCK_TASK_ID0 = 500000  # task ids of the shock shards, above any labeling run's


def shock_shards(mach: float, out: Path, stride: int, omega: float, task_id: int) -> list[dict]:
    """Solve the steady shock at ``mach`` and write its cells as ``stride`` interleaved shards (task ids
    ``task_id`` …); returns their manifest entries."""
    prof = center(steady_shock(rankine_hugoniot(mach), collision="bgk", omega=omega))
    v, dv, g_all, h_all = prof.distribution
    kn = inverse_density_thickness(prof)
    entries = []
    for k in range(int(stride)):
        keep = slice(k, g_all.shape[0], int(stride))
        g, h, x = g_all[keep], h_all[keep], prof.x[keep]
        fields = np.stack([getattr(prof, f)[keep] for f in ("rho", "u", "T", "sigma", "q")], axis=1)
        arrays = {"x": x, "v": v, "t": np.zeros(1), "g": g[None], "h": h[None], "U": conserved(g, h, v, dv)[None],
                  "fields": fields[None]}
        config = {"mach": mach, "omega": omega, "stride": stride, "offset": k, "collision": "bgk"}
        attrs = {"seed": 0, "config": json.dumps(config), "kn": float(kn), "omega": float(omega), "collision": "bgk",
                 "mu_ref": 1.0 / mfp_coefficient(omega), "bc": "reservoir", "x_left": float(x[0]),
                 "x_right": float(x[-1]), "t_end": float(prof.metrics["t_final"]), "ic_kind": "shock",
                 "mach": float(mach), "task_id": int(task_id + k)}
        path = out / f"shock_M{mach:g}_{k}.h5"
        info = write_shard(path, arrays, dv, attrs)
        entries.append(manifest_entry(path.name, task_id + k, info["samples"], info["sha256"], float(kn), "shock",
                                      info["data_sha256"]))
    log.info("Mach %g: %d cells in %d shards, kn = λ1/δ_ρ = %.3f", mach, g_all.shape[0], stride, kn)
    return entries


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="labeled dataset (manifest.json) whose shards are kept")
    ap.add_argument("--out", required=True, help="new dataset folder (shock shards, links, manifest)")
    ap.add_argument("--machs", type=float, nargs="+", default=[2.5, 3.5, 4.5, 6.5])
    ap.add_argument("--stride", type=int, default=2, help="interleaved shards per profile (1 to 100)")
    ap.add_argument("--omega", type=float, default=0.5, help="VHS viscosity exponent")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    clash = benchmark_machs_in(args.machs)
    if clash:
        raise SystemExit(f"--machs {clash} are benchmark Mach numbers {BENCHMARK_MACHS}; the Mach sweep promises "
                         "closures that never saw those shocks")
    if not 1 <= args.stride <= 100:
        raise SystemExit(f"--stride must be in 1 … 100, got {args.stride}")
    base, out = Path(args.base), Path(args.out)
    man = json.loads((base / "manifest.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for e in man["shards"]:
        link = out / f"b_{e['file']}"
        if not link.exists():
            os.symlink(os.path.relpath(base / e["file"], out), link)
        entries.append({**e, "file": link.name})
    for i, mach in enumerate(args.machs):
        entries += shock_shards(mach, out, args.stride, args.omega, SHOCK_TASK_ID0 + 100 * i)
    write_manifest(out, entries, {"dataset": f"{man.get('dataset', base.name)}+shocks", "base": str(base),
                                  "shock_machs": list(args.machs), "shock_stride": args.stride})
    log.info("wrote %s: %d shards (%d shocks)", out / "manifest.json", len(entries), len(args.machs))


if __name__ == "__main__":
    main()
