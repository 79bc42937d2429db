"""Initial-data generators: documented ranges (property checks over many seeds), determinism,
the bi-Maxwellian's moments, the Rankine–Hugoniot pair, and clear errors for bad ranges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinclose.data import initial as ic
from kinclose.data.label import DatasetSpec, make_tasks, task_seed
from kinclose.kinetic.moments import fields as moment_fields
from kinclose.physics import GAMMA, rankine_hugoniot

X = -0.5 + (np.arange(64) + 0.5) / 64
SEEDS = range(400)


def test_default_ranges_contain_the_mach6_shock() -> None:
    r = ic.ICRanges()
    need = ic.mach6_requirements()
    assert r.max_density_ratio >= max(4.0, need["density_ratio"])
    assert r.max_temperature_ratio >= max(12.0, need["temperature_ratio"])
    assert r.max_velocity_jump >= need["velocity_jump"]
    assert r.rho[1] / r.rho[0] >= r.max_density_ratio and r.T[1] / r.T[0] >= r.max_temperature_ratio
    assert r.kn == (1e-3, 10.0)


@pytest.mark.parametrize("kind", ic.KINDS)
def test_generators_respect_their_ranges(kind: str) -> None:
    r = ic.ICRanges()
    tol = 1e-12
    for seed in SEEDS:
        spec = ic.sample_initial(np.random.default_rng(seed), r, kind=kind)
        json.dumps(spec)  # the spec is the shard's config: must be JSON
        rho, u, T, a = ic.evaluate(spec, X)
        assert np.all(np.isfinite([rho, u, T, a]))
        assert r.rho[0] * (1 - tol) <= rho.min() and rho.max() <= r.rho[1] * (1 + tol), seed
        assert r.T[0] * (1 - tol) <= T.min() and T.max() <= r.T[1] * (1 + tol), seed
        assert r.u[0] - tol <= u.min() and u.max() <= r.u[1] + tol, seed
        assert rho.max() / rho.min() <= r.max_density_ratio * (1 + tol), seed
        assert T.max() / T.min() <= r.max_temperature_ratio * (1 + tol), seed
        assert u.max() - u.min() <= r.max_velocity_jump + tol, seed
        assert 1 / r.max_anisotropy * (1 - tol) <= a.min() and a.max() <= r.max_anisotropy * (1 + tol), seed
        f = spec["fields"]
        pieces = f if kind in ("jumps", "shock") else f.get("jumps")
        if pieces is not None:  # expansion limit at every periodic interface of the pieces
            pu, pT = np.asarray(pieces["u"]), np.asarray(pieces["T"])
            c = np.sqrt(GAMMA * pT)
            du = np.roll(pu, -1) - pu
            assert np.all(du <= r.max_expansion * (c + np.roll(c, -1)) * (1 + 1e-12)), seed
            assert r.min_jumps <= len(pu) <= r.max_jumps or kind == "shock"
            pos = np.asarray(pieces["x"])
            gaps = np.diff(np.append(pos, pos[0] + 1.0))
            assert np.all(np.diff(pos) > 0) and -0.5 <= pos[0] and pos[-1] < 0.5
            min_gap = ic.MIN_GAP_SHOCK if kind == "shock" else ic.MIN_GAP_JUMPS
            assert gaps.min() >= min_gap * (1 - 1e-9), seed


def test_large_ratios_are_actually_drawn() -> None:
    """The ranges are not only allowed but sampled: strong states occur in a few hundred draws."""
    r = ic.ICRanges()
    rr, tr, dun = [], [], []
    for seed in SEEDS:
        rho, u, T, _ = ic.evaluate(ic.sample_initial(np.random.default_rng(seed), r), X)
        rr.append(rho.max() / rho.min())
        tr.append(T.max() / T.min())
        dun.append((u.max() - u.min()) / np.sqrt(T.min()))
    s = rankine_hugoniot(5.5)
    assert max(rr) >= s.rho2 and max(tr) >= s.T2 and max(dun) >= s.u1 - s.u2


def test_shock_kind_is_an_exact_rankine_hugoniot_pair() -> None:
    r = ic.ICRanges()
    for seed in range(100):
        spec = ic.sample_initial(np.random.default_rng(seed), r, kind="shock")
        f = spec["fields"]
        st = rankine_hugoniot(f["mach"], rho1=f["rho"][0], T1=f["T"][0])
        np.testing.assert_allclose([f["rho"][1], f["T"][1], f["u"][0] - f["u"][1]], [st.rho2, st.T2, st.u1 - st.u2],
                                   rtol=1e-12, atol=0)


def test_same_rng_same_spec_and_kn() -> None:
    r = ic.ICRanges()
    a = ic.sample_initial(np.random.default_rng(7), r)
    b = ic.sample_initial(np.random.default_rng(7), r)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    kns = [ic.sample_kn(np.random.default_rng(s)) for s in range(2000)]
    assert 1e-3 <= min(kns) and max(kns) <= 10.0
    # log-uniform: each decade gets about a quarter
    frac = np.histogram(np.log10(kns), bins=[-3, -2, -1, 0, 1])[0] / len(kns)
    np.testing.assert_allclose(frac, 0.25, rtol=0, atol=0.05)


def test_task_seeds_depend_only_on_base_seed_and_id() -> None:
    small = make_tasks(DatasetSpec(n_tasks=3))
    big = make_tasks(DatasetSpec(n_tasks=10))
    assert [t.to_json() for t in small] == [t.to_json() for t in big[:3]]
    assert len({task_seed(0, i) for i in range(100)}) == 100
    assert task_seed(0, 1) != task_seed(1, 1)


def test_bi_maxwellian_moments() -> None:
    rho, u, T, a = np.array([1.3, 0.7]), np.array([0.4, -1.0]), np.array([1.2, 2.5]), np.array([2.0, 0.5])
    v = np.linspace(-25, 25, 2001)
    dv = v[1] - v[0]
    g, h = ic.bi_maxwellian(rho, u, T, a, v)
    m = moment_fields(g, h, v, dv)
    T_par, T_perp = ic.parallel_perpendicular(T, a)
    np.testing.assert_allclose(T_par / T_perp, a, rtol=1e-14, atol=0)
    np.testing.assert_allclose(m["rho"], rho, rtol=1e-12, atol=0)
    np.testing.assert_allclose(m["u"], u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m["T"], T, rtol=1e-12, atol=0)
    # σ = ∫ (c1² − |c|²/3) f dv = ρ (T_∥ − T) for the bi-Maxwellian; no heat flux
    np.testing.assert_allclose(m["sigma"], rho * (T_par - T), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m["q"], 0.0, rtol=0, atol=1e-11)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"rho": (-1.0, 2.0)}, ["ranges.rho", "positive density"]),
        ({"T": (0.0, 2.0)}, ["ranges.T", "positive temperature"]),
        ({"max_temperature_ratio": 40.0}, ["max_temperature_ratio=40.0", "widen the range"]),
        ({"max_velocity_jump": 9.0}, ["max_velocity_jump=9.0", "widen ranges.u"]),
        ({"max_expansion": 3.5}, ["max_expansion=3.5", "vacuum"]),
        ({"min_jumps": 1}, ["min_jumps=1"]),
        ({"weights": (1.0, 1.0, 1.0)}, ["weights", "4 non-negative"]),
        ({"kn": (0.0, 1.0)}, ["ranges.kn", "0 < min"]),
    ],
)
def test_bad_ranges_are_rejected_with_a_clear_message(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ic.InitialDataError) as err:
        ic.ICRanges(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_unknown_range_keys_are_rejected() -> None:
    with pytest.raises(ic.InitialDataError, match="unknown initial-data range keys.*'rho_max'"):
        ic.ICRanges.from_dict({"rho_max": 3.0})
