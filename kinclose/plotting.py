"""Plot style and the fixed method → colour/linestyle map (kinetic reference solid black,
NSF dashed, Euler dotted, learned closures in colour). Functions take ``ax=None`` and never
call ``plt.show()``."""

from __future__ import annotations

from typing import Any

STYLE: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.5,
}

METHOD_STYLE: dict[str, dict[str, Any]] = {
    "dvm": {"color": "black", "linestyle": "-", "label": "kinetic (DVM)"},
    "dvm-bgk": {"color": "black", "linestyle": "-", "label": "BGK (DVM)"},
    "dvm-shakhov": {"color": "0.45", "linestyle": "-", "label": "Shakhov (DVM)"},
    "dvm-boltzmann": {"color": "tab:purple", "linestyle": "-", "label": "Boltzmann (DVM)"},
    "nsf": {"color": "tab:gray", "linestyle": "--", "label": "NSF"},
    "euler": {"color": "tab:gray", "linestyle": ":", "label": "Euler"},
    "mlc": {"color": "tab:red", "linestyle": "-", "label": "MLC"},
    "mlc-boltzmann": {"color": "tab:red", "linestyle": "-", "label": "MLC (Boltzmann-trained, learned source)"},
    "hermmlc": {"color": "tab:blue", "linestyle": "-.", "label": "HermMLC"},
}


def method_style(name: str) -> dict[str, Any]:
    """Line style for a method name; unknown names get a default colour cycle entry."""
    return dict(METHOD_STYLE.get(name, {"label": name}))


def use_style() -> None:
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
