"""Checkpoints of the trained ensembles (closure ``closure.pt``, collision source ``source.pt``).

One file is a dict: ``format``, ``class``, ``<kind>_version``, constructor ``kwargs``, ``state_dict``,
``package_version`` and the JSON-like metadata, written atomically and read with
``torch.load(weights_only=True)`` (no unpickling of arbitrary objects). :func:`load_ensemble_checkpoint`
stops with the caller's error class for a missing, unreadable or foreign file, another ``<kind>``
version or data schema version, missing required keys, and weights that do not fit the stored kwargs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kinclose import __version__
from kinclose.io import atomic_write

log = logging.getLogger(__name__)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def save_ensemble_checkpoint(path: str | Path, ens: Any, meta: dict, *, fmt: str, kind: str, version: int,
                             class_name: str) -> Path:
    """Atomically write ``ens`` (a module with ``kwargs``) and ``meta`` to ``path``."""
    import torch

    obj = {
        "format": fmt,
        "class": class_name,
        f"{kind}_version": version,
        "kwargs": dict(ens.kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in ens.state_dict().items()},
        "package_version": __version__,
        **json.loads(json.dumps(meta, default=_jsonable)),
    }
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), suffix=".pt")


def load_ensemble_checkpoint(path: str | Path, *, fmt: str, kind: str, version: int, build: Callable[..., Any],
                             class_name: str, error: type[Exception], stage: str,
                             required: tuple[tuple[str, str], ...] = (), map_location: str = "cpu"
                             ) -> tuple[Any, dict]:
    """(module in eval mode, metadata) from ``path``, read with ``weights_only=True``.

    ``kind`` names the checkpoint in messages and its version key; ``build(**kwargs)`` constructs the
    module; ``stage`` is the ``kinclose-train stage=…`` command that writes it; ``required`` holds (key, what it
    is) pairs that must be present.
    """
    import torch

    from kinclose.moments.train import DATA_SCHEMA_VERSION

    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} checkpoint {path} does not exist; train one with "
                    f"`{stage} moments_ckpt=... data.root=...`")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupted zip, truncated file, unpickling of a forbidden type …
        raise error(
            f"cannot read {kind} checkpoint {path}: the file is corrupted or truncated, or not a torch checkpoint "
            f"({type(e).__name__}: {str(e)[:200]}); retrain or restore it") from e
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise error(f"{path} is not a kinclose {kind} checkpoint (format {found!r}, expected {fmt!r})")
    key = f"{kind}_version"
    if obj.get(key) != version:
        raise error(
            f"{path} was written for {kind} version {obj.get(key)!r} (package {obj.get('package_version')}), "
            f"this code has {kind} version {version}; retrain with `{stage}` or use the "
            "matching kinclose version")
    if obj.get("data_schema_version") != DATA_SCHEMA_VERSION:
        raise error(f"{path} was trained on data schema version {obj.get('data_schema_version')!r}, "
                    f"this code reads schema version {DATA_SCHEMA_VERSION}; retrain on relabeled data")
    if obj.get("class") != class_name:
        raise error(f"{path} holds a {obj.get('class')!r}, expected {class_name!r}")
    for k, what in required:
        if k not in obj:
            raise error(f"{path} lacks the {what} {k!r}; the checkpoint is incomplete")
    if obj.get("package_version") != __version__:
        log.warning("%s checkpoint %s was written by kinclose %s, this is %s", kind, path, obj.get("package_version"),
                    __version__)
    try:
        ens = build(**obj["kwargs"])
        ens.load_state_dict(obj["state_dict"], strict=True)
    except (TypeError, RuntimeError, KeyError, ValueError) as e:
        raise error(f"{path}: weights do not fit the ensemble they claim ({str(e)[:300]}); the "
                    "checkpoint is inconsistent, retrain it") from e
    ens.to(map_location).eval()
    return ens, {k: v for k, v in obj.items() if k != "state_dict"}
