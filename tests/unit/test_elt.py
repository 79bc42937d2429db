"""Exploration–labeling–training loop: selection, budget, kill-and-resume (stage functions stubbed;
the real stages are exercised by tests/integration/test_elt_tiny.py)."""

import json
import math

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from kinclose.elt import Loop, load_state, run_elt, select_configurations


def test_selection_picks_high_variance_states_of_a_synthetic_ensemble():
    rng = np.random.default_rng(0)
    # synthetic ensemble: 4 members agree on 'easy' states, disagree on 'hard' ones
    n, K = 50, 4
    hard = np.zeros(n, bool)
    hard[[3, 17, 29, 41]] = True
    members = rng.normal(0, 1e-3, (K, n)) + np.where(hard, rng.normal(0, 1.0, (K, n)), 0.0)
    scores = members.var(axis=0)
    picked = select_configurations(scores, budget=4)
    assert sorted(picked) == [3, 17, 29, 41]
    assert select_configurations(scores, budget=2) == picked[:2]
    # threshold keeps only scores above it; budget caps the count
    assert select_configurations(scores, budget=10, threshold=1e-2) == picked
    assert len(select_configurations(scores, budget=10)) == 10
    # blow-ups (inf) come first; NaN counts as inf
    s2 = scores.copy()
    s2[5], s2[6] = math.inf, math.nan
    assert set(select_configurations(s2, budget=2)) == {5, 6}
    # flagged states (out of the training range) come first, ranked among themselves by variance,
    # and ignore the threshold
    flagged = np.zeros(n, bool)
    flagged[[8, 9, 10]] = True
    s3 = scores.copy()
    s3[[8, 9, 10]] = [1e-6, 1e-4, 1e-5]
    assert select_configurations(s3, budget=2, flagged=flagged) == [9, 10]
    assert select_configurations(s3, budget=5, threshold=1e-2, flagged=flagged)[:3] == [9, 10, 8]
    assert set(select_configurations(s3, budget=7, flagged=flagged)[3:]) == {3, 17, 29, 41}
    r = select_configurations(scores, budget=4, how="random", rng=np.random.default_rng(1))
    assert len(r) == 4 and len(set(r)) == 4


def test_selection_rejects_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        select_configurations(np.ones(3), budget=-1)
    with pytest.raises(ValueError, match="unknown selection"):
        select_configurations(np.ones(3), budget=1, how="entropy")
    with pytest.raises(ValueError, match="rng"):
        select_configurations(np.ones(3), budget=1, how="random")


class FakeLoop(Loop):
    """Stages without solvers: exploration scores are the task ids, evaluation improves with labels."""

    def __init__(self, cfg, root):
        super().__init__(cfg, root)
        self.calls = []

    def label(self, task_ids, heldout=False):
        self.calls.append(("label", tuple(task_ids), heldout))
        return {"failed": 0}

    def train(self, it):
        self.calls.append(("train", it))
        (self.itdir(it) / "closure").mkdir(exist_ok=True)
        return {}

    def explore(self, it, closure_path):
        self.calls.append(("explore", it))
        return np.asarray(self.candidates(it), dtype=float), np.zeros(len(self.candidates(it)), bool)

    def evaluate(self, closure_path):
        n = len(load_state(self.root)["labeled"])
        e = 1.0 / n
        return {"rho": e, "u": e, "T": e, "sigma": e, "q": e, "failed_runs": 0, "mean": e}


def _cfg(**over):
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        return compose(config_name="elt", overrides=[f"{k}={v}" for k, v in over.items()])


def test_budget_respected_and_history_recorded(tmp_path):
    cfg = _cfg(n_initial=3, n_candidates=5, per_iteration_budget=2, label_budget=3, max_iterations=5,
               patience=10)
    state = run_elt(cfg, tmp_path, loop=FakeLoop(cfg, tmp_path))
    assert state["done"] and state["stop_reason"] == "budget"
    assert len(state["labeled"]) - 3 == 3  # 2 + 1: the total label budget caps the second iteration
    # variance selection took the highest scores of each block (scores = task ids)
    sel0 = json.loads((tmp_path / "iter_000" / "select.json").read_text())["selected"]
    assert sel0 == [7, 6]
    hist = json.loads((tmp_path / "elt_history.json").read_text())["rows"]
    assert [r["labeled"] for r in hist] == [3, 5, 6]
    assert (tmp_path / "elt_history.png").exists()


def test_random_baseline_skips_exploration(tmp_path):
    cfg = _cfg(n_initial=3, n_candidates=5, per_iteration_budget=2, label_budget=4, max_iterations=3,
               patience=10, selection="random")
    loop = FakeLoop(cfg, tmp_path)
    state = run_elt(cfg, tmp_path, loop=loop)
    assert state["done"] and len(state["labeled"]) == 3 + 4
    assert not [c for c in loop.calls if c[0] == "explore"]
    sel = json.loads((tmp_path / "iter_000" / "select.json").read_text())
    assert sel["selection"] == "random" and len(sel["selected"]) == 2 and sel["max_score"] is None


class Killed(Exception):
    pass


def test_kill_and_resume_continues_at_the_stage_it_was_in(tmp_path):
    cfg = _cfg(n_initial=2, n_candidates=4, per_iteration_budget=1, label_budget=5, max_iterations=3, patience=10)

    def kill_after_explore(it, stage):
        if (it, stage) == (1, "explore"):
            raise Killed

    first = FakeLoop(cfg, tmp_path)
    with pytest.raises(Killed):
        run_elt(cfg, tmp_path, loop=first, after_stage=kill_after_explore)
    assert load_state(tmp_path)["stage"] == "select"
    second = FakeLoop(cfg, tmp_path)
    state = run_elt(cfg, tmp_path, loop=second)
    assert state["done"] and state["iteration"] == 2
    # the resumed run did not redo exploration of iteration 1 nor relabel the initial set
    assert ("explore", 1) not in second.calls
    assert ("train", 2) in second.calls and ("train", 1) not in second.calls
    assert sum(1 for c in first.calls + second.calls if c[0] == "train") == 3


def test_corrupted_resume_record(tmp_path):
    (tmp_path / "elt_state.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupted ELT resume record"):
        load_state(tmp_path)


@pytest.mark.parametrize("key, value", [("max_iterations", -1), ("n_initial", 0), ("label_budget", -2),
                                        ("per_iteration_budget", 0), ("min_improvement", -0.1),
                                        ("moments.epochs", 0), ("+closure.lr", -1.0)])
def test_loop_sizes_out_of_range_are_refused_before_anything_is_written(tmp_path, key, value):
    cfg = _cfg(**{key: value})
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        run_elt(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match=key.split(".")[-1]):
        FakeLoop(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
