"""``kinclose-solve``: one model on random initial data (``kinclose.data.initial``).

    kinclose-solve model=nsf ic.kind=jumps ic.seed=3 kn=0.01 t_end=0.1 nx=128

Writes ``fields.csv`` (x, rho, u, T, sigma, q at t_end), ``metrics.json`` and ``fields.png``
into the Hydra run directory. Units: R = 1, L = 1, ε = λ_ref/L (VHS).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kinclose.data.initial import ICRanges, evaluate, sample_initial
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text
from kinclose.models import run_model
from kinclose.problem import Problem

log = logging.getLogger(__name__)


def solve(cfg: DictConfig, run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    nx = int(cfg.nx)
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    spec = sample_initial(np.random.default_rng(int(cfg.ic.seed)), ICRanges(), -0.5, 0.5, kind=str(cfg.ic.kind))
    rho, u, T, _ = evaluate(spec, x)
    prob = Problem(-0.5, 0.5, rho, u, T, kn=float(cfg.kn), t_end=float(cfg.t_end), omega=float(cfg.omega))
    t0 = time.perf_counter()
    out = run_model(str(cfg.model.name), prob, **OmegaConf.to_container(cfg.model.options, resolve=True))
    wall = time.perf_counter() - t0
    cols = np.stack([out.x, out.rho, out.u, out.T, out.sigma, out.q], axis=1)
    atomic_write_text(run_dir / "fields.csv", "x,rho,u,T,sigma,q\n" +
                      "\n".join(",".join(f"{v:.12e}" for v in row) for row in cols) + "\n")
    metrics = {"model": str(cfg.model.name), "kn": float(cfg.kn), "t_end": float(cfg.t_end), "nx": nx,
               "ic": spec, "wall_s": wall, "stats": out.stats}
    atomic_write_json(run_dir / "metrics.json", metrics)
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.0), sharex=True)
    for ax, (name, init, val) in zip(axes, [("ρ", rho, out.rho), ("u", u, out.u), ("T", T, out.T),
                                           ("σ", None, out.sigma), ("q", None, out.q)]):
        if init is not None:
            ax.plot(x, init, color="0.7", lw=1, label="t = 0")
        ax.plot(out.x, val, **method_style(str(cfg.model.name)))
        ax.set_title(name)
        ax.set_xlabel("x / L")
    axes[0].legend()
    fig.suptitle(f"{cfg.model.name}: {spec['kind']} seed {cfg.ic.seed}, ε = {float(cfg.kn):g}, t = {float(cfg.t_end):g}",
                 fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, run_dir / "fields.png")
    plt.close(fig)
    log.info("%s done in %.2f s -> %s", cfg.model.name, wall, run_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf.solve", config_name="config")
def main(cfg: DictConfig) -> None:
    solve(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
