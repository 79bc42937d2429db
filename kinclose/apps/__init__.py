"""Hydra console scripts (``kinclose-*``) and the option checks they share."""

from __future__ import annotations

from typing import Any


def check_ints(cfg: Any, minimums: dict[str, int], where: str | None = None) -> None:
    """Raise a ValueError naming every option of ``cfg`` (a config or a dict; dotted keys, e.g. ``ic.seed``) that
    is not an integer at least its minimum: a count or a seed given as 64.5 or "8" would otherwise be truncated or
    fail later. ``where`` prefixes the message (e.g. "stage=closure")."""
    from omegaconf import OmegaConf

    cfg = cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg)
    bad = {}
    for key, low in minimums.items():
        v = OmegaConf.select(cfg, key)
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
            bad[key] = (v, low)
    if bad:
        msg = "; ".join(f"{k} must be an integer >= {low}, got {v!r}" for k, (v, low) in bad.items())
        raise ValueError(f"{where}: {msg}" if where else msg)
