"""Every ``python`` code block of the README and of ``docs/`` runs as written, in a fresh interpreter; where the page
shows what the block prints (a ``text`` block right after it), the numbers printed now are those shown."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a python block, and the text block that shows its output when one follows within a short paragraph
PATTERN = re.compile(r"```python\n(.*?)```\n(?:(?:(?!```)[^\n]*\n){0,3}```text\n(.*?)```)?", re.DOTALL)
BLOCKS = [(page.relative_to(ROOT), i, code, shown) for page in PAGES
          for i, (code, shown) in enumerate(PATTERN.findall(page.read_text()))]
NUMBER = re.compile(r"-?\d+\.\d+")


def test_the_readme_has_a_python_example_with_its_output() -> None:
    assert any(str(page) == "README.md" and shown for page, _, _, shown in BLOCKS)


@pytest.mark.parametrize("page, index, code, shown", BLOCKS, ids=[f"{p}#{i}" for p, i, _, _ in BLOCKS])
def test_python_block_runs(page: Path, index: int, code: str, shown: str, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         check=False)
    assert run.returncode == 0, f"{page} block {index}:\n{run.stderr[-3000:]}"
    assert run.stdout.strip(), "the example prints what it measured"
    if shown:  # the same lines, the numbers within 0.15 (percentage points at one decimal: rounding on another CPU)
        got, want = run.stdout.strip().splitlines(), shown.strip().splitlines()
        assert [NUMBER.sub("#", g) for g in got] == [NUMBER.sub("#", w) for w in want], run.stdout
        pairs = [(float(a), float(b)) for g, w in zip(got, want) for a, b in zip(NUMBER.findall(g), NUMBER.findall(w))]
        assert all(abs(a - b) <= 0.15 for a, b in pairs), f"{page} shows\n{shown}\nbut the block now prints\n{run.stdout}"
