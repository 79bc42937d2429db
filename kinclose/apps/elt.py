"""``kinclose-elt``: the exploration–labeling–training loop (see :mod:`kinclose.elt`)."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from kinclose.elt import run_elt

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="elt")
def main(cfg: DictConfig) -> None:
    state = run_elt(cfg, cfg.root)
    log.info("ELT finished after %d iterations (%s); labeled %d configurations",
             state["iteration"], state.get("stop_reason"), len(state["labeled"]))


if __name__ == "__main__":
    main()
