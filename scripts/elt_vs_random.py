"""ELT (ensemble-variance selection) against random labeling with the same label budget (issue 7).

    python scripts/elt_vs_random.py [elt.max_iterations=5] [elt.per_iteration_budget=4]

Both arms share the initial labels, the candidate pool (same seeds), the held-out set and every
training setting; only the selection differs. Writes ``results/elt_vs_random.md|.json|.png``:
held-out mean relative L2 error (mean of ρ, u, T, σ, q; definitions of kinclose.bench.sweep)
against the number of labeled configurations, and the label ratio: labels the variance arm
needed to reach the random arm's final error, divided by the random arm's labels (< 1: ELT helps).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.elt import run_elt
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text

log = logging.getLogger("elt_vs_random")


def curve(state: dict) -> tuple[list[int], list[float]]:
    rows = sorted(state["history"], key=lambda h: h["iteration"])
    return [r["labeled"] for r in rows], [r["heldout"]["mean"] for r in rows]


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="elt_vs_random")
def main(cfg: DictConfig) -> None:
    arms = {}
    for sel in ("variance", "random"):
        c = OmegaConf.create(OmegaConf.to_container(cfg.elt, resolve=True))
        c.selection = sel
        root = Path(cfg.work_dir) / sel
        c.root = str(root)
        log.info("arm %s -> %s", sel, root)
        arms[sel] = curve(run_elt(c, root))
    (nv, ev), (nr, er) = arms["variance"], arms["random"]
    target = er[-1]
    reach = next((n for n, e in zip(nv, ev) if e <= target), None)
    ratio = (reach - nv[0]) / max(1, nr[-1] - nr[0]) if reach is not None else None
    result = {"variance": {"labeled": nv, "heldout_mean": ev}, "random": {"labeled": nr, "heldout_mean": er},
              "random_final_error": target, "variance_labels_to_reach_it": reach,
              "label_ratio_added": ratio, "config": OmegaConf.to_container(cfg.elt, resolve=True)}
    out = Path(cfg.out_dir)
    atomic_write_json(out / "elt_vs_random.json", result)
    lines = ["ELT (variance selection) vs random labeling, same budget; held-out mean relative L2 error.", "",
             "| labeled | variance | random |", "|---|---|---|"]
    for i in range(max(len(nv), len(nr))):
        a = f"{ev[i]:.4f}" if i < len(ev) else ""
        b = f"{er[i]:.4f}" if i < len(er) else ""
        lines.append(f"| {nv[i] if i < len(nv) else nr[i]} | {a} | {b} |")
    lines += ["", f"Labels added by ELT to reach random's final error {target:.4f}: "
                  + (f"{reach - nv[0]} of random's {nr[-1] - nr[0]} (ratio {ratio:.2f})" if reach is not None
                     else "not reached within the budget (ELT did not help here)")]
    atomic_write_text(out / "elt_vs_random.md", "\n".join(lines) + "\n")
    import matplotlib.pyplot as plt

    from kinclose.plotting import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(nv, ev, marker="o", label="ELT (variance)")
    ax.plot(nr, er, marker="s", label="random")
    ax.set_xlabel("labeled configurations")
    ax.set_ylabel("held-out mean rel. L2 error")
    ax.legend()
    fig.tight_layout()
    atomic_savefig(fig, out / "elt_vs_random.png")
    plt.close(fig)
    log.info("%s", lines[-1])


if __name__ == "__main__":
    main()
