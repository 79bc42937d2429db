"""Learned collision source (kinclose.closure.source) on a tiny Boltzmann dataset: exact anchor
R̂(W_eq) = 0, training lowers the loss, checkpoint round trip (weights_only) with β* in the metadata,
clear errors for corrupted/foreign checkpoints and BGK data, and the installed ``kinclose-train
stage=source``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.conf import compose  # noqa: E402
from kinclose.closure import source as S  # noqa: E402
from kinclose.data.label import DatasetSpec  # noqa: E402
from kinclose.data.runner import ClusterSpec, label_dataset  # noqa: E402

EXE = shutil.which("kinclose-train")
RANGES = dict(rho=[0.8, 1.3], T=[0.8, 1.3], u=[-0.3, 0.3], max_density_ratio=1.5, max_temperature_ratio=1.5,
              max_velocity_jump=0.5, max_expansion=0.5, max_shock_mach=1.5, max_anisotropy=1.6, noneq_fraction=1.0,
              kn=[0.05, 0.5])
SPEC = DatasetSpec(name="bz_src", n_tasks=3, seed=8, nx=8, t_end=0.02, n_snapshots=3, collision="boltzmann",
                   v_width=5.0, T_margin=1.0, ranges=RANGES, boltzmann=dict(n=10, n_dirs=6, grid_rtol=0.05,
                                                                             tail_tol=1e-4))
MOMENTS_ARGS = ["threads=1", "stage.model=hermite", "stage.M=3", "stage.epochs=2", "stage.batch_size=32",
                "stage.decoder_hidden=[16,16]", "stage.xi_max=3.5", "stage.n_xi=32", "data.split=cell",
                "stage.interpolation=cubic"]
SOURCE_ARGS = ["threads=1", "stage.K=4", "stage.epochs=60", "stage.patience=60", "stage.batch_size=16",
               "stage.hidden=[16,16]", "stage.beta_states=50", "data.split=cell"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    from kinclose.moments.train import train_moments

    out = tmp_path_factory.mktemp("source")
    root = out / "data"
    s = label_dataset(SPEC, root, ClusterSpec(kind="serial", threads=1), progress=False)
    assert s["failed"] == 0, s["failures"]
    torch.set_num_threads(1)
    train_moments(compose("train", ["stage=moments", f"data.root={root}", *MOMENTS_ARGS]), out / "moments")
    cfg = compose("train", ["stage=source", f"data.root={root}", f"moments_ckpt={out / 'moments' / 'moments.pt'}",
                    *SOURCE_ARGS])
    return root, out, S.train_source(cfg, out / "src")


def test_config_composes_with_the_source_stage() -> None:
    cfg = compose("train", ["stage=source", "moments_ckpt=x.pt", "stage.K=5"])
    assert cfg.stage.name == "source" and cfg.moments_ckpt == "x.pt" and cfg.stage.K == 5


def test_anchor_is_exact() -> None:
    ens = S.SourceEnsemble(M=3, K=4, hidden=[8, 8], seed=2)
    w_eq = np.array([0.3, -0.1, 0.7])
    ens.set_statistics({"w_mean": [0.1, 0.0, 0.5], "w_std": [0.2, 0.3, 0.4], "w_eq": w_eq, "y_std": [1.0, 2.0, 3.0]})
    W = torch.tensor(np.vstack([np.random.default_rng(0).normal(size=(5, 3)), w_eq, w_eq + 1e-3]))
    with torch.no_grad():
        R = ens(W).numpy()
        assert np.all(R[5] == 0.0)  # bitwise, inside a batch
        assert np.all(ens(torch.tensor(w_eq[None])).numpy() == 0.0)
        assert np.abs(R[6]).max() > 0 and np.abs(R[:5]).max() > 0
    for mem in ens.members:  # every member, not just the mean
        with torch.no_grad():
            assert np.all(mem(torch.tensor(w_eq[None])).numpy() == 0.0)
    # the exact anchor does not hide the derivative at W_eq (β* needs it): compare with differences
    J = S.jacobians(ens, w_eq[None])[0]
    h = 1e-6
    with torch.no_grad():
        fd = np.stack([(ens(torch.tensor((w_eq + h * e)[None])) - ens(torch.tensor((w_eq - h * e)[None]))).numpy()[0]
                       / (2 * h) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)
    assert np.abs(J).max() > 0
    with pytest.raises(ValueError, match="K >= 1"):
        S.SourceEnsemble(M=3, K=0)


def test_training_lowers_the_loss_and_writes_artefacts(trained) -> None:
    _, out, met = trained
    for name in ("source.pt", "metrics.json", "learning_curve.png"):
        assert (out / "src" / name).stat().st_size > 500, name
    assert met["K"] == 4 and met["anchor_defect"] == 0.0
    for first, best in zip(met["first_val_loss"], met["best_val_loss"]):
        assert best < 0.8 * first, (first, best)
    for h in met["history"]:
        assert h["train_loss"][-1] < 0.8 * h["train_loss"][1]
    b = met["beta"]
    assert b["beta_eq"] > 0 and b["beta_q99"] > 0 and np.isfinite(b["beta_max"])
    disk = json.loads((out / "src" / "metrics.json").read_text())
    assert disk["beta"] == b and "val_bgk_baseline" in disk


def test_source_members_fitted_side_by_side_are_the_sequential_ones(trained, tmp_path: Path) -> None:
    """stage.workers=2 fits the source members in two spawned processes (closure.train.fit_members): the same
    weights and loss curves, bit for bit, as the module's one-process run at one torch thread."""
    root, out, met = trained
    cfg = compose("train", ["stage=source", f"data.root={root}", f"moments_ckpt={out / 'moments' / 'moments.pt'}",
                            *SOURCE_ARGS, "stage.workers=2"])
    met2 = S.train_source(cfg, tmp_path / "w2")
    np.testing.assert_equal(*[[{k: v for k, v in h.items() if k != "wall_s"} for h in m["history"]]
                              for m in (met, met2)])
    a, b = (torch.load(p / "source.pt", weights_only=True)["state_dict"] for p in (out / "src", tmp_path / "w2"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_round_trip(trained) -> None:
    _, out, met = trained
    path = out / "src" / "source.pt"
    raw = torch.load(path, weights_only=True)  # plain tensors and JSON-like types only
    assert raw["format"] == S.CHECKPOINT_FORMAT and raw["beta"]["beta_eq"] == met["beta"]["beta_eq"]
    ens, meta = S.load_source_checkpoint(path)
    src = S.LearnedSource(ens, meta)
    assert src.beta == pytest.approx(met["beta"]["beta_q99"])
    W = np.asarray(met["W_eq"])[None] + np.random.default_rng(1).normal(scale=0.05, size=(6, 3))
    a = src.rate(W)
    b = S.LearnedSource.from_checkpoint(path).rate(W)
    np.testing.assert_array_equal(a, b)
    assert np.all(src.rate(np.asarray(met["W_eq"])[None]) == 0.0)
    # β* at W_eq from the loaded model equals the stored one
    r = S.linearization_rates(ens, np.asarray(met["W_eq"]), W)
    assert r["beta_eq"] == pytest.approx(met["beta"]["beta_eq"], rel=1e-12)


def test_corrupted_and_foreign_checkpoints(trained, tmp_path: Path) -> None:
    _, out, _ = trained
    good = (out / "src" / "source.pt").read_bytes()
    bad = tmp_path / "source.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(S.SourceCheckpointError, match="corrupted or truncated"):
        S.load_source_checkpoint(bad)
    with pytest.raises(S.SourceCheckpointError, match="does not exist"):
        S.load_source_checkpoint(tmp_path / "nope.pt")
    torch.save({"format": "something.else"}, bad)
    with pytest.raises(S.SourceCheckpointError, match="not a kinclose source checkpoint"):
        S.load_source_checkpoint(bad)
    obj = torch.load(out / "src" / "source.pt", weights_only=True)
    obj["source_version"] = 99
    torch.save(obj, bad)
    with pytest.raises(S.SourceCheckpointError, match="source version 99"):
        S.load_source_checkpoint(bad)
    obj["source_version"] = S.SOURCE_VERSION
    obj["kwargs"]["M"] = 5
    torch.save(obj, bad)
    with pytest.raises(S.SourceCheckpointError, match="weights do not fit"):
        S.load_source_checkpoint(bad)


def test_bgk_data_is_refused(tmp_path: Path) -> None:
    from kinclose.moments._synthetic import write_dataset
    from kinclose.moments.shape import XiGrid
    from kinclose.moments.train import DatasetError

    write_dataset(tmp_path / "bgk", n_shards=1, seed=1, kn_range=(0.05, 1.0), nx=8, nv=64, nt=2, t_end=0.02)
    with pytest.raises(DatasetError, match="reduced collision terms"):
        S.load_source_dataset(tmp_path / "bgk", XiGrid(4.0, 32))


@pytest.mark.skipif(EXE is None, reason="kinclose-train console script is not installed")
def test_cli_trains_source(trained, tmp_path: Path) -> None:
    root, out, _ = trained
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", TQDM_DISABLE="1", NUMBA_NUM_THREADS="1")

    def run(args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([EXE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    res = run(["stage=source", f"moments_ckpt={out / 'moments' / 'moments.pt'}", f"data.root={root}",
               f"hydra.run.dir={tmp_path / 's'}", "stage.epochs=3", *SOURCE_ARGS[:1], "stage.K=1",
               "data.split=cell", "stage.beta_states=20"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "s" / "source.pt").is_file()
    res = run(["stage=source", f"data.root={root}", f"hydra.run.dir={tmp_path / 'x'}"])
    assert res.returncode == 2 and "needs the moments checkpoint" in res.stderr and "Traceback" not in res.stderr
