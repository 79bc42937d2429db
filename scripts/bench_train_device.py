"""Training speed, CPU vs GPU: the moments and closure stages on the same data, config and seed, in one run.

Runs ``kinclose-train stage=moments`` (the stage defaults: learned encoder, M = 3) and then
``stage=closure`` (``--closure-k`` ensemble members) with and without its hyperbolicity penalty
(``stage.hyperbolicity.weight`` = the default, 0) for ``--epochs`` epochs, once with
``device=cpu`` (torch's default threads: all cores) and once with ``device=cuda`` when torch sees
a GPU, on the dataset ``--root`` (labeled there first, serially, with the small dataset settings and
``--tasks`` tasks when it has no manifest). Reports seconds per epoch of each stage (optimizer epochs
only: data loading, targets and evaluation excluded), the CPU/GPU ratio and the final validation
numbers of both runs (they must agree: float64 on both devices). Writes ``--out`` atomically.

Usage: python scripts/bench_train_device.py [--root outputs/label/small-seed2024/dataset] [--epochs 3]
       [--out results/bench_train_device.json]
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

from kinclose.io import atomic_write_json


def run_device(root: Path, device: str, epochs: int, closure_k: int, work: Path) -> dict:
    from kinclose.closure.train import train_closure
    from kinclose.conf import compose
    from kinclose.moments.train import train_moments

    run = work / device
    t0 = time.perf_counter()
    mm = train_moments(compose("train", ["stage=moments", f"data.root={root}", f"device={device}",
                                         f"stage.epochs={epochs}"]), run / "moments")
    t1 = time.perf_counter()
    row = {"device": mm["device"], "moments_s_per_epoch": mm["history"]["wall_s"][-1] / epochs,
           "moments_stage_wall_s": t1 - t0, "moments_val_rel_l2_mean": mm["val"]["all"]["rel_l2_mean"],
           "n_train": mm["n_train"]}
    for tag, extra in (("", []), ("_no_penalty", ["stage.hyperbolicity.weight=0.0"])):
        t1 = time.perf_counter()
        mc = train_closure(compose("train", ["stage=closure", f"data.root={root}", f"device={device}",
                                             f"moments_ckpt={run / 'moments' / 'moments.pt'}", f"stage.epochs={epochs}",
                                             f"stage.patience={epochs + 1}", f"stage.K={closure_k}", *extra]),
                           run / f"closure{tag}")
        closure_epochs = sum(len(h["epoch"]) - 1 for h in mc["history"])
        row[f"closure{tag}_s_per_member_epoch"] = sum(h["wall_s"] for h in mc["history"]) / closure_epochs
        row[f"closure{tag}_stage_wall_s"] = time.perf_counter() - t1
        row[f"closure{tag}_best_val_loss"] = mc["best_val_loss"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="outputs/label/small-seed2024/dataset")
    ap.add_argument("--tasks", type=int, default=48, help="tasks to label when --root has no manifest")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--closure-k", type=int, default=1)
    ap.add_argument("--out", default="results/bench_train_device.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from omegaconf import OmegaConf

    from kinclose.conf import compose
    from kinclose.data.runner import label_if_missing

    root = Path(args.root)
    t0 = time.perf_counter()
    if label_if_missing(root, OmegaConf.to_container(compose("label", [f"dataset.n_tasks={args.tasks}"]).dataset),
                        progress=False):
        print(f"labeled {args.tasks} tasks into {root} in {time.perf_counter() - t0:.1f} s")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        rows = {d: run_device(root, d, args.epochs, args.closure_k, Path(tmp)) for d in devices}
    res = {
        "benchmark": "train_device", "epochs": args.epochs, "closure_K": args.closure_k, "root": str(root),
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "machine": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in rows else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows,
    }
    print(f"{'device':8s} {'moments s/epoch':>16s} {'closure s/member-epoch':>23s} {'(no penalty)':>13s} "
          f"{'val rel L2':>11s} {'closure val loss':>17s}")
    for d, r in rows.items():
        print(f"{d:8s} {r['moments_s_per_epoch']:16.3f} {r['closure_s_per_member_epoch']:23.3f} "
              f"{r['closure_no_penalty_s_per_member_epoch']:13.3f} {r['moments_val_rel_l2_mean']:11.5e} "
              f"{r['closure_best_val_loss'][0]:17.6e}")
    if "cuda" in rows:
        c, g = rows["cpu"], rows["cuda"]
        for key in ("moments", "closure", "closure_no_penalty"):
            unit = "s_per_epoch" if key == "moments" else "s_per_member_epoch"
            res[f"speedup_{key}"] = c[f"{key}_{unit}"] / g[f"{key}_{unit}"]
        res["rel_diff_val_rel_l2"] = abs(g["moments_val_rel_l2_mean"] / c["moments_val_rel_l2_mean"] - 1.0)
        res["rel_diff_closure_val_loss"] = abs(g["closure_best_val_loss"][0] / c["closure_best_val_loss"][0] - 1.0)
        print(f"GPU speed-up (CPU {res['cpu_threads']} threads / {res['gpu']}): moments x{res['speedup_moments']:.2f}, "
              f"closure x{res['speedup_closure']:.2f} (without the hyperbolicity penalty "
              f"x{res['speedup_closure_no_penalty']:.2f}); relative difference of the validation errors "
              f"{res['rel_diff_val_rel_l2']:.1e} (moments), {res['rel_diff_closure_val_loss']:.1e} (closure)")
    atomic_write_json(Path(args.out), res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
