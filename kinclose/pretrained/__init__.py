"""Small trained closures shipped with the package, so benchmarks run without training first.

Each folder holds ``closure.pt`` (self-contained: ensemble, W_eq, training range; loads with
``torch.load(weights_only=True)``), the ``moments.pt`` it was trained on, both ``metrics.json``
files and ``train_command.txt`` (how to regenerate it); a closure trained on Boltzmann data also ships
its learned collision source ``source.pt``. Refer to one as ``pretrained:<name>`` wherever a closure
(or source) path is expected.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PREFIX = "pretrained:"


def resolve(path_or_name: str | Path) -> Path:
    """``pretrained:<name>`` → the shipped ``closure.pt``; any other value is returned as a Path."""
    s = str(path_or_name)
    if not s.startswith(PREFIX):
        return Path(s)
    name = s[len(PREFIX):]
    p = Path(str(files("kinclose.pretrained") / name / "closure.pt"))
    if not p.exists():
        avail = sorted(d.name for d in Path(str(files("kinclose.pretrained"))).iterdir() if (d / "closure.pt").exists())
        raise FileNotFoundError(f"no shipped closure {name!r}; available: {avail}")
    return p


def distilled_student(path_or_name: str | Path) -> str | None:
    """``pretrained:<name>`` → ``pretrained:<name>_distilled`` when that student (``kinclose-train stage=distill``
    of the ensemble, same moments) is shipped; None for any other closure."""
    s = str(path_or_name)
    if not s.startswith(PREFIX):
        return None
    student = f"{s}_distilled"
    return student if Path(str(files("kinclose.pretrained") / student[len(PREFIX):] / "closure.pt")).exists() else None


def resolve_moments(path_or_name: str | Path) -> Path:
    """``pretrained:<name>`` → the ``moments.pt`` shipped beside that closure; any other value as a Path."""
    s = str(path_or_name)
    return resolve(s).with_name("moments.pt") if s.startswith(PREFIX) else Path(s)


def resolve_source(path_or_name: str | Path) -> Path:
    """``pretrained:<name>`` → the ``source.pt`` shipped beside that closure; any other value as a Path."""
    s = str(path_or_name)
    if not s.startswith(PREFIX):
        return Path(s)
    p = resolve(s).with_name("source.pt")
    if not p.exists():
        raise FileNotFoundError(f"the shipped closure {s!r} has no learned collision source (source.pt); "
                                "only closures trained on Boltzmann data have one")
    return p
