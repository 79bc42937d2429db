"""Information limit of local closures: how much of each closure target the moments W determine.

    python scripts/closure_information.py [n_query=3000] [out_dir=results]

Config: ``kinclose/conf/closure_information.yaml``; the dataset is labeled first when ``root`` has no
``manifest.json``. For every entry of ``closures`` (a moments checkpoint, and optionally the closure
trained on it) held-out query cells (``n_query`` cells of ``n_query_shards`` shards) get a random
frame (δ, τ) each, drawn like the closure's training frames, and their exact targets
(σ̂, q̂, m − W, k) there; the nearest neighbours in W among the cells of the other shards give the
model-free estimates of :mod:`kinclose.closure.information` (1-NN, local-linear k-NN), and the
closure, if given, its prediction. Errors are relative RMS per target and ε decade (ε = VHS
Knudsen number of the shard).

Writes <out_dir>/<name>.md, <out_dir>/<name>.json and <out_dir>/<name>.png.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir

log = logging.getLogger("closure_information")
ESTIMATES = (("learned", "closure"), ("local_linear", "local-linear k-NN"), ("nn1", "1-NN"))
"""(result key, table label) of the predictors, in table order."""
FOCUS = "1e+00"
"""The ε decade of the summary table and the figure (ε ∈ [1, 10): the regime where closures differ)."""


def query_split(shard: np.ndarray, n_shards: int, n_query: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(query cell indices, reference cell indices): queries from ``n_shards`` random shards, references
    from all other shards, so no query has a neighbour from its own trajectory."""
    rng = np.random.default_rng(seed)
    shards = np.unique(shard)
    if n_shards >= shards.size:
        raise ValueError(f"n_query_shards={n_shards} leaves no reference shards (the dataset has {shards.size})")
    held = np.isin(shard, rng.choice(shards, n_shards, replace=False))
    cand = np.flatnonzero(held)
    return np.sort(rng.choice(cand, min(n_query, cand.size), replace=False)), np.flatnonzero(~held)


def analyse(entry: Any, data_root: Path, cfg: DictConfig, datasets: dict[tuple[float, int], Any]) -> dict[str, Any]:
    """Estimates (and the closure's errors) for one moments checkpoint on the query cells; ``datasets`` caches
    the shapes per ξ grid (xi_max, n), which moments checkpoints usually share."""
    from kinclose.closure.information import closure_targets, information_report, neighbour_predictions, target_names
    from kinclose.closure.targets import encode, encoder_weight_functions
    from kinclose.moments.train import load_checkpoint, load_dataset
    from kinclose.pretrained import resolve_moments

    moments_path = resolve_moments(entry.moments)
    model, meta = load_checkpoint(moments_path)
    grid = model.grid
    key = (float(grid.xi_max), int(grid.n))
    if key not in datasets:
        datasets[key] = load_dataset(data_root, grid)
    data = datasets[key]
    qi, ri = query_split(np.asarray(data.shard), int(cfg.n_query_shards), int(cfg.n_query), int(cfg.seed))
    rng = np.random.default_rng(int(cfg.seed) + 1)
    n = qi.size
    delta = rng.uniform(-float(cfg.frames.delta_max), float(cfg.frames.delta_max), n)
    tau = np.exp(rng.uniform(np.log(float(cfg.frames.tau_min)), np.log(float(cfg.frames.tau_max)), n))
    weights = encoder_weight_functions(model.encoder)
    W = encode(model.encoder, data.G, data.H)
    truth = closure_targets(data.G[qi], data.H[qi], grid, weights, delta, tau)
    t0 = time.perf_counter()
    nb = neighbour_predictions(
        W[qi], W[ri],
        lambda r, q: closure_targets(data.G[ri[r]], data.H[ri[r]], grid, weights, delta[q], tau[q]),
        int(cfg.n_neighbours))
    preds = {"local_linear": nb["local_linear"], "nn1": nb["nn1"]}
    if entry.get("closure"):
        from kinclose.reduced.run import load_closure

        from kinclose.data.schema import sha256_file

        cl = load_closure(str(entry.closure))
        trained_on = getattr(cl, "meta", {}).get("moments_checkpoint_sha256")
        if trained_on is not None and trained_on != sha256_file(moments_path):
            raise ValueError(f"{entry.name}: closure {entry.closure} was trained on another moments checkpoint than "
                             f"{moments_path} (SHA-256 {trained_on[:12]}…); pair each closure with its own moments")
        m, k = cl.frame(W[qi], delta, tau)
        preds = {"learned": np.concatenate([cl.stress_heat(W[qi]), m - W[qi], k], axis=1), **preds}
    log.info("%s: %d query / %d reference cells, estimates in %.1f s", entry.name, n, ri.size,
             time.perf_counter() - t0)
    return {"moments": str(entry.moments), "closure": str(entry.get("closure") or ""), "M": int(model.M),
            "encoder": str(meta["kwargs"]["encoder"]), "targets": target_names(int(model.M)),
            "n_query": int(n), "n_reference": int(ri.size),
            "median_neighbour_distance": float(np.median(nb["distance"][:, 0])),
            "errors": information_report(truth, preds, np.asarray(data.kn, dtype=float)[qi])}


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3f}"


def markdown(res: dict[str, Any]) -> str:
    """Summary at ε ∈ [1, 10) and per-closure tables (all cells and every decade)."""
    lines = [f"# {res['title']}", "", res["description"], "",
             f"Dataset `{res['root']}`; {res['n_query_shards']} held-out shards give the query cells, the "
             f"other shards the reference cells; {res['n_neighbours']} neighbours; frames δ, τ as in closure "
             f"training. Relative RMS error per target, sqrt(mean (ŷ − y)²)/std(y); the 1-NN column is "
             f"sqrt(E(y − y_nn)²/2). Regenerate: `{res['command']}`.", "",
             f"## Summary, ε ∈ [1, 10): the least determined target", "",
             "| moments | M | target | local-linear k-NN | 1-NN | closure | mean over k: local-linear / closure |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res["closures"].items():
        e = r["errors"].get(FOCUS)
        if e is None:
            continue
        ll = np.asarray(e["local_linear"])
        i = int(np.nanargmax(ll))
        M = r["M"]
        learned = np.asarray(e["learned"]) if "learned" in e else None
        kmean = f"{np.nanmean(ll[2 + M:]):.3f} / " + (f"{np.nanmean(learned[2 + M:]):.3f}" if learned is not None
                                                       else "–")
        lines.append(f"| {name} | {M} | {r['targets'][i]} | {ll[i]:.3f} | {e['nn1'][i]:.3f} | "
                     f"{_fmt(learned[i]) if learned is not None else '–'} | {kmean} |")
    for name, r in res["closures"].items():
        lines += ["", f"## {name}", "",
                  f"Moments `{r['moments']}` ({r['encoder']}, M = {r['M']})"
                  + (f", closure `{r['closure']}`" if r["closure"] else ", no closure (estimates only)")
                  + f"; {r['n_query']} query / {r['n_reference']} reference cells, median neighbour distance "
                  f"{r['median_neighbour_distance']:.3f} standard deviations of W.", "",
                  "| ε | estimate | " + " | ".join(r["targets"]) + " |",
                  "|---|---|" + "---|" * len(r["targets"])]
        for dec, e in r["errors"].items():
            label = "all" if dec == "all" else f"[{dec}, ×10) ({e['n_cells']})"
            for key, title in ESTIMATES:
                if key in e:
                    lines.append(f"| {label} | {title} | " + " | ".join(_fmt(x) for x in e[key]) + " |")
    return "\n".join(lines) + "\n"


def figure(res: dict[str, Any], path: Path) -> None:
    """One panel per moments set: per-target errors at ε ∈ [1, 10), closure vs the estimates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(n, r) for n, r in res["closures"].items() if FOCUS in r["errors"]]
    if not items:
        return
    fig, axs = plt.subplots(len(items), 1, figsize=(9, 2.6 * len(items)), squeeze=False)
    for ax, (name, r) in zip(axs[:, 0], items):
        e = r["errors"][FOCUS]
        x = np.arange(len(r["targets"]))
        w = 0.8 / len(ESTIMATES)
        for j, (k, t) in enumerate(ESTIMATES):  # fixed slot and colour per estimate
            if k in e:
                ax.bar(x + (j - (len(ESTIMATES) - 1) / 2) * w, e[k], w, label=t, color=f"C{j}")
        ax.set_xticks(x, r["targets"], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("relative RMS")
        ax.set_title(f"{name}: ε ∈ [1, 10)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="closure_information")
def main(cfg: DictConfig) -> None:
    from kinclose.data.runner import label_if_missing

    out = writable_dir(cfg.out_dir)
    root = Path(cfg.root)
    label_if_missing(root, OmegaConf.to_container(cfg.dataset, resolve=True))
    names = [str(c.name) for c in cfg.closures]
    if len(set(names)) != len(names):
        raise ValueError(f"closure names must be unique, got {names}")
    res: dict[str, Any] = {k: OmegaConf.to_container(cfg, resolve=True)[k] for k in
                           ("title", "description", "command", "root", "n_query_shards", "n_neighbours")}
    datasets: dict[tuple[float, int], Any] = {}
    res["closures"] = {str(c.name): analyse(c, root, cfg, datasets) for c in cfg.closures}
    res["config"] = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_json(out / f"{cfg.name}.json", res)
    atomic_write_text(out / f"{cfg.name}.md", markdown(res))
    figure(res, out / f"{cfg.name}.png")
    log.info("wrote %s.{md,json,png} in %s", cfg.name, out)


if __name__ == "__main__":
    main()
