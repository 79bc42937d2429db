"""Pool the members of several closure checkpoints into one larger ensemble.

    python scripts/merge_closures.py --out OUT/closure.pt A/closure.pt B/closure.pt [C/closure.pt …]

The checkpoints must be trainings of the same recipe on the same moments model (same M, widths,
activation, anchoring, structure, W_eq and moments checkpoint hash), typically with different seeds;
the result is one ensemble of K_A + K_B + … members whose mean and variance are taken over all of
them. Its metadata is the first checkpoint's (ranges, Rusanov bound), plus ``merged_from`` (paths
and SHA-256 of the inputs). Checkpoints are read with ``weights_only=True``; the output is written
atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kinclose.closure.networks import Ensemble
from kinclose.closure.train import (
    file_sha256,
    load_closure_checkpoint,
    save_closure_checkpoint,
)

MUST_MATCH = ("M", "hidden", "activation", "anchor", "exact_stress_heat", "skip", "structure", "terms")


def merge(paths: list[str | Path]) -> tuple[Ensemble, dict]:
    """(ensemble of all members, metadata) of the closure checkpoints ``paths`` (≥ 2)."""
    if len(paths) < 2:
        raise ValueError(f"merging needs at least two closure checkpoints, got {len(paths)}")
    loaded = [load_closure_checkpoint(p) for p in paths]
    ens0, meta0 = loaded[0]
    for p, (ens, meta) in zip(paths[1:], loaded[1:]):
        diff = [k for k in MUST_MATCH if ens.kwargs.get(k) != ens0.kwargs.get(k)]
        if diff:
            raise ValueError(f"{p} is not the same closure recipe as {paths[0]}: "
                             + ", ".join(f"{k} {ens.kwargs.get(k)!r} vs {ens0.kwargs.get(k)!r}" for k in diff))
        if meta.get("moments_checkpoint_sha256") != meta0.get("moments_checkpoint_sha256"):
            raise ValueError(f"{p} was trained on another moments checkpoint than {paths[0]} "
                             f"({meta.get('moments_checkpoint_sha256')} vs {meta0.get('moments_checkpoint_sha256')})")
        if not torch.equal(ens.w_eq, ens0.w_eq):
            raise ValueError(f"{p} has another W_eq than {paths[0]}")
    K = sum(ens.K for ens, _ in loaded)
    extra = {k: v for k, v in ens0.kwargs.items() if k not in ("M", "K", "hidden", "activation", "anchor", "seed")}
    out = Ensemble(M=ens0.M, K=K, hidden=ens0.kwargs["hidden"], activation=ens0.kwargs["activation"],
                   anchor=ens0.kwargs["anchor"], seed=ens0.kwargs["seed"], **extra)
    with torch.no_grad():
        out.w_eq.copy_(ens0.w_eq)
        members = [m for ens, _ in loaded for m in ens.members]
        for dst, src in zip(out.members, members):
            dst.load_state_dict(src.state_dict())
    # the checkpoint envelope (format, class, version, kwargs) is written anew for the merged ensemble
    meta = {k: v for k, v in meta0.items() if k not in ("format", "class", "closure_version", "kwargs", "package_version")}
    meta["merged_from"] = [{"path": str(p), "sha256": file_sha256(p), "K": ens.K} for p, (ens, _) in zip(paths, loaded)]
    return out.eval(), meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="path of the merged closure.pt")
    ap.add_argument("checkpoints", nargs="+", help="closure.pt files of the same recipe (≥ 2)")
    args = ap.parse_args(argv)
    ens, meta = merge(args.checkpoints)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_closure_checkpoint(args.out, ens, meta)
    print(f"wrote {args.out}: K = {ens.K} members from {len(args.checkpoints)} checkpoints")


if __name__ == "__main__":
    main()
