"""Every ``python`` code block of the README and of ``docs/`` runs as written, in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [(page.relative_to(ROOT), i, code) for page in PAGES
          for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL))]


def test_the_readme_has_a_python_example() -> None:
    assert any(str(page) == "README.md" for page, _, _ in BLOCKS)


@pytest.mark.parametrize("page, index, code", BLOCKS, ids=[f"{p}#{i}" for p, i, _ in BLOCKS])
def test_python_block_runs(page: Path, index: int, code: str, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         check=False)
    assert run.returncode == 0, f"{page} block {index}:\n{run.stderr[-3000:]}"
    assert run.stdout.strip(), "the example prints what it measured"
