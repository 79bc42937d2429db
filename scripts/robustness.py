"""Robustness of the reduced model: many held-out random initial data run to 10× the training horizon.

    python scripts/robustness.py [closure=pretrained:mlc_small_shock2] [n_cases=100]

For every case (periodic [−0.5, 0.5), ε log-uniform in [1e-3, 10]) the reduced model runs to
``horizon_factor · t_train``. Reported (``results/robustness.md|.json``): blow-ups (non-finite
state or a positivity error of the solver, which raises instead of clipping), the largest relative
conservation drift of Σ U Δx, the fraction of states outside the closure's training range of W,
and a Galilean check: case 0 with a constant velocity added, compared with the unshifted solution
translated by that velocity (exact for the PDE; the residual difference is the scheme's, whose
Rusanov dissipation depends on |u|), at nx, 2 nx and 4 nx, with each run's own stable steps and
with one common fixed step.
"""

from __future__ import annotations

import logging
import time

import hydra
import numpy as np
from omegaconf import DictConfig

from kinclose.apps import check_ints
from kinclose.data.initial import ICRanges, evaluate, sample_initial, sample_kn
from kinclose.io import atomic_write_json, atomic_write_text, writable_dir
from kinclose.physics import PhysicalStateError, mu_ref_for_knudsen
from kinclose.reduced.run import load_closure
from kinclose.reduced.solver import ReducedSolver

log = logging.getLogger("robustness")


def solver(cl, rho, u, T, kn, nx):
    """Periodic reduced solver on [−0.5, 0.5) with ``nx`` cells, set to (ρ, u, T)."""
    s = ReducedSolver(-0.5, 0.5, nx, cl, mu_ref_for_knudsen(kn, 0.5), 0.5, "periodic", 0.5)
    s.set_state(rho, u, T)
    return s


def run_case(cl, rho, u, T, kn, t_end, nx, dt=None):
    """Reduced solver from (ρ, u, T) to ``t_end`` with its own stable step, or the fixed ``dt``."""
    s = solver(cl, rho, u, T, kn, nx)
    U0 = s.U.sum(0) * s.dx
    out_frac = 0.0
    while s.t < t_end - 1e-12:
        s.step(min(s.dt_max() if dt is None else dt, t_end - s.t))
        if s.steps % 50 == 0 and hasattr(cl, "check_range"):
            out_frac = max(out_frac, cl.check_range(s.W)["fraction"])
    drift = np.abs(s.U.sum(0) * s.dx - U0) / np.maximum(np.abs(U0), 1e-300)
    drift[1] = abs(s.U.sum(0)[1] * s.dx - U0[1]) / max(abs(U0[0]), 1e-300)  # momentum relative to mass
    return s, float(drift.max()), out_frac


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="robustness")
def main(cfg: DictConfig) -> None:
    if not (int(cfg.n_cases) >= 1 and int(cfg.nx) >= 4 and float(cfg.horizon_factor) > 0 and float(cfg.t_train) > 0
            and len(cfg.kinds) >= 1):
        raise ValueError(f"need n_cases >= 1, nx >= 4, horizon_factor > 0, t_train > 0 and at least one kind; got "
                         f"n_cases={cfg.n_cases}, nx={cfg.nx}, horizon_factor={cfg.horizon_factor}, "
                         f"t_train={cfg.t_train}, kinds={list(cfg.kinds)}")
    check_ints(cfg, {"n_cases": 1, "nx": 4, "seed": 0})
    out = writable_dir(cfg.out_dir)
    cl = load_closure(str(cfg.closure), float(cfg.xi_max))
    nx = int(cfg.nx)
    x = -0.5 + (np.arange(nx) + 0.5) / nx
    t_end = float(cfg.horizon_factor) * float(cfg.t_train)
    blowups, drifts, outs, failures = 0, [], [], []
    t0 = time.perf_counter()
    for i in range(int(cfg.n_cases)):
        rng = np.random.default_rng([int(cfg.seed), i])
        kn = sample_kn(rng)
        spec = sample_initial(rng, ICRanges(), -0.5, 0.5, kind=list(cfg.kinds)[i % len(cfg.kinds)])
        rho, u, T, _ = evaluate(spec, x)
        try:
            _, drift, out_frac = run_case(cl, rho, u, T, kn, t_end, nx)
            drifts.append(drift)
            outs.append(out_frac)
        except (PhysicalStateError, FloatingPointError, ValueError, RuntimeError) as exc:
            blowups += 1
            failures.append({"case": i, "kn": kn, "kind": spec["kind"], "error": f"{type(exc).__name__}: {exc}"[:300]})
        if (i + 1) % 10 == 0:
            log.info("%d/%d cases, %d blow-ups, %.0f s", i + 1, cfg.n_cases, blowups, time.perf_counter() - t0)
    # Galilean check on case 0: shift by a whole number of cells per t_train, at nx, 2 nx and 4 nx
    rng = np.random.default_rng([int(cfg.seed), 0])
    kn = sample_kn(rng)
    spec = sample_initial(rng, ICRanges(), -0.5, 0.5, kind=list(cfg.kinds)[0])
    t_g = float(cfg.t_train)
    gal = {}
    for n in (nx, 2 * nx, 4 * nx):
        xg = -0.5 + (np.arange(n) + 0.5) / n
        rho, u, T, _ = evaluate(spec, xg)
        cells = int(round(float(cfg.galilean_shift) * t_g * n))
        c = cells / (n * t_g)  # translation of exactly `cells` cells in t_g
        # own stable steps, then one fixed step for both (half the shifted run's initial bound): if the
        # difference came from the different time steps / step counts, the second would remove it
        for tag, dt in (("", None), (", common dt", 0.5 * solver(cl, rho, u + c, T, kn, n).dt_max())):
            a, _, _ = run_case(cl, rho, u, T, kn, t_g, n, dt)
            b, _, _ = run_case(cl, rho, u + c, T, kn, t_g, n, dt)
            fa, fb = a.fields_array(), b.fields_array()
            fa_shift = np.roll(fa, cells, axis=0)
            fa_shift[:, 1] += c
            gal[f"nx={n}{tag}"] = {"shift": c, "steps": [a.steps, b.steps],
                                   **{name: float(np.abs(fa_shift[:, k] - fb[:, k]).max()
                                                  / max(np.abs(fa[:, k]).max(), 1e-12))
                                      for k, name in enumerate(("rho", "u", "T", "sigma", "q"))}}
    result = {"n_cases": int(cfg.n_cases), "t_end": t_end, "nx": nx, "blowups": blowups,
              "max_conservation_drift": float(max(drifts)) if drifts else None,
              "max_out_of_range_fraction": float(max(outs)) if outs else None,
              "mean_out_of_range_fraction": float(np.mean(outs)) if outs else None,
              "galilean_max_rel_difference": gal, "failures": failures, "wall_s": time.perf_counter() - t0,
              "closure": str(cfg.closure)}
    atomic_write_json(out / "robustness.json", result)
    md = [f"Reduced model ({cfg.closure}) on {cfg.n_cases} held-out random initial data, nx = {nx}, "
          f"run to t = {t_end:g} ({cfg.horizon_factor:g}× the training horizon), ε log-uniform in [1e-3, 10].", "",
          f"- blow-ups (non-finite or non-positive ρ, T; the solver raises, never clips): **{blowups}**",
          f"- largest relative conservation drift of Σ U Δx: {result['max_conservation_drift']:.2e}",
          f"- states outside the training range of W: up to {result['max_out_of_range_fraction']:.1%} of the cells "
          f"(mean over cases {result['mean_out_of_range_fraction']:.1%})",
          f"- Galilean check (case 0, t = {t_g:g}, velocity shift of a whole number of cells; largest difference "
          "relative to the field's size; steps of the unshifted / shifted run; 'common dt': both with one fixed "
          "step): " + "; ".join(f"{n} ({d['steps'][0]} / {d['steps'][1]} steps): "
                                + ", ".join(f"{k} {v:.1e}" for k, v in d.items() if k not in ("shift", "steps"))
                                for n, d in gal.items()),
          f"- wall time {result['wall_s']:.0f} s"]
    atomic_write_text(out / "robustness.md", "\n".join(md) + "\n")
    log.info("\n%s", "\n".join(md))


if __name__ == "__main__":
    main()
