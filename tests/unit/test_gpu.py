"""Training on a GPU (issue 5: "runs on the GPU when one is present"): the moments and closure stages
with ``device=cuda`` give the CPU run's numbers (float64 both; only the order of floating-point
reductions differs), write checkpoints that load on a CPU-only machine, and ``device=auto`` picks the GPU.

Marked ``gpu``: skipped where torch sees no CUDA device (CI); run on a GPU machine with
``pytest -m gpu``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.conf import compose  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MOMENTS_ARGS = ["threads=1", "stage.epochs=4", "stage.batch_size=32", "stage.encoder_hidden=[16,16]",
                "stage.decoder_hidden=[32,32]"]
CLOSURE_ARGS = ["threads=1", "stage.epochs=8", "stage.patience=15", "stage.batch_size=16", "stage.hidden=[32,32]",
                "stage.K=2"]


@pytest.fixture(scope="module")
def dataset(bgk_dataset: Path) -> Path:
    return bgk_dataset


def test_device_auto_is_the_gpu() -> None:
    from kinclose.moments.train import resolve_device

    assert resolve_device("auto") == "cuda"
    assert resolve_device("cpu") == "cpu"


@pytest.fixture(scope="module")
def runs(dataset: Path, tmp_path_factory) -> dict:
    """Moments then closure, once on each device, from the same config and seed."""
    from kinclose.closure.train import train_closure
    from kinclose.moments.train import train_moments

    out = {}
    for dev in ("cpu", "cuda"):
        d = tmp_path_factory.mktemp(dev)
        mm = train_moments(compose("train", ["stage=moments", f"data.root={dataset}", f"device={dev}",
                                             *MOMENTS_ARGS]), d / "moments")
        mc = train_closure(compose("train", ["stage=closure", f"data.root={dataset}", f"device={dev}",
                                             f"moments_ckpt={d / 'moments' / 'moments.pt'}", *CLOSURE_ARGS]),
                           d / "closure")
        out[dev] = (d, mm, mc)
    return out


def test_moments_stage_on_the_gpu_matches_the_cpu(runs) -> None:
    _, cpu, _ = runs["cpu"]
    _, gpu, _ = runs["cuda"]
    assert cpu["device"] == "cpu" and gpu["device"] == "cuda"
    assert gpu["final_val_loss"] < 0.8 * gpu["first_val_loss"]  # it trained
    np.testing.assert_allclose(gpu["history"]["val_loss"], cpu["history"]["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(gpu["val"]["all"]["rel_l2_mean"], cpu["val"]["all"]["rel_l2_mean"], rtol=1e-6)


def test_closure_stage_on_the_gpu_matches_the_cpu(runs) -> None:
    _, _, cpu = runs["cpu"]
    _, _, gpu = runs["cuda"]
    assert gpu["device"] == "cuda"
    np.testing.assert_allclose(gpu["best_val_loss"], cpu["best_val_loss"], rtol=1e-5)
    for key in ("sigma_hat", "q_hat", "m", "k"):
        np.testing.assert_allclose(gpu["val"]["all"][key]["rmse"], cpu["val"]["all"][key]["rmse"], rtol=1e-5)


def test_closure_members_fitted_side_by_side_on_the_gpu(runs, dataset: Path, tmp_path: Path) -> None:
    """stage.workers=2 on CUDA: two spawned processes share the GPU and give the one-process run's members (to the
    order of the GPU's reductions), loaded back onto the GPU."""
    from kinclose.closure.train import train_closure

    d, _, one = runs["cuda"]
    two = train_closure(compose("train", ["stage=closure", f"data.root={dataset}", "device=cuda", "stage.workers=2",
                                          f"moments_ckpt={d / 'moments' / 'moments.pt'}", *CLOSURE_ARGS]), tmp_path)
    assert two["device"] == "cuda"
    np.testing.assert_allclose(two["best_val_loss"], one["best_val_loss"], rtol=1e-9)
    a = torch.load(d / "closure" / "closure.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "closure.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-7, atol=1e-10, err_msg=k)


def test_gpu_checkpoints_load_on_the_cpu(runs) -> None:
    from kinclose.closure.learned import LearnedClosure
    from kinclose.moments.train import load_checkpoint

    d, _, _ = runs["cuda"]
    model, meta = load_checkpoint(d / "moments" / "moments.pt", map_location="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    clo = LearnedClosure.from_checkpoint(d / "closure" / "closure.pt")
    W = np.tile(model.w_eq().detach().numpy(), (4, 1))
    assert np.all(np.isfinite(clo.stress_heat(W, None)))
