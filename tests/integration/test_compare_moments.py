"""``scripts/compare_moments.py`` (issue 5's table) end to end on a tiny dataset it labels itself."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_moments.py"


def test_compare_moments_labels_trains_and_writes_the_table(tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "results"
    args = [f"root={root}", "dataset.n_tasks=5", "dataset.nx=16", "dataset.nv=96", "dataset.n_snapshots=3",
            "M=[3]", "hermite_basis=[orders]", "epochs=2", "n_xi=48", "xi_max=6.0", f"out_dir={out}",
            "nonlinear_bound=true", "nonlinear_hidden=[16]",
            f"hydra.run.dir={tmp_path / 'hydra'}"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (root / "manifest.json").is_file()  # labeled first, since root had no manifest
    res = json.loads((out / "moments_table.json").read_text())
    assert [(r["model"], r["M"]) for r in res["rows"]] == [("learned", 3), ("hermite-orders", 3),
                                                           ("nonlinear (bound)", 3)]
    assert res["split"] == "shard" and res["n_train"] > 0 and res["n_val"] > 0
    for r in res["rows"]:
        assert 0.0 < r["val"]["all"]["rel_l2_mean"] < 1.0 and len(r["train_loss_curve"]) == 3
    ratio = res["ratio_learned_to_hermite_orders_M3"]
    per_decade = res["ratio_learned_to_hermite_orders_M3_per_decade"]
    assert ratio > 0 and set(per_decade) <= set(res["rows"][0]["val"]["per_decade"])
    md = (out / "moments_table.md").read_text()
    assert f"**{ratio:.3f}**" in md and (out / "moments_error.png").stat().st_size > 0
    bound = res["ratio_nonlinear_bound_to_hermite_orders_M3"]
    assert bound > 0 and f"nonlinear (bound) M = 3 to hermite-orders M = 3: **{bound:.3f}**" in md


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "epochz=3", f"hydra.run.dir={tmp_path}"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode != 0 and "epochz" in run.stderr
