"""Mach 5.5 hard-sphere normal shock of the full Boltzmann equation against BGK, NSF and MLC (issue 9).

    python scripts/boltzmann_shock.py                        # needs a CUDA device (boltzmann.device)
    python scripts/boltzmann_shock.py reuse_profiles=true    # table and figure from the saved profiles

The Boltzmann profiles come from the 1D-3V DVM with the fast spectral hard-sphere operator on a 64³
velocity grid (:class:`kinclose.kinetic.boltzmann_torch.TorchBoltzmannDVMSolver`), one run per entry of
``grids`` (each starts from the previous profile). References, on the CPU: BGK on the same grid (the
same discretisation, so the difference is the collision model), BGK on its converged default grid
(``conf/model/dvm.yaml``), NSF with the Boltzmann Prandtl number 2/3 (and with BGK's Pr = 1), and the
Mott-Smith (u² moment) shock with the hard-sphere collision integral (:mod:`kinclose.kinetic.mott_smith`),
whose reciprocal thickness Hicks, Yen & Reilly (1972) found to agree with the Boltzmann one at Mach 2.5–8.
Reduced moment models (``reduced``, CPU): the closure and learned collision source trained on Boltzmann
labels with strong shocks (``pretrained:mlc_boltzmann``), and the default BGK-trained closure.

Writes ``results/boltzmann_shock_M<mach>.md`` / ``.json`` / ``.png`` and the Boltzmann profiles
``results/boltzmann_shock/dx<dx>.csv`` + ``.json`` (profile and metrics). Config:
``kinclose/conf/boltzmann_shock.yaml`` (units and the mean-free-path definition are stated there).
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep at once: this script runs numba's DVM references and then the learned collision
# source (torch autograd at every stage), and the threads each runtime leaves spinning take the other's cores.
# Measured on 2 cores, the Boltzmann-trained MLC row: 120-126 s with kinclose's GOMP_SPINCOUNT=20000
# (kinclose/__init__.py), 41 s with passive, the same as in a process of its own; the BGK DVM rows get 15-30 % slower.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import logging
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.bench.shock import field_errors, model_options, solve_model
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, writable_dir
from kinclose.physics import ShockStates, rankine_hugoniot
from kinclose.shockprofile import (
    FIELDS,
    ShockProfile,
    center,
    plot_profiles,
    profile_metrics,
    read_saved_profile,
    write_csv,
)

log = logging.getLogger("boltzmann_shock")

ROW_KEYS = ("inv_density_thickness", "density_temperature_separation", "T_max", "converged", "residual", "steps",
            "wall_s")


def _profile_paths(out_dir: Path, dx: float) -> tuple[Path, Path]:
    base = out_dir / "boltzmann_shock"
    return base / f"dx{dx:g}.csv", base / f"dx{dx:g}.json"


def boltzmann_profiles(cfg: DictConfig, states: ShockStates, out_dir: Path) -> dict[float, ShockProfile]:
    """Solve (or, with ``reuse_profiles``, read) the Boltzmann shock on every grid of ``cfg.grids``."""
    from kinclose.kinetic.boltzmann_dvm import steady_shock_boltzmann

    out: dict[float, ShockProfile] = {}
    prev: ShockProfile | None = None
    for grid in cfg.grids:
        dx = float(grid.dx)
        csv, meta = _profile_paths(out_dir, dx)
        if cfg.reuse_profiles:
            try:
                p = read_saved_profile(csv, states, "dvm-boltzmann")
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"reuse_profiles=true but {exc}; run with a GPU first") from exc
        else:
            start, before = prev, None
            if cfg.continue_saved and csv.exists() and meta.exists():
                start = read_saved_profile(csv, states, "dvm-boltzmann")
                before = start.metrics
            opts = OmegaConf.to_container(cfg.boltzmann, resolve=True)
            p = steady_shock_boltzmann(states, omega=float(cfg.omega), dx=dx, levels=1,
                                       max_wall_s=float(grid.max_wall_s), initial="bgk" if start is None else start,
                                       **opts)
            p = center(p)
            p.model = "dvm-boltzmann"
            p.metrics["wall_s"] = p.metrics["solve_wall_s"]
            p.metrics["gpu"] = _gpu_name(str(cfg.boltzmann.device))
            if before is not None:  # a continuation: report the totals, and that it restarted
                p.metrics["continued_from"] = {k: before[k] for k in ("steps", "t_final", "residual", "wall_s")}
                for k in ("steps", "t_final", "wall_s"):
                    p.metrics[k] += before[k]
            write_csv(csv, p)
            atomic_write_json(meta, profile_metrics(p))
        log.info("Boltzmann dx=%g: 1/delta %.4f, converged %s (residual %.2e, %d steps, %.0f s)", dx,
                 profile_metrics(p)["inv_density_thickness"], p.metrics["converged"], p.metrics["residual"],
                 p.metrics["steps"], p.metrics["wall_s"])
        out[dx] = p
        prev = p
    return out


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(0)


def references(cfg: DictConfig, states: ShockStates, dx: float) -> dict[str, ShockProfile]:
    """BGK on the Boltzmann grid and on its default grid, NSF with Pr = 2/3 and Pr = 1, and the Mott-Smith
    bimodal shock with the hard-sphere collision integral (``cfg.mott_smith``; all on the CPU)."""
    empty = OmegaConf.create({})
    b = cfg.boltzmann
    same = dict(model_options(empty, "dvm"), x_min=float(b.x_min), x_max=float(b.x_max), dx=dx, levels=1,
                tol=float(b.tol), progress=False)
    out = {}
    for name, model, collision, opts in (
        (f"BGK, dx={dx:g}", "dvm", "bgk", same),
        ("BGK, converged", "dvm", "bgk", dict(model_options(empty, "dvm"), progress=False)),
        ("NSF, Pr = 2/3", "nsf", "boltzmann", model_options(empty, "nsf")),
        ("NSF, Pr = 1", "nsf", "bgk", model_options(empty, "nsf")),
    ):
        p, row = solve_model(states, model, collision=collision, omega=float(cfg.omega), options=opts)
        p.metrics["wall_s"] = row["wall_s"]
        out[name] = p
    if cfg.mott_smith is not None:
        from kinclose.kinetic.mott_smith import mott_smith_shock

        t0 = time.perf_counter()
        p = center(mott_smith_shock(states, omega=float(cfg.omega), **OmegaConf.to_container(cfg.mott_smith)))
        p.metrics["wall_s"] = time.perf_counter() - t0
        out["Mott-Smith (u² moment)"] = p
    return out


def reduced_models(cfg: DictConfig, states: ShockStates) -> dict[str, ShockProfile]:
    """The reduced moment models of ``cfg.reduced`` (CPU): options of ``conf/model/mlc.yaml`` updated by
    each entry (``label``: its row name); an entry with a learned ``source`` runs with ``collision=boltzmann``, one without with BGK's."""
    out = {}
    for key, entry in cfg.reduced.items():
        extra = OmegaConf.to_container(entry, resolve=True)
        name = str(extra.pop("label", key))
        opts = model_options(OmegaConf.create({"overrides": {"mlc": extra}}), "mlc")
        collision = "bgk" if opts.get("source") is None else "boltzmann"
        p, row = solve_model(states, "mlc", collision=collision, omega=float(cfg.omega), options=opts)
        p.metrics["wall_s"] = row["wall_s"]
        log.info("%s: 1/delta %.4f, converged %s, %.1f s", name, row["inv_density_thickness"], row["converged"],
                 row["wall_s"])
        out[name] = p
    return out


def _row(p: ShockProfile) -> dict:
    m = profile_metrics(p)
    row = {k: m.get(k) for k in ROW_KEYS}
    row["converged"] = bool(m.get("converged", True))  # NSF: an ODE solution, steady by construction
    row["T_max_over_T2"] = m["T_max"] / p.states.T2
    row["dx"] = float(np.diff(p.x).mean())
    return row


def markdown(result: dict) -> str:
    s = result["states"]
    lines = [
        f"# Mach {result['mach']:g} normal shock: Boltzmann (hard spheres) vs BGK, NSF and MLC",
        "",
        (f"Units: R = ρ1 = T1 = 1, u1 = {s['u1']:.4f}; x in upstream hard-sphere mean free paths λ1 = "
         "16/(5√(2π)) μ1/(ρ1√T1) (= 1/(√2πd²n1), first-Sonine viscosity). Boltzmann: fast spectral VHS "
         f"operator, {result['boltzmann']['nv']}³ velocity grid, {result['boltzmann']['n_dirs']} directions, "
         f"device {result['device']}, collisions in {result['boltzmann']['collision_dtype']}. "
         "Wall times: the Boltzmann rows on that device (a continued run counts both parts), the references "
         "on the machine that wrote this table. "
         "Regenerate: `python scripts/boltzmann_shock.py` (GPU) or `... reuse_profiles=true` (CPU, saved profiles)."),
        "",
        "| model | Δx (λ1) | 1/δ_ρ | T–ρ separation (λ1) | T_max/T2 | steady | residual | steps | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        residual = "–" if r["residual"] is None else f"{r['residual']:.1e}"
        steps = "–" if r["steps"] is None else str(r["steps"])
        lines.append(f"| {name} | {r['dx']:.4g} | {r['inv_density_thickness']:.4f} | "
                     f"{r['density_temperature_separation']:.3f} | {r['T_max_over_T2']:.4f} | "
                     f"{'yes' if r['converged'] else 'no'} | {residual} | {steps} | {r['wall_s']:.1f} |")
    if result.get("gpus"):
        lines += ["", "Boltzmann runs: " + "; ".join(f"dx={dx}: {g}" for dx, g in result["gpus"].items()) + "."]
    lines += ["", (f"Relative L2 / L∞ differences against the Boltzmann profile on the finest grid that reached a "
                   f"steady state (Δx = {result['finest_dx']:g} λ1); ρ, u, T relative to their jump, σ, q to their "
                   "range:"), "",
              "| model | " + " | ".join(FIELDS) + " |", "|---|" + "---|" * len(FIELDS)]
    for name, e in result["differences"].items():
        lines.append(f"| {name} | " + " | ".join(f"{e[f + '_L2']:.2%} / {e[f + '_Linf']:.2%}" for f in FIELDS) + " |")
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="boltzmann_shock")
def main(cfg: DictConfig) -> None:
    import matplotlib.pyplot as plt

    out_dir = writable_dir(cfg.out_dir)
    states = rankine_hugoniot(float(cfg.mach))
    boltz = boltzmann_profiles(cfg, states, out_dir)
    steady = [dx for dx, p in boltz.items() if p.metrics.get("converged")]
    if not steady:
        log.warning("no Boltzmann grid reached a steady state; comparing with the finest, unconverged one")
    finest = min(steady or boltz)  # the reference: the finest grid that reached a steady state
    refs = references(cfg, states, finest)
    refs.update(reduced_models(cfg, states))
    ref = boltz[finest]
    rows = {f"Boltzmann, dx={dx:g}": _row(p) for dx, p in sorted(boltz.items(), reverse=True)}
    rows.update({name: _row(p) for name, p in refs.items()})
    diffs = {f"Boltzmann, dx={dx:g}": field_errors(p, ref) for dx, p in boltz.items() if dx != finest}
    diffs.update({name: field_errors(p, ref) for name, p in refs.items()})
    result = {
        "mach": float(cfg.mach), "omega": float(cfg.omega),
        "states": {k: float(getattr(states, k)) for k in ("rho1", "u1", "T1", "rho2", "u2", "T2")},
        "boltzmann": OmegaConf.to_container(cfg.boltzmann, resolve=True),
        "device": ref.metrics.get("device"), "finest_dx": finest, "rows": rows, "differences": diffs,
        "gpus": {f"{dx:g}": p.metrics["gpu"] for dx, p in sorted(boltz.items(), reverse=True) if p.metrics.get("gpu")},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    stem = f"boltzmann_shock_M{cfg.mach:g}"
    atomic_write_json(out_dir / f"{stem}.json", result)
    atomic_write_text(out_dir / f"{stem}.md", markdown(result))
    shown = {"dvm-boltzmann": ref, "dvm-bgk": refs[f"BGK, dx={finest:g}"], "nsf": refs["NSF, Pr = 2/3"]}
    if cfg.plot_reduced is not None:
        plotted = OmegaConf.to_container(cfg.reduced[cfg.plot_reduced], resolve=True)
        shown["mlc-boltzmann"] = refs[str(plotted.get("label", cfg.plot_reduced))]
    axes = plot_profiles(shown, xlim=(-12.0, 6.0))
    fig = axes[0].figure
    title = f"Mach {cfg.mach:g} hard-sphere shock: Boltzmann vs BGK (Δx = {finest:g} λ1) vs NSF (Pr = 2/3)"
    if cfg.plot_reduced is not None:
        title += " vs MLC"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / f"{stem}.png")
    plt.close(fig)
    print(markdown(result))


if __name__ == "__main__":
    main()
