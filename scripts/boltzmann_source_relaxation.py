"""Space-homogeneous relaxation: learned collision source vs the Boltzmann operator (issue 9).

A uniform gas whose distribution is a mixture of two 3D Maxwellians drifting along v1 (zero net
momentum; it has a normal stress σ and a heat flux q) relaxes by collisions only. Reference: the
Boltzmann DVM (hard spheres, N = 16, the box/tolerances of conf/dataset/boltzmann_small.yaml) on a
periodic, uniform 4-cell domain (transport is then exactly zero). Reduced: dW/dt = ν R̂(W),
ν = ρ T^{1−ω}/μ_ref, from W(0) = Ψ(shape of the initial g, h) (cubic interpolation), integrated by
RK4 with 400 steps, for the learned source (ensemble mean) and for the BGK source R̂ = W_eq − W.
With the stress/heat moments model (W_0 = 1 + σ/(ρT), W_1 = q/(ρT^{3/2})) σ̂, q̂ are read off W.

    python scripts/boltzmann_source_relaxation.py --moments M.pt --source S.pt --out results/boltzmann_source_relaxation

Writes ``<out>.json`` and ``<out>.md`` (max |error| of σ̂(t), q̂(t) over t ∈ [0, 3/ν], per case).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
import yaml
from importlib.resources import files

from kinclose.io import atomic_write_json, atomic_write_text

CASES = [  # (w1, u1, T1, T2): weight, drift and temperature of the first Maxwellian; the second balances momentum
    (0.5, 0.5, 1.0, 1.0),
    (0.3, 0.8, 0.8, 1.2),
    (0.7, -0.4, 1.3, 0.7),
    (0.5, 0.3, 1.4, 0.8),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moments", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--nu", type=float, default=10.0, help="collision rate ν of the initial state")
    ap.add_argument("--out", default="results/boltzmann_source_relaxation")
    a = ap.parse_args(argv)

    import torch

    from kinclose.closure.source import LearnedSource, collision_rate
    from kinclose.kinetic.boltzmann_dvm import BoltzmannDVMSolver, box_for_states
    from kinclose.moments.shape import primitive_from_gh, to_shape
    from kinclose.moments.train import load_checkpoint

    ds = yaml.safe_load((files("kinclose.conf") / "dataset" / "boltzmann_small.yaml").read_text())
    bz = ds["boltzmann"]
    omega = float(ds["omega"])
    moments, _ = load_checkpoint(a.moments)
    if not getattr(moments.encoder, "n_fixed", 0) == 2:
        raise SystemExit("this script needs a stress/heat moments model (stage.stress_heat_moments=true)")
    src = LearnedSource.from_checkpoint(a.source)
    w_eq = moments.w_eq().detach().numpy()
    grid = moments.grid
    res = {"command": " ".join(shlex.quote(x) for x in ["python", *sys.argv]), "cases": []}
    lines = ["# Space-homogeneous relaxation: learned source vs Boltzmann (hard spheres, N = 16)", "",
             "max over t ∈ [0, 3/ν] of |σ̂ − σ̂_Boltzmann| and |q̂ − q̂_Boltzmann| (σ̂ = σ/(ρT), q̂ = q/(ρT^{3/2})), "
             "and the initial |σ̂|, |q̂| for scale.", "", "Command:", "", "```", res["command"], "```", "",
             "| case (w1, u1, T1, T2) | σ̂(0) | q̂(0) | learned: σ̂ err | learned: q̂ err | BGK: σ̂ err | BGK: q̂ err |",
             "|---|---|---|---|---|---|---|"]
    for w1, u1, T1, T2 in CASES:
        w2 = 1.0 - w1
        u2 = -w1 * u1 / w2
        L, c1 = box_for_states([u1, u2], [T1 * float(ds["T_margin"]), T2 * float(ds["T_margin"])],
                               float(ds["v_width"]))
        s0 = BoltzmannDVMSolver(0.0, 1.0, 4, int(bz["n"]), L, c1, 1.0, omega, "periodic", 0.5, "mc",
                                n_dirs=int(bz["n_dirs"]), grid_rtol=float(bz["grid_rtol"]), tail_tol=float(bz["tail_tol"]))
        f = w1 * s0.maxwellians(1.0, u1, T1)[0] + w2 * s0.maxwellians(1.0, u2, T2)[0]
        g0, h0 = None, None
        s0.set_distribution(np.repeat(f[None], 4, 0))
        g0, h0 = s0.reduced()
        v, dv = s0.v1d[0], s0.h
        rho, u, T = (x[0] for x in primitive_from_gh(g0[:1], h0[:1], v, dv))
        mu_ref = rho * T ** (1 - omega) / a.nu
        s = BoltzmannDVMSolver(0.0, 1.0, 4, int(bz["n"]), L, c1, mu_ref, omega, "periodic", 0.5, "mc",
                               n_dirs=int(bz["n_dirs"]), grid_rtol=float(bz["grid_rtol"]), tail_tol=float(bz["tail_tol"]))
        s.set_distribution(np.repeat(f[None], 4, 0))
        t_end = 3.0 / a.nu
        ts, sig, q = [0.0], [], []
        fl = s.fields_array()[0]
        sig.append(fl[3] / (fl[0] * fl[2]))
        q.append(fl[4] / (fl[0] * fl[2] ** 1.5))
        while s.t < t_end - 1e-12:
            s.step(min(s.dt_max, t_end - s.t))
            fl = s.fields_array()[0]
            ts.append(s.t)
            sig.append(fl[3] / (fl[0] * fl[2]))
            q.append(fl[4] / (fl[0] * fl[2] ** 1.5))
        ts, sig, q = np.array(ts), np.array(sig), np.array(q)
        G, H, *_ = to_shape(g0[:1], h0[:1], v, dv, grid, "cubic")
        with torch.no_grad():
            W0 = moments.encoder(torch.as_tensor(G), torch.as_tensor(H)).numpy()[0]
        nu = float(collision_rate(rho, T, mu_ref, omega))
        out = {}
        for name, rate in (("learned", lambda W: src.rate(W[None])[0]), ("bgk", lambda W: w_eq - W)):
            n_steps = 400
            h = t_end / n_steps
            W = W0.copy()
            tr, Ws = [0.0], [W.copy()]
            for i in range(n_steps):
                k1 = nu * rate(W)
                k2 = nu * rate(W + 0.5 * h * k1)
                k3 = nu * rate(W + 0.5 * h * k2)
                k4 = nu * rate(W + h * k3)
                W = W + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
                tr.append((i + 1) * h)
                Ws.append(W.copy())
            Ws = np.array(Ws)
            s_red = np.interp(ts, tr, Ws[:, 0] - 1.0)
            q_red = np.interp(ts, tr, Ws[:, 1])
            out[name] = {"sigma_err": float(np.abs(s_red - sig).max()), "q_err": float(np.abs(q_red - q).max())}
        case = {"w1": w1, "u1": u1, "T1": T1, "T2": T2, "sigma0": float(sig[0]), "q0": float(q[0]),
                "W0_sigma_hat": float(W0[0] - 1), "W0_q_hat": float(W0[1]), "nu": nu, **out,
                "t": ts.tolist(), "sigma_boltzmann": sig.tolist(), "q_boltzmann": q.tolist()}
        res["cases"].append(case)
        lines.append(f"| ({w1}, {u1}, {T1}, {T2}) | {sig[0]:.4f} | {q[0]:.4f} | {out['learned']['sigma_err']:.4f} | "
                     f"{out['learned']['q_err']:.4f} | {out['bgk']['sigma_err']:.4f} | {out['bgk']['q_err']:.4f} |")
        print(lines[-1], flush=True)
    p = Path(a.out)
    atomic_write_json(p.with_suffix(".json"), res)
    atomic_write_text(p.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
