"""Coverage report of a labeled dataset against the kinetic Mach 5.5 shock (DESIGN §4).

Measures, over every cell of every snapshot of every shard:

* ε = λ_ref / L per shard (VHS mean free path of the reference state ρ = T = 1);
* local density and temperature ratios **relative to the domain minimum of the same snapshot**,
  ρ(x, t) / min_x ρ(·, t) and T(x, t) / min_x T(·, t). For the shock the same measure is
  ρ/ρ1 and T/T1 (the upstream state is the profile's minimum): this compares the *range* of
  states a closure must handle, independent of the grid spacing (cell/neighbour ratios would
  depend on Δx/λ and are not comparable between the DVM shock and the periodic tasks);
* velocity spread in thermal units (max_x u − min_x u) / √(min_x T) per snapshot (shock:
  (u1 − u2)/√T1; Galilean- and scale-invariant like the closure's inputs, DESIGN §5);
* non-equilibrium measures |σ|/p and |q|/(p √T) (p = ρT), the normalized normal stress and heat
  flux that a moment closure must predict.

The shock is the BGK steady profile of ``kinclose.kinetic.shock.steady_shock`` (coarse, fast
settings by default: dx = 0.5 λ1, nv = 80, tol = 1e-4).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.data.schema import read_manifest

log = logging.getLogger(__name__)

FLOOR = 1e-6  # non-equilibrium measures below this are drawn in the first bin


def dataset_measures(root: str | os.PathLike) -> dict[str, NDArray[np.float64]]:
    """Coverage measures of the complete shards of a dataset (flattened over shards/snapshots/cells).

    Returns
    -------
    dict with kn (n_shards,), rho_ratio, T_ratio, sigma_p, q_p (n_samples,), du (n_snapshots_total,).
    """
    import h5py

    root = Path(root)
    out: dict[str, list] = {k: [] for k in ("kn", "rho_ratio", "T_ratio", "sigma_p", "q_p", "du")}
    for e in read_manifest(root)["shards"]:
        with h5py.File(root / e["file"], "r") as fh:
            f = fh["fields"][()]  # (nt, nx, 5)
            kn = float(fh.attrs["kn"])
        out["kn"].append(np.array([kn]))
        m = _measures(f[..., 0], f[..., 1], f[..., 2], f[..., 3], f[..., 4])
        for k, v in m.items():
            out[k].append(v)
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}


def _measures(rho: NDArray, u: NDArray, T: NDArray, sigma: NDArray, q: NDArray) -> dict[str, NDArray]:
    """Arrays (nt, nx) → flattened measures (the minimum is taken along the last axis)."""
    p = rho * T
    return {
        "rho_ratio": (rho / rho.min(axis=-1, keepdims=True)).ravel(),
        "T_ratio": (T / T.min(axis=-1, keepdims=True)).ravel(),
        "sigma_p": (np.abs(sigma) / p).ravel(),
        "q_p": (np.abs(q) / (p * np.sqrt(T))).ravel(),
        "du": np.atleast_1d((u.max(axis=-1) - u.min(axis=-1)) / np.sqrt(T.min(axis=-1))).ravel(),
    }


def shock_measures(mach: float = 5.5, dx: float = 0.5, nv: int = 80, tol: float = 1e-4,
                   collision: str = "bgk", omega: float = 0.5) -> dict[str, Any]:
    """The same measures along the kinetic (DVM) steady shock profile, plus its metrics."""
    from kinclose.kinetic.shock import steady_shock
    from kinclose.physics import rankine_hugoniot

    st = rankine_hugoniot(mach)
    prof = steady_shock(st, collision=collision, omega=omega, dx=dx, nv=nv, tol=tol, progress=False)
    m = _measures(prof.rho[None, :], prof.u[None, :], prof.T[None, :], prof.sigma[None, :], prof.q[None, :])
    m["rho_ratio"] = prof.rho / st.rho1
    m["T_ratio"] = prof.T / st.T1
    m["du"] = np.array([(st.u1 - st.u2) / math.sqrt(st.T1)])
    m["mach"] = mach
    m["converged"] = bool(prof.metrics.get("converged", False))
    return m


def coverage_numbers(data: dict[str, NDArray], shock: dict[str, Any] | None) -> dict[str, Any]:
    """Maxima of the dataset measures and whether each covers the shock's maximum."""
    res: dict[str, Any] = {"n_shards": int(data["kn"].size), "n_samples": int(data["rho_ratio"].size)}
    if data["kn"].size:
        res["kn_min"], res["kn_max"] = float(data["kn"].min()), float(data["kn"].max())
    for k in ("rho_ratio", "T_ratio", "du", "sigma_p", "q_p"):
        if data[k].size:
            res[f"{k}_max"] = float(data[k].max())
            res[f"{k}_p99"] = float(np.quantile(data[k], 0.99))
        if shock is not None:
            res[f"shock_{k}_max"] = float(np.max(shock[k]))
            if data[k].size:
                res[f"covers_shock_{k}"] = bool(data[k].max() >= np.max(shock[k]))
    return res


def plot_coverage(data: dict[str, NDArray], shock: dict[str, Any] | None, path: str | os.PathLike,
                  title: str = "") -> Path:
    """Write the coverage figure (2 × 3 panels) to ``path``; histograms are densities so that the
    dataset (filled) and the shock profile (black step) compare in shape."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from kinclose.io import atomic_savefig
    from kinclose.plotting import STYLE

    with plt.rc_context(STYLE):
        fig, axs = plt.subplots(2, 3, figsize=(11, 6.5))
        ax = axs[0, 0]
        if data["kn"].size:
            bins = np.logspace(-3.5, 1.5, 21)
            ax.hist(data["kn"], bins=bins, color="tab:blue", alpha=0.7)
        ax.set_xscale("log")
        ax.set_xlabel(r"$\varepsilon = \lambda_{ref}/L$ (per shard)")
        ax.set_ylabel("shards")
        ax.set_title("Knudsen number")

        panels = [
            (axs[0, 1], "rho_ratio", r"$\rho/\min_x\rho$ (shock: $\rho/\rho_1$)", False),
            (axs[0, 2], "T_ratio", r"$T/\min_x T$ (shock: $T/T_1$)", False),
            (axs[1, 0], "sigma_p", r"$|\sigma|/p$", True),
            (axs[1, 1], "q_p", r"$|q|/(p\sqrt{T})$", True),
        ]
        for ax, key, label, logx in panels:
            d = data[key]
            hi = max(float(d.max()) if d.size else 1.0, float(np.max(shock[key])) if shock else 1.0)
            if logx:
                bins = np.logspace(math.log10(FLOOR), math.log10(max(hi, 10 * FLOOR)) + 0.05, 41)
                ax.set_xscale("log")
                clip = (lambda a: np.maximum(a, FLOOR))
            else:
                bins = np.linspace(1.0, hi * 1.02, 41)
                clip = (lambda a: a)
            if d.size:
                ax.hist(clip(d), bins=bins, density=True, color="tab:blue", alpha=0.6, label="dataset")
            if shock is not None:
                ax.hist(clip(shock[key]), bins=bins, density=True, histtype="step", color="black",
                        label=f"Mach {shock['mach']:g} shock (DVM)")
                ax.axvline(float(np.max(shock[key])), color="black", linestyle="--", linewidth=1)
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("density")
        axs[0, 1].legend(loc="upper right", fontsize=7)

        ax = axs[1, 2]
        if data["rho_ratio"].size:
            h = ax.hist2d(data["rho_ratio"], data["T_ratio"], bins=40, cmap="Blues", cmin=1,
                          norm=matplotlib.colors.LogNorm())
            fig.colorbar(h[3], ax=ax, label="samples")
        if shock is not None:
            ax.plot(shock["rho_ratio"], shock["T_ratio"], color="black", label="shock profile")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_xlabel(r"$\rho/\min_x\rho$")
        ax.set_ylabel(r"$T/\min_x T$")
        du = data["du"]
        txt = rf"$(\max_x u-\min_x u)/\sqrt{{\min_x T}}$: data max {du.max():.2f}" if du.size else ""
        if shock is not None:
            txt += f", shock {float(shock['du'][0]):.2f}"
        ax.set_title(txt, fontsize=8)
        fig.suptitle(title or "dataset coverage")
        fig.tight_layout()
        out = atomic_savefig(fig, path)
        plt.close(fig)
    return Path(out)


def coverage_report(root: str | os.PathLike, path: str | os.PathLike, shock: dict[str, Any] | None = None,
                    shock_options: dict[str, Any] | None = None, title: str = "") -> dict[str, Any]:
    """Measure the dataset in ``root``, compute the shock overlay (unless given; ``shock_options``
    are passed to :func:`shock_measures`, ``None`` options → no overlay), write the figure to
    ``path`` and return :func:`coverage_numbers`."""
    data = dataset_measures(root)
    if shock is None and shock_options is not None:
        shock = shock_measures(**shock_options)
    plot_coverage(data, shock, path, title=title)
    nums = coverage_numbers(data, shock)
    if shock is not None:
        nums["shock_converged"] = shock["converged"]
    return nums
