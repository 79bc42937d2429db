"""kinclose: machine-learned moment closures for kinetic gas dynamics.

OpenBLAS is limited to one thread unless ``OPENBLAS_NUM_THREADS`` is already set (effective when
kinclose is imported before NumPy, as in every console script): kinclose's BLAS calls are the small
batched matmuls of the fused closure inference (:mod:`kinclose.closure.fused`), which threaded
OpenBLAS runs up to 10× slower whenever another process competes for the cores. The parallel parts
(numba kernels, torch training, Dask workers) have their own threads.

GNU OpenMP threads spin for at most 20 000 iterations before sleeping (``GOMP_SPINCOUNT=20000``
unless it or ``OMP_WAIT_POLICY`` is already set; the default is 300 000): numba's OpenMP layer and
torch's each keep their idle threads spinning after a parallel region, so in a process that runs
both (a DVM reference, then a learned closure) each steals the other's cores. Measured on 2 cores:
the Mach 5.5 shock of the Boltzmann-trained MLC after the DVM references (scripts/boltzmann_shock.py)
took 171 s with the default, 64 s with 20 000 and 50 s with ``OMP_WAIT_POLICY=passive``, which
however slows the BGK DVM shock by 20 % (5.7 → 6.9 s); 20 000 leaves it unchanged (5.5 s).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "20000")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("kinclose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
