"""``kinclose-pipeline``: the main job — label → moments → closure → one ELT iteration → Mach 5.5
shock benchmark (MLC from this run, HermMLC shipped, against the kinetic DVM, NSF and Euler).

Every stage is the function the individual console scripts call (``kinclose.elt.run_elt``,
``kinclose.bench.shock.run``); a rerun resumes the ELT where it stopped.
Writes ``<out_dir>/shock_M<mach>.png|.md|.json`` and ``<out_dir>/pipeline_summary.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from kinclose.io import atomic_write_json, writable_dir

log = logging.getLogger(__name__)


def pipeline(cfg: DictConfig) -> dict:
    from kinclose.bench.shock import check_config as check_benchmark
    from kinclose.bench.shock import run as shock_benchmark
    from kinclose.elt import check_config as check_elt
    from kinclose.elt import run_elt

    check_elt(cfg.elt)  # both stages' options are checked before the first (long) one starts
    check_benchmark(cfg.shock)
    out = writable_dir(cfg.out_dir)
    t0 = time.perf_counter()
    state = run_elt(cfg.elt, cfg.elt.root)
    t_elt = time.perf_counter() - t0
    it = max(h["iteration"] for h in state["history"])
    closure = Path(cfg.elt.root) / f"iter_{it:03d}" / "closure" / "closure.pt"
    shock_cfg = OmegaConf.create(OmegaConf.to_container(cfg.shock, resolve=True))
    shock_cfg.out_dir = str(out)
    shock_cfg.overrides.mlc.closure = str(closure)
    t1 = time.perf_counter()
    result = shock_benchmark(shock_cfg)
    summary = {"wall_s": {"elt": t_elt, "shock_benchmark": time.perf_counter() - t1,
                          "total": time.perf_counter() - t0},
               "elt": {"labeled": len(state["labeled"]), "stop_reason": state.get("stop_reason"),
                       "heldout": [h["heldout"] for h in sorted(state["history"], key=lambda h: h["iteration"])],
                       "closure": str(closure)},
               "shock": result}
    atomic_write_json(out / "pipeline_summary.json", summary)
    log.info("pipeline done in %.0f s: %s", summary["wall_s"]["total"], out / f"shock_M{float(cfg.shock.mach):g}.png")
    return summary


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="pipeline")
def main(cfg: DictConfig) -> None:
    pipeline(cfg)


if __name__ == "__main__":
    main()
