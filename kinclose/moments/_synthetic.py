"""Small synthetic BGK datasets in the labeling shard schema (for tests and quick comparisons).

This is *not* the labeling pipeline (kinclose.data); it writes the same fixed HDF5 layout so the
moment code can be exercised without it:

    manifest.json {"schema_version": 1, "package_version", "shards": [{"file", "task_id", "samples",
                   "sha256", "kn", "ic_kind"}, ...]}
    shard: attrs schema_version=1, kn, omega, collision, mu_ref, seed, package_version;
           /x (nx,), /v (nv,) attr dv, /t (nt,), /g, /h (nt, nx, nv), /U (nt, nx, 3), /fields (nt, nx, 5)

Initial data on the periodic unit interval: random smooth waves in ρ, u, T ("waves") plus,
for "jump", a smoothed Riemann-like jump; ε is the VHS Knudsen number of kinclose.physics
(λ_ref/L with (ρ, T) = (1, 1)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kinclose import __version__
from kinclose.data.schema import sha256_file
from kinclose.io import atomic_write, atomic_write_json
from kinclose.kinetic.grid import VelocityGrid
from kinclose.kinetic.moments import conserved
from kinclose.kinetic.solver import DVMSolver
from kinclose.physics import mu_ref_for_knudsen

SCHEMA_VERSION = 1


def random_initial_state(nx: int, rng: np.random.Generator, kind: str = "waves",
                         amplitude: float = 0.4) -> tuple[NDArray, NDArray, NDArray]:
    """(ρ, u, T), each (nx,), smooth random periodic waves (kind "waves") or waves plus a jump."""
    x = (np.arange(nx) + 0.5) / nx
    out = []
    for scale in (1.0, 0.0, 1.0):
        f = np.zeros(nx)
        for k in (1, 2, 3):
            f += amplitude / k * rng.uniform(-1, 1) * np.sin(2 * np.pi * k * x + rng.uniform(0, 2 * np.pi))
        out.append(scale + f if scale else f)
    rho, u, T = out
    if kind == "jump":
        # periodic smoothed square wave: two jumps of width ~ 1/(2π·8) per period
        step = 0.5 * (1.0 + np.tanh(8.0 * np.sin(2 * np.pi * (x - rng.uniform(0, 1)))))
        rho = rho * (1.0 + rng.uniform(0.5, 2.0) * step)
        T = T * (1.0 + rng.uniform(0.5, 2.0) * step)
    rho = np.maximum(rho, 0.2)
    T = np.maximum(T, 0.2)
    return rho, u, T


def write_shard(path: Path, task_id: int, kn: float, rng: np.random.Generator, nx: int = 32, nv: int = 64,
                nt: int = 4, t_end: float = 0.1, kind: str = "waves", omega: float = 0.5,
                T_margin: float = 2.0, crop: int = 0, seed: int = 0) -> dict:
    """Run the BGK DVM from a random Maxwellian state and write one shard; returns its manifest entry.

    ``crop`` > 0 removes that many velocity nodes on each side before writing (to produce a grid
    that does not cover the data, for tests).
    """
    rho, u, T = random_initial_state(nx, rng, kind)
    grid = VelocityGrid.for_states(u, T * T_margin, nv)
    mu_ref = mu_ref_for_knudsen(kn, omega)
    s = DVMSolver(0.0, 1.0, nx, grid, mu_ref, omega, "bgk", "periodic", 0.5, "mc", threads=1)
    s.set_maxwellian(rho, u, T)
    times = np.linspace(0.0, t_end, nt)
    gs, hs = [], []
    for t in times:
        s.run(float(t), progress=False)
        g, h = s.interior
        gs.append(g.copy())
        hs.append(h.copy())
    g = np.stack(gs)
    h = np.stack(hs)
    v = grid.v
    if crop:
        g, h, v = g[..., crop:-crop], h[..., crop:-crop], v[crop:-crop]
    U = conserved(g, h, v, grid.dv)
    from kinclose.kinetic.moments import fields as _fields

    fd = _fields(g, h, v, grid.dv)
    F = np.stack([fd[k] for k in ("rho", "u", "T", "sigma", "q")], axis=-1)

    def _write(tmp: str) -> None:
        import h5py

        with h5py.File(tmp, "w") as f:
            f.attrs.update({"schema_version": SCHEMA_VERSION, "kn": kn, "omega": omega, "collision": "bgk",
                            "mu_ref": mu_ref, "seed": seed, "package_version": __version__, "ic_kind": kind,
                            "bc": "periodic", "x_left": 0.0, "x_right": 1.0, "task_id": task_id, "noneq": False})
            f["x"] = s.x
            f["v"] = v
            f["v"].attrs["dv"] = grid.dv
            f["t"] = times
            f["g"] = g
            f["h"] = h
            f["U"] = U
            f["fields"] = F

    atomic_write(path, _write)
    return {"file": path.name, "task_id": task_id, "samples": int(nt * nx), "sha256": sha256_file(path),
            "kn": kn, "ic_kind": kind}


def write_dataset(root: str | Path, n_shards: int = 2, seed: int = 0, kn_range: tuple[float, float] = (1e-2, 1.0),
                  **shard_kwargs) -> Path:
    """Write ``n_shards`` shards with ε log-uniform in ``kn_range`` (alternating "waves"/"jump")
    and manifest.json into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lo, hi = np.log10(kn_range[0]), np.log10(kn_range[1])
    entries = []
    for i in range(n_shards):
        kn = float(10 ** (lo + (hi - lo) * (i + rng.uniform()) / n_shards))
        kind = "waves" if i % 2 == 0 else "jump"
        entries.append(write_shard(root / f"shard_{i:05d}.h5", i, kn, rng, kind=kind, seed=seed, **shard_kwargs))
    atomic_write_json(root / "manifest.json", {"schema_version": SCHEMA_VERSION, "package_version": __version__,
                                               "shards": entries})
    return root
