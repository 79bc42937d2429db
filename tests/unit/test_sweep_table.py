"""The Knudsen-sweep table says which mean errors leave failed runs out."""

import math

from kinclose.bench.sweep import FIELDS, error_cell, failed_runs, markdown


def test_error_cell_marks_failed_runs() -> None:
    assert error_cell(0.1234, 0, 4) == "12.34%"
    assert error_cell(0.1234, 1, 4) == "12.34% (1 of 4 failed)"
    assert error_cell(math.nan, 4, 4) == "failed"


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
