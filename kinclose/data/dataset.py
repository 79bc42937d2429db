"""Readers of a labeled dataset: a torch ``Dataset`` of per-cell samples and a plain-NumPy loader.

Layout: see ``kinclose.data.schema`` (manifest.json + shard_<id>.h5 with /g, /h (nt, nx, nv), ...).

Velocity grids differ between shards
------------------------------------
Every shard has its own velocity grid ``/v`` (bounds from the task's states; a retried task also
has a larger nv). A sample therefore carries its own ``v`` and ``dv``; moments are Σ (·) Δv over
the sample's own nodes. Samples of shards with equal nv stack with the default collate function
(different nodes are fine, each row has its ``v``); to batch shards with different nv use
:class:`ShardBatchSampler` (every batch from one shard) or interpolate onto a common grid.

h5py handles are opened lazily, per process, on first access and are never pickled, so the
dataset works with ``DataLoader(num_workers>0, multiprocessing_context="spawn")``.
torch is imported only inside this module's functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from numpy.typing import NDArray

from kinclose.data.schema import present_datasets, read_manifest, verify_manifest

SAMPLE_KEYS = ("g", "h", "v", "dv", "U", "fields", "kn", "t", "x")


def load_shard(path: str | os.PathLike) -> dict[str, Any]:
    """All arrays of one shard as NumPy float64 plus ``dv`` and the root attributes ``attrs``:
    x (nx,), v (nv,), t (nt,), g, h (nt, nx, nv), U (nt, nx, 3), fields (nt, nx, 5), and the reduced
    collision terms Qg, Qh (nt, nx, nv) when the shard holds them (Boltzmann labels)."""
    import h5py

    with h5py.File(path, "r") as fh:
        out: dict[str, Any] = {k: fh[k][()] for k in present_datasets(fh)}
        out["dv"] = float(fh["v"].attrs["dv"])
        out["attrs"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in fh.attrs.items()}
    return out


def load_dataset(root: str | os.PathLike, verify: bool = False) -> list[dict[str, Any]]:
    """Every complete shard of the manifest, in task order, as :func:`load_shard` dicts
    (per-shard arrays: grids may differ between shards). ``verify`` checks the SHA-256 first."""
    root = Path(root)
    entries = verify_manifest(root) if verify else read_manifest(root)["shards"]
    return [load_shard(root / e["file"]) for e in entries]


class ShardDataset:
    """torch ``Dataset`` of per-cell samples over the shards of a manifest.

    Sample i is (shard s, snapshot k, cell j) in manifest order, k-major within a shard; it is a
    dict of tensors: g, h (nv,), v (nv,), dv (), U (3,) = (ρ, ρu, E), fields (5,) = (ρ, u, T, σ, q),
    kn () (ε = λ_ref/L), t (), x ().

    Parameters
    ----------
    root : dataset directory holding manifest.json.
    dtype : torch dtype of the returned tensors (data are stored as float64, cast at load).
    verify : check every shard's SHA-256 against the manifest at construction.
    """

    def __init__(self, root: str | os.PathLike, dtype: Any = None, verify: bool = False) -> None:
        import torch

        self.root = Path(root)
        entries = verify_manifest(self.root) if verify else read_manifest(self.root)["shards"]
        self.files = [str(self.root / e["file"]) for e in entries]
        self.kn = np.array([e["kn"] for e in entries], dtype=float)
        self.dtype = dtype or torch.float32
        shapes = []
        import h5py

        for f in self.files:
            with h5py.File(f, "r") as fh:
                shapes.append(fh["g"].shape)
        self.shapes = shapes  # (nt, nx, nv) per shard
        counts = np.array([s[0] * s[1] for s in shapes], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()
        self._grids: dict[int, tuple[NDArray, float, NDArray, NDArray]] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}  # h5py handles never travel between processes
        return state

    def locate(self, i: int) -> tuple[int, int, int]:
        """Sample index → (shard, snapshot, cell)."""
        if not 0 <= i < len(self):
            raise IndexError(f"sample index {i} out of range [0, {len(self)})")
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        r = i - int(self.offsets[s])
        nx = self.shapes[s][1]
        return s, r // nx, r % nx

    def _file(self, s: int) -> Any:
        import h5py

        if os.getpid() != self._pid:  # forked: never reuse the parent's handles
            self._handles, self._pid = {}, os.getpid()
        fh = self._handles.get(s)
        if fh is None:
            fh = self._handles[s] = h5py.File(self.files[s], "r")
            self._grids[s] = (fh["v"][()], float(fh["v"].attrs["dv"]), fh["t"][()], fh["x"][()])
        return fh

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        s, k, j = self.locate(int(i))
        fh = self._file(s)
        v, dv, t, x = self._grids[s]
        arr = {
            "g": fh["g"][k, j], "h": fh["h"][k, j], "v": v, "dv": np.float64(dv), "U": fh["U"][k, j],
            "fields": fh["fields"][k, j], "kn": np.float64(self.kn[s]), "t": np.float64(t[k]), "x": np.float64(x[j]),
        }
        return {key: torch.as_tensor(np.asarray(val), dtype=self.dtype) for key, val in arr.items()}

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles = {}


class ShardBatchSampler:
    """Batches of sample indices that never mix shards (shards may have different nv).

    Parameters
    ----------
    dataset : the :class:`ShardDataset`.
    batch_size : samples per batch (the last batch of a shard may be smaller).
    shuffle : shuffle within shards and the order of batches.
    seed : seed of the shuffling (numpy Generator, fresh permutation per epoch via ``set_epoch``).
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.offsets = dataset.offsets
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[NDArray[np.int64]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for a, b in zip(self.offsets[:-1], self.offsets[1:]):
            idx = np.arange(a, b)
            if self.shuffle:
                rng.shuffle(idx)
            batches += [idx[i:i + self.batch_size] for i in range(0, idx.size, self.batch_size)]
        if self.shuffle:
            order = rng.permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in self._batches():
            yield b.tolist()

    def __len__(self) -> int:
        return sum(-(-int(b - a) // self.batch_size) for a, b in zip(self.offsets[:-1], self.offsets[1:]))
