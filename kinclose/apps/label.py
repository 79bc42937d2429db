"""``kinclose-label``: label random initial data with the DVM into HDF5 shards (DESIGN §4).

    kinclose-label [dataset=small|large] [dataset.n_tasks=...] [cluster.kind=local|serial]
                   [cluster.address=tcp://host:port] [out_dir=...] [mode=label|check]

Writes the dataset (``shard_<id>.h5`` + ``manifest.json``, layout in ``kinclose.data.schema``)
into ``out_dir`` (default ``<run dir>/dataset``), and ``label_summary.json`` and ``coverage.png``
into the Hydra run directory. Rerunning the same command resumes a killed run. Units: R = 1,
ρ_ref = T_ref = 1, x in units of the domain length L, ε = λ_ref / L (VHS mean free path).
Execution on SLURM/PBS with dask-jobqueue: see ``kinclose.data.runner``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from kinclose.io import atomic_write_json, writable_dir

log = logging.getLogger(__name__)

MODES = ("label", "check")


def run_label(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Label (or check) the dataset described by ``cfg``; write the summary and coverage figure
    into ``run_dir``; return the summary (also ``label_summary.json``)."""
    from kinclose.data.label import DatasetSpec
    from kinclose.data.runner import ClusterSpec, label_dataset

    run_dir = Path(run_dir)
    if cfg.mode not in MODES:
        raise ValueError(f"mode={cfg.mode!r}: choose one of {MODES}")
    spec = DatasetSpec.from_dict(OmegaConf.to_container(cfg.dataset, resolve=True))
    cluster = ClusterSpec.from_dict(OmegaConf.to_container(cfg.cluster, resolve=True))
    out_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir / "dataset"
    if cfg.mode == "label":
        writable_dir(out_dir)
        summary = label_dataset(spec, out_dir, cluster, retries=int(cfg.retries), overwrite=bool(cfg.overwrite),
                                progress=cfg.progress, log_every_s=float(cfg.log_every_s))
    else:
        from kinclose.data.schema import verify_manifest

        entries = verify_manifest(out_dir, deep=True)
        summary = {"dataset": spec.name, "out_dir": str(out_dir), "complete": len(entries),
                   "n_tasks": spec.n_tasks, "samples_total": sum(e["samples"] for e in entries)}
        log.info("dataset %s: %d complete shards verified", out_dir, len(entries))
    if cfg.coverage.enabled:
        from kinclose.data.coverage import coverage_report

        shock = OmegaConf.to_container(cfg.coverage.shock, resolve=True) if cfg.coverage.shock else None
        summary["coverage"] = coverage_report(out_dir, run_dir / cfg.coverage.file, shock_options=shock,
                                              title=f"dataset {spec.name}: {summary['complete']} shards")
    atomic_write_json(run_dir / "label_summary.json", summary)
    return summary


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="label")
def main(cfg: DictConfig) -> None:
    summary = run_label(cfg, HydraConfig.get().runtime.output_dir)
    if summary.get("failed"):
        log.error("%d task(s) failed; see label_summary.json", summary["failed"])
        sys.exit(3)


if __name__ == "__main__":
    main()
