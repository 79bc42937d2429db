"""``scripts/merge_closures.py``: members of several closure checkpoints pooled into one ensemble."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure.networks import Ensemble  # noqa: E402
from kinclose.closure.train import load_closure_checkpoint, save_closure_checkpoint  # noqa: E402
from kinclose.moments.train import DATA_SCHEMA_VERSION  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "merge_closures.py"
W_EQ = np.array([1.0, 0.0, 0.4])


def _script():
    spec = importlib.util.spec_from_file_location("merge_closures", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _closure(path: Path, seed: int, K: int = 2, hidden=(8, 8), moments_sha: str = "0" * 64) -> Path:
    ens = Ensemble(M=3, K=K, hidden=list(hidden), seed=seed)
    ens.set_statistics({"w_mean": [1.05, -0.05, 0.42], "w_std": [0.2, 0.3, 0.05], "w_eq": W_EQ})
    meta = {"data_schema_version": DATA_SCHEMA_VERSION, "xi_max": 4.0, "dataset_hash": "tiny",
            "moments_checkpoint_sha256": moments_sha, "W_range": {"min": [0.5, -1, 0.3], "max": [1.5, 1, 0.5]}}
    return save_closure_checkpoint(path, ens, meta)


def test_merged_ensemble_pools_the_members(tmp_path: Path) -> None:
    a, b = _closure(tmp_path / "a.pt", 0, K=2), _closure(tmp_path / "b.pt", 7, K=3)
    out = tmp_path / "m" / "closure.pt"
    _script().main(["--out", str(out), str(a), str(b)])
    merged, meta = load_closure_checkpoint(out)
    (ea, _), (eb, _) = load_closure_checkpoint(a), load_closure_checkpoint(b)
    assert merged.K == 5 and merged.kwargs["K"] == 5 and [m["K"] for m in meta["merged_from"]] == [2, 3]
    assert meta["xi_max"] == 4.0 and meta["W_range"]["max"] == [1.5, 1, 0.5]
    W = torch.as_tensor(W_EQ + 0.05 * np.random.default_rng(1).normal(size=(6, 3)))
    with torch.no_grad():
        parts = torch.cat([ea.stress_heat_all(W), eb.stress_heat_all(W)])
        np.testing.assert_array_equal(merged.stress_heat_all(W).numpy(), parts.numpy())
        d, t = torch.full((6,), 0.1, dtype=W.dtype), torch.full((6,), 1.1, dtype=W.dtype)
        k_parts = torch.cat([ea.frame_all(W, d, t)[1], eb.frame_all(W, d, t)[1]])
        np.testing.assert_array_equal(merged.frame_all(W, d, t)[1].numpy(), k_parts.numpy())


def test_merge_refuses_different_recipes(tmp_path: Path) -> None:
    mod = _script()
    a = _closure(tmp_path / "a.pt", 0)
    with pytest.raises(ValueError, match="hidden"):
        mod.merge([a, _closure(tmp_path / "w.pt", 1, hidden=(16, 16))])
    with pytest.raises(ValueError, match="another moments checkpoint"):
        mod.merge([a, _closure(tmp_path / "s.pt", 1, moments_sha="1" * 64)])
    with pytest.raises(ValueError, match="at least two"):
        mod.merge([a])
