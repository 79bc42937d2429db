"""The installed ``kinclose-train stage=moments`` console script on a tiny DVM dataset written in
the labeling shard schema: artefacts, loss decrease, checkpoint round trip, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kinclose.moments._synthetic import write_dataset

EXE = shutil.which("kinclose-train")
pytestmark = pytest.mark.skipif(EXE is None, reason="kinclose-train console script is not installed")

COMMON = ["threads=1", "stage.epochs=4", "stage.batch_size=32", "stage.encoder_hidden=[16,16]",
          "stage.decoder_hidden=[32,32]"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dataset(bgk_dataset: Path) -> Path:
    return bgk_dataset


def test_config_composes_with_the_moments_stage() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["stage=moments", "stage.model=hermite", "stage.M=5"])
    assert cfg.stage.name == "moments" and cfg.stage.model == "hermite" and cfg.stage.M == 5
    for key in ("lambda_eta", "epochs", "batch_size", "lr", "encoder_hidden", "decoder_hidden", "xi_max"):
        assert key in cfg.stage, key
    assert {"root", "val_fraction"} <= set(cfg.data) and cfg.device == "auto" and "seed" in cfg


@pytest.mark.parametrize("stage, override, word", [("moments", "stage.epochs=0", "epochs"),
                                                   ("moments", "stage.M=0", "M"),
                                                   ("moments", "stage.lr=-1", "lr must be > 0"),
                                                   ("closure", "stage.K=0", "K"),
                                                   ("distill", "stage.batch_size=0", "batch_size"),
                                                   ("rollout", "stage.patience=0", "patience")])
def test_training_sizes_no_run_can_use_are_refused_first(tmp_path: Path, stage: str, override: str,
                                                          word: str) -> None:
    from hydra import compose, initialize_config_module

    from kinclose.apps.train import run_stage

    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"stage={stage}", override])
    with pytest.raises(ValueError, match=word):
        run_stage(cfg, str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_cli_trains_and_the_checkpoint_round_trips(tmp_path: Path, dataset: Path) -> None:
    import torch

    from kinclose.moments.train import evaluate, load_checkpoint, load_dataset, split

    torch.set_num_threads(1)
    out = tmp_path / "run"
    res = _run(["stage=moments", f"data.root={dataset}", f"hydra.run.dir={out}", *COMMON], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("moments.pt", "metrics.json", "learning_curve.png", "reconstructions.png"):
        assert (out / name).stat().st_size > 500, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["final_val_loss"] < 0.8 * m["first_val_loss"], (m["first_val_loss"], m["final_val_loss"])
    assert m["model"] == "learned" and m["M"] == 3 and m["n_train"] + m["n_val"] == 2 * 4 * 16
    assert m["val"]["per_decade"] and m["data"]["dataset_hash"]
    # round trip: the checkpoint reloaded (weights_only=True) reproduces the reported validation error
    model, meta = load_checkpoint(out / "moments.pt", dataset_hash=m["data"]["dataset_hash"])
    assert meta["kwargs"]["M"] == 3
    data = load_dataset(dataset, model.grid)
    _, iva, _ = split(data, 0.2, seed=0)
    ev = evaluate(model, data.subset(iva), m["config"]["stage"]["lambda_eta"])
    np.testing.assert_allclose(ev["rel_l2"].mean(), m["val"]["all"]["rel_l2_mean"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(ev["loss"].mean(), m["final_val_loss"], rtol=1e-12, atol=0)


def test_cli_hermite_model(tmp_path: Path, dataset: Path) -> None:
    out = tmp_path / "run"
    res = _run(["stage=moments", "stage.model=hermite", "stage.M=2", "stage.hermite_basis=graded",
                f"data.root={dataset}", f"hydra.run.dir={out}", *COMMON], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "hermite" and m["hermite_basis"] == "graded"
    np.testing.assert_allclose(m["W_eq"], 0.0, rtol=0, atol=1e-14)


def test_cli_stops_on_a_velocity_grid_that_does_not_cover_the_data(tmp_path: Path) -> None:
    root = tmp_path / "narrow"
    # drop 12 of 64 velocity nodes on each side after labeling
    write_dataset(root, n_shards=1, seed=2, kn_range=(0.1, 0.2), nx=16, nv=64, nt=2, t_end=0.02, crop=12)
    res = _run(["stage=moments", f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}", *COMMON], cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "cells (in 1 shards: shard_00000.h5" in res.stderr and "are not covered" in res.stderr
    assert "Fix: relabel with velocity grids covering" in res.stderr and "lower stage.xi_max to <=" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_stops_on_another_schema_version(tmp_path: Path, dataset: Path) -> None:
    bad = tmp_path / "v2"
    shutil.copytree(dataset, bad)
    man = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**man, "schema_version": 2}))
    res = _run(["stage=moments", f"data.root={bad}", f"hydra.run.dir={tmp_path / 'run'}", *COMMON], cwd=tmp_path)
    assert res.returncode == 2
    assert "schema_version 2, this code reads schema_version 1" in res.stderr and "Traceback" not in res.stderr
