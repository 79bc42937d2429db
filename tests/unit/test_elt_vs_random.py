"""Aggregation of scripts/elt_vs_random.py on synthetic learning curves (no training)."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "elt_vs_random.py"


@pytest.fixture(scope="module")
def evr():
    spec = importlib.util.spec_from_file_location("elt_vs_random_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


N = [12, 16, 20, 24, 28]


def test_label_ratio_first_reach(evr):
    variance = (N, [0.30, 0.10, 0.04, 0.06, 0.05])   # reaches 0.05 at 20 labels (dips, then rises)
    random = (N, [0.30, 0.40, 0.20, 0.07, 0.05])
    r = evr.label_ratio(variance, random)
    assert r["target"] == pytest.approx(0.05, rel=0, abs=1e-15)
    assert r["variance_added"] == 8 and r["random_added"] == 16
    assert r["ratio"] == pytest.approx(0.5, rel=0, abs=1e-15)


def test_label_ratio_reached_at_equality_and_at_start(evr):
    assert evr.label_ratio((N, [0.3, 0.2, 0.1, 0.1, 0.1]), (N, [0.3, 0.3, 0.2, 0.15, 0.1]))["ratio"] == pytest.approx(
        0.5, rel=0, abs=1e-15)
    # random got worse than the shared start: ELT needs no label to match it
    assert evr.label_ratio((N, [0.3] * 5), (N, [0.3, 0.5, 0.5, 0.4, 0.35]))["ratio"] == pytest.approx(0.0, abs=0)


def test_label_ratio_none_when_not_reached_or_target_infinite(evr):
    r = evr.label_ratio((N, [0.3, 0.2, 0.1, 0.08, 0.06]), (N, [0.3, 0.2, 0.1, 0.07, 0.05]))
    assert r["ratio"] is None and r["variance_added"] is None and r["random_added"] == 16
    r = evr.label_ratio((N, [0.3, 0.2, 0.1, 0.08, 0.06]), (N, [0.3, 0.2, 0.1, 0.07, math.inf]))
    assert r["ratio"] is None
    assert evr.labels_to_reach(N, [0.3, 0.2, 0.1, 0.08, 0.06], math.nan) is None


def test_mean_error_over_shared_label_counts(evr):
    variance = ([12, 16, 20, 24], [0.4, 0.2, 0.1, 0.1])
    random = ([12, 16, 20, 28], [0.4, 0.4, 0.2, 0.1])       # only 12, 16, 20 are shared
    a = evr.mean_error_over_shared(variance, random)
    assert a["labeled"] == [12, 16, 20]
    assert a["variance"] == pytest.approx(0.7 / 3, rel=1e-12)
    assert a["random"] == pytest.approx(1.0 / 3, rel=1e-12)
    assert a["difference"] == pytest.approx(-0.1, rel=1e-12)
    assert a["ratio"] == pytest.approx(0.7, rel=1e-12)
    assert math.isinf(evr.mean_error_over_shared((N, [0.3, math.inf, 0.1, 0.1, 0.1]), (N, [0.3] * 5))["variance"])
    with pytest.raises(ValueError):
        evr.mean_error_over_shared(([12], [0.1]), ([16], [0.1]))


def test_aggregate_counts_mean_median_and_curves(evr):
    reps = {
        0: {"variance": (N, [0.3, 0.1, 0.05, 0.05, 0.05]), "random": (N, [0.3, 0.2, 0.1, 0.06, 0.05])},   # 0.5
        1: {"variance": (N, [0.3, 0.2, 0.1, 0.05, 0.04]), "random": (N, [0.3, 0.2, 0.1, 0.06, 0.05])},    # 0.75
        2: {"variance": (N, [0.3, 0.2, 0.1, 0.08, 0.07]), "random": (N, [0.3, 0.2, 0.1, 0.06, 0.05])},    # None
    }
    agg = evr.aggregate(reps)
    r = agg["ratio"]
    assert r["values"] == [0.5, 0.75, None]
    assert r["n_helped"] == 2 and r["n_reached"] == 2 and r["n_not_reached"] == 1
    assert r["mean_over_reached"] == pytest.approx(0.625, rel=1e-12)
    assert r["median"] == pytest.approx(0.75, rel=1e-12)          # None counts as > 1
    assert r["sign_test_p"] == pytest.approx(0.5, rel=1e-12)       # P(X >= 2), X ~ Bin(3, 1/2)
    assert agg["auc"]["n_variance_lower"] == 2
    assert agg["final"]["n_variance_lower"] == 1                  # a tie (seed 0) is not "lower"
    cv = agg["curves"]["variance"]
    assert cv["labeled"] == N
    assert cv["mean"][1] == pytest.approx(0.5 / 3, rel=1e-12)
    assert cv["std"][1] == pytest.approx(0.057735026918962574, rel=1e-9)   # sample std (ddof 1)
    assert agg["curves"]["random"]["std"][0] == pytest.approx(0.0, abs=1e-15)
    text = evr.conclusion(agg, 3)
    assert "in 2 of 3 repetitions" in text and "did not reach it within the budget in 1" in text


def test_aggregate_single_and_empty(evr):
    agg = evr.aggregate({5: {"variance": (N, [0.3, 0.1, 0.05, 0.05, 0.05]), "random": (N, [0.3, 0.2, 0.1, 0.06, 0.05])}})
    assert agg["n_repetitions"] == 1 and agg["curves"]["variance"]["std"] == [0.0] * 5
    assert "n = 1" in evr.conclusion(agg, 3)
    empty = evr.aggregate({})
    assert empty["n_repetitions"] == 0 and empty["ratio"]["median"] is None
    assert "No repetition completed" in evr.conclusion(empty, 3)


def test_sign_test(evr):
    assert evr.sign_test_p(3, 3) == pytest.approx(0.125, rel=1e-12)
    assert evr.sign_test_p(0, 3) == pytest.approx(1.0, rel=1e-12)
    assert evr.sign_test_p(5, 5) == pytest.approx(1 / 32, rel=1e-12)


def test_arm_config_seeds_pool_and_roots(evr, tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"pool_seed_stride": 1000, "work_dir": str(tmp_path),
                            "elt": {"seed": 0, "heldout_seed": 777, "selection": "variance", "root": None,
                                    "dataset": {"seed": 2024, "name": "small"}}})
    c, root = evr.arm_config(cfg, 2, "random")
    assert (c.seed, c.dataset.seed, c.heldout_seed, c.selection) == (2, 4024, 777, "random")
    assert root == tmp_path / "seed_2" / "random" and c.root == str(root)
    assert cfg.elt.dataset.seed == 2024                     # the base config is not modified
    cfg.elt.heldout_seed = 3024
    with pytest.raises(ValueError):
        evr.arm_config(cfg, 1, "variance")


def test_config_composes_with_seeds_and_fixed_heldout():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="elt_vs_random")
    assert list(cfg.seeds) == [0, 1, 2] and cfg.pool_seed_stride == 1000
    assert cfg.elt.n_heldout == 12 and cfg.elt.heldout_seed == 777
    assert cfg.shock.mach == 5.5 and "mlc" in cfg.shock.overrides
