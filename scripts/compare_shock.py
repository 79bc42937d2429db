"""Mach-number shock comparison: kinetic reference vs NSF, Euler, MLC and HermMLC.

    python scripts/compare_shock.py [mach=5.5] [collision=bgk] [models=[dvm,nsf,euler,mlc,hermmlc]]

Writes ``results/shock_M<mach>.png`` (five panels: normalized ρ, u, T and σ, q against x/λ1) and
``results/shock_M<mach>.md`` / ``.json`` (see :mod:`kinclose.bench.shock` for the error definitions).
Config: ``kinclose/conf/compare_shock.yaml``.
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kinclose.bench.shock import run

log = logging.getLogger("compare_shock")


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="compare_shock")
def main(cfg: DictConfig) -> None:
    log.info("run dir %s", HydraConfig.get().runtime.output_dir)
    run(cfg)


if __name__ == "__main__":
    main()
