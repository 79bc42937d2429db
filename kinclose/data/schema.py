"""HDF5 shard layout (schema version 1), checksums and the dataset manifest — the one place that
writes and validates them (CONVENTIONS, Data).

Shard ``shard_<task_id:05d>.h5``
--------------------------------
Root attributes: ``schema_version`` (int, 1), ``package_version`` (str), ``config`` (JSON of the
task spec), ``seed`` (int), ``created`` (ISO 8601), ``kn`` (ε = λ_ref/L, VHS mean free path),
``omega``, ``collision``, ``mu_ref``, ``bc``, ``x_left``, ``x_right``, ``t_end``, ``ic_kind``;
extra: ``task_id``, ``nx``, ``nv``, ``data_sha256`` (SHA-256 of the raw bytes of the datasets in
``DATASETS`` order, a content checksum that the file carries itself), ``noneq`` and solver stats.

Datasets (float64)::

    /x       (nx,)          cell centres
    /v       (nv,)          velocity nodes, attribute ``dv`` (uniform weight)
    /t       (nt,)          snapshot times, t[0] = 0
    /g       (nt, nx, nv)   g = ∫ f dv2 dv3
    /h       (nt, nx, nv)   h = ∫ (v2² + v3²) f dv2 dv3
    /U       (nt, nx, 3)    (ρ, ρu, E) = Σ (g, v g, ½(v² g + h)) Δv
    /fields  (nt, nx, 5)    ρ, u, T, σ, q

Optional datasets (``OPTIONAL_DATASETS``; required when ``collision == "boltzmann"``, absent from
BGK/Shakhov shards, which therefore keep their layout and checksums)::

    /Qg      (nt, nx, nv)   Chu-reduced collision term Σ Q(f) Δv2Δv3
    /Qh      (nt, nx, nv)   Σ (v2² + v3²) Q(f) Δv2Δv3

They are appended, in this order, to the ``data_sha256`` content checksum when present.

Manifest ``manifest.json`` (dataset root), written atomically, complete shards only::

    {"schema_version": 1, "package_version": ..., "shards": [{"file": "shard_00000.h5", "task_id": 0,
     "samples": nt*nx, "sha256": "<hex of the file bytes>", "kn": ..., "ic_kind": ...}, ...]}

A shard is *complete* when it opens, validates against this layout and its ``data_sha256``
matches; a manifest entry is trusted only when the file's SHA-256 equals the recorded one.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinclose.io import atomic_write, atomic_write_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
DATASETS = ("x", "v", "t", "g", "h", "U", "fields")
OPTIONAL_DATASETS = ("Qg", "Qh")
"""Reduced collision terms; required for ``collision="boltzmann"`` shards (see the module docstring)."""
REQUIRES_COLLISION_TERMS = ("boltzmann",)
REQUIRED_ATTRS: dict[str, tuple[type, ...]] = {
    "schema_version": (int, np.integer),
    "package_version": (str,),
    "config": (str,),
    "seed": (int, np.integer),
    "created": (str,),
    "kn": (float, np.floating),
    "omega": (float, np.floating),
    "collision": (str,),
    "mu_ref": (float, np.floating),
    "bc": (str,),
    "x_left": (float, np.floating),
    "x_right": (float, np.floating),
    "t_end": (float, np.floating),
    "ic_kind": (str,),
}
MANIFEST_ENTRY_KEYS = ("file", "task_id", "samples", "sha256", "kn", "ic_kind")


class ShardError(ValueError):
    """A shard or manifest does not follow the schema (missing, truncated, corrupted, wrong layout)."""


def shard_name(task_id: int) -> str:
    return f"shard_{int(task_id):05d}.h5"


def package_version() -> str:
    import kinclose

    return kinclose.__version__


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def present_datasets(arrays: Any) -> tuple[str, ...]:
    """``DATASETS`` followed by the ``OPTIONAL_DATASETS`` that ``arrays`` (a dict or an h5py file) holds."""
    return DATASETS + tuple(k for k in OPTIONAL_DATASETS if k in arrays)


def data_sha256(arrays: dict[str, NDArray]) -> str:
    """Hex SHA-256 over the C-ordered float64 bytes of ``arrays[name]`` for name in ``DATASETS``
    and then the optional datasets present (so shards without them keep their checksum)."""
    h = hashlib.sha256()
    for name in present_datasets(arrays):
        a = np.ascontiguousarray(arrays[name], dtype=np.float64)
        h.update(name.encode())
        h.update(np.asarray(a.shape, dtype=np.int64).tobytes())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_arrays(arrays: dict[str, NDArray]) -> tuple[int, int, int]:
    missing = [k for k in DATASETS if k not in arrays]
    if missing:
        raise ShardError(f"shard data lacks datasets {missing}")
    x, v, t = (np.asarray(arrays[k]) for k in ("x", "v", "t"))
    if x.ndim != 1 or v.ndim != 1 or t.ndim != 1:
        raise ShardError(f"/x, /v, /t must be 1-D, got shapes {x.shape}, {v.shape}, {t.shape}")
    nx, nv, nt = x.size, v.size, t.size
    expect = {"g": (nt, nx, nv), "h": (nt, nx, nv), "U": (nt, nx, 3), "fields": (nt, nx, 5)}
    expect.update({k: (nt, nx, nv) for k in OPTIONAL_DATASETS if k in arrays})
    for k, shp in expect.items():
        if tuple(np.shape(arrays[k])) != shp:
            raise ShardError(f"/{k} has shape {tuple(np.shape(arrays[k]))}, expected {shp} (nt, nx, nv = {nt}, {nx}, {nv})")
    if nt < 1 or t[0] != 0.0 or np.any(np.diff(t) <= 0):
        raise ShardError(f"/t must start at 0 and increase strictly, got {t.tolist()}")
    return nt, nx, nv


def write_shard(
    path: str | os.PathLike,
    arrays: dict[str, NDArray],
    dv: float,
    attrs: dict[str, Any],
    compression: str | None = None,
) -> dict[str, Any]:
    """Write a shard atomically (temporary file in the same directory + ``os.replace``).

    Parameters
    ----------
    arrays : x (nx,), v (nv,), t (nt,), g, h (nt, nx, nv), U (nt, nx, 3), fields (nt, nx, 5);
        optionally Qg, Qh (nt, nx, nv) (required when ``attrs["collision"] == "boltzmann"``).
    dv : velocity quadrature weight, stored as ``/v`` attribute ``dv``.
    attrs : root attributes; ``schema_version``, ``package_version``, ``created`` and
        ``data_sha256`` are filled in here.
    compression : None or an h5py filter name ("gzip", "lzf") for /g and /h.

    Returns
    -------
    dict with ``sha256`` (file bytes), ``data_sha256`` and ``samples`` = nt·nx.
    """
    import h5py

    nt, nx, nv = _check_arrays(arrays)
    attrs = dict(attrs)
    attrs.update(schema_version=SCHEMA_VERSION, package_version=package_version(), created=now_iso(),
                 data_sha256=data_sha256(arrays), nx=nx, nv=nv)
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise ShardError(f"shard attributes lack {missing}")
    _check_collision_terms(attrs.get("collision"), arrays, "shard data")

    def _write(tmp: str) -> None:
        with h5py.File(tmp, "w", track_order=True) as fh:
            for k, val in attrs.items():
                fh.attrs[k] = val
            for k in present_datasets(arrays):
                kw: dict[str, Any] = {"track_times": False}
                if compression and k in ("g", "h") + OPTIONAL_DATASETS:
                    kw.update(compression=compression, shuffle=True, chunks=(1, nx, nv))
                fh.create_dataset(k, data=np.ascontiguousarray(arrays[k], dtype=np.float64), **kw)
            fh["v"].attrs["dv"] = float(dv)
            fh.flush()
        with open(tmp, "rb+") as raw:  # data on disk before the rename makes it visible
            os.fsync(raw.fileno())

    atomic_write(path, _write)
    return {"sha256": sha256_file(path), "data_sha256": attrs["data_sha256"], "samples": nt * nx}


def _check_collision_terms(collision: Any, arrays: Any, where: str) -> None:
    if collision in REQUIRES_COLLISION_TERMS:
        missing = [k for k in OPTIONAL_DATASETS if k not in arrays]
        if missing:
            raise ShardError(f"{where}: collision={collision!r} shards must hold the reduced collision terms "
                             f"{list(OPTIONAL_DATASETS)}, missing {missing}; relabel with the current kinclose-label")


def read_attrs(path: str | os.PathLike) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as fh:
        return {k: _py(v) for k, v in fh.attrs.items()}


def _py(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def validate_shard(path: str | os.PathLike, deep: bool = True) -> dict[str, Any]:
    """Check a shard against the schema; return its root attributes (plus nt, nx, nv, samples).

    ``deep`` also reads every dataset, checks finiteness, U = moments of (g, h) and the content
    checksum ``data_sha256``. (g, h ≥ 0 is not required: the DVM's conservative discrete
    equilibrium may be slightly negative far in the tails.) Raises :class:`ShardError` with the reason otherwise.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ShardError(f"{path}: no such shard")
    try:
        fh = h5py.File(path, "r")
    except Exception as exc:  # truncated or corrupted files fail here
        raise ShardError(f"{path}: cannot be opened as HDF5 ({exc}); the file is truncated or corrupted") from exc
    try:
        with fh:
            attrs = {k: _py(v) for k, v in fh.attrs.items()}
            for k, types in REQUIRED_ATTRS.items():
                if k not in attrs:
                    raise ShardError(f"{path}: root attribute {k!r} is missing")
                if not isinstance(attrs[k], types) or isinstance(attrs[k], bool):
                    raise ShardError(f"{path}: attribute {k!r} = {attrs[k]!r} has type {type(attrs[k]).__name__}")
            if attrs["schema_version"] != SCHEMA_VERSION:
                raise ShardError(f"{path}: schema_version {attrs['schema_version']} != {SCHEMA_VERSION}")
            try:
                json.loads(attrs["config"])
            except json.JSONDecodeError as exc:
                raise ShardError(f"{path}: attribute 'config' is not JSON ({exc})") from exc
            _check_collision_terms(attrs["collision"], fh, str(path))
            names = present_datasets(fh)
            for k in names:
                if k not in fh or not isinstance(fh[k], h5py.Dataset):
                    raise ShardError(f"{path}: dataset /{k} is missing")
                if fh[k].dtype != np.float64:
                    raise ShardError(f"{path}: /{k} has dtype {fh[k].dtype}, expected float64")
            if "dv" not in fh["v"].attrs:
                raise ShardError(f"{path}: /v lacks attribute 'dv'")
            shapes = {k: fh[k].shape for k in names}
            # zero-stride stand-ins: shape checks without reading the large datasets
            _check_arrays({k: fh[k][()] if k in ("x", "v", "t") else np.broadcast_to(np.float64(0.0), s)
                           for k, s in shapes.items()})
            nt, nx, nv = shapes["g"]
            if deep:
                arrays = {k: fh[k][()] for k in names}
                for k, a in arrays.items():
                    if not np.isfinite(a).all():
                        raise ShardError(f"{path}: /{k} holds non-finite values")
                ds = data_sha256(arrays)
                if attrs.get("data_sha256") != ds:
                    raise ShardError(f"{path}: content checksum mismatch (data_sha256 {attrs.get('data_sha256')!r} "
                                     f"!= {ds!r}); the data are corrupted")
                from kinclose.kinetic.moments import conserved

                U = conserved(arrays["g"], arrays["h"], arrays["v"], float(fh["v"].attrs["dv"]))
                if not np.allclose(U, arrays["U"], rtol=1e-10, atol=1e-12):
                    raise ShardError(f"{path}: /U is not the moment vector of (/g, /h)")
    except ShardError:
        raise
    except Exception as exc:  # corrupted internals surface as arbitrary h5py errors while reading
        raise ShardError(f"{path}: unreadable ({type(exc).__name__}: {exc}); the file is corrupted") from exc
    attrs.update(nt=nt, nx=nx, nv=nv, samples=nt * nx)
    return attrs


# ----------------------------------------------------------------------------- manifest
def manifest_entry(file: str, task_id: int, samples: int, sha256: str, kn: float, ic_kind: str,
                   data_sha256: str | None = None) -> dict[str, Any]:
    """One shard's manifest entry; ``sha256`` of the file's bytes (which change with ``created`` and ``wall_s``
    on every labeling) and, optionally, the shard's content checksum ``data_sha256`` (which does not)."""
    e = {"file": file, "task_id": int(task_id), "samples": int(samples), "sha256": sha256, "kn": float(kn),
         "ic_kind": str(ic_kind)}
    if data_sha256 is not None:
        e["data_sha256"] = str(data_sha256)
    return e


def content_hash(root: str | os.PathLike, entries: list[dict[str, Any]] | None = None) -> str:
    """SHA-256 identifying a dataset by what it holds: the schema version and the sorted (task id, content
    checksum ``data_sha256``) pairs of its shards, so relabeling the same tasks gives the same hash (the
    labeling is bit-reproducible, while the files' bytes and the manifest are not: ``created``, ``wall_s``).
    ``data_sha256`` is read from the manifest entry, else from the shard's attributes; a shard without one
    (written before the checksum existed, or unreadable) contributes its file SHA-256. ``entries``: the manifest's shards
    (read from ``root`` if None)."""
    root = Path(root)
    if entries is None:
        entries = read_manifest(root)["shards"]
    pairs = []
    for e in sorted(entries, key=lambda e: e["task_id"]):
        digest = e.get("data_sha256")
        if digest is None:
            try:
                digest = read_attrs(root / e["file"]).get("data_sha256")
            except OSError:  # missing or not HDF5: the readers' checksum checks report it
                digest = None
            digest = digest or f"file:{e['sha256']}"
        pairs.append([int(e["task_id"]), str(digest)])
    blob = json.dumps({"schema_version": SCHEMA_VERSION, "shards": pairs}, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def write_manifest(root: str | os.PathLike, entries: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Write ``manifest.json`` atomically; entries are sorted by task id and must be unique."""
    entries = sorted(entries, key=lambda e: e["task_id"])
    ids = [e["task_id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise ShardError(f"duplicate task ids in the manifest: {ids}")
    for e in entries:
        missing = [k for k in MANIFEST_ENTRY_KEYS if k not in e]
        if missing:
            raise ShardError(f"manifest entry {e} lacks {missing}")
    obj = {"schema_version": SCHEMA_VERSION, "package_version": package_version(), "shards": entries}
    if extra:
        obj.update({k: v for k, v in extra.items() if k not in obj})
    return atomic_write_json(Path(root) / MANIFEST, obj)


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Load and check the manifest's structure (not the shard files; see :func:`verify_manifest`)."""
    p = Path(root) / MANIFEST
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise ShardError(f"no {MANIFEST} in {root}: not a labeled dataset (or labeling has not finished); run "
                         "kinclose-label to create it, or point data.root to a dataset directory it wrote") from None
    except json.JSONDecodeError as exc:
        raise ShardError(f"{p}: not valid JSON ({exc}); the dataset is corrupted, relabel it") from exc
    if not isinstance(obj, dict):
        raise ShardError(f"{p}: not a manifest (a JSON object with schema_version and shards)")
    ver = obj.get("schema_version")
    if ver != SCHEMA_VERSION:
        raise ShardError(f"{p}: dataset schema_version {ver!r}, this code reads schema_version {SCHEMA_VERSION}; "
                         "relabel the data with this package version or use a matching kinclose version")
    if not isinstance(obj.get("shards"), list):
        raise ShardError(f"{p}: 'shards' must be a list")
    ids = []
    for e in obj["shards"]:
        missing = [k for k in MANIFEST_ENTRY_KEYS if not isinstance(e, dict) or k not in e]
        if missing:
            raise ShardError(f"{p}: entry {e} lacks {missing}; relabel the dataset")
        ids.append(e["task_id"])
    if len(set(ids)) != len(ids):
        raise ShardError(f"{p}: duplicate task ids")
    return obj


def verify_manifest(root: str | os.PathLike, deep: bool = False) -> list[dict[str, Any]]:
    """Check every listed shard's file SHA-256 (and, if ``deep``, its layout); return the entries."""
    root = Path(root)
    man = read_manifest(root)
    for e in man["shards"]:
        p = root / e["file"]
        if not p.is_file():
            raise ShardError(f"{p}: listed in the manifest but missing")
        if sha256_file(p) != e["sha256"]:
            raise ShardError(f"{p}: SHA-256 differs from the manifest; the shard is corrupted, rerun kinclose-label")
        if deep:
            validate_shard(p, deep=True)
    return man["shards"]
