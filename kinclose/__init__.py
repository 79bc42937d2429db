"""kinclose: machine-learned moment closures for kinetic gas dynamics.

OpenBLAS is limited to one thread unless ``OPENBLAS_NUM_THREADS`` is already set (effective when
kinclose is imported before NumPy, as in every console script): kinclose's BLAS calls are the small
batched matmuls of the fused closure inference (:mod:`kinclose.closure.fused`), which threaded
OpenBLAS runs up to 10× slower whenever another process competes for the cores. The parallel parts
(numba kernels, torch training, Dask workers) have their own threads.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("kinclose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
