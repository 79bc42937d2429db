"""The shipped closures load (weights_only) and drive the reduced solver."""

import numpy as np
import pytest

from kinclose.pretrained import resolve
from kinclose.reduced.run import load_closure


@pytest.mark.parametrize("name", ["mlc_small", "hermmlc_small", "mlc_small_rollout", "mlc_small_shock",
                                  "mlc_small_shock2", "mlc_small_shock2_distilled", "mlc_small_shock3",
                                  "mlc_small_shock3_distilled"])
def test_shipped_closure_runs_and_conserves(name, smooth_wave_run):
    path = resolve(f"pretrained:{name}")
    assert path.exists() and path.name == "closure.pt"
    cl = load_closure(f"pretrained:{name}", xi_max=5.0)
    assert cl.xi_max == 5.0 and cl.equilibrium().shape == (cl.n_moments,)
    f = smooth_wave_run(cl, 10, u_amp=0.3).fields_array()
    assert np.all(f[:, 0] > 0) and np.all(f[:, 2] > 0) and np.all(np.isfinite(f))


@pytest.mark.parametrize("teacher", ["mlc_small_shock2", "mlc_small_shock3"])
def test_shipped_student_is_its_teachers(teacher):
    """A shipped <name>_distilled was distilled from the shipped <name> (SHA-256 of its closure.pt) on the same
    moments, and ``jacobian_closure: auto`` finds it."""
    import hashlib

    from kinclose.closure.train import load_closure_checkpoint
    from kinclose.pretrained import distilled_student

    assert distilled_student(f"pretrained:{teacher}") == f"pretrained:{teacher}_distilled"
    t_path, s_path = resolve(f"pretrained:{teacher}"), resolve(f"pretrained:{teacher}_distilled")
    _, meta = load_closure_checkpoint(s_path)
    assert meta["distilled_from"] == hashlib.sha256(t_path.read_bytes()).hexdigest()
    assert (s_path.parent / "moments.pt").read_bytes() == (t_path.parent / "moments.pt").read_bytes()


def test_unknown_pretrained_name():
    with pytest.raises(FileNotFoundError, match="available"):
        resolve("pretrained:nope")


def test_python_api_loads_shipped_names() -> None:
    """LearnedClosure / LearnedSource.from_checkpoint take ``pretrained:<name>`` like the apps do."""
    from kinclose.closure.learned import LearnedClosure
    from kinclose.closure.source import LearnedSource

    cl = LearnedClosure.from_checkpoint("pretrained:mlc_small_shock2")
    assert cl.equilibrium().shape == (cl.n_moments,)
    assert isinstance(LearnedSource.from_checkpoint("pretrained:mlc_boltzmann"), LearnedSource)
    with pytest.raises(FileNotFoundError, match="no shipped closure 'nope'"):
        LearnedClosure.from_checkpoint("pretrained:nope")
