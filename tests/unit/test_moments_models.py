"""Encoders, decoder and checkpoints of the generalized-moment autoencoder (kinclose.moments).

Invariance of W under u → a + s u, T → s² T; W(Maxwellian) = W_eq (zeros for Hermite); decoded
shapes positive with ∫ĝ = 1, ∫ξĝ = 0, ∫(ξ²ĝ + ĥ) = 3 to round-off; decoded Maxwellian entropy;
training lowers the loss; checkpoint round trip and clear errors for bad checkpoints and data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinclose.kinetic.grid import VelocityGrid  # noqa: E402
from kinclose.kinetic.moments import maxwellian, maxwellian_entropy  # noqa: E402
from kinclose.kinetic.solver import DVMSolver  # noqa: E402
from kinclose.moments._synthetic import write_dataset  # noqa: E402
from kinclose.moments.decoders import MODEL_VERSION, MomentAutoencoder  # noqa: E402
from kinclose.moments.shape import entropy_from_shape, maxwellian_shape, shape_moments, to_shape  # noqa: E402
from kinclose.moments.train import (  # noqa: E402
    CheckpointError,
    DatasetError,
    evaluate,
    fit,
    load_checkpoint,
    load_dataset,
    save_checkpoint,
    split,
)
from kinclose.physics import mu_ref_for_knudsen  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64
MODELS = [("learned", "orders"), ("hermite", "orders"), ("hermite", "graded")]


def _model(kind, basis="orders", M=3, seed=0, **kw):
    torch.manual_seed(seed)
    return MomentAutoencoder(kind, M, xi_max=8.0, n_xi=128, encoder_hidden=[16, 16], decoder_hidden=[32, 32],
                             hermite_basis=basis, **kw)


def _t(a):
    return torch.as_tensor(np.ascontiguousarray(a), dtype=F64)


@pytest.fixture(scope="module")
def cells():
    """Non-equilibrium BGK cells (DVM from random smooth data): g, h (nx, nv) and the grid."""
    rng = np.random.default_rng(11)
    nx = 16
    x = (np.arange(nx) + 0.5) / nx
    rho = 1 + 0.4 * np.sin(2 * np.pi * x + rng.uniform(0, 6))
    u = 0.5 * np.cos(2 * np.pi * x + rng.uniform(0, 6))
    T = 1 + 0.5 * np.sin(2 * np.pi * x + rng.uniform(0, 6))
    grid = VelocityGrid.for_states(u, 2.0 * T, 128, width=9.0)
    s = DVMSolver(0, 1, nx, grid, mu_ref_for_knudsen(0.3, 0.5), 0.5, "bgk", "periodic", 0.5, "mc", threads=1)
    s.set_maxwellian(rho, u, T)
    for _ in range(30):
        s.step()
    g, h = s.interior
    return g.copy(), h.copy(), grid


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("moments_data") / "ds"
    write_dataset(root, n_shards=2, seed=5, kn_range=(0.05, 1.0), nx=16, nv=64, nt=4, t_end=0.08)
    return root


@pytest.mark.parametrize("kind, basis", MODELS)
def test_encoders_are_galilean_and_scale_invariant(cells, kind, basis):
    """Shift u by a, scale √T by s (grid and distribution alike): identical W to round-off."""
    g, h, vg = cells
    m = _model(kind, basis, M=4)
    G, H, *_ = to_shape(g, h, vg.v, vg.dv, m.grid)
    W = m.encode(_t(G), _t(H)).detach().numpy()
    assert np.abs(W - m.w_eq().detach().numpy()).max() > 1e-3  # really out of equilibrium
    for a, s, c in ((5.0, 1.0, 1.0), (-1.5, 0.3, 3.0), (0.2, 3.1, 0.05)):
        G2, H2, *_ = to_shape(c * g / s, c * s * h, a + s * vg.v, s * vg.dv, m.grid)
        W2 = m.encode(_t(G2), _t(H2)).detach().numpy()
        np.testing.assert_allclose(W2, W, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind, basis", MODELS)
def test_maxwellian_maps_to_equilibrium_moments(kind, basis):
    rho, u, T = np.array([1.0, 0.2, 4.0]), np.array([0.0, 2.0, -3.0]), np.array([1.0, 0.3, 5.0])
    vg = VelocityGrid.for_states(u, T, 300, width=11.0)
    g, h = maxwellian(rho, u, T, vg.v)
    m = _model(kind, basis, M=5)
    G, H, *_ = to_shape(g, h, vg.v, vg.dv, m.grid)
    W = m.encode(_t(G), _t(H)).detach().numpy()
    w_eq = m.w_eq().detach().numpy()
    phi, h2 = maxwellian_shape(m.grid)
    np.testing.assert_allclose(w_eq, m.encode(_t(phi[None]), _t(h2[None])).detach().numpy()[0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(W, np.broadcast_to(w_eq, W.shape), rtol=0, atol=1e-10)
    if kind == "hermite":
        np.testing.assert_allclose(W, 0.0, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind, basis", MODELS)
@pytest.mark.parametrize("M", [1, 3, 6])
def test_decoded_shapes_are_positive_and_conserve_exactly(kind, basis, M):
    m = _model(kind, basis, M=M, seed=M)
    with torch.no_grad():  # exaggerate the raw shapes far beyond a trained model's
        for p in m.decoder.net.parameters():
            p.mul_(3.0)
    gen = torch.Generator().manual_seed(1)
    W = m.w_eq() + 4.0 * torch.randn(400, M, generator=gen, dtype=F64)
    out = m.decode(W)
    G, H = out["G"].detach().numpy(), out["H"].detach().numpy()
    assert np.all(G > 0) and np.all(H > 0)
    assert np.all(np.isfinite(out["logG"].detach().numpy())) and np.all(np.isfinite(out["logH"].detach().numpy()))
    np.testing.assert_allclose(shape_moments(G, H, m.grid), np.tile([1.0, 0.0, 3.0], (W.shape[0], 1)), rtol=0, atol=1e-12)
    assert float(out["newton_residual"].max()) < 1e-10
    # the shapes are far from Maxwellian, so the constraints are not satisfied trivially
    phi, _ = maxwellian_shape(m.grid)
    assert np.abs(G - phi).max() > 0.05


@pytest.mark.parametrize("kind, basis", MODELS)
def test_decoded_maxwellian_has_the_exact_entropy(kind, basis, cells):
    """Φ(W_eq) is the Maxwellian shape by construction (also after training); its entropy
    ρ [η̂ + ln ρ − 1.5 ln T] equals the exact Maxwellian entropy to quadrature accuracy."""
    m = _model(kind, basis, M=3)
    g, h, vg = cells
    G, H, *_ = to_shape(g, h, vg.v, vg.dv, m.grid)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2) if any(p.requires_grad for p in m.parameters()) else None
    for _ in range(5):  # a few training steps: the property must not depend on the weights
        out = m(_t(G), _t(H))
        loss = ((out["G"] - _t(G)) ** 2).sum()
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()
    rho, u, T = np.array([0.5, 2.0]), np.array([1.0, -3.0]), np.array([0.3, 7.0])
    vgm = VelocityGrid.for_states(u, T, 300, width=11.0)
    gm, hm = maxwellian(rho, u, T, vgm.v)
    Gm, Hm, r, uu, TT = to_shape(gm, hm, vgm.v, vgm.dv, m.grid)
    out = m(_t(Gm), _t(Hm))
    eta = entropy_from_shape(out["eta"].detach().numpy(), r, TT)
    np.testing.assert_allclose(eta, maxwellian_entropy(rho, T), rtol=1e-10, atol=0)
    phi, h2 = maxwellian_shape(m.grid)
    np.testing.assert_allclose(out["G"].detach().numpy(), np.broadcast_to(phi, (2, phi.size)), rtol=0, atol=1e-10)


def test_training_reduces_the_loss(tiny_dataset):
    m = _model("learned", M=2)
    data = load_dataset(tiny_dataset, m.grid)
    itr, iva, how = split(data, 0.25, seed=0)
    assert how == "cell" and len(itr) + len(iva) == len(data) == 2 * 4 * 16
    hist = fit(m, data.subset(itr), data.subset(iva), epochs=8, batch_size=32, lr=3e-3, lambda_eta=1.0, seed=0)
    assert hist["val_loss"][-1] < 0.6 * hist["val_loss"][0], hist["val_loss"]
    assert hist["train_loss"][-1] < 0.6 * hist["train_loss"][1], hist["train_loss"]
    # the final parameters are kept (no early stopping on the reported set)
    ev = evaluate(m, data.subset(iva), 1.0)
    np.testing.assert_allclose(ev["loss"].mean(), hist["val_loss"][-1], rtol=1e-10, atol=0)
    # keep_best restores the epoch of lowest validation loss
    m2 = _model("learned", M=2)
    h2 = fit(m2, data.subset(itr), data.subset(iva), epochs=3, batch_size=32, lr=3e-3, lambda_eta=1.0, seed=0,
             keep_best=True)
    ev2 = evaluate(m2, data.subset(iva), 1.0)
    np.testing.assert_allclose(ev2["loss"].mean(), min(h2["val_loss"]), rtol=1e-10, atol=0)



def test_relative_loss_is_the_squared_reported_error(tiny_dataset):
    """relative_loss trains on ‖Δ(ĝ, ĥ)‖²/‖(ĝ, ĥ)‖² + λ_η Δη̂², the square of evaluate's rel_l2 (plus entropy)."""
    from kinclose.moments.train import batch_loss

    m = _model("learned", M=2)
    data = load_dataset(tiny_dataset, m.grid)
    G, H, eta = _t(data.G), _t(data.H), _t(data.eta)
    with torch.no_grad():
        m.set_input_scale(m.encode(G, H))
        loss_abs, rec, ent, _ = batch_loss(m, G, H, eta, 0.5)
        loss_rel, rec2, _, _ = batch_loss(m, G, H, eta, 0.5, relative=True)
    ev = evaluate(m, data, 0.5)
    assert torch.equal(rec, rec2)  # the returned term stays absolute
    np.testing.assert_allclose(float(loss_abs), float((rec + 0.5 * ent).mean()), rtol=1e-12)
    np.testing.assert_allclose(float(loss_rel), float(np.mean(ev["rel_l2"] ** 2) + 0.5 * ent.mean()), rtol=1e-10)
    assert abs(float(loss_rel) - float(loss_abs)) > 1e-3 * float(loss_abs)
    hist = fit(m, data, data, epochs=4, batch_size=32, lr=3e-3, lambda_eta=0.5, seed=0, relative_loss=True)
    assert hist["val_loss"][-1] < hist["val_loss"][0]

def test_flux_moments_are_the_fluxes_of_stress_and_heat(tmp_path, cells):
    """flux_moments: W = (1 + σ̂, q̂, ∫ξ³ĝ, ½∫(ξ⁴ĝ + ξ²ĥ), learned …) by an independent quadrature; the
    Maxwellian gives (1, 0, 0, 5/2); M = 4 has no encoder network and survives a checkpoint round trip."""
    g, h, vg = cells
    for M in (4, 5):
        m = _model("learned", M=M, stress_heat_moments=True, flux_moments=True)
        G, H, *_ = to_shape(g, h, vg.v, vg.dv, m.grid)
        xi, dxi = m.grid.xi, m.grid.dxi
        ref = np.stack([(xi**2 * G).sum(1) * dxi, 0.5 * (xi**3 * G + xi * H).sum(1) * dxi, (xi**3 * G).sum(1) * dxi,
                        0.5 * (xi**4 * G + xi**2 * H).sum(1) * dxi], 1)
        W = m.encode(_t(G), _t(H)).detach().numpy()
        assert W.shape == (G.shape[0], M)
        np.testing.assert_allclose(W[:, :4], ref, rtol=1e-12, atol=1e-12)
        assert np.abs(ref[:, 2:] - [0.0, 2.5]).max() > 1e-2  # really away from equilibrium
        np.testing.assert_allclose(m.w_eq().detach().numpy()[:4], [1.0, 0.0, 0.0, 2.5], rtol=0, atol=1e-9)
        n_enc = sum(p.numel() for p in m.encoder.parameters())
        assert (n_enc == 0) == (M == 4)
    m4 = _model("learned", M=4, stress_heat_moments=True, flux_moments=True)
    path = save_checkpoint(tmp_path / "fm.pt", m4, dataset_hash="x")
    m4b, meta = load_checkpoint(path)
    assert meta["kwargs"]["flux_moments"] is True
    with torch.no_grad():
        assert torch.equal(m4b(_t(G), _t(H))["G"], m4(_t(G), _t(H))["G"])
    assert "flux_moments" not in _model("learned", M=4, stress_heat_moments=True).kwargs  # old kwargs unchanged
    with pytest.raises(ValueError, match="stress_heat_moments=true"):
        _model("learned", M=4, flux_moments=True)
    with pytest.raises(ValueError, match="M >= 4"):
        _model("learned", M=3, stress_heat_moments=True, flux_moments=True)


@pytest.mark.parametrize("kind, basis", MODELS)
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, cells, kind, basis):
    m = _model(kind, basis, M=3)
    g, h, vg = cells
    G, H, *_ = to_shape(g, h, vg.v, vg.dv, m.grid)
    with torch.no_grad():
        m.set_input_scale(m.encode(_t(G), _t(H)))  # a non-default buffer must survive too
        ref = m(_t(G), _t(H))
    path = save_checkpoint(tmp_path / "m.pt", m, dataset_hash="abc", extra={"note": 1.5})
    raw = torch.load(path, weights_only=True)
    assert raw["class"] == "MomentAutoencoder" and raw["model_version"] == MODEL_VERSION
    assert raw["data_schema_version"] == 1 and raw["dataset_hash"] == "abc" and raw["package_version"]
    assert raw["kwargs"]["encoder"] == kind and raw["kwargs"]["hermite_basis"] == basis
    m2, meta = load_checkpoint(path, dataset_hash="abc")
    with torch.no_grad():
        out = m2(_t(G), _t(H))
    for k in ("W", "G", "H", "eta"):
        assert torch.equal(out[k], ref[k]), k
    assert not list(tmp_path.glob(".m.pt*")), "temporary file left behind"


def _tamper(path: Path, dst: Path, **changes) -> Path:
    obj = torch.load(path, weights_only=True)
    obj.update(changes)
    torch.save(obj, dst)
    return dst


def test_bad_checkpoints_stop_with_clear_messages(tmp_path):
    m = _model("learned", M=2)
    good = save_checkpoint(tmp_path / "good.pt", m, dataset_hash="h1")
    with pytest.raises(CheckpointError, match="model version 99"):
        load_checkpoint(_tamper(good, tmp_path / "mv.pt", model_version=99))
    with pytest.raises(CheckpointError, match="data schema version 2"):
        load_checkpoint(_tamper(good, tmp_path / "sv.pt", data_schema_version=2))
    with pytest.raises(CheckpointError, match="trained on dataset 'h1'"):
        load_checkpoint(good, dataset_hash="other")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a kinclose moments checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_datasets_stop_with_clear_messages(tmp_path, tiny_dataset):
    import shutil

    grid = _model("hermite").grid
    with pytest.raises(DatasetError, match="no manifest.json"):
        load_dataset(tmp_path, grid)
    bad = tmp_path / "schema"
    shutil.copytree(tiny_dataset, bad)
    man = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**man, "schema_version": 2}))
    with pytest.raises(DatasetError, match="schema_version 2, this code reads schema_version 1"):
        load_dataset(bad, grid)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_dataset, corrupt)
    with open(corrupt / man["shards"][1]["file"], "r+b") as fh:
        fh.seek(4000)
        fh.write(b"\xff\xfe\xfd")
    with pytest.raises(DatasetError, match="sha256 differs from the manifest"):
        load_dataset(corrupt, grid)
    for name, shards, message in [("empty", [], "lists no shards"),
                                  ("entry", [{"file": "x.h5"}], r"lacks \['task_id'"),
                                  ("twice", man["shards"][:1] * 2, "duplicate task ids")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({**man, "shards": shards}))
        with pytest.raises(DatasetError, match=message):
            load_dataset(tmp_path / name, grid)
