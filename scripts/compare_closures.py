"""Compare MLC closures on the spectrum of the closed system over dataset states, its grid-free linear
modes against the kinetic linear theory, the Mach 5.5 shock against the DVM and the Knudsen sweep
(issue 6). Studies that use it:

    python scripts/compare_closures.py                                       # hyperbolicity penalty 0 / 0.1 / 1
    python scripts/compare_closures.py --config-name closure_data_scaling    # 48 vs 192 training shards
    python scripts/compare_closures.py --config-name closure_seed_variance   # 3 seeds x 3 recipes
    python scripts/compare_closures.py --config-name closure_linear_response # exact σ̂, q̂; linear-response penalty
    python scripts/compare_closures.py --config-name closure_moment_count    # M = 4 vs 6

Each closure has a ``name`` (table row), a ``path`` (closure.pt or pretrained:<name>) and optionally its
``moments`` checkpoint (default: the config's ``moments_ckpt``), which encodes the dataset states of the
spectrum, and ``options`` of the reduced model (keys of ``conf/model/mlc.yaml``, e.g. ``{cfl: 0.25}``) for its
shock and sweep runs. The sweep tables give each mean ± its standard error and the per-case differences of
every closure from the first one. Writes ``<out_dir>/<name>.md`` / ``.json``; configs ``kinclose/conf/<config name>.yaml``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.bench.shock import field_errors, model_options, solve_model
from kinclose.bench.sweep import FIELDS, error_rows, paired, run_sweep
from kinclose.io import atomic_write_json, atomic_write_text, writable_dir
from kinclose.physics import rankine_hugoniot
from kinclose.reduced.run import check_checkpoints
from kinclose.reduced.shock import TIME_MARCHED

log = logging.getLogger("compare_closures")


def spectrum(closure: str, W: np.ndarray, kn: np.ndarray) -> dict[str, Any]:
    """Fraction of states with complex eigenvalues (all, and ε ≥ 1), speeds max|Re λ̂| (median, 99 %, max)."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.pretrained import resolve

    cl = LearnedClosure.from_checkpoint(resolve(closure))
    d = cl.flux_jacobian_eigenvalues(np.tile([1.0, 0.0, 1.5], (W.shape[0], 1)), W)
    cplx = d["complex_mask"].any(1)
    sp = np.abs(d["eigenvalues"].real).max(1)
    return {"states_complex": float(cplx.mean()), "states_complex_kn_ge_1": float(cplx[kn >= 1].mean()),
            "speed_median": float(np.median(sp)), "speed_q99": float(np.quantile(sp, 0.99)),
            "speed_max": float(sp.max())}


def linear_modes(closure: str, kns: list[float], t_end: float) -> dict[str, Any]:
    """Grid-free linear-mode damping and sound phase speed of the closed system, and their ratio to the
    kinetic linear theory (``kinclose.bench.linear.linear_theory``), at ε = ``kns``, t = ``t_end``."""
    from kinclose.bench.linear import linear_theory

    th = linear_theory(kns, t_end, {"closure": closure})
    kin, cl = th["kinetic"], th["closure"]
    return {"kns": list(kns), "t_end": t_end, **{f"{k}_ratio": [a / b for a, b in zip(cl[k], kin[k])]
                                                  for k in ("entropy", "sound", "phase_speed")}}


def dataset_states(cfg: DictConfig, mck: str) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.spectrum_states`` cells of ``cfg.spectrum_dataset`` encoded by the moments checkpoint ``mck``
    (a path, or ``pretrained:<name>`` for the moments shipped with that closure): W, ε."""
    from kinclose.closure.targets import encode
    from kinclose.moments.train import load_checkpoint, load_dataset
    from kinclose.pretrained import resolve_moments

    mom, _ = load_checkpoint(resolve_moments(mck))
    data = load_dataset(cfg.spectrum_dataset, mom.grid, "logcubic", 60, 0, True)
    W = encode(mom.encoder, data.G, data.H)
    idx = np.random.default_rng(0).choice(len(W), min(int(cfg.spectrum_states), len(W)), replace=False)
    return W[idx], np.asarray(data.kn, dtype=float)[idx]


def headline(res: dict[str, Any], name: str) -> dict[str, float]:
    """The numbers the study tables compare: complex states, Mach shock ρ / T / q, 64-cell q at ε = 0.1 / 1 / 10
    and 128-cell T at ε = 1 / 10 (relative L2 errors; NaN where a run failed or a column is absent)."""
    c = res["closures"][name]
    out = {"complex states": c["spectrum"]["states_complex"]}
    err = c["shock"].get("errors", {})
    for f in ("rho", "T", "q"):
        out[f"Mach {res['mach']:g} {f}"] = err.get(f"{f}_L2", float("nan"))
    for nx, f, kns in (("64", "q", (0.1, 1.0, 10.0)), ("128", "T", (1.0, 10.0))):
        table = res["sweeps"].get(nx)
        for kn in kns:
            v = float("nan")
            if table is not None and kn in table["kns"]:
                v = table["models"][name]["errors"][f][table["kns"].index(kn)]
            out[f"{nx}-cell {f} ε={kn:g}"] = v
    return out


def group_summary(res: dict[str, Any], groups: list[dict[str, Any]]) -> list[str]:
    """Markdown table: per group (several seeds of one recipe) the mean and min–max of :func:`headline`."""
    rows = {g["name"]: [headline(res, n) for n in g["members"]] for g in groups}
    cols = list(next(iter(rows.values()))[0])
    lines = ["## Summary per recipe: mean (min–max) over its seeds", "",
             "| recipe | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for g, hs in rows.items():
        cells = []
        for c in cols:
            v = np.array([h[c] for h in hs], dtype=float)
            cells.append(f"{np.nanmean(v):.1%} ({np.nanmin(v):.1%}–{np.nanmax(v):.1%})" if np.isfinite(v).any() else "–")
        lines.append(f"| {g} | {len(hs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(res: dict[str, Any]) -> str:
    cfg = res["config"]
    names = [str(c["name"]) for c in cfg["closures"]]  # the config's order (the JSON's keys are sorted)
    lines = [f"# {cfg['title']}", "", f"{cfg['description']} Config `kinclose/conf/{cfg['name']}.yaml`, "
             f"command `{cfg['command']}`.", ""]
    opts = [f"{c['name']}: " + ", ".join(f"{k} = {v}" for k, v in c["options"].items())
            for c in cfg["closures"] if c.get("options")]
    if opts:
        lines += ["Reduced-model options that differ from `conf/model/mlc.yaml`: " + "; ".join(opts) + ".", ""]
    if cfg.get("groups"):
        lines += group_summary(res, cfg["groups"])
    lines += [f"## Spectrum of the closed system on {res['n_states']} dataset states (ρ = 1, u = 0, T = 1)", "",
             "| closure | states with complex λ | same, ε ≥ 1 | max \\|Re λ̂\\| median / 99 % / max |", "|---|---|---|---|"]
    for n in names:
        s = res["closures"][n]["spectrum"]
        lines.append(f"| {n} | {s['states_complex']:.1%} | {s['states_complex_kn_ge_1']:.1%} | "
                     f"{s['speed_median']:.2f} / {s['speed_q99']:.2f} / {s['speed_max']:.2f} |")
    lm = [res["closures"][n].get("linear_modes") for n in names]
    if any(lm):
        kns = next(x for x in lm if x)["kns"]
        lines += ["", "## Linear modes, grid-free (k = 2π, t = 0.3): closed system / kinetic linear theory", "",
                  "| closure | " + " | ".join(f"entropy Γ ε={k:g}" for k in kns) + " | "
                  + " | ".join(f"sound Γ ε={k:g}" for k in kns) + " | "
                  + " | ".join(f"c_φ ε={k:g}" for k in kns) + " |", "|---|" + "---|" * (3 * len(kns))]
        for n, x in zip(names, lm):
            if x:
                lines.append(f"| {n} | " + " | ".join(f"{v:.2f}" for key in ("entropy_ratio", "sound_ratio",
                                                                              "phase_speed_ratio") for v in x[key]) + " |")
    lines += ["", f"## Mach {res['mach']} shock (BGK, ω = 0.5): relative L2 errors against the DVM", "",
              "| closure | 1/δ_ρ | " + " | ".join(FIELDS) + " | steady | largest \\|λ − u\\|/√T |",
              "|---|" + "---|" * (len(FIELDS) + 3)]
    ref = res["shock_dvm_inv_density_thickness"]
    lines.append(f"| dvm | {ref:.4f} | " + " | ".join("—" for _ in FIELDS) + " | yes | — |")
    for n in names:
        s = res["closures"][n]["shock"]
        if "error" in s:
            lines.append(f"| {n} | failed: {s['error']} |")
            continue
        lines.append(f"| {n} | {s['inv_density_thickness']:.4f} | "
                     + " | ".join(f"{s['errors'][f + '_L2']:.2%}" for f in FIELDS)
                     + f" | {'yes' if s['converged'] else 'no'} | {s.get('max_characteristic_speed', math.nan):.2f} |")
    for nx in sorted(res["sweeps"], key=int):  # grid order (the JSON's keys are sorted as strings)
        table = res["sweeps"][nx]
        kns = table["kns"]
        lines += ["", f"## Knudsen sweep on {nx} cells (relative L2 errors at t = {res['sweep']['t_end']}; "
                  "definitions of `results/knudsen_sweep.md`)", "",
                  "| closure | field | " + " | ".join(f"ε={k:g}" for k in kns) + " |", "|---|---|" + "---|" * len(kns)]
        lines += error_rows(table, names)
        lines += paired(table, names[0])
        if table["failures"]:
            lines.append("")
            lines.append(f"failures: {len(table['failures'])} (listed in the JSON); the means of a cell with failed "
                         "runs are over the runs that finished, so they are not comparable with the others")
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="pkg://kinclose.conf", config_name="hyperbolicity_ablation")
def main(cfg: DictConfig) -> None:
    closures = {str(c.name): str(c.path) for c in cfg.closures}
    moments = {str(c.name): str(c.get("moments") or cfg.moments_ckpt) for c in cfg.closures}
    options = {str(c.name): dict(c.get("options") or {}) for c in cfg.closures}
    base = OmegaConf.create({"overrides": {}})
    valid = set(model_options(base, "mlc")) - {"closure"}
    for name, o in options.items():
        if set(o) - valid:
            raise KeyError(f"closure {name!r}: unknown option(s) {sorted(set(o) - valid)}; valid: {sorted(valid)}")
    out = writable_dir(cfg.out_dir)
    for path in closures.values():  # before the reference DVM shock
        check_checkpoints({"closure": path})
    states = {m: dataset_states(cfg, m) for m in set(moments.values())}
    shock = rankine_hugoniot(float(cfg.mach))
    ref, ref_row = solve_model(shock, "dvm", collision="bgk", omega=0.5, options=model_options(base, "dvm"))
    res: dict[str, Any] = {"mach": float(cfg.mach), "n_states": min(len(W) for W, _ in states.values()),
                           "shock_dvm_inv_density_thickness": ref_row["inv_density_thickness"],
                           "sweep": OmegaConf.to_container(cfg.sweep, resolve=True), "closures": {}, "sweeps": {},
                           "config": OmegaConf.to_container(cfg, resolve=True)}
    flux = str(cfg.get("flux", "ap"))  # numerical flux of U of the reduced solver (shock and sweep)
    # the shock's steady solver: the committed study tables were time-marched with MC (the benchmark's default
    # until the twenty-first session); a config may set e.g. shock_steady: {steady: newton, limiter: vanleer}
    shock_steady = dict(cfg.get("shock_steady") or TIME_MARCHED)
    for name, path in closures.items():
        entry: dict[str, Any] = {"closure": path, "moments": moments[name],
                                 "spectrum": spectrum(path, *states[moments[name]]),
                                 "linear_modes": linear_modes(path, [0.1, 1.0, 10.0], 0.3)}
        opts = {**model_options(base, "mlc"), "closure": path, "flux": flux, **shock_steady, **options[name]}
        try:
            prof, row = solve_model(shock, "mlc", collision="bgk", omega=0.5, options=opts)
            entry["shock"] = {**row, "errors": field_errors(prof, ref)}
        except Exception as exc:  # a failed model is a result
            entry["shock"] = {"error": f"{type(exc).__name__}: {exc}"}
        res["closures"][name] = entry
        log.info("%s: spectrum %s, shock %s", name, entry["spectrum"], entry["shock"].get("errors"))
    sw = cfg.sweep
    models = {n: {"model": "mlc", "closure": p, "xi_max": float(sw.xi_max), "flux": flux,
                  **{k: v for k, v in options[n].items() if k in ("cfl", "xi_max", "flux", "clip")}}  # the sweep's run options
              for n, p in closures.items()}
    for nx in sw.nxs:
        res["sweeps"][str(int(nx))] = run_sweep(list(sw.kns), models, int(sw.n_cases), int(sw.seed), int(nx),
                                                float(sw.t_end), list(sw.kinds), "dvm", {"nv": 96}, 4)
        log.info("sweep nx=%d done", int(nx))
    atomic_write_json(out / f"{cfg.name}.json", res)
    atomic_write_text(out / f"{cfg.name}.md", markdown(res))
    log.info("wrote %s/%s.md", out, cfg.name)


if __name__ == "__main__":
    main()
