"""``kinclose.bench.shock.precursor_split``: the model's front, the share of each field's squared error
upstream of it and the error without that region, on profiles whose split is known by construction."""

import numpy as np
import pytest

from kinclose.bench.shock import field_errors, precursor_split
from kinclose.physics import rankine_hugoniot
from kinclose.shockprofile import FIELDS, ShockProfile


def _profile(x, s, width, tail, model):
    """tanh shock of the given width, plus (tail > 0) an exponential precursor exp(x/4) on every field at x < -5."""
    w = 0.5 * (1 + np.tanh(x / width))
    pre = tail * np.where(x < -5.0, np.exp(x / 4.0), 0.0)
    fields = {"rho": s.rho1 + (s.rho2 - s.rho1) * (w + pre), "u": s.u1 + (s.u2 - s.u1) * (w + pre),
              "T": s.T1 + (s.T2 - s.T1) * (w + pre), "sigma": 8.0 * (w * (1 - w) + pre),
              "q": -40.0 * (w * (1 - w) + pre)}
    return ShockProfile(x=x, states=s, model=model, **fields)


def test_front_share_and_downstream_error():
    s = rankine_hugoniot(5.5)
    x = np.linspace(-20.0, 10.0, 601)
    ref = _profile(x, s, 1.5, 0.5, "dvm")
    # the model: the reference without its precursor, and a front where rho departs: the first cell above 1e-3
    mod = _profile(x, s, 1.5, 0.0, "mlc")
    w = 0.5 * (1 + np.tanh(x / 1.5))
    x_front = x[np.argmax(w > 1e-3)]
    out = precursor_split(mod, ref)
    assert out["x_front"] == x_front and -20.0 < x_front < -5.0
    up = x < x_front
    err = field_errors(mod, ref)
    for f in FIELDS:
        d = getattr(mod, f) - getattr(ref, f)
        assert d[~up & (x < -5.0)].any()                    # part of the precursor lies downstream of the front
        assert out[f"{f}_share_upstream"] == pytest.approx(np.sum(d[up] ** 2) / np.sum(d ** 2), rel=1e-12)
        assert 0.0 < out[f"{f}_share_upstream"] < 1.0
        # the shares split the squared error: L2² = L2_downstream² / (1 − share)
        assert out[f"{f}_L2_downstream"] ** 2 == pytest.approx(err[f"{f}_L2"] ** 2 * (1 - out[f"{f}_share_upstream"]),
                                                               rel=1e-10)
        assert 0.0 < out[f"{f}_ref_upstream"] < 1.0
    # a model equal to the reference: no error anywhere, nothing upstream to miss beyond its own tail
    same = precursor_split(ref, ref)
    assert all(same[f"{f}_share_upstream"] == 0.0 and same[f"{f}_L2_downstream"] == 0.0 for f in FIELDS)


def test_no_front():
    s = rankine_hugoniot(2.0)
    x = np.linspace(-10.0, 10.0, 201)
    flat = ShockProfile(x=x, rho=np.full_like(x, s.rho1), u=np.full_like(x, s.u1), T=np.full_like(x, s.T1),
                        sigma=np.zeros_like(x), q=np.zeros_like(x), states=s, model="flat")
    out = precursor_split(flat, _profile(x, s, 1.0, 0.0, "dvm"))
    assert np.isnan(out["x_front"]) and out["q_share_upstream"] == 0.0 and out["q_ref_upstream"] == 0.0
