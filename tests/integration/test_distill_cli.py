"""``kinclose-train stage=distill``: the stage config composes (unknown keys rejected), the stage
function writes a normal closure checkpoint with the teacher's metadata plus ``distilled_from``, a
corrupted/foreign/mismatched teacher gives a clear error, and the installed console script runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hydra.errors import ConfigCompositionException  # noqa: E402

from kinclose.conf import compose  # noqa: E402
from kinclose.closure import distill as D  # noqa: E402
from kinclose.closure.learned import LearnedClosure  # noqa: E402
from kinclose.closure.networks import Ensemble  # noqa: E402
from kinclose.closure.train import ClosureCheckpointError, file_sha256, save_closure_checkpoint  # noqa: E402
from kinclose.moments.train import DATA_SCHEMA_VERSION  # noqa: E402
from kinclose.pretrained import resolve  # noqa: E402

EXE = shutil.which("kinclose-train")
FAST = ["threads=1", "stage.states.n_train=600", "stage.states.n_val=200", "stage.epochs=3", "stage.batch_size=128",
        "stage.hidden=[8]", "stage.spectrum_states=20"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory) -> Path:
    ens = Ensemble(M=3, K=4, hidden=[8, 8], seed=5)
    w_eq = np.array([1.0, 0.0, 0.4])
    ens.set_statistics({"w_mean": [1.05, -0.05, 0.42], "w_std": [0.2, 0.3, 0.05], "w_eq": w_eq})
    W = np.array([1.05, -0.05, 0.42]) + np.array([0.2, 0.3, 0.05]) * np.random.default_rng(0).normal(size=(500, 3))
    meta = {"data_schema_version": DATA_SCHEMA_VERSION, "xi_max": 4.0, "dataset_hash": "tiny",
            "moments_checkpoint_sha256": "0" * 64,
            "W_range": {"min": W.min(0), "max": W.max(0), "mean": W.mean(0), "std": W.std(0),
                        "q001": np.quantile(W, 0.001, 0), "q999": np.quantile(W, 0.999, 0)},
            "frames": {"n_frames": 3, "delta_max": 0.5, "tau_min": 0.7, "tau_max": 1.4}}
    return save_closure_checkpoint(tmp_path_factory.mktemp("teacher") / "closure.pt", ens, meta)


def test_config_composes_and_rejects_unknown_keys() -> None:
    cfg = compose("train", ["stage=distill", "closure_ckpt=x.pt", "stage.hidden=[32,32]", "stage.states.n_train=10"])
    assert cfg.stage.name == "distill" and cfg.closure_ckpt == "x.pt" and list(cfg.stage.hidden) == [32, 32]
    assert D.StateSampling.from_dict(cfg.stage.states).n_train == 10
    assert cfg.stage.hyperbolicity.weight == 0.1  # the closure stage's default penalty
    for bad in ("stage.no_such_option=1", "stage.states.no_such_state=1", "stage.hyperbolicity.no_such_key=1"):
        with pytest.raises(ConfigCompositionException):
            compose("train", ["stage=distill", bad])


def test_stage_writes_a_closure_checkpoint(teacher_path: Path, tmp_path: Path) -> None:
    met = D.train_distill(compose("train", ["stage=distill", f"closure_ckpt={teacher_path}", *FAST]), tmp_path / "s")
    for name in ("closure.pt", "metrics.json", "learning_curve.png"):
        assert (tmp_path / "s" / name).stat().st_size > 500, name
    cl = LearnedClosure.from_checkpoint(tmp_path / "s" / "closure.pt")
    assert cl.ensemble.K == 1 and cl.ensemble.kwargs["hidden"] == [8]
    assert cl.meta["distilled_from"] == file_sha256(teacher_path) == met["teacher_sha256"]
    assert cl.meta["dataset_hash"] == "tiny" and cl.meta["frames"]["n_frames"] == 3
    assert cl.meta["distillation"]["val"]["all"]["sigma_hat"]["rel_rmse"] == met["val"]["all"]["sigma_hat"]["rel_rmse"]
    assert np.all(cl.stress_heat(cl.equilibrium()[None]) == 0.0)
    disk = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert disk["stage"] == "distill" and disk["config"]["closure_ckpt"] == str(teacher_path)
    assert disk["characteristic_speeds"]["validation"]["speed_max"] > 0
    assert disk["hyperbolicity"]["weight"] == 0.1 and len(disk["history"]["val_penalty"]) > 1
    # s_max: auto (the default) = the teacher's largest speed on the check states, rounded up to 0.5
    s_te = disk["teacher_characteristic_speeds"]["validation"]["speed_max"]
    assert disk["config"]["stage"]["hyperbolicity"]["s_max"] == "auto"
    assert disk["hyperbolicity"]["s_max"] == D.auto_speed_bound(s_te) and s_te <= disk["hyperbolicity"]["s_max"] < s_te + 0.5
    assert cl.meta["distillation"]["hyperbolicity"]["s_max"] == disk["hyperbolicity"]["s_max"]


def test_speed_bound_auto_and_explicit(teacher_path: Path, tmp_path: Path) -> None:
    assert D.auto_speed_bound(7.7) == 8.0 and D.auto_speed_bound(8.0) == 8.0 and D.auto_speed_bound(0.2) == 0.5
    for bad in (0.0, float("nan"), -1.0):
        with pytest.raises(D.DistillError, match="s_max=auto"):
            D.auto_speed_bound(bad)
    met = D.train_distill(compose("train", ["stage=distill", f"closure_ckpt={teacher_path}", *FAST,
                                            "stage.hyperbolicity.s_max=6.0"]), tmp_path / "n")
    assert met["hyperbolicity"]["s_max"] == 6.0
    met = D.train_distill(compose("train", ["stage=distill", f"closure_ckpt={teacher_path}", *FAST,
                                            "stage.spectrum_states=0", "stage.hyperbolicity.s_max=6.0"]), tmp_path / "o")
    assert met["characteristic_speeds"] is None and met["teacher_characteristic_speeds"] is None
    # auto checks the speeds (1000 states) even when stage.spectrum_states = 0
    met = D.train_distill(compose("train", ["stage=distill", f"closure_ckpt={teacher_path}", *FAST,
                                            "stage.spectrum_states=0"]), tmp_path / "a")
    assert met["characteristic_speeds"]["validation"]["speed_max"] > 0
    assert met["hyperbolicity"]["s_max"] == D.auto_speed_bound(met["teacher_characteristic_speeds"]["validation"]["speed_max"])
    # auto is the distillation's: the closure stage has no teacher and refuses it clearly
    from kinclose.closure.train import Hyperbolicity
    with pytest.raises(ValueError, match="must be a number > 0 \\(auto: stage=distill only\\)"):
        Hyperbolicity.from_dict({"s_max": "auto"})


def test_bad_teachers_give_clear_errors(teacher_path: Path, tmp_path: Path) -> None:
    def run(spec: str, *extra: str):
        return D.train_distill(compose("train", ["stage=distill", f"closure_ckpt={spec}", *FAST, *extra]), tmp_path / "x")

    with pytest.raises(ClosureCheckpointError, match="needs the teacher"):
        D.train_distill(compose("train", ["stage=distill"]), tmp_path / "x")
    with pytest.raises(ClosureCheckpointError, match="does not exist"):
        run(str(tmp_path / "missing.pt"))
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(teacher_path.read_bytes()[:300])
    with pytest.raises(ClosureCheckpointError, match="corrupted or truncated"):
        run(str(bad))
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "kinclose.source.ensemble", "state_dict": {}}, foreign)
    with pytest.raises(ClosureCheckpointError, match="not a kinclose closure checkpoint"):
        run(str(foreign))
    # data states need the teacher's own moments checkpoint (another encoder's W mean something else)
    with pytest.raises(ClosureCheckpointError, match="is not the moments checkpoint the teacher was trained with"):
        other = resolve("pretrained:mlc_small").parent / "moments.pt"
        run(str(teacher_path), "stage.dataset=nowhere", f"moments_ckpt={other}")
    with pytest.raises(ClosureCheckpointError, match="no moments checkpoint to encode it"):
        run(str(teacher_path), "stage.dataset=nowhere")


@pytest.mark.skipif(EXE is None, reason="kinclose-train console script is not installed")
def test_console_script(teacher_path: Path, tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", TQDM_DISABLE="1")

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([EXE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    res = run(["stage=distill", f"closure_ckpt={teacher_path}", f"hydra.run.dir={tmp_path / 'd'}", *FAST])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "d" / "closure.pt").stat().st_size > 500
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    res = run(["stage=distill", f"closure_ckpt={bad}", f"hydra.run.dir={tmp_path / 'e'}", *FAST])
    assert res.returncode == 2 and "corrupted or truncated" in res.stderr and "Traceback" not in res.stderr
