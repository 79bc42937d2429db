"""Mach sweep of the normal-shock benchmark: every model of ``kinclose-shock`` at several Mach numbers.

For each Mach number Ma (ρ1 = T1 = 1, u1 = Ma √(5/3), downstream state from Rankine–Hugoniot) and
each model, the steady shock is solved by :func:`kinclose.bench.shock.solve_model` and compared with
the kinetic reference (the DVM, BGK or Shakhov with VHS viscosity μ = μ_ref T^ω) by
:func:`kinclose.bench.shock.field_errors`. x is in upstream mean free paths λ1 (VHS); the Knudsen
number ε plays no part (a steady shock has no other length scale).

Per (Mach, model), in ``mach_sweep.json`` → ``rows`` (one dict per entry):

``mach``, ``model``
``inv_density_thickness``
    1/δ_ρ = λ1 max|dρ/dx| / (ρ2 − ρ1); ``None`` for a model whose shock is a jump (``jump`` true: Euler).
``density_temperature_separation``
    x_ρ(½) − x_T(½) in λ1.
``rho_L2`` … ``q_L2``, ``rho_Linf`` … ``q_Linf``
    relative errors against the reference on the reference's cells (ρ, u, T relative to the jump,
    σ, q relative to the reference's own size); ``None`` if the model or the reference failed.
``precursor``
    :func:`kinclose.bench.shock.precursor_split` against the reference (the model's front x_f, and per
    field the share of the squared error upstream of it and the L2 error without that region); ``None``
    for the reference, a jump, or a failed model.
``wall_s``, ``converged``, ``residual``
    wall time of the solve (s; of the run that filled the cache), steady-state flag and residual.
``failure``
    ``None``, or ``"<ExceptionType>: <message>"`` when the solver raised (a failure is a result).
``cached``
    whether the entry was read from the cache of a previous (possibly killed) run.
``options``
    the model options used (``conf/model/<name>.yaml`` < ``overrides`` < ``mach_overrides``),
    without the run-time options ``threads`` and ``progress``.

Each entry is cached as ``<cache_dir>/M<mach>/<model>.json`` (atomic write), keyed by the Mach
number, collision model, ω and the model options: a rerun recomputes only missing entries and
entries whose options changed (``threads`` and ``progress`` excepted). The key also holds a digest of
the package's Python sources and the SHA-256 of the closure file a model uses, so a changed solver or
closure recomputes its entries (any edit of ``kinclose/**/*.py`` invalidates the whole cache).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kinclose.bench.shock import (
    DIAGNOSTIC_KEYS,
    field_errors,
    model_options,
    precursor_split,
    solve_model,
)
from kinclose.io import atomic_savefig, atomic_write_json, atomic_write_text, source_digest, writable_dir
from kinclose.physics import rankine_hugoniot
from kinclose.reduced.run import CHECKPOINT_OPTIONS, check_checkpoints
from kinclose.shockprofile import FIELDS, ShockProfile

log = logging.getLogger(__name__)

JUMP_MODELS = frozenset({"euler"})  # zero-thickness shocks: 1/δ_ρ is 1/Δx of their grid, not a thickness
CACHE_VERSION = 2
RUNTIME_OPTIONS = frozenset({"threads", "progress"})  # do not change a result: not part of the cache key


def mach_label(mach: float) -> str:
    """Directory / column label of a Mach number, e.g. ``M5.5``."""
    return f"M{float(mach):g}"


def entry_options(cfg: DictConfig, mach: float, name: str) -> dict:
    """Options of model ``name`` at Mach ``mach``.

    ``conf/model/<name>.yaml``, updated by ``cfg.overrides[name]`` and then by
    the ``cfg.mach_overrides`` item of this Mach number; an unknown option raises ``KeyError`` (from
    :func:`kinclose.bench.shock.model_options`).
    """
    layers = [cfg.overrides.get(name) if "overrides" in cfg else None]
    per_mach = _per_mach(cfg).get(float(mach), {})
    layers.append(per_mach.get(name))
    merged = OmegaConf.merge(*[OmegaConf.create({})] + [c for c in layers if c])
    return model_options(OmegaConf.create({"overrides": {name: merged}}), name)


def _per_mach(cfg: DictConfig) -> dict[float, Any]:
    """``cfg.mach_overrides`` (a list of ``{mach: Ma, <model>: {options}}``) keyed by float Mach number."""
    out: dict[float, Any] = {}
    for item in cfg.get("mach_overrides") or []:
        if "mach" not in item:
            raise KeyError(f"mach_overrides: every item needs a 'mach' key, got {dict(item)}")
        mach = float(item["mach"])
        if mach in out:
            raise KeyError(f"mach_overrides: Mach {mach:g} appears twice")
        out[mach] = {k: v for k, v in item.items() if k != "mach"}
    return out


def _cache_key(mach: float, name: str, collision: str, omega: float, options: dict, code: str) -> dict:
    from kinclose.closure.train import file_sha256
    from kinclose.pretrained import resolve

    options = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS}
    key = {"version": CACHE_VERSION, "mach": float(mach), "model": name, "collision": collision,
           "omega": float(omega), "options": options, "code": code}
    if options.get("closure"):
        key["closure_sha256"] = file_sha256(resolve(str(options["closure"])))
    return json.loads(json.dumps(key))  # the form it takes after a JSON round trip


def _load_cache(path: Path, key: dict) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == key else None


def _solve_entry(mach: float, name: str, collision: str, omega: float, options: dict, key: dict) -> dict:
    """Solve one (Mach, model) entry; a solver exception becomes the entry's ``failure``."""
    states = rankine_hugoniot(float(mach))
    try:
        prof, row = solve_model(states, name, collision=collision, omega=omega, options=options)
    except Exception as exc:  # a model that fails is a result: reported in the table, not hidden
        return {"key": key, "row": None, "profile": None, "failure": f"{type(exc).__name__}: {exc}"}
    profile = {"x": prof.x} | {f: getattr(prof, f) for f in FIELDS}
    return {"key": key, "row": row, "profile": profile, "failure": None}


def _profile(entry: dict, mach: float, name: str) -> ShockProfile | None:
    p = entry.get("profile")
    if p is None:
        return None
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    return ShockProfile(arr["x"], arr["rho"], arr["u"], arr["T"], arr["sigma"], arr["q"],
                        rankine_hugoniot(float(mach)), name)


def run_mach_sweep(cfg: DictConfig, cache_dir: str | Path) -> dict:
    """Solve every (Mach, model) of ``cfg`` (resuming from ``cache_dir``) and write the results.

    Parameters
    ----------
    cfg : the ``mach_sweep`` config (``machs``, ``models``, ``reference``, ``omega``, ``collision``,
        ``overrides``, ``mach_overrides``, ``out_dir``).
    cache_dir : directory of the per-entry cache (the Hydra run directory of ``scripts/mach_sweep.py``).

    Returns
    -------
    The dict written to ``<out_dir>/mach_sweep.json`` (see the module docstring for ``rows``);
    ``mach_sweep.md`` and ``mach_sweep.png`` are written next to it.
    """
    machs = [float(m) for m in cfg.machs]
    models = [str(m) for m in cfg.models]
    reference = str(cfg.reference)
    if not machs:
        raise ValueError("machs is empty: give at least one Mach number, e.g. machs=[5.5]")
    if reference not in models:
        raise ValueError(f"the reference {reference!r} must be one of models {models}")
    collision = str(cfg.collision.name)
    omega = float(cfg.omega)
    unused = sorted(set(_per_mach(cfg)) - set(machs))
    if unused:
        log.warning("mach_overrides for Mach %s: not in machs %s, ignored", unused, machs)
    # every option is checked before the first (possibly long) solve
    options = {(m, n): entry_options(cfg, m, n) for m in machs for n in models}
    checkpoints = {tuple(str(o.get(k)) for k in CHECKPOINT_OPTIONS): o for o in options.values()}
    for o in checkpoints.values():  # each distinct closure / source once
        check_checkpoints(o)
    out_dir = writable_dir(cfg.out_dir)
    cache_dir = Path(cache_dir)
    code = source_digest()
    entries: dict[tuple[float, str], dict] = {}
    n_total = len(machs) * len(models)
    for i, (mach, name) in enumerate(((m, n) for m in machs for n in models), start=1):
        key = _cache_key(mach, name, collision, omega, options[(mach, name)], code)
        path = cache_dir / mach_label(mach) / f"{name}.json"
        entry = _load_cache(path, key)
        cached = entry is not None
        if not cached:
            entry = _solve_entry(mach, name, collision, omega, options[(mach, name)], key)
            atomic_write_json(path, entry)
            entry = json.loads(path.read_text())  # cached and fresh entries take the same form
        entry["cached"] = cached
        entries[(mach, name)] = entry
        log.info("[%d/%d] Mach %g %s: %s%s", i, n_total, mach, name, _summary(name, entry),
                 " (cached)" if cached else "")
    result = {
        "machs": machs, "models": models, "reference": reference, "collision": collision, "omega": omega,
        "units": "x in upstream mean free paths lambda1 (VHS), R = rho1 = T1 = 1, u1 = Ma sqrt(5/3); "
                 "1/delta_rho = lambda1 max|drho/dx|/(rho2 - rho1); wall_s in seconds",
        "rows": _rows(entries, machs, models, reference),
        "closures": {n: options[(machs[0], n)].get("closure") for n in models if "closure" in options[(machs[0], n)]},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    atomic_write_json(out_dir / "mach_sweep.json", result)
    atomic_write_text(out_dir / "mach_sweep.md", markdown(result))
    import matplotlib.pyplot as plt

    axes = plot(result)
    fig = axes[0].figure
    fig.suptitle(f"Mach sweep of the normal shock, reference {reference} ({collision.upper()}, ω = {omega:g})",
                 fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, out_dir / "mach_sweep.png")
    plt.close(fig)
    log.info("wrote %s", out_dir / "mach_sweep.md")
    return result


def _summary(name: str, entry: dict) -> str:
    if entry["failure"] is not None:
        return f"FAILED {entry['failure'][:200]}"
    r = entry["row"]
    thick = "jump" if name in JUMP_MODELS else f"1/δ_ρ {r['inv_density_thickness']:.4f}"
    steady = "steady" if r["converged"] else f"NOT steady (residual {r['residual']:.1e})"
    return f"{thick}, {r['wall_s']:.2f} s, {steady}"


def _rows(entries: dict, machs: list[float], models: list[str], reference: str) -> list[dict]:
    rows = []
    for mach in machs:
        ref = _profile(entries[(mach, reference)], mach, reference)
        for name in models:
            e = entries[(mach, name)]
            r = e["row"] or {}
            jump = name in JUMP_MODELS
            row = {"mach": mach, "model": name, "jump": jump,
                   "inv_density_thickness": None if jump else r.get("inv_density_thickness"),
                   "density_temperature_separation": r.get("density_temperature_separation"),
                   "wall_s": r.get("wall_s"), "converged": r.get("converged"), "residual": r.get("residual"),
                   "failure": e["failure"], "cached": e["cached"], "options": e["key"]["options"]}
            prof = _profile(e, mach, name)
            errs = field_errors(prof, ref) if (prof is not None and ref is not None) else {}
            for f in FIELDS:
                for norm in ("L2", "Linf"):
                    row[f"{f}_{norm}"] = errs.get(f"{f}_{norm}")
            row["precursor"] = precursor_split(prof, ref) if errs and not jump and name != reference else None
            row.update({k: r[k] for k in DIAGNOSTIC_KEYS if k in r})
            rows.append(row)
    return rows


def _table(result: dict, cell: Any, models: list[str]) -> list[str]:
    machs = result["machs"]
    lines = ["| model | " + " | ".join(f"Ma = {m:g}" for m in machs) + " |", "|---" * (1 + len(machs)) + "|"]
    by = {(r["mach"], r["model"]): r for r in result["rows"]}
    for name in models:
        lines.append(f"| {name} | " + " | ".join(cell(by[(m, name)]) for m in machs) + " |")
    return lines


def _field_table(result: dict, cell: Any, models: list[str]) -> list[str]:
    """Markdown table with one row per (model, field) and one column per Mach number; cell(row, field) → str."""
    machs = result["machs"]
    lines = ["| model | field | " + " | ".join(f"Ma = {m:g}" for m in machs) + " |", "|---" * (2 + len(machs)) + "|"]
    by = {(r["mach"], r["model"]): r for r in result["rows"]}
    for name in models:
        for f in FIELDS:
            lines.append(f"| {name} | {f} | " + " | ".join(cell(by[(m, name)], f) for m in machs) + " |")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def markdown(result: dict) -> str:
    """Tables of ``result`` (see :func:`run_mach_sweep`): 1/δ_ρ, separation, L2 errors per field, wall time."""
    ref = result["reference"]
    models = result["models"]
    others = [m for m in models if m != ref]

    def failed(r: dict) -> str | None:
        return "failed" if r["failure"] is not None else None

    def thick(r: dict) -> str:
        if failed(r):
            return "failed"
        s = "jump" if r["jump"] else _fmt(r["inv_density_thickness"], ".4f")
        return s if r["converged"] else s + " (not steady)"

    lines = [
        f"# Mach sweep of the normal shock ({result['collision'].upper()}, ω = {result['omega']:g})",
        "",
        (f"Reference: {ref} (discrete-velocity solution of the {result['collision'].upper()} equation, VHS viscosity "
         f"μ = μ_ref T^ω with ω = {result['omega']:g}). Units: R = ρ1 = T1 = 1, u1 = Ma √(5/3); x in upstream "
         "mean free paths λ1 (VHS); the Knudsen number ε is not used (a steady shock has no other length). "
         "1/δ_ρ = λ1 max|dρ/dx| / (ρ2 − ρ1) (dimensionless; Euler's shock is a jump). Errors: relative L2 "
         f"against {ref} on its cells, x aligned at the density mid-point; ρ, u, T relative to the jump, "
         "σ, q relative to the reference's own size (Euler has σ = q = 0: 100 %). Wall times in seconds, of the "
         "run that computed the entry (cached entries keep theirs; they depend on the machine's load)."),
        "",
    ]
    closures = result.get("closures") or {}
    if closures:
        which = ", ".join(f"{n}: `{c}`" for n, c in closures.items())
        lines += [(f"Closures used: {which}. No shipped closure saw a shock at these Mach numbers: "
                   "pretrained:mlc_small and pretrained:hermmlc_small were trained on random waves, jumps and "
                   "mixtures (the small labeled dataset); pretrained:mlc_small_rollout is mlc_small fine-tuned "
                   "through the solver on DVM trajectories of random initial data; pretrained:mlc_small_shock is "
                   "mlc_small_rollout fine-tuned further on those trajectories and on steady DVM shocks at Mach "
                   "2.5, 3.5, 4.5 and 6.5 (the training stage refuses the benchmark's Mach numbers), and "
                   "pretrained:mlc_small_shock2 is mlc_small_shock trained 3 more epochs on the same data with a "
                   "larger shock weight."), ""]
    lines += ["## Inverse density thickness 1/δ_ρ", ""] + _table(result, thick, models)
    lines += ["", "## Temperature–density separation x_ρ(½) − x_T(½) (λ1)", ""]
    lines += _table(result, lambda r: failed(r) or _fmt(r["density_temperature_separation"], ".3f"), models)
    lines += ["", f"## Relative L2 errors against {ref}", ""]
    lines += _field_table(result, lambda r, f: failed(r) or _fmt(r[f"{f}_L2"], ".2%"), others)
    fronted = [m for m in others if any(r["precursor"] for r in result["rows"] if r["model"] == m)]
    if fronted:
        lines += ["", f"## Errors upstream of the model's front (the {ref}'s precursor)", "",
                  ("Front x_f: the first cell where the model's ρ leaves ρ1 by 1e-3 of the jump; upstream of it the "
                   "model is in the undisturbed state 1 (a moment system carries nothing upstream where all its "
                   f"characteristic speeds are below the inflow speed u1), while the {ref} already carries the "
                   "molecules that run ahead of the shock. Per cell: x_f (λ1) / share of the squared q error at "
                   f"x < x_f / largest |q_{ref}| there relative to its peak."), ""]

        def front(r: dict) -> str:
            pc = r["precursor"]
            if failed(r) or not pc:
                return failed(r) or "—"
            return f"{_fmt(pc['x_front'], '.1f')} / {_fmt(pc['q_share_upstream'], '.0%')} / {_fmt(pc['q_ref_upstream'], '.0%')}"

        lines += _table(result, front, fronted)
        lines += ["", ("Relative L2 errors with the difference set to 0 upstream of x_f (what the rest of the profile "
                       "contributes; compare with the relative L2 errors above):"), ""]
        lines += _field_table(result, lambda r, f: failed(r) or (_fmt(r["precursor"][f"{f}_L2_downstream"], ".2%")
                                                                 if r["precursor"] else "—"), fronted)
    lines += ["", "## Wall time (s) and steady state", ""]

    def wall(r: dict) -> str:
        if failed(r):
            return "failed"
        s = _fmt(r["wall_s"], ".2f")
        return s if r["converged"] else f"{s}, not steady (residual {_fmt(r['residual'], '.1e')})"

    lines += _table(result, wall, models)
    diag = [m for m in models if any("W_out_of_range_fraction" in r for r in result["rows"] if r["model"] == m)]
    if diag:
        lines += ["", ("## Learned closures: states outside the training range of W / flux-Jacobian "
                       "eigenvalues that are complex"), ""]
        lines += _table(result, lambda r: failed(r) or (f"{_fmt(r.get('W_out_of_range_fraction'), '.1%')} / "
                                                        f"{_fmt(r.get('complex_eigenvalue_fraction'), '.1%')}"), diag)
    fails = [r for r in result["rows"] if r["failure"] is not None]
    if fails:
        lines += ["", "## Failures", ""] + [f"- Ma = {r['mach']:g}, {r['model']}: {r['failure'][:300]}" for r in fails]
    return "\n".join(lines) + "\n"


def plot(result: dict, axes: Any = None) -> Any:
    """Panel 1: 1/δ_ρ vs Mach per model; panels 2–6: relative L2 error of ρ, u, T, σ, q vs Mach (log y).

    Entries that did not reach a steady state are circled; failed entries are gaps.
    """
    import matplotlib.pyplot as plt

    from kinclose.plotting import method_style, use_style

    use_style()
    if axes is None:
        _, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
        axes = axes.ravel()
    ref = result["reference"]
    by = {(r["mach"], r["model"]): r for r in result["rows"]}
    machs = np.asarray(result["machs"])

    def series(name: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        y = np.array([np.nan if by[(m, name)][key] is None else by[(m, name)][key] for m in machs], dtype=float)
        steady = np.array([bool(by[(m, name)]["converged"]) for m in machs])
        return y, steady

    jumps = []
    for name in result["models"]:
        if name in JUMP_MODELS:
            jumps.append(method_style(name).get("label", name))
            continue
        y, steady = series(name, "inv_density_thickness")
        style = method_style(name)
        axes[0].plot(machs, y, marker="o", ms=3, **style)
        axes[0].plot(machs[~steady], y[~steady], "o", mfc="none", ms=9, color=style.get("color", "k"))
    axes[0].set_title(r"inverse density thickness $\lambda_1\max|\rho'|/(\rho_2-\rho_1)$")
    if jumps:
        axes[0].text(0.98, 0.02, f"{', '.join(jumps)}: jump (∞)", transform=axes[0].transAxes,
                     ha="right", va="bottom", fontsize=7)
    axes[0].legend(loc="best", fontsize=7)
    for ax, f in zip(axes[1:], FIELDS):
        for name in result["models"]:
            if name == ref:
                continue
            y, steady = series(name, f"{f}_L2")
            style = method_style(name)
            ax.plot(machs, y, marker="o", ms=3, **style)
            ax.plot(machs[~steady], y[~steady], "o", mfc="none", ms=9, color=style.get("color", "k"))
        ax.set_yscale("log")
        ax.set_title(f"{f}: relative L2 error vs {ref}")
    axes[1].legend(loc="best", fontsize=7)
    if any(r["failure"] is None and not r["converged"] for r in result["rows"]):
        axes[0].text(0.02, 0.98, "circled: not steady", transform=axes[0].transAxes, ha="left", va="top", fontsize=7)
    for ax in axes[3:]:
        ax.set_xlabel("Mach number")
    return axes
