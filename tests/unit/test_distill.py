"""Distillation of a closure ensemble into one network (kinclose.closure.distill): the student matches
the teacher's ensemble mean on held-out states, keeps the exact anchor and frame identity, round-trips
through a closure checkpoint into LearnedClosure, and bad teachers/options give clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.closure import distill as D  # noqa: E402
from kinclose.closure.learned import LearnedClosure  # noqa: E402
from kinclose.closure.networks import Ensemble  # noqa: E402
from kinclose.closure.train import (ClosureCheckpointError, file_sha256, load_closure_checkpoint,  # noqa: E402
                                    save_closure_checkpoint)
from kinclose.moments.train import DATA_SCHEMA_VERSION  # noqa: E402

M = 3
W_EQ = np.array([1.0, 0.0, 0.4])
W_MEAN, W_STD = np.array([1.05, -0.05, 0.42]), np.array([0.2, 0.3, 0.05])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny_teacher(K: int = 4, hidden=(8, 8), seed: int = 3, exact_stress_heat: bool = False) -> tuple[Ensemble, dict]:
    """An untrained K-member ensemble with plausible statistics and closure-stage metadata."""
    ens = Ensemble(M=M, K=K, hidden=list(hidden), seed=seed, exact_stress_heat=exact_stress_heat)
    ens.set_statistics({"w_mean": W_MEAN, "w_std": W_STD, "w_eq": W_EQ, "y_std": [0.2, 0.4],
                        "delta_scale": 0.5, "logtau_scale": np.log(1.4), "dm_std": [0.3, 0.5, 0.05],
                        "k_mean": [0.1, 0.5, 0.0], "k_std": [0.5, 1.0, 0.1]})
    rng = np.random.default_rng(0)
    W = W_MEAN + W_STD * rng.normal(size=(4000, M))
    meta = {"data_schema_version": DATA_SCHEMA_VERSION, "xi_max": 4.0, "dataset_hash": "tiny",
            "W_range": {"min": W.min(0).tolist(), "max": W.max(0).tolist(), "mean": W.mean(0).tolist(),
                        "std": W.std(0).tolist(), "q001": np.quantile(W, 0.001, 0).tolist(),
                        "q999": np.quantile(W, 0.999, 0).tolist()},
            "frames": {"n_frames": 3, "delta_max": 0.5, "tau_min": 0.7, "tau_max": 1.4},
            "extra": {"val_sigma_hat_rel_rmse": 0.1}}
    return ens.eval(), meta


SMALL = dict(states=D.StateSampling(n_train=3000, n_val=1000, mix={"gauss": 0.7, "box": 0.3}), epochs=100,
             batch_size=128, lr=1e-2, patience=60, seed=1)


@pytest.fixture(scope="module")
def distilled() -> tuple[Ensemble, dict, Ensemble, dict]:
    torch.set_num_threads(1)
    teacher, meta = tiny_teacher()
    student, rep = D.distill_with_report(teacher, meta, hidden=[16, 16], init="random", **SMALL)
    return teacher, meta, student, rep


def test_student_matches_the_teacher_mean_on_held_out_states(distilled) -> None:
    teacher, meta, student, rep = distilled
    assert student.K == 1 and student.kwargs["hidden"] == [16, 16] and rep["initialized_from"] is None
    assert rep["history"]["best_val_loss"] < 0.05 * rep["history"]["val_loss"][0]
    for name in ("sigma_hat", "q_hat", "m", "k"):
        assert rep["val"]["all"][name]["rel_rmse"] < 0.1, (name, rep["val"]["all"][name])
    # independent held-out states (another seed, another mixture: the bulk only), teacher mean by torch
    rng = np.random.default_rng(99)
    W = W_MEAN + 0.5 * W_STD * rng.normal(size=(500, M))
    delta, tau = rng.uniform(-0.5, 0.5, 500), np.exp(rng.uniform(np.log(0.7), np.log(1.4), 500))
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        sh_t = teacher.stress_heat(t(W))[0].numpy()
        m_t, k_t = (a.numpy() for a in teacher.frame(t(W), t(delta), t(tau))[:2])
    cl = LearnedClosure(student, meta, inference="float64")
    sh_s = cl.stress_heat(W)
    m_s, k_s = cl.frame(W, delta, tau)
    rel = lambda a, b: np.sqrt(((a - b) ** 2).mean(0) / (b ** 2).mean(0))  # noqa: E731  per component
    assert np.all(rel(sh_s, sh_t) < 0.1), rel(sh_s, sh_t)
    assert np.all(rel(m_s - W, m_t - W) < 0.1), rel(m_s - W, m_t - W)
    assert np.all(rel(k_s, k_t) < 0.1), rel(k_s, k_t)


def test_anchor_and_frame_identity_are_exact(distilled) -> None:
    _, meta, student, _ = distilled
    rng = np.random.default_rng(5)
    W = np.vstack([W_MEAN + W_STD * rng.normal(size=(20, M)), W_EQ])
    for inference in LearnedClosure.INFERENCE:
        cl = LearnedClosure(student, meta, inference=inference)
        assert np.all(cl.stress_heat(W_EQ[None]) == 0.0), inference
        # inside a batch, BLAS may round N(z_eq) differently with the batch size (round-off only)
        atol = 1e-6 if inference == "float32" else 1e-15
        np.testing.assert_allclose(cl.stress_heat(W)[-1], 0.0, rtol=0, atol=atol)
        assert np.abs(cl.stress_heat(W[:-1])).max() > 0
        m, _ = cl.frame(W, 0.0, 1.0)
        assert np.array_equal(m, W), inference  # bitwise
        np.testing.assert_equal(cl.variance(W), 0.0)  # one member: no spread
    np.testing.assert_array_equal(student.w_eq.numpy(), W_EQ)


def test_init_from_a_teacher_member_starts_at_the_member_error() -> None:
    teacher, meta = tiny_teacher()
    opts = dict(SMALL, epochs=5, states=D.StateSampling(n_train=1000, n_val=500))
    _, rep = D.distill_with_report(teacher, meta, init="auto", **opts)
    assert rep["initialized_from"] == "teacher member 0"
    h = rep["history"]
    assert 0 < h["best_val_loss"] <= h["val_loss"][0]
    with pytest.raises(D.DistillError, match="init=teacher needs the teacher's architecture"):
        D.distill_with_report(teacher, meta, hidden=[4], init="teacher", **opts)


def test_exact_stress_heat_teacher_gives_an_exact_student() -> None:
    teacher, meta = tiny_teacher(exact_stress_heat=True)
    opts = dict(SMALL, epochs=3, states=D.StateSampling(n_train=500, n_val=200))
    student, _ = D.distill_with_report(teacher, meta, init="teacher", **opts)
    assert student.kwargs.get("exact_stress_heat") is True
    W = torch.as_tensor(W_MEAN + W_STD * np.random.default_rng(5).normal(size=(20, M)))
    with torch.no_grad():
        np.testing.assert_array_equal(student.stress_heat(W)[0].numpy(), teacher.stress_heat(W)[0].numpy())


def test_data_states_are_used_and_held_out() -> None:
    teacher, meta = tiny_teacher()
    W_data = W_MEAN + 0.3 * W_STD * np.random.default_rng(2).normal(size=(400, M))
    opts = dict(SMALL, epochs=3, states=D.StateSampling(n_train=800, n_val=300))
    _, rep = D.distill_with_report(teacher, meta, W_data=W_data, **opts)
    assert rep["n_data_states"] == 400 and rep["state_weights"]["data"] == pytest.approx(0.6)
    assert "data" in rep["val"] and "gauss+segment" in rep["val"]
    with pytest.raises(D.DistillError, match=r"W_data must be a finite \(N, 3\) array"):
        D.distill_with_report(teacher, meta, W_data=np.zeros((5, 2)), **opts)


def test_state_sampling() -> None:
    rng_W = D.teacher_range(tiny_teacher()[1], M)
    s = D.StateSampling(n_train=10, n_val=10, mix={"gauss": 1.0, "box": 1.0}, segment=0.5, s_max=1.5)
    W, kind = D.sample_states(5000, rng_W, W_EQ, s, np.random.default_rng(0))
    assert W.shape == (5000, M) and set(np.unique(kind)) == {1, 2, 11, 12}
    plain = kind < 10
    assert np.all(W[plain] >= rng_W["min"]) and np.all(W[plain] <= rng_W["max"])
    assert abs(plain.mean() - 0.5) < 0.05 and abs((kind % 10 == 2).mean() - 0.5) < 0.05
    # segment states lie on W_eq + s (W − W_eq), s in [0, 1.5]: some leave the box (extrapolation)
    seg = W[~plain]
    assert np.any(seg < rng_W["min"]) or np.any(seg > rng_W["max"])
    assert np.all(np.abs(seg - W_EQ) <= 1.5 * np.maximum(np.abs(rng_W["min"] - W_EQ), np.abs(rng_W["max"] - W_EQ))
                  + 1e-12)
    # without data, the data share is spread over the others; data only is an error
    assert D.StateSampling().weights(False) == pytest.approx({"data": 0.0, "gauss": 0.75, "box": 0.25})
    with pytest.raises(D.DistillError, match="no data states were given"):
        D.StateSampling(mix={"data": 1.0}).weights(False)


@pytest.mark.parametrize("bad, match", [
    ({"n_train": 0}, "must be >= 1"), ({"mix": {"grid": 1.0}}, "unknown state kinds"),
    ({"mix": {"gauss": -1.0, "box": 0.5}}, "non-negative"), ({"segment": 1.5}, r"must be in \[0, 1\]"),
    ({"s_max": 0.0}, "must be > 0"), ({"foo": 1}, "unknown stage.states keys"),
])
def test_bad_state_options(bad, match) -> None:
    with pytest.raises(D.DistillError, match=match):
        D.StateSampling.from_dict(bad)


def test_teacher_without_training_range_or_frames() -> None:
    teacher, meta = tiny_teacher(K=2)
    for key, match in (("W_range", "no complete training range"), ("frames", "no frame range")):
        bad = {k: v for k, v in meta.items() if k != key}
        with pytest.raises(ClosureCheckpointError, match=match):
            D.distill(teacher, bad, **SMALL)
    bad = dict(meta, W_range=dict(meta["W_range"], std=[1.0, 2.0]))
    with pytest.raises(ClosureCheckpointError, match=r"W_range'\]\['std'\] must hold 3 finite values"):
        D.distill(teacher, bad, **SMALL)
    with pytest.raises(D.DistillError, match="must be a kinclose closure Ensemble"):
        D.distill(torch.nn.Linear(3, 3), meta, **SMALL)
    with pytest.raises(D.DistillError, match="hidden widths"):
        D.distill(teacher, meta, hidden=[0], **SMALL)


def test_checkpoint_round_trip(distilled, tmp_path: Path) -> None:
    teacher, meta, student, rep = distilled
    tpath = save_closure_checkpoint(tmp_path / "teacher" / "closure.pt", teacher, meta)
    sha = file_sha256(tpath)
    _, tmeta = load_closure_checkpoint(tpath)
    smeta = D.student_meta(tmeta, sha, rep)
    spath = save_closure_checkpoint(tmp_path / "student" / "closure.pt", student, smeta)
    ens, m2 = load_closure_checkpoint(spath)
    assert ens.K == 1 and m2["kwargs"]["K"] == 1 and m2["kwargs"]["hidden"] == [16, 16]
    assert m2["distilled_from"] == sha and m2["W_range"] == meta["W_range"] and m2["frames"] == meta["frames"]
    assert m2["dataset_hash"] == "tiny" and m2["xi_max"] == 4.0
    assert m2["distillation"]["val"]["all"]["q_hat"]["rel_rmse"] == rep["val"]["all"]["q_hat"]["rel_rmse"]
    assert m2["extra"]["teacher_extra"] == meta["extra"] and "distill_k_rel_rmse" in m2["extra"]
    W = W_MEAN + W_STD * np.random.default_rng(7).normal(size=(50, M))
    ref = LearnedClosure(student, smeta, inference="torch")
    for inference, tol in (("torch", 0.0), ("float64", 1e-12), ("float32", 1e-5)):
        cl = LearnedClosure.from_checkpoint(spath, inference=inference)
        np.testing.assert_allclose(cl.stress_heat(W), ref.stress_heat(W), rtol=0, atol=tol)
        for a, b in zip(cl.frame(W, 0.2, 1.1), ref.frame(W, 0.2, 1.1)):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, np.abs(b).max()))
        assert cl.check_range(W)["n_outside"] == ref.check_range(W)["n_outside"]


def test_hyperbolicity_penalty_reaches_the_student() -> None:
    from kinclose.closure.hyperbolicity import member_penalty
    from kinclose.closure.train import Hyperbolicity

    teacher, meta = tiny_teacher()
    W = torch.as_tensor(W_MEAN + W_STD * np.random.default_rng(5).normal(size=(400, M)))
    pen = {}
    for w in (0.0, 10.0):
        student, rep = D.distill_with_report(teacher, meta, hidden=[16, 16], init="random",
                                             hyperbolicity=Hyperbolicity(weight=w), **dict(SMALL, epochs=20))
        pen[w] = float(member_penalty(student.members[0], W, 4.0, create_graph=False))
        assert rep["hyperbolicity"]["weight"] == w
        assert np.all(np.isfinite(rep["history"]["val_penalty"])) and (w > 0) == (max(rep["history"]["val_penalty"]) > 0)
    assert pen[0.0] > 0 and pen[10.0] < 0.5 * pen[0.0], pen
