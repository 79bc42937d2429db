"""``kinclose-sweep``: Knudsen sweep table and figure (see :mod:`kinclose.bench.sweep`).

    kinclose-sweep [n_cases=16] [models.mlc.closure=path/closure.pt] [out_dir=results]
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.apps import check_ints
from kinclose.bench.sweep import markdown, plot, run_sweep
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir

log = logging.getLogger(__name__)


def sweep(cfg: DictConfig) -> dict:
    check_ints(cfg, {"nx": 4, "n_cases": 1, "seed": 0, "reference_refine": 1})
    models = OmegaConf.to_container(cfg.models, resolve=True)
    out = writable_dir(cfg.out_dir)
    table = run_sweep(list(cfg.kns), models, int(cfg.n_cases), int(cfg.seed), int(cfg.nx), float(cfg.t_end),
                      list(cfg.kinds), cfg.reference, OmegaConf.to_container(cfg.reference_options, resolve=True),
                      int(cfg.reference_refine))
    table["config"] = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_json(out / "knudsen_sweep.json", table)
    atomic_write_text(out / "knudsen_sweep.md", markdown(table))
    axes = plot(table)
    fig = axes[0].figure
    fig.suptitle(f"Knudsen sweep: {cfg.n_cases} held-out random initial data per ε, nx={cfg.nx}, t={cfg.t_end}, "
                 f"reference {cfg.reference}", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out / "knudsen_sweep.png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    log.info("wrote %s", out / "knudsen_sweep.md")
    return table


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="sweep")
def main(cfg: DictConfig) -> None:
    sweep(cfg)


if __name__ == "__main__":
    main()
