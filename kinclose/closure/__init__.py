"""Learned closures of the reduced moment system (DESIGN §6 and Appendix).

The closure quantities of a shape with generalized moments W are

* σ̂(W) = σ/(ρT), q̂(W) = q/(ρT^{3/2})              (flux of U),
* m(W; δ, τ), k(W; δ, τ)                              (moments and their flux in another frame),

see ``kinclose.reduced.closure``. This package builds their training targets from stored shapes
(``targets``), the networks and ensembles that learn them (``networks``), the training stage
``kinclose-train stage=closure`` (``train``), the :class:`~kinclose.closure.learned.LearnedClosure`
that plugs a trained ensemble into the reduced solver (``learned``), the exact closure algebra of graded
Hermite moments that leaves only the two top moments to learn (``hermite``, ``stage.structure``) and the
distillation of an ensemble's mean into one network, ``kinclose-train stage=distill`` (``distill``).

All submodules import torch lazily or are torch modules themselves; ``import kinclose.closure``
pulls in nothing heavy.
"""

__all__ = ["targets", "networks", "train", "learned", "hermite", "distill"]
