"""Generalized moments (DESIGN §5): normalized shapes of Chu-reduced distributions, Hermite and
learned encoders W = Ψ(f), decoders Φ(W) with exact mass/momentum/energy, and their training.

``kinclose.moments.shape`` is NumPy only and is imported here; the torch modules
(``encoders``, ``decoders``, ``train``) are imported explicitly by whoever needs them, so that
``import kinclose.moments`` does not pull in torch.
"""

from kinclose.moments.shape import (
    ETA_MAXWELLIAN,
    VelocityCoverageError,
    XiGrid,
    check_coverage,
    entropy_from_shape,
    from_shape,
    full_entropy,
    hermite_moments,
    maxwellian_shape,
    shape_entropy,
    shape_moments,
    to_shape,
)

__all__ = [
    "ETA_MAXWELLIAN",
    "VelocityCoverageError",
    "XiGrid",
    "check_coverage",
    "entropy_from_shape",
    "from_shape",
    "full_entropy",
    "hermite_moments",
    "maxwellian_shape",
    "shape_entropy",
    "shape_moments",
    "to_shape",
]
