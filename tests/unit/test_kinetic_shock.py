"""kinclose.kinetic.shock.shift_rows, the re-centring of every steady-shock march (DVM, Boltzmann DVM on
NumPy and torch, reduced models): rows move by whole cells and the reservoirs refill the vacated ones."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("shift", [2, -3])
def test_shift_rows_moves_numpy_and_torch_rows_alike(shift) -> None:
    from kinclose.kinetic.shock import shift_rows

    a = np.arange(24.0).reshape(8, 3)
    left, right = np.array([-1.0, -2.0, -3.0]), np.array([7.0, 8.0, 9.0])
    expect = np.roll(a, -shift, axis=0)
    if shift > 0:
        expect[-shift:] = right
    else:
        expect[:-shift] = left
    b = a.copy()
    shift_rows(b, shift, left, right)
    np.testing.assert_array_equal(b, expect)
    torch = pytest.importorskip("torch")
    t = torch.tensor(a)
    shift_rows(t, shift, torch.tensor(left), torch.tensor(right))
    np.testing.assert_array_equal(t.numpy(), expect)
