"""Learned generalized moments vs Hermite moments (DESIGN §5): reconstruction and entropy errors.

    python scripts/compare_moments.py [M=[3]] [hermite_basis=[orders]] [epochs=20] [out_dir=results]

Config: ``kinclose/conf/compare_moments.yaml``. When ``root`` has no ``manifest.json`` the dataset is
labeled there first with the ``dataset`` settings (the labeling pipeline of ``kinclose-label``, serial).
For every M and model (learned; Hermite with each basis; with ``nonlinear_bound=true`` also an MLP encoder on
the whole shape, a diagnostic bound that is not a moment) the same autoencoder (decoder, loss
‖Δ(ĝ, ĥ)‖² + λ_η Δη̂², optimizer, epochs, seed) is trained on the training cells and evaluated on
the held-out cells (held-out shards when there are ≥ 5, else random cells); the final epoch's
parameters are evaluated (no early stopping on the held-out set). Errors, per held-out
cell: relative L2 error of the shape (ĝ, ĥ) — equal to that of (g, h/T) in v — and |Δη̂|, the
entropy error per unit mass |η − η_Φ|/ρ; reported overall and per ε decade (ε = VHS Knudsen
number of the shard, kinclose.physics).

Writes <out_dir>/moments_table.md, <out_dir>/moments_table.json and <out_dir>/moments_error.png.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from kinclose import __version__
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir
from kinclose.moments.encoders import ShapeEncoder, mlp

log = logging.getLogger("compare_moments")
RATIO_MODELS = (("learned", "learned"), ("nonlinear (bound)", "nonlinear_bound"))
"""(table row, result key) of the models whose M = 3 error is compared with each Hermite basis."""


class NonlinearEncoder(ShapeEncoder):
    """Diagnostic encoder W = N(ĝ, ĥ), an MLP on the whole shape (not a moment: eq. 13 needs W linear in f).
    With the same decoder it bounds what any M-number code of the shape reaches."""

    def __init__(self, grid: Any, M: int, hidden: list[int]) -> None:
        super().__init__(grid, M)
        self.net = mlp(2 * grid.n, hidden, M)

    def forward(self, G: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([G, H], dim=-1))


def compare(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate every (M, encoder); returns the result dict written to moments_table.json."""
    from kinclose.data.runner import label_if_missing
    from kinclose.moments.decoders import MomentAutoencoder
    from kinclose.moments.shape import XiGrid
    from kinclose.moments.train import (
        evaluate,
        fit,
        load_dataset,
        resolve_device,
        split,
        summarize,
    )

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    root = Path(cfg.root)
    label_if_missing(root, OmegaConf.to_container(cfg.dataset, resolve=True))
    device = resolve_device(str(cfg.device))
    grid = XiGrid(float(cfg.xi_max), int(cfg.n_xi))
    t0 = time.perf_counter()
    data = load_dataset(root, grid, max_samples_per_shard=cfg.max_samples_per_shard, seed=int(cfg.seed))
    itr, iva, how = split(data, float(cfg.val_fraction), int(cfg.seed), str(cfg.split))
    train, val = data.subset(itr), data.subset(iva)
    log.info("%d samples: %d train, %d held out (%s split); loaded in %.1f s", len(data), len(train), len(val), how,
             time.perf_counter() - t0)
    variants = [("learned", "orders")] + [("hermite", str(b)) for b in cfg.hermite_basis]
    if cfg.nonlinear_bound:
        variants.append(("nonlinear", ""))
    rows = []
    for M in cfg.M:
        for kind, basis in variants:
            name = {"learned": "learned", "nonlinear": "nonlinear (bound)"}.get(kind, f"hermite-{basis}")
            torch.manual_seed(int(cfg.seed))
            model = MomentAutoencoder("hermite" if kind == "hermite" else "learned", int(M), float(cfg.xi_max),
                                      int(cfg.n_xi), list(cfg.encoder_hidden), list(cfg.decoder_hidden), basis or "orders")
            if kind == "nonlinear":
                model.encoder = NonlinearEncoder(model.grid, int(M), list(cfg.nonlinear_hidden))
            t1 = time.perf_counter()
            hist = fit(model, train, val, epochs=int(cfg.epochs), batch_size=int(cfg.batch_size), lr=float(cfg.lr),
                       lambda_eta=float(cfg.lambda_eta), seed=int(cfg.seed), device=device, progress=False,
                       relative_loss=bool(cfg.relative_loss))
            ev = evaluate(model, val, float(cfg.lambda_eta), device=device)
            summ = summarize(ev, val.kn)
            rows.append({"model": name, "M": int(M), "wall_s": time.perf_counter() - t1,
                         "best_epoch": hist["best_epoch"], "val": summ, "val_loss_curve": hist["val_loss"],
                         "train_loss_curve": hist["train_loss"]})
            log.info("%-16s M=%d: held-out rel L2 mean %.3e (median %.3e), |dEta| mean %.2e, %.1f s", name, M,
                     summ["all"]["rel_l2_mean"], summ["all"]["rel_l2_median"], summ["all"]["eta_abs_mean"],
                     rows[-1]["wall_s"])
    result: dict[str, Any] = {
        "package_version": __version__, "dataset": data.info, "split": how, "n_train": len(train), "n_val": len(val),
        "device": device, "config": OmegaConf.to_container(cfg, resolve=True), "rows": rows,
        "wall_s": time.perf_counter() - t0,
    }
    by = {(r["model"], r["M"]): r["val"] for r in rows}
    for model, key in RATIO_MODELS:
        for b in cfg.hermite_basis:
            if (model, 3) in by and (f"hermite-{b}", 3) in by:
                le, he = by[(model, 3)], by[(f"hermite-{b}", 3)]
                result[f"ratio_{key}_to_hermite_{b}_M3"] = le["all"]["rel_l2_mean"] / he["all"]["rel_l2_mean"]
                result[f"ratio_{key}_to_hermite_{b}_M3_per_decade"] = {
                    d: le["per_decade"][d]["rel_l2_mean"] / he["per_decade"][d]["rel_l2_mean"]
                    for d in le["per_decade"] if d in he["per_decade"]}
    return result


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="compare_moments")
def main(cfg: DictConfig) -> None:
    out = writable_dir(cfg.out_dir)
    result = compare(cfg)
    atomic_write_json(out / "moments_table.json", result)
    atomic_write_text(out / "moments_table.md", table_md(result))
    plot(result, out / "moments_error.png")
    log.info("wrote %s/moments_table.{md,json}, moments_error.png (%.0f s)", out, result["wall_s"])


def table_md(res: dict) -> str:
    decades = sorted({d for r in res["rows"] for d in r["val"]["per_decade"]}, key=lambda s: float(s.replace("1e", "")))
    info = res["dataset"]
    lines = [
        "# Generalized moments: learned vs Hermite (held-out cells)",
        "",
        f"Dataset `{info['root']}` ({info['n_shards']} shards, hash {info['dataset_hash'][:12]}…), "
        f"{res['n_train']} training / {res['n_val']} held-out cells ({res['split']} split), "
        f"{res['config']['epochs']} epochs, device {res['device']}, kinclose {res['package_version']}. "
        "Regenerate: `python scripts/compare_moments.py` (config `kinclose/conf/compare_moments.yaml`).",
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
    for model, key in RATIO_MODELS:
        for b in res["config"]["hermite_basis"]:
            k = f"ratio_{key}_to_hermite_{b}_M3"
            if k in res:
                per = ", ".join(f"ε∈{d}: {v:.2f}" for d, v in res[k + "_per_decade"].items())
                lines.append(f"- ratio of the mean rel L2 error, {model} M = 3 to hermite-{b} M = 3: **{res[k]:.3f}** "
                             f"(goal: ≤ 0.5); per ε decade: {per}")
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
