"""Mach sweep of the normal-shock benchmark (see :mod:`kinclose.bench.mach`).

    python scripts/mach_sweep.py [machs=[1.5,2.0,3.0,4.0,5.5,7.0,8.0]] [models=[dvm,nsf,euler,mlc,hermmlc]]
                                 [+overrides.dvm.nv=...] ['mach_overrides=[{mach: 8.0, dvm: {nv: 140}}]']
                                 [out_dir=results]

Writes ``results/mach_sweep.md`` / ``.json`` / ``.png``; each (Mach, model) result is cached in the Hydra
run directory (``outputs/mach_sweep/M<mach>/<model>.json``), so a killed sweep resumes.
Config: ``kinclose/conf/mach_sweep.yaml``.
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kinclose.bench.mach import run_mach_sweep

log = logging.getLogger("mach_sweep")


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="mach_sweep")
def main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    log.info("run dir (cache) %s", run_dir)
    run_mach_sweep(cfg, run_dir)


if __name__ == "__main__":
    main()
