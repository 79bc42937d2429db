"""The Knudsen-sweep table says which mean errors leave failed runs out."""

import math

import numpy as np

from kinclose.bench.sweep import (
    FIELDS,
    error_cell,
    failed_runs,
    markdown,
    standard_error,
)


def test_error_cell_marks_failed_runs() -> None:
    assert error_cell(0.1234, 0, 4) == "12.34%"
    assert error_cell(0.1234, 1, 4) == "12.34% (1 of 4 failed)"
    assert error_cell(math.nan, 4, 4) == "failed"
    assert error_cell(0.1234, 1, 4, 0.0056) == "12.34% ± 0.56 (1 of 4 failed)"


def test_standard_error_of_the_mean() -> None:
    values = [0.01, 0.03, 0.05, 0.09]
    assert math.isclose(standard_error(values), np.std(values, ddof=1) / 2.0)
    assert math.isnan(standard_error([0.01]))


def test_markdown_marks_the_cells_with_failures() -> None:
    kns = [0.1, 1.0]
    errs = {f: [0.01, 0.02] for f in FIELDS}
    table = {"kns": kns, "failures": [{"model": "b", "kn": 1.0, "case": {}, "error": "PhysicalStateError"}],
             "cases": [{"kn": k, "kind": "waves", "seed": [0, i], "errors": {}} for k in kns for i in range(2)],
             "reference": {"model": "dvm", "wall_s": [0.1, 0.1]},
             "models": {n: {"errors": errs, "wall_s": [0.0, 0.0]} for n in ("a", "b")}}
    assert failed_runs(table) == {("b", 1.0): 1}
    rows = {line.split("|")[1].strip(): line for line in markdown(table).splitlines() if "| rho |" in line}
    assert rows["b"].endswith("| 1.00% | 2.00% (1 of 2 failed) |") and "failed" not in rows["a"]


def test_markdown_shows_standard_errors_when_the_table_has_them() -> None:
    kns = [0.1]
    table = {"kns": kns, "failures": [], "cases": [{"kn": 0.1, "kind": "waves", "seed": [0, i], "errors": {}}
                                                  for i in range(3)],
             "reference": {"model": "dvm", "wall_s": [0.1]},
             "models": {"a": {"errors": {f: [0.02] for f in FIELDS}, "errors_sem": {f: [0.004] for f in FIELDS},
                              "wall_s": [0.0]}}}
    rows = [line for line in markdown(table).splitlines() if "| rho |" in line]
    assert rows == ["| a | rho | 2.00% ± 0.40 |"]


def test_paired_differences_are_taken_case_by_case() -> None:
    cases = [{"kn": 1.0, "kind": "waves", "seed": [0, i],
              "errors": {"a": {f: 0.10 + 0.01 * i for f in FIELDS}, "b": {f: 0.12 + 0.01 * i for f in FIELDS}}}
             for i in range(3)]
    table = {"kns": [1.0], "failures": [], "cases": cases, "reference": {"model": "dvm", "wall_s": [0.1]},
             "models": {n: {"errors": {f: [0.1] for f in FIELDS}, "wall_s": [0.0]} for n in ("a", "b")}}
    # every case is 2 points better: zero spread of the differences although the errors spread
    assert "| b − a | rho | +2.00 ± 0.00 |" in markdown(table, first="b")
    assert "| a − b | q | -2.00 ± 0.00 |" in markdown(table)


def test_run_sweep_refuses_an_empty_grid_or_no_cases() -> None:
    import pytest

    from kinclose.bench.sweep import run_sweep

    for bad in ({"nx": 0}, {"n_cases": 0}, {"reference_refine": 0}):
        kw = {"nx": 16, "n_cases": 2, "reference_refine": 1} | bad
        with pytest.raises(ValueError, match="need nx >= 4, n_cases >= 1"):
            run_sweep([0.1], {"euler": {}}, seed=0, t_end=0.01, kinds=["waves"], **kw)


def test_run_sweep_refuses_unknown_models_and_unreadable_checkpoints_before_solving(tmp_path, monkeypatch) -> None:
    """A closure that cannot be loaded is a config error, not a failure of the model to tabulate."""
    import pytest

    import kinclose.bench.sweep as sweep_mod
    from kinclose.closure.train import ClosureCheckpointError

    def never(*args, **kwargs):
        raise AssertionError("a model ran before the models were checked")

    monkeypatch.setattr(sweep_mod, "run_model", never)
    corrupt = tmp_path / "closure.pt"
    corrupt.write_text("not a checkpoint")
    kw = {"seed": 0, "nx": 16, "t_end": 0.01, "kinds": ["waves"], "n_cases": 1}
    for models, reference, error, word in (
            ({"mlc": {"closure": str(tmp_path / "missing.pt")}}, "dvm", ClosureCheckpointError, "does not exist"),
            ({"mlc": {"closure": str(corrupt)}}, "dvm", ClosureCheckpointError, "corrupted or truncated"),
            ({"learned": {"model": "mlcc", "closure": "pretrained:mlc_small"}}, "dvm", KeyError, "unknown model"),
            ({"euler": {}}, "dvmm", KeyError, "unknown model 'dvmm'")):
        with pytest.raises(error, match=word):
            sweep_mod.run_sweep([0.1], models, reference=reference, **kw)
