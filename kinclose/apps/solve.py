"""``kinclose-solve``: one model on random initial data (``kinclose.data.initial``) or on a Riemann problem,
against a reference.

    kinclose-solve model=mlc ic.kind=jumps ic.seed=3 kn=0.01 t_end=0.1 nx=128 compare=[nsf]
    kinclose-solve model=mlc ic.kind=riemann kn=0.01 compare=[nsf,euler]        # Sod's shock tube
    kinclose-solve model=mlc ic.kind=riemann "ic.left=[1,0,1]" "ic.right=[0.25,0,1]"   # (ρ, u, T) of each side

The random data live on the periodic domain [-0.5, 0.5); the Riemann problem (``ic.left`` for x < 0, ``ic.right``
for x > 0) has reservoir ends that hold those states, and its figure adds the exact Euler solution (the
ε → 0 limit of every model; ``kinclose.macro.riemann``).

Writes ``fields.csv`` (x, rho, u, T, sigma, q at t_end of ``model``), ``fields_<name>.csv`` of the
reference and of every model in ``compare``, ``metrics.json`` (with ``errors``: each model's relative L2
errors of ρ, u, T, σ, q against ``reference``, normalized as in the Knudsen sweep) and ``fields.png`` (all
models) into the Hydra run directory. Units: R = 1, L = 1, ε = λ_ref/L (VHS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from numpy.typing import NDArray
from omegaconf import DictConfig, OmegaConf

from kinclose.apps import check_ints
from kinclose.data.initial import ICRanges, evaluate, sample_initial
from kinclose.io import atomic_savefig, atomic_write_json
from kinclose.models import run_model
from kinclose.problem import Problem
from kinclose.shockprofile import write_csv

log = logging.getLogger(__name__)


MODELS = ("dvm", "nsf", "euler", "mlc", "hermmlc")


def model_options(name: str) -> dict:
    """The options of ``conf/solve/model/<name>.yaml`` (for the reference and the compared models)."""
    from importlib.resources import files

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} in reference/compare; choose from {', '.join(MODELS)}")
    cfg = OmegaConf.create(files("kinclose.conf.solve").joinpath("model", f"{name}.yaml").read_text())
    return OmegaConf.to_container(cfg.options, resolve=True)


def solve(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run ``cfg.model`` (and ``cfg.reference``, ``cfg.compare``) on the initial data of ``cfg.ic``; write the
    module docstring's files into ``run_dir`` and return the metrics."""
    from kinclose.bench.sweep import coarsen, errors

    run_dir = Path(run_dir)
    check_ints(cfg, {"nx": 4, "reference_refine": 1, "ic.seed": 0})
    nx = cfg.nx
    name = str(cfg.model.name)
    ref_name = None if cfg.get("reference") is None else str(cfg.reference)
    refine = cfg.reference_refine
    others = list(dict.fromkeys(str(m) for m in cfg.get("compare", []) if str(m) not in (name, ref_name)))
    runs = {m: model_options(m) for m in ([ref_name] if ref_name not in (None, name) else []) + others}
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    spec, initial, bc = initial_data(cfg.ic)
    rho, u, T = initial(x)

    def run(model: str, options: dict, r: int = 1) -> tuple[Any, float]:
        xr = -0.5 + (np.arange(nx * r) + 0.5) / (nx * r)
        prob = Problem(-0.5, 0.5, *initial(xr), kn=float(cfg.kn), t_end=float(cfg.t_end), omega=float(cfg.omega),
                       bc=bc)
        t0 = time.perf_counter()
        f = run_model(model, prob, **options)
        return (coarsen(f, r) if r > 1 else f), time.perf_counter() - t0

    out, wall = run(name, OmegaConf.to_container(cfg.model.options, resolve=True))
    fields, walls = {name: out}, {name: wall}
    for m, opts in runs.items():
        fields[m], walls[m] = run(m, opts, refine if m == ref_name else 1)
        write_csv(run_dir / f"fields_{m}.csv", fields[m])
    write_csv(run_dir / "fields.csv", out)
    metrics = {"model": name, "kn": float(cfg.kn), "t_end": float(cfg.t_end), "nx": nx,
               "ic": spec, "bc": bc, "wall_s": wall, "stats": out.stats, "reference": ref_name,
               "reference_refine": None if ref_name is None else refine if ref_name != name else 1,
               "compare": others, "wall_s_by_model": walls}
    if ref_name is not None and len(fields) > 1:
        metrics["errors"] = {m: errors(f, fields[ref_name]) for m, f in fields.items() if m != ref_name}
        for m, e in metrics["errors"].items():
            log.info("%s vs %s: relative L2 error rho %.2f%%, u %.2f%%, T %.2f%%, sigma %.2f%%, q %.2f%%", m,
                     ref_name, *(100 * e[k] for k in ("rho", "u", "T", "sigma", "q")))
    atomic_write_json(run_dir / "metrics.json", metrics)
    _plot(cfg, spec, x, (rho, u, T), fields, ref_name, run_dir / "fields.png")
    log.info("%s done in %.2f s -> %s", name, wall, run_dir)
    return metrics


def initial_data(ic: Any) -> tuple[dict, Callable[[NDArray], tuple[NDArray, NDArray, NDArray]], str]:
    """(spec, x ↦ (ρ, u, T) of the cells centred at x, boundary condition) of ``cfg.ic``: random data of
    ``kinclose.data.initial`` (periodic) or, for ``kind: riemann``, the states ``left`` (x < 0) and ``right``
    (x > 0), each (ρ, u, T), between reservoirs."""
    if str(ic.kind) != "riemann":
        spec = sample_initial(np.random.default_rng(int(ic.seed)), ICRanges(), -0.5, 0.5, kind=str(ic.kind))
        return spec, lambda x: tuple(evaluate(spec, x)[:3]), "periodic"
    sides = {}
    for side in ("left", "right"):
        v = ic.get(side)
        if v is None or len(v) != 3 or not all(isinstance(a, (int, float)) for a in v):
            raise ValueError(f"ic.{side} must be three numbers (rho, u, T), got {v!r}")
        sides[side] = [float(a) for a in v]
    left, right = sides["left"], sides["right"]
    spec = {"kind": "riemann", "left": left, "right": right, "x0": 0.0}
    return spec, lambda x: tuple(np.where(x < 0.0, a, b) for a, b in zip(left, right)), "reservoir"


def _plot(cfg: DictConfig, spec: dict, x: Any, initial: tuple, fields: dict, ref_name: str | None,
          path: Path) -> None:
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.0), sharex=True)
    order = ([ref_name] if ref_name in fields else []) + [m for m in fields if m != ref_name]
    exact = _exact_euler(spec, x, float(cfg.t_end)) if spec["kind"] == "riemann" else None
    for i, (ax, key, label) in enumerate(zip(axes, ("rho", "u", "T", "sigma", "q"), ("ρ", "u", "T", "σ", "q"))):
        if i < 3:
            ax.plot(x, initial[i], color="0.7", lw=1, label="t = 0")
            if exact is not None:
                ax.plot(x, exact[i], color="k", lw=0.8, ls="--", label="exact Euler (ε → 0)")
        for m in order:
            ax.plot(fields[m].x, getattr(fields[m], key), **method_style(m))
        ax.set_title(label)
        ax.set_xlabel("x / L")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    what = (f"Riemann problem (ρ, u, T) = {spec['left']} | {spec['right']}" if spec["kind"] == "riemann"
            else f"{spec['kind']} seed {cfg.ic.seed}")
    fig.suptitle(f"{what}, ε = λ_ref/L = {float(cfg.kn):g}, t = {float(cfg.t_end):g}", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    atomic_savefig(fig, path)
    plt.close(fig)


def _exact_euler(spec: dict, x: NDArray, t: float) -> tuple[NDArray, NDArray, NDArray]:
    """(ρ, u, T) at x of the exact Euler solution of the Riemann problem ``spec`` at time t."""
    from kinclose.macro.riemann import exact_solution
    from kinclose.macro.riemann import solve as riemann

    (rl, ul, Tl), (rr, ur, Tr) = spec["left"], spec["right"]
    r, u, p = exact_solution(riemann(rl, ul, rl * Tl, rr, ur, rr * Tr), x, t, spec["x0"])
    return r, u, p / r


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf.solve", config_name="config")
def main(cfg: DictConfig) -> None:
    solve(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
