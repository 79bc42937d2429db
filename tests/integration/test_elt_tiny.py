"""One tiny exploration–labeling–training run end to end with the real stages (labeling, moments,
closure ensemble, exploration with the reduced model, held-out evaluation)."""

import json

import numpy as np
from hydra import compose, initialize_config_module

from kinclose.elt import run_elt


def test_tiny_elt_end_to_end(tmp_path):
    over = ["n_initial=4", "n_candidates=3", "per_iteration_budget=2", "label_budget=2", "max_iterations=2",
            "n_heldout=2", "explore_samples=2", "moments.M=3", "moments.xi_max=6.0", "moments.n_xi=48", "cluster.kind=serial", "cluster.threads=1", "device=cpu",
            "dataset.nx=16", "dataset.nv=64", "dataset.v_width=6.5", "dataset.T_margin=1.5", "dataset.t_end=0.02",
            "dataset.n_snapshots=3", "moments.epochs=2",
            "+moments.encoder_hidden=[8]", "+moments.decoder_hidden=[16]", "closure.epochs=3", "+closure.patience=3",
            "+closure.hidden=[16]", "+closure.K=4"]
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="elt", overrides=over)
        state = run_elt(cfg, tmp_path)
    assert state["done"] and state["iteration"] == 1
    assert len(state["labeled"]) == 6  # 4 initial + the 2 selected
    ex = json.loads((tmp_path / "iter_000" / "explore.json").read_text())
    assert len(ex["scores"]) == 3 and all(s >= 0 for s in ex["scores"])
    sel = json.loads((tmp_path / "iter_000" / "select.json").read_text())["selected"]
    scores = dict(zip(ex["candidates"], ex["scores"]))
    assert min(scores[i] for i in sel) >= max(s for i, s in scores.items() if i not in sel)
    hist = json.loads((tmp_path / "elt_history.json").read_text())["rows"]
    assert [r["labeled"] for r in hist] == [4, 6]
    for r in hist:
        assert set(r["heldout"]) >= {"rho", "u", "T", "sigma", "q", "mean"}
        assert np.isfinite(r["heldout"]["mean"]) or r["heldout"]["failed_runs"] > 0
    assert (tmp_path / "iter_001" / "closure" / "closure.pt").exists()
