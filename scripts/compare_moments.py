"""Learned generalized moments vs Hermite moments (DESIGN §5): reconstruction and entropy errors.

    python scripts/compare_moments.py --root data/small [--out results] [--M 1 2 3 4 5 6]
        [--epochs 40] [--max-samples-per-shard 256] [--hermite-basis orders graded]
        [--synthetic N]   # no manifest under --root: first label N small BGK shards with the DVM

For every M and model (learned; Hermite with each basis) the same autoencoder (decoder, loss
‖Δ(ĝ, ĥ)‖² + λ_η Δη̂², optimizer, epochs, seed) is trained on the training cells and evaluated on
the held-out cells (held-out shards when there are ≥ 5, else random cells); the final epoch's
parameters are evaluated (no early stopping on the held-out set). Errors, per held-out
cell: relative L2 error of the shape (ĝ, ĥ) — equal to that of (g, h/T) in v — and |Δη̂|, the
entropy error per unit mass |η − η_Φ|/ρ; reported overall and per ε decade (ε = VHS Knudsen
number of the shard, kinclose.physics).

Writes <out>/moments_table.md, <out>/moments_table.json and <out>/moments_error.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


from kinclose import __version__
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text

log = logging.getLogger("compare_moments")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="data/small", help="dataset directory with manifest.json")
    p.add_argument("--out", default="results", help="output directory")
    p.add_argument("--M", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--hermite-basis", nargs="+", default=["orders", "graded"], choices=["orders", "graded"])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lambda-eta", type=float, default=1.0)
    p.add_argument("--encoder-hidden", type=int, nargs="+", default=[32, 32])
    p.add_argument("--decoder-hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--xi-max", type=float, default=8.0)
    p.add_argument("--n-xi", type=int, default=128)
    p.add_argument("--max-samples-per-shard", type=int, default=None)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--split", default="auto", choices=["auto", "shard", "cell"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--synthetic", type=int, default=0,
                   help="if --root has no manifest.json, write this many synthetic BGK shards there first")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    from kinclose.moments.decoders import MomentAutoencoder
    from kinclose.moments.shape import XiGrid
    from kinclose.moments.train import evaluate, fit, load_dataset, resolve_device, split, summarize

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.root)
    synthetic = False
    if not (root / "manifest.json").is_file():
        if not args.synthetic:
            sys.exit(f"compare_moments: no manifest.json in {root}; label a dataset first or pass --synthetic N")
        from kinclose.moments._synthetic import write_dataset

        log.info("writing %d synthetic BGK shards into %s", args.synthetic, root)
        write_dataset(root, n_shards=args.synthetic, seed=args.seed, kn_range=(1e-3, 10.0), nx=64, nv=96, nt=9,
                      t_end=0.2)
        synthetic = True
    device = resolve_device(args.device)
    grid = XiGrid(args.xi_max, args.n_xi)
    t0 = time.perf_counter()
    data = load_dataset(root, grid, max_samples_per_shard=args.max_samples_per_shard, seed=args.seed)
    itr, iva, how = split(data, args.val_fraction, args.seed, args.split)
    train, val = data.subset(itr), data.subset(iva)
    log.info("%d samples: %d train, %d held out (%s split); loaded in %.1f s", len(data), len(train), len(val), how,
             time.perf_counter() - t0)
    variants = [("learned", "orders")] + [("hermite", b) for b in args.hermite_basis]
    rows = []
    for M in args.M:
        for kind, basis in variants:
            name = "learned" if kind == "learned" else f"hermite-{basis}"
            torch.manual_seed(args.seed)
            model = MomentAutoencoder(kind, M, args.xi_max, args.n_xi, args.encoder_hidden, args.decoder_hidden, basis)
            t1 = time.perf_counter()
            hist = fit(model, train, val, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       lambda_eta=args.lambda_eta, seed=args.seed, device=device, progress=False)
            ev = evaluate(model, val, args.lambda_eta, device=device)
            summ = summarize(ev, val.kn)
            rows.append({"model": name, "M": M, "wall_s": time.perf_counter() - t1, "best_epoch": hist["best_epoch"],
                         "val": summ, "val_loss_curve": hist["val_loss"], "train_loss_curve": hist["train_loss"]})
            log.info("%-16s M=%d: held-out rel L2 mean %.3e (median %.3e), |dEta| mean %.2e, %.1f s", name, M,
                     summ["all"]["rel_l2_mean"], summ["all"]["rel_l2_median"], summ["all"]["eta_abs_mean"],
                     rows[-1]["wall_s"])
    out = Path(args.out)
    result = {
        "package_version": __version__, "dataset": data.info, "synthetic_dataset": synthetic, "split": how,
        "n_train": len(train), "n_val": len(val), "device": device, "args": vars(args), "rows": rows,
        "wall_s": time.perf_counter() - t0,
    }
    by = {(r["model"], r["M"]): r["val"]["all"]["rel_l2_mean"] for r in rows}
    for b in args.hermite_basis:
        if ("learned", 3) in by and (f"hermite-{b}", 3) in by:
            result[f"ratio_learned_to_hermite_{b}_M3"] = by[("learned", 3)] / by[(f"hermite-{b}", 3)]
    atomic_write_json(out / "moments_table.json", result)
    atomic_write_text(out / "moments_table.md", table_md(result))
    plot(result, out / "moments_error.png")
    log.info("wrote %s/moments_table.{md,json}, moments_error.png (%.0f s)", out, result["wall_s"])
    return result


def table_md(res: dict) -> str:
    decades = sorted({d for r in res["rows"] for d in r["val"]["per_decade"]}, key=lambda s: float(s.replace("1e", "")))
    info = res["dataset"]
    lines = [
        "# Generalized moments: learned vs Hermite (held-out cells)",
        "",
        f"Dataset `{info['root']}` ({'synthetic BGK DVM, ' if res['synthetic_dataset'] else ''}{info['n_shards']} "
        f"shards, hash {info['dataset_hash'][:12]}…), {res['n_train']} training / {res['n_val']} held-out cells "
        f"({res['split']} split), {res['args']['epochs']} epochs, device {res['device']}, kinclose {res['package_version']}.",
        "rel L2 = ‖Δ(ĝ, ĥ)‖/‖(ĝ, ĥ)‖ per cell (the relative L2 error of (g, h/T)); abs Δη̂ = |η − η_Φ|/ρ. "
        "ε = VHS Knudsen number; decade 1e-2 means ε ∈ [0.01, 0.1).",
        "",
        "| model | M | rel L2 mean | rel L2 median | rel L2 p95 | rel L2 max | mean abs Δη̂ | "
        + " | ".join(f"rel L2 ε∈{d}" for d in decades) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(decades),
    ]
    for r in res["rows"]:
        a = r["val"]["all"]
        per = [f"{r['val']['per_decade'][d]['rel_l2_mean']:.3e}" if d in r["val"]["per_decade"] else "–" for d in decades]
        lines.append(f"| {r['model']} | {r['M']} | {a['rel_l2_mean']:.3e} | {a['rel_l2_median']:.3e} | "
                     f"{a['rel_l2_p95']:.3e} | {a['rel_l2_max']:.3e} | {a['eta_abs_mean']:.2e} | " + " | ".join(per) + " |")
    lines.append("")
    for k, v in res.items():
        if k.startswith("ratio_"):
            lines.append(f"- {k.replace('_', ' ')}: **{v:.3f}** (goal: ≤ 0.5)")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    fig, axs = plt.subplots(1, 3, figsize=(12, 3.6))
    models = list(dict.fromkeys(r["model"] for r in res["rows"]))
    colors = {"learned": method_style("mlc").get("color"), "hermite-orders": method_style("hermmlc").get("color"),
              "hermite-graded": "tab:green"}
    for mname in models:
        rs = [r for r in res["rows"] if r["model"] == mname]
        Ms = [r["M"] for r in rs]
        c = colors.get(mname)
        axs[0].semilogy(Ms, [r["val"]["all"]["rel_l2_mean"] for r in rs], "o-", color=c, label=mname)
        axs[1].semilogy(Ms, [r["val"]["all"]["eta_abs_mean"] for r in rs], "o-", color=c, label=mname)
        r3 = next((r for r in rs if r["M"] == 3), rs[len(rs) // 2])
        dec = sorted(r3["val"]["per_decade"], key=lambda s: float(s.replace("1e", "")))
        axs[2].semilogy([float(d.replace("1e", "")) for d in dec], [r3["val"]["per_decade"][d]["rel_l2_mean"] for d in dec],
                        "o-", color=c, label=f"{mname} M={r3['M']}")
    axs[0].set_xlabel("M")
    axs[0].set_ylabel("held-out mean relative L2 error of f")
    axs[1].set_xlabel("M")
    axs[1].set_ylabel("held-out mean |η − η_Φ|/ρ")
    axs[2].set_xlabel("log10 ε (decade)")
    axs[2].set_ylabel("mean relative L2 error")
    for ax in axs:
        ax.legend(fontsize=7)
    fig.suptitle(f"learned vs Hermite moments ({res['n_val']} held-out cells)")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
