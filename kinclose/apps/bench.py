"""``kinclose-bench``: normal-shock benchmark — kinetic reference vs NSF, Euler, MLC and HermMLC.

    kinclose-bench [mach=5.5] [collision=bgk] [models=[dvm,nsf,euler,mlc,hermmlc]] [out_dir=results]

Writes ``<out_dir>/shock_M<mach>.png`` (five panels: normalized ρ, u, T and σ, q against x/λ1) and
``<out_dir>/shock_M<mach>.md`` / ``.json`` (see :mod:`kinclose.bench.shock` for the error definitions).
Config: ``kinclose/conf/bench.yaml``; the Hydra run directory is ``outputs/bench/M<mach>``.
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kinclose.bench.shock import run

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    log.info("run dir %s", HydraConfig.get().runtime.output_dir)
    run(cfg)


if __name__ == "__main__":
    main()
