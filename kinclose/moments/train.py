"""Training of the generalized-moment autoencoder (DESIGN §5): ``train_moments(cfg) -> artefacts``.

Data: HDF5 shards of the labeling schema (version 1; see ``load_dataset``); every cell (snapshot,
x) is one sample. Its shape (ĝ, ĥ) on the ξ grid and shape entropy η̂ are computed by
``kinclose.moments.shape``. Loss, per sample (all in invariant shape variables):

    ‖(ĝ, ĥ) − Φ(Ψ(ĝ, ĥ))‖² + λ_η (η̂(f) − η̂(Φ(Ψ(f))))²,   ‖(a, b)‖² = ∫ (a² + b²) dξ,

the invariant form of E‖f − Φ(Ψ(f))‖² + λ_η (η(f) − η_Φ)²: the physical errors are these times
ρ²/√T (g part), ρ²√T (h part) and ρ (entropy, η = ρ[η̂ + ln ρ − 1.5 ln T]). Adam with a cosine
learning-rate decay; the final parameters are kept (``stage.keep_best`` restores those of the
lowest validation loss instead — then the reported validation errors are optimistic).

Artefacts in the run directory: ``moments.pt`` (checkpoint), ``metrics.json``,
``learning_curve.png``, ``reconstructions.png`` (typical = median and worst validation cells).

Checkpoints hold state_dict, constructor kwargs, class name, model version, package version, data
schema version and dataset hash; they are written atomically and read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose import __version__
from kinclose.data.schema import MANIFEST
from kinclose.data.schema import SCHEMA_VERSION as DATA_SCHEMA_VERSION
from kinclose.data.schema import ShardError, content_hash, sha256_file
from kinclose.data.schema import read_manifest as read_checked_manifest
from kinclose.io import atomic_savefig, atomic_write, atomic_write_json
from kinclose.moments.shape import (
    VelocityCoverageError,
    XiGrid,
    coverage,
    full_entropy,
    entropy_from_shape,
    shape_entropy,
    shape_moments,
    to_shape,
)

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "kinclose.moments.autoencoder"
CHECKPOINT_NAME = "moments.pt"


class DatasetError(ValueError):
    """The dataset cannot be used: missing, wrong schema, corrupted."""


class CheckpointError(ValueError):
    """The checkpoint cannot be used: corrupted, not ours, or from another model/schema version."""


# ====================================================================== data
@dataclass
class ShapeData:
    """Samples (cells) as invariant shapes.

    G, H : (N, n_xi) shapes ĝ, ĥ; eta : (N,) η̂ of the shape on the ξ grid; rho, u, T : (N,);
    kn : (N,) Knudsen number of the sample's shard; shard : (N,) shard index in the manifest;
    eta_full : (N,) reduced entropy η of the full f on its stored grid.
    raw : per shard, in manifest order, (v (nv,), dv, g (n_s, nv), h (n_s, nv)) as stored, for the cells
    kept (only with ``load_dataset(..., keep_raw=True)``; ``subset`` drops it).
    """

    G: NDArray
    H: NDArray
    eta: NDArray
    rho: NDArray
    u: NDArray
    T: NDArray
    kn: NDArray
    shard: NDArray
    eta_full: NDArray
    info: dict = field(default_factory=dict)
    raw: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.G.shape[0])

    def subset(self, idx: NDArray) -> "ShapeData":
        return ShapeData(self.G[idx], self.H[idx], self.eta[idx], self.rho[idx], self.u[idx], self.T[idx],
                         self.kn[idx], self.shard[idx], self.eta_full[idx], dict(self.info))


def open_shard(root: Path, entry: dict, verify_checksums: bool = True) -> Any:
    """The shard of manifest ``entry`` as an open (read-only) h5py File, after checking that it exists and
    (with ``verify_checksums``) that its sha256 matches the manifest; :class:`DatasetError` otherwise."""
    import h5py

    path = Path(root) / entry["file"]
    if not path.is_file():
        raise DatasetError(f"shard {path} listed in the manifest is missing; relabel it or fix the manifest")
    if verify_checksums and entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise DatasetError(f"shard {path}: sha256 differs from the manifest (corrupted or modified file); "
                           "relabel this shard")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"cannot open shard {path} as HDF5 ({e}); relabel this shard") from e


def read_manifest(root: str | Path) -> tuple[dict, str]:
    """(manifest, dataset hash) of a dataset with at least one shard: the manifest checked by
    :func:`kinclose.data.schema.read_manifest`, its errors raised as :class:`DatasetError`; the hash identifies the
    data, not the files (``kinclose.data.schema.content_hash``: the same tasks relabeled give the same hash)."""
    try:
        man = read_checked_manifest(root)
    except ShardError as e:
        raise DatasetError(str(e)) from e
    if not man["shards"]:
        raise DatasetError(f"{Path(root) / MANIFEST} lists no shards; the labeling produced no complete shard yet")
    return man, content_hash(root, man["shards"])


def load_dataset(
    root: str | Path,
    grid: XiGrid,
    method: str = "logcubic",
    max_samples_per_shard: int | None = None,
    seed: int = 0,
    verify_checksums: bool = True,
    keep_raw: bool = False,
) -> ShapeData:
    """Read every shard of the manifest, normalize each cell to its shape on ``grid``; with ``keep_raw``
    also keep the stored distributions of the cells (``ShapeData.raw``).

    Stops with :class:`DatasetError` (schema, checksum, layout) or :class:`VelocityCoverageError`
    (counts of uncovered cells over the whole dataset and the fix) before any training.
    """
    root = Path(root)
    man, dhash = read_manifest(root)
    rng = np.random.default_rng(seed)
    parts: list[tuple] = []
    raw: list[tuple] = []
    bad_total, n_total, bad_shards, n_nonpos, min_rel = 0, 0, [], 0, math.inf
    xi_cov = math.inf
    v_lo, v_hi = math.inf, -math.inf
    for si, entry in enumerate(man["shards"]):
        path = root / entry["file"]
        with open_shard(root, entry, verify_checksums) as f:
            ver = f.attrs.get("schema_version")
            if ver is None or int(ver) != DATA_SCHEMA_VERSION:
                raise DatasetError(f"shard {path}: schema_version {ver!r}, this code reads {DATA_SCHEMA_VERSION}")
            for key in ("v", "g", "h"):
                if key not in f:
                    raise DatasetError(f"shard {path} has no /{key} dataset (schema {DATA_SCHEMA_VERSION} needs /x, "
                                       "/v, /t, /g, /h, /U, /fields)")
            v = f["v"][:]
            dv = float(f["v"].attrs.get("dv", v[1] - v[0]))
            if not np.allclose(np.diff(v), dv, rtol=1e-9, atol=0):
                raise DatasetError(f"shard {path}: /v is not uniform with spacing dv={dv}")
            nv = v.size
            g = f["g"][:].reshape(-1, nv)
            h = f["h"][:].reshape(-1, nv)
            kn = float(f.attrs.get("kn", entry.get("kn", math.nan)))
        if max_samples_per_shard and g.shape[0] > max_samples_per_shard:
            idx = np.sort(rng.choice(g.shape[0], size=int(max_samples_per_shard), replace=False))
            g, h = g[idx], h[idx]
        # the DVM may leave isolated, tiny negative values in far tails; count them (to_shape floors them)
        n_nonpos += int((g <= 0).sum() + (h <= 0).sum())
        min_rel = min(min_rel, float((g / g.max(1, keepdims=True)).min()), float((h / h.max(1, keepdims=True)).min()))
        G, H, rho, u, T = to_shape(g, h, v, dv, grid, method, check=False)
        rep = coverage(u, T, v, grid)
        n_total += rep["n_cells"]
        xi_cov = min(xi_cov, rep["xi_max_covered"])
        v_lo, v_hi = min(v_lo, rep["v_needed"][0]), max(v_hi, rep["v_needed"][1])
        if rep["n_bad"]:
            bad_total += rep["n_bad"]
            bad_shards.append(f"{entry['file']} ({rep['n_bad']}/{rep['n_cells']})")
        parts.append((G, H, shape_entropy(G, H, grid), rho, u, T, np.full(rho.size, kn), np.full(rho.size, si),
                      full_entropy(g, h, dv)))
        if keep_raw:
            raw.append((v, dv, g, h))
    if bad_total:
        raise VelocityCoverageError(
            f"dataset {root}: {bad_total} of {n_total} cells (in {len(bad_shards)} shards: "
            f"{', '.join(bad_shards[:5])}{' …' if len(bad_shards) > 5 else ''}) are not covered by their shard's "
            f"velocity grid: the xi grid [-{grid.xi_max:g}, {grid.xi_max:g}] mapped to u + sqrt(T) xi leaves the stored "
            f"nodes /v. Fix: relabel with velocity grids covering u ± {grid.xi_max:g} sqrt(T) of every cell (all "
            f"together need about [{v_lo:.4g}, {v_hi:.4g}]; e.g. a larger T margin/width of the labeling grid), or "
            f"lower stage.xi_max to <= {max(xi_cov, 0):.3g}, which every cell covers."
        )
    if n_nonpos:
        log.warning("dataset %s: %d stored g/h values are <= 0 (most negative %.2e of its cell's maximum); "
                    "they are floored in the shapes", root, n_nonpos, min_rel)
    cat = [np.concatenate(p) for p in zip(*parts)]
    data = ShapeData(*cat, raw=raw)
    defect = shape_moments(data.G, data.H, grid) - np.array([1.0, 0.0, 3.0])
    eta_consistency = np.abs(entropy_from_shape(data.eta, data.rho, data.T) - data.eta_full) / data.rho
    data.info = {
        "root": str(root), "dataset_hash": dhash, "schema_version": DATA_SCHEMA_VERSION,
        "n_shards": len(man["shards"]), "n_samples": len(data), "xi_max_covered": xi_cov,
        "n_nonpositive_values": n_nonpos, "min_relative_value": min_rel,
        # how much of the exact invariants the sampled shape misses (ξ window + interpolation)
        "shape_defect_max": np.abs(defect).max(0).tolist(),
        "shape_defect_mean": np.abs(defect).mean(0).tolist(),
        # |η/ρ from the shape − η/ρ on the stored grid|: the data entropy the ξ window loses
        "eta_window_error_max": float(np.nanmax(eta_consistency)),
        "eta_window_error_mean": float(np.nanmean(eta_consistency)),
        "n_cells_full_entropy_undefined": int(np.isnan(data.eta_full).sum()),  # h <= 0 where g > 0
    }
    return data


def split(data: ShapeData, val_fraction: float, seed: int, how: str = "auto") -> tuple[NDArray, NDArray, str]:
    """Indices (train, val): held-out shards ("shard", default when ≥ 5 shards) or random cells ("cell")."""
    rng = np.random.default_rng(seed + 7919)
    shards = np.unique(data.shard)
    if how == "auto":
        how = "shard" if shards.size >= 5 else "cell"
    if how == "shard":
        n_val = max(1, int(round(val_fraction * shards.size)))
        # stratify by Knudsen number: sort shards by ε and take evenly spaced ones
        kn_of = np.array([data.kn[data.shard == s][0] for s in shards])
        order = shards[np.argsort(kn_of)]
        pick = order[((np.arange(n_val) + 0.5) * order.size / n_val).astype(int)]
        is_val = np.isin(data.shard, pick)
    elif how == "cell":
        is_val = np.zeros(len(data), dtype=bool)
        is_val[rng.choice(len(data), size=max(1, int(round(val_fraction * len(data)))), replace=False)] = True
    else:
        raise ValueError(f"unknown split {how!r}; choose auto, shard or cell")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val), how


# ====================================================================== model I/O
def save_checkpoint(path: str | Path, model: Any, dataset_hash: str, extra: dict | None = None) -> Path:
    """Atomically write the checkpoint (torch.save to a temp file in the same folder, then os.replace)."""
    import torch

    from kinclose.moments.decoders import MODEL_VERSION

    obj = {
        "format": CHECKPOINT_FORMAT,
        "class": type(model).__name__,
        "model_version": MODEL_VERSION,
        "kwargs": dict(model.kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "package_version": __version__,
        "data_schema_version": DATA_SCHEMA_VERSION,
        "dataset_hash": str(dataset_hash),
        "extra": json.loads(json.dumps(extra or {}, default=float)),
    }
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), suffix=".pt")


def load_checkpoint(path: str | Path, map_location: str = "cpu", dataset_hash: str | None = None):
    """(model in eval mode, metadata dict) from a checkpoint, loaded with ``weights_only=True``.

    Raises :class:`CheckpointError` for unreadable files, foreign objects, another model version or
    data schema version, and (if ``dataset_hash`` is given) another dataset.
    """
    import torch

    from kinclose.moments.decoders import MODEL_VERSION, MomentAutoencoder

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one with `kinclose-train stage=moments`")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, zipfile errors …
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupted or truncated, or not a torch "
                              f"checkpoint ({type(e).__name__}: {str(e)[:200]}); retrain or restore it") from e
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a kinclose moments checkpoint (format "
                              f"{obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r})")
    if obj.get("model_version") != MODEL_VERSION:
        raise CheckpointError(f"{path} was written for model version {obj.get('model_version')!r} (package "
                              f"{obj.get('package_version')}), this code has model version {MODEL_VERSION}; "
                              "retrain with `kinclose-train stage=moments` or use the matching kinclose version")
    if obj.get("data_schema_version") != DATA_SCHEMA_VERSION:
        raise CheckpointError(f"{path} was trained on data schema version {obj.get('data_schema_version')!r}, "
                              f"this code reads schema version {DATA_SCHEMA_VERSION}; retrain on relabeled data")
    if obj.get("class") != MomentAutoencoder.__name__:
        raise CheckpointError(f"{path} holds a {obj.get('class')!r}, expected {MomentAutoencoder.__name__!r}")
    if dataset_hash is not None and obj.get("dataset_hash") != dataset_hash:
        raise CheckpointError(f"{path} was trained on dataset {obj.get('dataset_hash')!r}, not {dataset_hash!r}")
    if obj.get("package_version") != __version__:
        log.warning("checkpoint %s was written by kinclose %s, this is %s", path, obj.get("package_version"),
                    __version__)
    try:
        model = MomentAutoencoder(**obj["kwargs"])
        model.load_state_dict(obj["state_dict"], strict=True)
    except (TypeError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: weights do not fit the model they claim ({e}); the checkpoint is "
                              "inconsistent, retrain it") from e
    model.to(map_location).eval()
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return model, meta


# ====================================================================== training
def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} requested but CUDA is not available; use device=auto or cpu")
    return name


def _tensors(data: ShapeData, device: str):
    import torch

    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=device)  # noqa: E731
    return t(data.G), t(data.H), t(data.eta)


def batch_loss(model, G, H, eta, lambda_eta: float, relative: bool = False):
    """(mean loss, per-sample reconstruction term, per-sample entropy term, model output).

    Loss per sample ‖Δ(ĝ, ĥ)‖² + λ_η Δη̂², or with ``relative`` ‖Δ(ĝ, ĥ)‖²/‖(ĝ, ĥ)‖² + λ_η Δη̂² (the square
    of the reported relative L2 error); the returned reconstruction term is ‖Δ(ĝ, ĥ)‖² either way."""
    out = model(G, H)
    dxi = model.grid.dxi
    rec = ((out["G"] - G) ** 2 + (out["H"] - H) ** 2).sum(-1) * dxi
    ent = (out["eta"] - eta) ** 2
    fit_term = rec / ((G ** 2 + H ** 2).sum(-1) * dxi) if relative else rec
    return (fit_term + lambda_eta * ent).mean(), rec, ent, out


def evaluate(model, data: ShapeData, lambda_eta: float = 0.0, batch_size: int = 4096, device: str = "cpu") -> dict:
    """Per-sample errors on ``data``: rel_l2 = ‖Δ(ĝ, ĥ)‖/‖(ĝ, ĥ)‖ (equal to the relative L2 error of
    (g, h/T) in v), eta_abs = |η̂ − η̂_Φ| (= |η − η_Φ|/ρ), loss, W, decoded G, H."""
    import torch

    model.eval()
    Gs, Hs, es = _tensors(data, device)
    res: dict[str, list] = {"rel_l2": [], "eta_abs": [], "loss": [], "W": [], "G": [], "H": []}
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            G, H, e = Gs[i:i + batch_size], Hs[i:i + batch_size], es[i:i + batch_size]
            _, rec, ent, out = batch_loss(model, G, H, e, lambda_eta)
            norm = ((G**2 + H**2).sum(-1) * model.grid.dxi)
            res["rel_l2"].append(torch.sqrt(rec / norm))
            res["eta_abs"].append(torch.sqrt(ent))
            res["loss"].append(rec + lambda_eta * ent)
            res["W"].append(out["W"])
            res["G"].append(out["G"])
            res["H"].append(out["H"])
    return {k: torch.cat(v).cpu().numpy() for k, v in res.items()}


def summarize(ev: dict, kn: NDArray) -> dict:
    """Aggregate errors overall and per ε decade [10^k, 10^{k+1})."""
    def agg(mask: NDArray) -> dict:
        r = ev["rel_l2"][mask]
        e = ev["eta_abs"][mask]
        return {"n": int(mask.sum()), "rel_l2_mean": float(r.mean()), "rel_l2_rms": float(np.sqrt((r**2).mean())),
                "rel_l2_median": float(np.median(r)), "rel_l2_p95": float(np.percentile(r, 95)),
                "rel_l2_max": float(r.max()), "eta_abs_mean": float(e.mean()), "eta_abs_max": float(e.max()),
                "loss_mean": float(ev["loss"][mask].mean())}

    out = {"all": agg(np.ones(kn.size, dtype=bool)), "per_decade": {}}
    dec = np.floor(np.log10(kn) + 1e-12).astype(int)
    for d in np.unique(dec):
        out["per_decade"][f"1e{d:+d}"] = agg(dec == d)
    return out


def fit(model, train: ShapeData, val: ShapeData, *, epochs: int, batch_size: int, lr: float, lambda_eta: float,
        seed: int = 0, device: str = "cpu", lr_final_factor: float = 0.05, keep_best: bool = False,
        progress: bool | None = None, log_every_s: float = 30.0, relative_loss: bool = False) -> dict:
    """Adam on the autoencoder loss (``relative_loss``: the per-sample relative one, :func:`batch_loss`);
    returns the history (per epoch: losses, validation mean rel L2).

    ``keep_best`` restores the parameters of the lowest validation loss at the end (early stopping);
    leave it off when ``val`` is also the set the errors are reported on, or the report is biased.
    """
    import torch
    from tqdm.auto import tqdm

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    model.to(device)
    Gt, Ht, et = _tensors(train, device)
    Gv, Hv, ev = _tensors(val, device)
    with torch.no_grad():
        model.set_input_scale(model.encode(Gt, Ht))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * lr_final_factor)
    hist: dict[str, list] = {"epoch": [], "train_loss": [], "val_loss": [], "val_rel_l2": [], "lr": [], "wall_s": []}

    def val_loss() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            tot, rl = 0.0, 0.0
            for i in range(0, Gv.shape[0], 4096):
                loss, rec, _, _ = batch_loss(model, Gv[i:i + 4096], Hv[i:i + 4096], ev[i:i + 4096], lambda_eta,
                                             relative_loss)
                n = rec.shape[0]
                tot += float(loss) * n
                norm = (Gv[i:i + 4096] ** 2 + Hv[i:i + 4096] ** 2).sum(-1) * model.grid.dxi
                rl += float(torch.sqrt(rec / norm).sum())
        return tot / Gv.shape[0], rl / Gv.shape[0]

    v0, r0 = val_loss()
    hist["epoch"].append(0)
    hist["train_loss"].append(float("nan"))
    hist["val_loss"].append(v0)
    hist["val_rel_l2"].append(r0)
    hist["lr"].append(lr)
    hist["wall_s"].append(0.0)
    best = (v0, {k: v.detach().clone() for k, v in model.state_dict().items()}, 0)
    t0 = time.perf_counter()
    last = t0
    n = Gt.shape[0]
    for ep in tqdm(range(1, epochs + 1), disable=None if progress is None else not progress, desc="train", leave=False):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        tot = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss, _, _, _ = batch_loss(model, Gt[idx], Ht[idx], et[idx], lambda_eta, relative_loss)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {ep}; lower the learning rate "
                                         f"(stage.lr={lr}) or lambda_eta")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * idx.numel()
        sched.step()
        vl, vr = val_loss()
        hist["epoch"].append(ep)
        hist["train_loss"].append(tot / n)
        hist["val_loss"].append(vl)
        hist["val_rel_l2"].append(vr)
        hist["lr"].append(opt.param_groups[0]["lr"])
        hist["wall_s"].append(time.perf_counter() - t0)
        if vl < best[0]:
            best = (vl, {k: v.detach().clone() for k, v in model.state_dict().items()}, ep)
        now = time.perf_counter()
        if now - last > log_every_s or ep == epochs:
            log.info("epoch %d/%d: train loss %.4e, val loss %.4e, val rel L2 %.4e", ep, epochs, tot / n, vl, vr)
            last = now
    if keep_best:
        model.load_state_dict(best[1])
    hist["best_epoch"] = best[2]
    hist["kept_epoch"] = best[2] if keep_best else epochs
    return hist


# ====================================================================== plots
def plot_learning_curve(hist: dict, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kinclose.plotting import use_style

    use_style()
    fig, axs = plt.subplots(1, 2, figsize=(8, 3.2))
    ep = np.asarray(hist["epoch"])
    axs[0].semilogy(ep[1:], np.asarray(hist["train_loss"])[1:], label="train")
    axs[0].semilogy(ep, hist["val_loss"], label="validation")
    axs[0].axvline(hist.get("best_epoch", ep[-1]), color="0.6", lw=0.8, ls=":")
    axs[0].set_xlabel("epoch")
    axs[0].set_ylabel("loss")
    axs[0].legend()
    axs[1].semilogy(ep, hist["val_rel_l2"], color="tab:red")
    axs[1].set_xlabel("epoch")
    axs[1].set_ylabel("validation mean relative L2 error")
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def plot_reconstructions(data: ShapeData, ev: dict, grid: XiGrid, path: Path, title: str = "") -> None:
    """Data vs decoded shapes for the typical (median error) and the worst validation cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kinclose.plotting import use_style

    use_style()
    r = ev["rel_l2"]
    cases = [("typical (median)", int(np.argsort(r)[r.size // 2])), ("worst", int(np.argmax(r)))]
    fig, axs = plt.subplots(2, 2, figsize=(8, 5.5), sharex=True)
    xi = grid.xi
    for row, (name, i) in enumerate(cases):
        for col, (lab, D, R) in enumerate((("ĝ", data.G, ev["G"]), ("ĥ", data.H, ev["H"]))):
            ax = axs[row, col]
            ax.plot(xi, D[i], color="black", label="data (DVM)")
            ax.plot(xi, R[i], color="tab:red", ls="--", label="reconstruction")
            ax.set_ylabel(f"{lab}(ξ)")
            ax.set_title(f"{name}: ε={data.kn[i]:.3g}, rel. L2 {r[i]:.2e}, |Δη̂| {ev['eta_abs'][i]:.1e}", fontsize=8)
            if row == 1:
                ax.set_xlabel("ξ = (v1 − u)/√T")
    axs[0, 0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


# ====================================================================== stage
def build_from_cfg(stage: Any):
    from kinclose.moments.decoders import MomentAutoencoder

    return MomentAutoencoder(
        encoder=str(stage.model), M=int(stage.M), xi_max=float(stage.xi_max), n_xi=int(stage.n_xi),
        encoder_hidden=list(stage.encoder_hidden), decoder_hidden=list(stage.decoder_hidden),
        hermite_basis=str(stage.hermite_basis), tau_min=float(stage.tau_min),
        stress_heat_moments=bool(stage.get("stress_heat_moments", False)),
        flux_moments=bool(stage.get("flux_moments", False)),
    )


def train_moments(cfg: Any, run_dir: str | Path | None = None) -> dict:
    """Train the autoencoder described by ``cfg`` (kinclose/conf/train.yaml, stage=moments) and write
    the artefacts into ``run_dir`` (default ``cfg.run_dir``). Returns the metrics dict."""
    import torch
    from omegaconf import OmegaConf

    st = cfg.stage
    run_dir = Path(run_dir if run_dir is not None else cfg.get("run_dir", "outputs/train/moments"))
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.seed)
    device = resolve_device(str(cfg.device))
    if device == "cpu" and cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    grid = XiGrid(float(st.xi_max), int(st.n_xi))
    data = load_dataset(cfg.data.root, grid, str(st.interpolation), cfg.data.get("max_samples_per_shard"), seed,
                        bool(cfg.data.get("verify_checksums", True)))
    itr, iva, how = split(data, float(cfg.data.val_fraction), seed, str(cfg.data.get("split", "auto")))
    train, val = data.subset(itr), data.subset(iva)
    log.info("dataset %s: %d samples (%d train, %d validation, split by %s), load %.1f s", cfg.data.root, len(data),
             len(train), len(val), how, time.perf_counter() - t0)
    torch.manual_seed(seed)
    model = build_from_cfg(st)
    hist = fit(model, train, val, epochs=int(st.epochs), batch_size=int(st.batch_size), lr=float(st.lr),
               lambda_eta=float(st.lambda_eta), seed=seed, device=device,
               lr_final_factor=float(st.get("lr_final_factor", 0.05)), keep_best=bool(st.get("keep_best", False)))
    ev_val = evaluate(model, val, float(st.lambda_eta), device=device)
    ev_tr = evaluate(model, train, float(st.lambda_eta), device=device)
    metrics = {
        "stage": "moments", "model": str(st.model), "M": int(st.M), "hermite_basis": str(st.hermite_basis),
        "device": device, "seed": seed, "package_version": __version__, "data": data.info,
        "n_train": len(train), "n_val": len(val), "split": how,
        "first_val_loss": hist["val_loss"][0], "final_val_loss": float(ev_val["loss"].mean()),
        "first_train_loss": hist["train_loss"][1] if len(hist["train_loss"]) > 1 else None,
        "final_train_loss": float(ev_tr["loss"].mean()), "best_epoch": hist["best_epoch"],
        "kept_epoch": hist["kept_epoch"],
        "val": summarize(ev_val, val.kn), "train": summarize(ev_tr, train.kn),
        "W_eq": model.w_eq().detach().cpu().numpy().tolist(),
        "history": hist, "wall_s": time.perf_counter() - t0,
        "model_kwargs": model.kwargs, "config": OmegaConf.to_container(cfg, resolve=True),
    }
    model.to("cpu")
    save_checkpoint(run_dir / CHECKPOINT_NAME, model, data.info["dataset_hash"],
                    extra={"val_rel_l2_mean": metrics["val"]["all"]["rel_l2_mean"]})
    metrics["checkpoint"] = str(run_dir / CHECKPOINT_NAME)
    atomic_write_json(run_dir / "metrics.json", metrics)
    title = f"{st.model} M={st.M}" + (f" ({st.hermite_basis})" if st.model == "hermite" else "")
    plot_learning_curve(hist, run_dir / "learning_curve.png", title)
    plot_reconstructions(val, ev_val, grid, run_dir / "reconstructions.png", title)
    log.info("moments %s: validation rel L2 mean %.3e, |Δη̂| mean %.2e -> %s", title,
             metrics["val"]["all"]["rel_l2_mean"], metrics["val"]["all"]["eta_abs_mean"], run_dir)
    return metrics
