"""Damping of linear entropy and sound modes across Knudsen numbers, every model against the DVM.

    python scripts/linear_modes.py [nx=64] [t_end=0.3] ['kns=[1e-2,1]']

Writes ``results/linear_modes.md`` / ``.json`` / ``.png`` (definitions in :mod:`kinclose.bench.linear`), with
the grid-free linear theory of the kinetic equation and of each learned closure beside the simulations.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.apps import check_ints
from kinclose.bench.linear import linear_theory, markdown, plot, run_linear_modes
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir

log = logging.getLogger("linear_modes")


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="linear_modes")
def main(cfg: DictConfig) -> None:
    check_ints(cfg, {"nx": 8, "reference_refine": 1})
    out = writable_dir(cfg.out_dir)
    table = run_linear_modes([float(k) for k in cfg.kns], OmegaConf.to_container(cfg.models, resolve=True),
                             int(cfg.nx), float(cfg.t_end), float(cfg.amplitude), tuple(cfg.modes), str(cfg.reference),
                             OmegaConf.to_container(cfg.reference_options, resolve=True), int(cfg.reference_refine))
    closures = {n: str(o["closure"]) for n, o in cfg.models.items() if "closure" in o}
    table["theory"] = linear_theory(table["kns"], table["t_end"], closures)
    table["config"] = OmegaConf.to_container(cfg, resolve=True)
    atomic_write_json(out / "linear_modes.json", table)
    atomic_write_text(out / "linear_modes.md", markdown(table))
    atomic_savefig(plot(table), out / "linear_modes.png")
    log.info("wrote %s/linear_modes.md", out)


if __name__ == "__main__":
    main()
