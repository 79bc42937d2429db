"""The Hydra configs of the console scripts (``conf/`` at the top level links here).

:func:`compose` builds one of them from Python, e.g. in a notebook or a test::

    from kinclose.conf import compose
    cfg = compose("train", ["stage=closure", "moments_ckpt=moments.pt"])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def reject_unknown_keys(d: Mapping[str, Any], known: Iterable[str], where: str,
                        error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the keys of ``d`` that are not in ``known`` (a config section ``where``)."""
    known = sorted(known)
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise error(f"unknown {where} keys {unknown}; known keys: {known}")


def compose(config_name: str, overrides: Sequence[str] = ()) -> Any:
    """The config ``config_name`` with Hydra ``overrides``; unknown keys raise Hydra's composition
    error. Works inside a running Hydra app too (it reuses the initialized search path)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name=config_name, overrides=list(overrides))
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
