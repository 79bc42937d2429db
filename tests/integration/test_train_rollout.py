"""``kinclose-train stage=rollout`` (a-posteriori fine-tuning through the differentiable reduced solver): the
config composes and rejects unknown keys, trajectories are the block averages of the DVM data, unusable
data gives a clear error, a problem that loses positivity is masked without touching the
others, the loss is the Knudsen sweep's error, a gradient step lowers the rollout
loss, and the stage writes a loadable closure checkpoint with its report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from hydra.errors import ConfigCompositionException  # noqa: E402

from kinclose.bench.sweep import errors  # noqa: E402
from kinclose.closure import rollout as R  # noqa: E402
from kinclose.closure.learned import LearnedClosure  # noqa: E402
from kinclose.closure.train import load_closure_checkpoint  # noqa: E402
from kinclose.conf import compose  # noqa: E402
from kinclose.data.dataset import load_dataset  # noqa: E402
from kinclose.pretrained import resolve  # noqa: E402
from kinclose.problem import Fields  # noqa: E402
from kinclose.reduced.differentiable import TorchReducedSolver  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_config_composes_and_rejects_unknown_keys() -> None:
    cfg = compose("train", ["stage=rollout", "closure_ckpt=x.pt", "stage.nx=32", "stage.lr=1e-3"])
    assert cfg.stage.name == "rollout" and cfg.closure_ckpt == "x.pt" and cfg.stage.nx == 32
    assert cfg.stage.hyperbolicity.weight == 0.1
    for bad in ("stage.no_such_option=1", "stage.field_weights.no_such_field=1"):
        with pytest.raises(ConfigCompositionException):
            compose("train", ["stage=rollout", bad])


def test_trajectories_are_block_averages(bgk_dataset: Path) -> None:
    tj = R.load_trajectories(bgk_dataset, 8)
    raw = load_dataset(bgk_dataset)
    assert len(tj) == len(raw) and tj.U0.shape == (len(raw), 8, 3) and tj.fields.shape == (len(raw), 3, 8, 5)
    np.testing.assert_allclose(tj.U0[0], raw[0]["U"][0].reshape(8, 2, 3).mean(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(tj.fields[1, -1], raw[1]["fields"][-1].reshape(8, 2, 5).mean(1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(tj.times, raw[0]["t"][1:])
    assert tj.dx == pytest.approx(1.0 / 8) and tj.mu_ref[0] == raw[0]["attrs"]["mu_ref"]
    kn = sorted(s["attrs"]["kn"] for s in raw)
    assert len(R.load_trajectories(bgk_dataset, 8, (kn[1], 10.0))) == 1


def test_unusable_data_is_refused(bgk_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(R.RolloutDataError, match="not a multiple"):
        R.load_trajectories(bgk_dataset, 5)
    with pytest.raises(R.RolloutDataError, match="no shard"):
        R.load_trajectories(bgk_dataset, 8, (50.0, 100.0))
    root = tmp_path / "data"
    shutil.copytree(bgk_dataset, root)
    with h5py.File(root / "shard_00001.h5", "r+") as f:
        f.attrs["noneq"] = True
    with pytest.raises(R.RolloutDataError, match="bi-Maxwellian"):
        R.load_trajectories(root, 8, verify=False)


def test_loss_terms_are_the_sweep_errors(rng) -> None:
    ref = np.stack([rng.uniform(0.5, 2, 16), rng.normal(0, 1, 16), rng.uniform(0.5, 2, 16), rng.normal(0, 0.1, 16),
                    rng.normal(0, 0.1, 16)], axis=1)
    pred = ref + 0.05 * rng.normal(size=ref.shape)
    x = np.arange(16.0)
    e = errors(Fields(x, *pred.T, 0.0, {}), Fields(x, *ref.T, 0.0, {}))
    t = R.sweep_error_terms(torch.tensor(pred)[None], torch.tensor(ref)[None])[0].sqrt().numpy()
    np.testing.assert_allclose(t, [e[f] for f in R.FIELDS], rtol=1e-12)


@pytest.fixture
def problems(bgk_dataset: Path):
    """(shipped ensemble, trajectories of the tiny dataset on 8 cells, torch solver, initial U (B, 8, 3))."""
    ens, _ = load_closure_checkpoint(resolve("pretrained:mlc_small"))
    tj = R.load_trajectories(bgk_dataset, 8)
    sh, fr = ens.mean_stress_heat, ens.mean_frame
    return ens, tj, TorchReducedSolver(sh, fr, ens.w_eq, 5.0, tj.dx, tj.omega), torch.tensor(tj.U0)


def test_a_gradient_step_lowers_the_rollout_loss(problems) -> None:
    ens, tj, solver, U0 = problems
    W0 = ens.w_eq.expand(len(tj), 8, -1).clone()
    F = torch.tensor(tj.fields)
    mu = torch.tensor(tj.mu_ref)

    def loss() -> torch.Tensor:
        out, _, ok = R.rollout(solver, U0, W0, tj.times, mu)
        assert ok.all()
        return torch.stack([R.sweep_error_terms(p, F[:, s]) for s, p in enumerate(out)], 1).sum(-1).mean()

    params = list(ens.parameters())
    before = loss()
    grads = torch.autograd.grad(before, params)
    eta = 0.01 * float(before.detach()) / float(sum((g ** 2).sum() for g in grads))  # first order: 1 % lower
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= eta * g
        after = float(loss())
    assert after < 0.995 * float(before.detach())  # 0.83 % measured (beyond ~3 % the loss is far from linear)


def test_a_broken_problem_is_masked_and_leaves_the_others_alone(problems) -> None:
    ens, tj, solver, U0 = problems
    U0[1, 3, 2] = -1.0  # negative energy: T < 0 in one cell
    W0 = ens.w_eq.expand(len(tj), 8, -1).clone()
    mu = torch.tensor(tj.mu_ref)
    with torch.no_grad():
        out, _, ok = R.rollout(solver, U0, W0, tj.times[:1], mu)
        alone, _, ok0 = R.rollout(solver, U0[:1], W0[:1], tj.times[:1], mu[:1])
    assert ok.tolist() == [True, False] and ok0.all()
    np.testing.assert_allclose(out[0][0].numpy(), alone[0][0].numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("lin_weight", [0.0, 0.1])
def test_stage_writes_a_loadable_checkpoint(bgk_dataset: Path, tmp_path: Path, lin_weight: float) -> None:
    cfg = compose("train", ["stage=rollout", "closure_ckpt=pretrained:mlc_small", f"data.root={bgk_dataset}",
                            "data.val_fraction=0.5", "stage.nx=8", "stage.kn=[0.01,10.0]", "stage.epochs=1",
                            "stage.batch_size=1", "stage.hyperbolicity.n_states=8", "threads=1",
                            f"stage.linear_response.weight={lin_weight}", "stage.linear_response.n_kn=2",
                            "stage.linear_response.s=[1.0]"])
    metrics = R.train_rollout(cfg, tmp_path / "run")
    if lin_weight > 0:  # early stopping judges rollout loss + weight * linear-response error
        before = metrics["val_before"]
        assert before["loss"] > before["val_linear_response"] * lin_weight > 0.0
        # the reported error of the kept weights, recomputed from the written checkpoint
        from omegaconf import OmegaConf

        ens_saved, _ = load_closure_checkpoint(tmp_path / "run" / "closure.pt")
        lin = R.LinearResponse.from_dict(OmegaConf.to_container(cfg.stage.linear_response, resolve=True))
        dtype = {"float32": torch.float32, "float64": torch.float64}[str(cfg.stage.dtype)]
        with torch.no_grad():
            recomputed = float(R._linear_response_term(ens_saved.to(dtype), lin, dtype)())
        assert metrics["linear_response"]["error_after"] == pytest.approx(recomputed, rel=1e-6)
    assert metrics["n_train"] == 1 and metrics["n_val"] == 1 and metrics["stage"] == "rollout"
    assert set(metrics["val_before"]) >= {"loss", "val_rho", "val_q", "val_failed"}
    assert metrics["val_best"]["loss"] <= metrics["val_before"]["loss"]
    ens, meta = load_closure_checkpoint(tmp_path / "run" / "closure.pt")
    assert meta["extra"]["rollout"]["source"] == "pretrained:mlc_small" and meta["xi_max"] == 5.0
    assert ens.kwargs == load_closure_checkpoint(resolve("pretrained:mlc_small"))[0].kwargs
    assert LearnedClosure.from_checkpoint(tmp_path / "run" / "closure.pt").stress_heat(ens.w_eq[None].numpy()).shape == (1, 2)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]["epoch"] == [0, 1]
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 0


def test_linear_response_term_is_the_closure_stage_penalty_on_the_mean() -> None:
    """stage.linear_response: the ensemble mean's linear-response error, also for a float32 ensemble (through
    casts), with gradients to the members."""
    from kinclose.closure.linear_response import linear_response_penalty
    from kinclose.closure.rollout import _linear_response_term
    from kinclose.closure.train import LinearResponse, load_closure_checkpoint
    from kinclose.pretrained import resolve

    ens, _ = load_closure_checkpoint(resolve("pretrained:mlc_small_rollout"))
    lin = LinearResponse(weight=0.1, n_kn=3, s=(1.0, 3.0))
    want = float(linear_response_penalty(ens.mean_stress_heat, ens.mean_frame, ens.w_eq, lin.targets(), False))
    assert float(_linear_response_term(ens, lin, torch.float64)().detach()) == pytest.approx(want, rel=1e-12)
    e32 = ens.to(torch.float32)
    p = _linear_response_term(e32, lin, torch.float32)()
    assert float(p.detach()) == pytest.approx(want, rel=1e-3)
    grads = torch.autograd.grad(p, list(e32.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0.0


TINY_SHOCK = ["stage.shock.machs=[2.5]", "stage.shock.times=[0.3,0.6]", "stage.shock.dx=1.0", "stage.shock.x_min=-20.0",
              "stage.shock.x_max=6.0", "+stage.shock.dvm.nv=40", "+stage.shock.dvm.levels=1", "+stage.shock.dvm.tol=1e-3",
              "stage.shock.dvm.dx=0.5"]


@pytest.fixture(scope="module")
def tiny_shock():
    """Steady Mach 2.5 DVM shock on 52 cells averaged onto 26, W from the shipped moments model."""
    from kinclose.closure.targets import encoder_weight_functions
    from kinclose.moments.train import load_checkpoint

    model, _ = load_checkpoint(resolve("pretrained:mlc_small").parent / "moments.pt")
    return R.shock_targets([2.5], encoder_weight_functions(model.encoder), dx=1.0, x_min=-20.0, x_max=6.0,
                           dvm={"dx": 0.5, "nv": 40, "levels": 1, "tol": 1e-3})


def test_shock_targets_are_block_averaged_distributions(tiny_shock) -> None:
    from kinclose.physics import rankine_hugoniot

    t = tiny_shock
    s = rankine_hugoniot(2.5)
    assert t.U0.shape == (1, 26, 3) and t.W0.shape == (1, 26, 4) and t.fields.shape == (1, 26, 5)
    np.testing.assert_allclose(t.ends[0], [[s.rho1, s.u1, s.T1], [s.rho2, s.u2, s.T2]])
    rho, u, T = t.fields[0, :, 0], t.fields[0, :, 1], t.fields[0, :, 2]
    np.testing.assert_allclose(t.U0[0], np.stack([rho, rho * u, 0.5 * rho * u * u + 1.5 * rho * T], 1), rtol=1e-13)
    # far upstream and downstream the gas is in equilibrium (to this coarse DVM's accuracy): W = W_eq, σ = q = 0;
    # inside the shock it is not
    ens, _ = load_closure_checkpoint(resolve("pretrained:mlc_small"))
    w_eq = ens.w_eq.numpy()
    for cell in (0, -1):
        np.testing.assert_allclose(t.W0[0, cell], w_eq, atol=3e-3)
        assert abs(t.fields[0, cell, 3]) < 1e-2 and abs(t.fields[0, cell, 4]) < 1e-2
    assert np.abs(t.W0[0] - w_eq).max() > 0.05 and np.abs(t.fields[0, :, 4]).max() > 0.05
    assert t.fields[0, 0, 0] == pytest.approx(s.rho1, rel=1e-3) and t.fields[0, -1, 0] == pytest.approx(s.rho2, rel=1e-2)


def test_shock_targets_refuse_benchmark_machs_and_misfit_grids(tiny_shock) -> None:
    with pytest.raises(R.RolloutDataError, match="benchmark Mach"):
        R.shock_targets([2.5, 5.5], None)
    with pytest.raises(R.RolloutDataError, match="not a multiple"):
        R.shock_targets([2.5], None, dx=0.3, dvm={"dx": 0.25})


def test_shock_loss_terms_are_the_shock_benchmark_errors(rng) -> None:
    """Without centring (same cells), the terms are the squares of ``kinclose.bench.shock.field_errors``."""
    from kinclose.bench.shock import field_errors
    from kinclose.physics import rankine_hugoniot
    from kinclose.shockprofile import ShockProfile

    s = rankine_hugoniot(3.5)
    x = np.linspace(-5, 5, 24)
    w = 0.5 * (1 + np.tanh(x))
    ref = np.stack([s.rho1 + (s.rho2 - s.rho1) * w, s.u1 + (s.u2 - s.u1) * w, s.T1 + (s.T2 - s.T1) * w,
                    -np.exp(-x * x), -0.5 * np.exp(-x * x)], axis=1)
    pred = ref + 0.03 * rng.normal(size=ref.shape)
    e = field_errors(ShockProfile(x, *pred.T, s, "m", {}), ShockProfile(x, *ref.T, s, "ref", {}))
    t = R.shock_error_terms(torch.tensor(pred)[None], torch.tensor(ref)[None],
                            torch.tensor([[s.rho1, s.u1, s.T1]]))[0].sqrt().numpy()
    np.testing.assert_allclose(t, [e[f"{f}_L2"] for f in R.FIELDS], rtol=1e-6)


def test_a_gradient_step_lowers_the_shock_loss(tiny_shock) -> None:
    """The steady DVM profile drifts under the closure (a loss > 0), and the gradient of that drift is a descent
    direction for the closure's parameters."""
    ens, _ = load_closure_checkpoint(resolve("pretrained:mlc_small"))
    t = tiny_shock
    solver = TorchReducedSolver(ens.mean_stress_heat, ens.mean_frame, ens.w_eq, 5.0, t.dx, t.omega,
                                left=torch.tensor(t.ends[:, 0]), right=torch.tensor(t.ends[:, 1]))
    term = R._ShockTerm(t, solver, [0.3, 0.6], 0.9, 1.0, torch.ones(5, dtype=torch.float64), torch.float64)
    params = list(ens.parameters())
    before = term.loss()
    assert float(before.detach()) > 1e-4
    grads = torch.autograd.grad(before, params)
    eta = 0.01 * float(before.detach()) / float(sum((g ** 2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= eta * g
        after = float(term.loss())
    assert after < 0.995 * float(before.detach())
    errs = term.errors()
    assert list(errs) == ["2.5"] and set(errs["2.5"]) == set(R.FIELDS) and errs["2.5"]["q"] > 0
    term.U0[0, 5, 2] = -1.0  # negative energy in one cell: the term drops out of the loss, no NaN in any gradient
    bad = term.loss()
    assert float(bad.detach()) == 0.0 and not bad.requires_grad and term.failed == 1
    assert term.errors() == {"2.5": None}


def test_stage_with_shocks_reports_them(bgk_dataset: Path, tmp_path: Path) -> None:
    cfg = compose("train", ["stage=rollout", "closure_ckpt=pretrained:mlc_small", f"data.root={bgk_dataset}",
                            "data.val_fraction=0.5", "stage.nx=8", "stage.kn=[0.01,10.0]", "stage.epochs=1",
                            "stage.batch_size=1", "stage.hyperbolicity.n_states=8", "threads=1",
                            "stage.shock.weight=1.0", *TINY_SHOCK])
    metrics = R.train_rollout(cfg, tmp_path / "run")
    sh = metrics["shock"]
    assert sh["machs"] == [2.5] and sh["weight"] == 1.0 and sh["failed_rollouts"] == 0
    assert set(sh["errors_before"]["2.5"]) == set(R.FIELDS) and set(sh["errors_after"]["2.5"]) == set(R.FIELDS)
    hist = metrics["history"]
    assert len(hist["val_shock"]) == 2 and hist["val_shock"][0] > 0
    # the validation loss is the sweep's plus weight x the shock term
    sweep0 = metrics["val_before"]["loss"] - hist["val_shock"][0]
    assert 0 < sweep0 < metrics["val_before"]["loss"]
    assert load_closure_checkpoint(tmp_path / "run" / "closure.pt")[1]["extra"]["rollout"]["shock"]["machs"] == [2.5]


@pytest.mark.parametrize("bad,match", [("stage.shock.machs=[5.5]", "benchmark Mach"),
                                       ("stage.shock.weight=-1", "finite number >= 0"),
                                       ("stage.shock.times=[0.5,0.2]", "increasing"),
                                       ("stage.shock.moments_ckpt=pretrained:hermmlc_small",
                                        "is not the moments checkpoint the closure was trained with")])
def test_bad_shock_options_are_refused(bgk_dataset: Path, tmp_path: Path, bad: str, match: str) -> None:
    base = "stage.shock.weight=1.0"
    cfg = compose("train", ["stage=rollout", "closure_ckpt=pretrained:mlc_small", f"data.root={bgk_dataset}",
                            "data.val_fraction=0.5", "stage.nx=8", "stage.kn=[0.01,10.0]", "threads=1",
                            *TINY_SHOCK, base, bad])
    with pytest.raises((ValueError, R.RolloutDataError), match=match):
        R.train_rollout(cfg, tmp_path / "run")


def test_the_closure_moments_resolve_pretrained_names_and_check_the_pairing() -> None:
    """stage.shock.moments_ckpt (and distill's moments_ckpt) take pretrained:<name> to the shipped moments.pt."""
    from kinclose.closure.train import ClosureCheckpointError, load_closure_moments

    path = resolve("pretrained:mlc_small")
    _, meta = load_closure_checkpoint(path)
    model, used = load_closure_moments(path, meta, "pretrained:mlc_small", missing="none")
    assert used == path.with_name("moments.pt") and int(model.M) == int(meta["kwargs"]["M"])
    assert load_closure_moments(path, meta, None, missing="none")[1] == used
    with pytest.raises(ClosureCheckpointError, match="no moments here .*does not exist"):
        load_closure_moments(path, meta, path.with_name("nothing.pt"), missing="no moments here")
