"""Every ``kinclose-*`` command and every ``python scripts/<name>.py`` command of a Hydra script that the
README or a page of ``docs/`` shows (code blocks and inline code) composes its config with the overrides it
lists: a renamed or removed config key breaks this test, not a reader's run. (The argparse scripts check
their own arguments.)"""

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# app name -> source file of its entry point, from pyproject.toml ("kinclose-shock" -> kinclose/apps/shock.py)
APPS = {name.removeprefix("kinclose-"): ROOT / (target.split(":")[0].replace(".", "/") + ".py")
        for name, target in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"].items()}


def readme_commands() -> list[str]:
    """Command lines of the README and ``docs/`` that start a ``kinclose-*`` app (comments, ``pip install … &&`` dropped);
    a value with alternatives (``model=nsf\\|euler`` in a table) gives one command per alternative."""
    text = "\n".join(page.read_text() for page in PAGES)
    lines = [ln for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL) for ln in block.splitlines()]
    lines += [" ".join(m.split()) for m in re.findall(r"`((?:kinclose-\w+|python scripts/\w+\.py)[^`]*)`", text)]
    out = []
    for ln in lines:
        ln = ln.split("  #")[0].split(" # ")[0].strip()
        m = re.search(r"((?:kinclose-\w+|python scripts/\w+\.py).*)$", ln)
        if m and not ln.startswith("#"):
            cmd = m.group(1).split(" && ")[0].strip()
            alt = re.search(r"(\S+=)(\S*\\\|\S*)", cmd)
            choices = alt.group(2).split("\\|") if alt else [None]
            out += [cmd if c is None else cmd.replace(alt.group(0), alt.group(1) + c) for c in choices]
    return sorted(set(out))


def hydra_config(command: str) -> tuple[str, str] | None:
    """(config module, config name) of a command, read from the ``@hydra.main`` of its entry point or script
    (``--config-name`` overrides the name), or None for an argparse script."""
    tokens = shlex.split(command)
    source = APPS[tokens[0].removeprefix("kinclose-")] if tokens[0].startswith("kinclose-") else ROOT / tokens[1]
    m = re.search(r'@hydra.main\([^)]*config_path="pkg://([\w.]+)"[^)]*config_name="(\w+)"', source.read_text())
    if m is None:
        return None
    name = tokens[tokens.index("--config-name") + 1] if "--config-name" in tokens else m.group(2)
    return m.group(1), name


def overrides(command: str) -> tuple[str, list[str]]:
    """(app, overrides): placeholders (``...``, ``…`` and arguments with them) and Hydra's own ``hydra.*``
    keys left out, optional ``[key=value]`` arguments unwrapped; ``python scripts/x.py`` is app ``x``."""
    app, *tokens = shlex.split(command)
    if app == "python":
        app, tokens = Path(tokens[0]).stem, tokens[1:]
        if "--config-name" in tokens:
            i = tokens.index("--config-name")
            tokens = tokens[:i] + tokens[i + 2:]
    out = []
    for t in tokens:
        if t == "..." or "…" in t:
            continue
        if t.startswith("[") and t.endswith("]") and "=" in t:
            t = t[1:-1]
        if t.startswith("hydra.") or "=" not in t:
            continue
        out.append(t)
    return app.removeprefix("kinclose-"), out


COMMANDS = [c for c in readme_commands() if hydra_config(c) is not None]  # argparse scripts check their own


def test_the_readme_shows_every_app() -> None:
    assert set(APPS) <= {overrides(c)[0] for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_composes(command: str) -> None:
    module, name = hydra_config(command)
    _, ovr = overrides(command)
    with initialize_config_module(config_module=module, version_base="1.3"):
        cfg = compose(config_name=name, overrides=ovr)
    assert cfg is not None
