"""Registry of models that solve a :class:`kinclose.problem.Problem`.

Each entry is ``"module:function"`` with signature ``run(problem, **options) -> Fields``;
modules are imported lazily so the numerical core never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

from kinclose.problem import Fields, Problem

MODELS: dict[str, str] = {
    "dvm": "kinclose.kinetic.solver:run_problem",
    "euler": "kinclose.macro.euler:run_problem",
    "nsf": "kinclose.macro.nsf:run_problem",
    "mlc": "kinclose.reduced.run:run_problem",
    "hermmlc": "kinclose.reduced.run:run_problem",
}
"""``mlc`` and ``hermmlc`` need ``closure=<path of closure.pt>`` (learned / Hermite moments)."""


def get_model(name: str) -> Callable[..., Fields]:
    """Return the ``run(problem, **options)`` function of model ``name``."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    module, func = MODELS[name].split(":")
    return getattr(import_module(module), func)


def run_model(name: str, problem: Problem, **options: Any) -> Fields:
    """Run model ``name`` on ``problem`` until ``problem.t_end``."""
    return get_model(name)(problem, **options)
