"""``kinclose-shock``: steady normal-shock structure for any model, one output contract.

    kinclose-shock model=dvm collision=bgk mach=5.5 omega=0.5 [model.nx=...] [hydra.run.dir=...]

Writes ``profiles.csv`` (x in upstream mean free paths λ1, x = 0 at the density mid-point),
``metrics.json`` and ``profiles.png`` into the Hydra run directory. Units: R = 1, ρ1 = T1 = 1,
u1 = Ma √(5/3), μ = μ_ref T^ω with μ_ref chosen so that λ1 = 1 (VHS mean free path).
"""

from __future__ import annotations

import logging
import time
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import ShockProfile, center, write_outputs

log = logging.getLogger(__name__)

SHOCK_SOLVERS: dict[str, str] = {
    "dvm": "kinclose.kinetic.shock:steady_shock",
    "nsf": "kinclose.macro.shock:nsf_shock",
    "euler": "kinclose.macro.shock:euler_shock",
    "mlc": "kinclose.reduced.shock:mlc_shock",
    "hermmlc": "kinclose.reduced.shock:hermmlc_shock",
}


def get_shock_solver(name: str) -> Callable[..., ShockProfile]:
    if name not in SHOCK_SOLVERS:
        raise KeyError(f"unknown shock model {name!r}; available: {sorted(SHOCK_SOLVERS)}")
    module, func = SHOCK_SOLVERS[name].split(":")
    return getattr(import_module(module), func)


def run_shock(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Solve the steady shock described by ``cfg`` and write the outputs into ``run_dir``.

    Every shock solver has the signature
    ``solver(states, *, collision, omega, **model_options) -> ShockProfile`` with x in λ1.
    """
    states = rankine_hugoniot(float(cfg.mach))
    options = OmegaConf.to_container(cfg.model, resolve=True)
    name = options.pop("name")
    solver = get_shock_solver(name)
    t0 = time.perf_counter()
    profile = solver(states, collision=str(cfg.collision.name), omega=float(cfg.omega), **options)
    wall = time.perf_counter() - t0
    profile = center(profile)
    extra = {"omega": float(cfg.omega), "collision": str(cfg.collision.name), "wall_s": wall}
    metrics = write_outputs(run_dir, profile, extra=extra)
    log.info(
        "%s shock Mach %g: inverse density thickness %.4f, wall %.2f s -> %s",
        name, cfg.mach, metrics["inv_density_thickness"], wall, run_dir,
    )
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="shock")
def main(cfg: DictConfig) -> None:
    run_shock(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
