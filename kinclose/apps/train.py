"""``kinclose-train``: training stages, one per run (DESIGN §5–6).

    kinclose-train stage=moments data.root=data/small [stage.model=hermite] [stage.M=3] [hydra.run.dir=...]

Each stage is a function ``f(cfg, run_dir) -> metrics`` that writes its artefacts (checkpoint,
metrics.json, figures) into the Hydra run directory; a new stage adds conf/stage/<name>.yaml and
an entry in :data:`STAGES`.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from kinclose.apps import check_ints

STAGES: dict[str, str] = {
    "moments": "kinclose.moments.train:train_moments",
    "closure": "kinclose.closure.train:train_closure",
    "source": "kinclose.closure.source:train_source",
    "distill": "kinclose.closure.distill:train_distill",
    "rollout": "kinclose.closure.rollout:train_rollout",
}


def get_stage(name: str) -> Callable[..., Any]:
    if name not in STAGES:
        raise KeyError(f"unknown training stage {name!r}; available: {sorted(STAGES)}")
    module, func = STAGES[name].split(":")
    return getattr(import_module(module), func)


POSITIVE_INTS = ("epochs", "batch_size", "M", "K", "patience")
"""Stage options that must be integers >= 1 wherever a stage has them (``lr`` must be > 0 or null)."""


def check_stage_options(stage: Any, name: str | None = None) -> None:
    """Raise a clear error for training sizes no run can use (before any data is read); ``stage`` is a stage
    config or a partial one (the ELT's overrides), ``name`` what the message calls it."""
    name = name or f"stage={stage['name']}"
    check_ints(stage, {k: 1 for k in POSITIVE_INTS if k in stage}, name)
    lr = stage.get("lr")
    if lr is not None and not (0.0 < float(lr) < float("inf")):
        raise ValueError(f"{name}: lr must be > 0 and finite, got {lr}")


def run_stage(cfg: DictConfig, run_dir: str) -> Any:
    check_stage_options(cfg.stage)
    return get_stage(str(cfg.stage.name))(cfg, run_dir)


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    from kinclose.moments.shape import VelocityCoverageError
    from kinclose.moments.train import CheckpointError, DatasetError

    try:
        run_stage(cfg, HydraConfig.get().runtime.output_dir)
    except (DatasetError, VelocityCoverageError, CheckpointError) as e:
        # a clear one-paragraph message instead of a traceback for bad inputs
        print(f"kinclose-train: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
