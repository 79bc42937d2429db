"""``scripts/closure_information.py`` on a tiny synthetic dataset: a closure with its estimates, a moments
set with estimates only, the Markdown summary and the figure."""

import json
import subprocess
import sys
from pathlib import Path

from kinclose.moments._synthetic import write_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "closure_information.py"


def test_closure_information_tiny(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, n_shards=4, seed=5, kn_range=(1.0, 5.0), nx=16, nv=96, nt=3, t_end=0.05)
    closures = ('closures=[{name: mlc, moments: "pretrained:mlc_small", closure: "pretrained:mlc_small"}, '
                '{name: herm, moments: "pretrained:hermmlc_small"}]')
    args = [closures, f"root={data}", "n_query=24", "n_query_shards=1", "n_neighbours=8", "name=tiny",
            f"out_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "tiny.json").read_text())
    mlc, herm = res["closures"]["mlc"], res["closures"]["herm"]
    assert mlc["M"] == 4 and mlc["encoder"] == "learned" and herm["encoder"] == "hermite"
    assert mlc["n_query"] == 24 and mlc["n_reference"] == 3 * 16 * 3
    e = mlc["errors"]["1e+00"]
    assert set(e) == {"n_cells", "learned", "local_linear", "nn1"} and len(e["learned"]) == 2 + 2 * 4
    assert "learned" not in herm["errors"]["all"]
    assert all(0 <= x < 10 for x in e["local_linear"] + e["nn1"] + e["learned"])
    md = (tmp_path / "out" / "tiny.md").read_text()
    assert "| mlc | 4 |" in md and "| herm | 4 |" in md and "no closure (estimates only)" in md
    assert (tmp_path / "out" / "tiny.png").stat().st_size > 0
    # a closure paired with moments it was not trained on stops with a clear message
    bad = ['closures=[{name: bad, moments: "pretrained:hermmlc_small", closure: "pretrained:mlc_small"}]', *args[1:]]
    run = subprocess.run([sys.executable, str(SCRIPT), *bad], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "another moments checkpoint" in run.stderr
