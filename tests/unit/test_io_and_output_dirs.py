"""Atomic writes keep the usual file permissions and never leave a partial file; an unusable ``out_dir`` (a file, a
path under a file, a read-only directory) or a non-integer size stops every app and script before its first solve,
not after the work is done (``kinclose.io.writable_dir``, ``kinclose.apps.check_ints``)."""

import importlib.util
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from kinclose.io import FILE_MODE, atomic_write, atomic_write_text, writable_dir

ROOT = Path(__file__).resolve().parents[2]


def _cfg(name: str, *overrides: str):
    with initialize_config_module(config_module="kinclose.conf", version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def _never(*args, **kwargs):
    raise AssertionError("work started before the output directory was checked")


def test_atomic_write_gives_the_permissions_open_would(tmp_path: Path) -> None:
    """Not the owner-only 0600 of the temporary file (every dataset, checkpoint and result was 0600)."""
    new = atomic_write_text(tmp_path / "new.json", "{}")
    assert new.stat().st_mode & 0o777 == FILE_MODE
    with open(tmp_path / "plain.json", "w") as fh:
        fh.write("{}")
    assert FILE_MODE == (tmp_path / "plain.json").stat().st_mode & 0o777
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and kept.stat().st_mode & 0o777 == 0o640


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.md"
    target.write_text("old")

    def crash(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write(target, crash)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_writable_dir_creates_nested_directories(tmp_path: Path) -> None:
    out = writable_dir(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir() and not any(out.iterdir())  # the probe file is gone


@pytest.mark.parametrize("sub", ["", "below"])
def test_writable_dir_refuses_a_file(tmp_path: Path, sub: str) -> None:
    f = tmp_path / "results"
    f.write_text("keep me")
    with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
        writable_dir(f / sub if sub else f)
    assert f.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only directories")
def test_writable_dir_refuses_a_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="cannot write into output directory"):
            writable_dir(ro / "out")
    finally:
        ro.chmod(0o700)


def test_writable_dir_reports_a_failed_write(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match="cannot write into output directory .*Read-only file system"):
        writable_dir(tmp_path / "out")


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    f = tmp_path / "results"
    f.write_text("keep me")
    return f


def test_sweep_refuses_before_solving(a_file: Path, monkeypatch) -> None:
    import kinclose.apps.sweep as app

    monkeypatch.setattr(app, "run_sweep", _never)
    with pytest.raises(NotADirectoryError):
        app.sweep(_cfg("sweep", f"out_dir={a_file}"))


def test_bench_refuses_before_solving(a_file: Path, monkeypatch) -> None:
    import kinclose.bench.shock as bench

    monkeypatch.setattr(bench, "solve_model", _never)
    with pytest.raises(NotADirectoryError):
        bench.run(_cfg("bench", f"out_dir={a_file}"))


def test_mach_sweep_refuses_before_solving(a_file: Path, tmp_path: Path, monkeypatch) -> None:
    from kinclose.bench import mach

    monkeypatch.setattr(mach, "_solve_entry", _never)
    with pytest.raises(NotADirectoryError):
        mach.run_mach_sweep(_cfg("mach_sweep", f"out_dir={a_file}"), tmp_path / "cache")


def test_pipeline_refuses_before_the_loop(a_file: Path, monkeypatch) -> None:
    import kinclose.apps.pipeline as app
    import kinclose.elt

    monkeypatch.setattr(kinclose.elt, "run_elt", _never)
    with pytest.raises(NotADirectoryError):
        app.pipeline(_cfg("pipeline", f"out_dir={a_file}"))


def test_label_refuses_before_labeling(a_file: Path, tmp_path: Path, monkeypatch) -> None:
    import kinclose.apps.label as app
    import kinclose.data.runner

    monkeypatch.setattr(kinclose.data.runner, "label_dataset", _never)
    with pytest.raises(NotADirectoryError):
        app.run_label(_cfg("label", f"out_dir={a_file / 'dataset'}"), tmp_path / "run")


def test_elt_refuses_a_file_as_its_root(a_file: Path) -> None:
    from kinclose.elt import Loop

    with pytest.raises(NotADirectoryError):
        Loop(_cfg("elt"), a_file)


SCRIPTS = {"bench_speed": "bench_speed", "boltzmann_shock": "boltzmann_shock",
           "closure_information": "closure_information", "compare_closures": "hyperbolicity_ablation",
           "compare_moments": "compare_moments", "elt_vs_random": "elt_vs_random", "linear_modes": "linear_modes",
           "robustness": "robustness"}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_refuse_before_working(script: str, a_file: Path) -> None:
    with pytest.raises(NotADirectoryError):
        _script(script).main(_cfg(SCRIPTS[script], f"out_dir={a_file}"))
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize("script, override", [("robustness", "nx=16.5"), ("linear_modes", "nx=32.5"),
                                              ("bench_speed", "sweep_nx=16.5")])
def test_scripts_refuse_non_integer_sizes(script: str, override: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="must be an integer"):
        _script(script).main(_cfg(SCRIPTS[script], override, f"out_dir={out}"))
    assert not out.exists()


def test_compare_closures_refuses_a_missing_closure_before_the_reference_shock(tmp_path: Path, monkeypatch) -> None:
    from kinclose.closure.train import ClosureCheckpointError

    module = _script("compare_closures")
    monkeypatch.setattr(module, "solve_model", _never)
    monkeypatch.setattr(module, "dataset_states", _never)
    with pytest.raises(ClosureCheckpointError, match="does not exist"):
        module.main(_cfg("hyperbolicity_ablation", "closures.0.path=/nonexistent/closure.pt",
                         f"out_dir={tmp_path / 'out'}"))
